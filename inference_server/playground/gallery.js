// The gallery (recent jobs from GET /v1/jobs, newest first) and the detail view of one image.
import { getJson, imageBlob, imageSrc } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const PAGE = 24;
const EXTENSIONS = { "image/png": "png", "image/webp": "webp", "image/jpeg": "jpg" };

export class Gallery {
  /** actions: reuse(job, image), retry(job, image, newSeed), send(task, job, image). */
  constructor(actions, modelName) {
    this.list = $("gallery");
    this.actions = actions;
    this.modelName = modelName;
    this.seen = new Set();
    this.next = null;
    this.current = null;
    $("more").addEventListener("click", () => this.load(true));
    $("close-detail").addEventListener("click", () => $("detail").close());
    $("reuse").addEventListener("click", () => this.act(() => actions.reuse(...this.current)));
    $("retry-same").addEventListener("click", () => this.act(() => actions.retry(...this.current, false)));
    $("retry-new").addEventListener("click", () => this.act(() => actions.retry(...this.current, true)));
    for (const button of document.querySelectorAll("[data-send]")) {
      button.addEventListener("click", () => this.act(() => actions.send(button.dataset.send, ...this.current)));
    }
    document.addEventListener("languagechange", () => { if (this.current && $("detail").open) this.describe(); });
  }

  act(action) {
    $("detail").close();
    action();
  }

  async load(more = false) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (more && this.next) query.set("before", this.next);
    const page = await getJson(`/v1/jobs?${query}`);
    for (const job of page.jobs) this.add(job, "append");
    this.next = page.next_before;
    $("more").hidden = !this.next;
    $("empty-gallery").hidden = this.seen.size > 0;
  }

  /** Every image of a succeeded job becomes a thumbnail whose alt text is the prompt. */
  add(job, where = "prepend") {
    if (job.status !== "succeeded") return;
    const items = [];
    job.images.forEach((image, index) => {
      if (this.seen.has(image.url + job.id)) return;
      this.seen.add(image.url + job.id);
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      const img = document.createElement("img");
      img.alt = job.params.prompt || job.task;
      img.loading = "lazy";
      button.append(img);
      button.addEventListener("click", () => this.open(job, index));
      item.append(button);
      items.push(item);
      imageSrc(image).then((src) => { img.src = src; }).catch((error) => { img.title = error.message; });
    });
    if (where === "prepend") this.list.prepend(...items);
    else this.list.append(...items);
    $("empty-gallery").hidden = this.seen.size > 0;
  }

  async open(job, index) {
    const image = job.images[index];
    this.current = [job, image];
    $("detail-image").alt = job.params.prompt || job.task;
    $("detail-image").src = await imageSrc(image);
    this.describe();
    const download = $("download");
    if (download.href.startsWith("blob:")) URL.revokeObjectURL(download.href);
    download.href = URL.createObjectURL(await imageBlob(image));
    download.download = `qwen-image-${job.task}-${image.seed}.${EXTENSIONS[image.mime_type] || "png"}`;
    if (!$("detail").open) $("detail").showModal();
  }

  describe() {
    const [job, image] = this.current;
    const p = job.params;
    const timings = job.timings || {};
    const rows = [
      [t("prompt"), p.prompt], [t("negativePrompt"), p.negative_prompt],
      [t("task"), t(`tab_${job.task}`)], [t("seed"), image.seed], [t("size"), `${image.width} × ${image.height}`],
      [t("steps"), p.num_inference_steps], [t("guidance"), p.guidance],
      [t("model"), job.model || this.modelName],
      [t("timings"), ["queued_s", "run_s"].filter((k) => timings[k] != null).map((k) => `${k} ${timings[k]}`).join(", ")],
      [t("created"), job.created_at], [t("notices"), (job.notices || []).join("; ")],
    ];
    const list = $("detail-params");
    list.replaceChildren();
    for (const [name, value] of rows) {
      if (value === undefined || value === null || value === "") continue;
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      list.append(dt, dd);
    }
  }
}
