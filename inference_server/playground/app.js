// The playground: the key, the tabs the server offers, the input image, submitting, and wiring the parts.
import { ApiError, apiFetch, blobToDataUrl, getJson, imageBlob, keys, sleep, submitTask } from "./api.js";
import { bodyFor, clearErrors, configure, fillFrom, markTouched, showError, showTask, sizeMultiple } from "./form.js";
import { Gallery } from "./gallery.js";
import { language, setLanguage, t, translatePage } from "./i18n.js";
import { JobList } from "./jobs.js";
import { MaskPainter } from "./mask.js";
import { OutpaintEditor } from "./outpaint.js";

const $ = (id) => document.getElementById(id);
const KNOWN_TASKS = ["generate", "inpaint", "outpaint", "img2img", "edit"];
const MAX_EDIT_IMAGES = 3;
const state = { task: null, inputs: [], info: null };
let mask, outpaint, jobs, gallery, keyWanted = null;

function banner(text) {
  $("banner").textContent = text || "";
  $("banner").hidden = !text;
}

/** Resolves once the server accepts a key typed into the key form. */
function askForKey() {
  $("key-panel").hidden = false;
  $("api-key").focus();
  if (!keyWanted) {
    let resolveKey;
    keyWanted = new Promise((resolve) => { resolveKey = resolve; });
    keyWanted.resolve = resolveKey;
  }
  return keyWanted;
}

async function useKey(event) {
  event.preventDefault();
  $("err-api-key").textContent = "";
  keys.set($("api-key").value.trim());
  const response = await apiFetch("/v1/info").catch(() => null);
  if (!response || response.status === 401) {
    keys.clear();
    $("err-api-key").textContent = response ? t("keyRejected") : t("unreachable");
    $("api-key").setAttribute("aria-invalid", "true");
    return;
  }
  $("api-key").removeAttribute("aria-invalid");
  $("api-key").value = "";
  $("key-panel").hidden = true;
  $("forget-key").hidden = false;
  const waiting = keyWanted;
  keyWanted = null;
  if (waiting) waiting.resolve();
}

/** /v1/info once the key (if any) is accepted and the model has loaded. */
async function loadInfo() {
  for (;;) {
    let response;
    try {
      response = await apiFetch("/v1/info");
    } catch {
      banner(t("unreachable"));
      await sleep(3000);
      continue;
    }
    if (response.status === 401) {
      await askForKey();
      continue;
    }
    const info = await response.json();
    if (info.ready && info.defaults) {
      banner("");
      return info;
    }
    banner(t("loading"));
    await sleep(2000);
  }
}

function buildTabs(tasks) {
  const list = $("tabs");
  list.replaceChildren();
  for (const task of KNOWN_TASKS.filter((name) => tasks.includes(name))) {
    const tab = document.createElement("button");
    Object.assign(tab, { type: "button", id: `tab-${task}`, textContent: t(`tab_${task}`) });
    tab.dataset.i18n = `tab_${task}`;
    tab.dataset.task = task;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", "task-form");
    tab.addEventListener("click", () => selectTab(task));
    tab.addEventListener("keydown", (event) => {
      const tabs = [...list.children];
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      selectTab(next.dataset.task);
      next.focus();
    });
    list.append(tab);
  }
}

function selectTab(task) {
  state.task = task;
  for (const tab of $("tabs").children) {
    const selected = tab.dataset.task === task;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  $("task-form").setAttribute("aria-labelledby", `tab-${task}`);
  clearErrors();
  showTask(task);
  outpaint.layout();
}

/** The input image(s): from a file, a drop, or the gallery. Edit keeps up to three; the others one. */
async function setInputs(blobs) {
  for (const input of state.inputs) URL.revokeObjectURL(input.url);
  state.inputs = [];
  for (const blob of blobs.slice(0, MAX_EDIT_IMAGES)) {
    const bitmap = await createImageBitmap(blob);
    state.inputs.push({ blob, bitmap, url: URL.createObjectURL(blob), width: bitmap.width, height: bitmap.height });
  }
  $("file-name").textContent = blobs.map((blob) => blob.name || "").filter(Boolean).join(", ");
  const previews = $("input-previews");
  previews.replaceChildren();
  for (const input of state.inputs) {
    const img = document.createElement("img");
    img.src = input.url;
    img.alt = `${t("inputImage")} ${input.width} × ${input.height}`;
    previews.append(img);
  }
  const first = state.inputs[0];
  if (first) {
    mask.setImage(first.bitmap);
    outpaint.setImage(first.url, first.width, first.height);
  }
}

async function requestBody(task) {
  const body = bodyFor(task);
  if (task === "edit") {
    body.images = await Promise.all(state.inputs.map((input) => blobToDataUrl(input.blob)));
  } else if (task !== "generate" && state.inputs[0]) {
    body.image = await blobToDataUrl(state.inputs[0].blob);
  }
  if (task === "inpaint" && state.inputs[0]) {
    const marked = await mask.toRequest();
    if (marked.region) body.region = marked.region;
    if (marked.mask) body.mask = await blobToDataUrl(marked.mask);
  }
  return body;
}

async function submit(task, body) {
  clearErrors();
  $("submit").disabled = true;
  try {
    const job = await submitTask(task, body, (n) => { $("queue-notice").textContent = n ? t("queueFull", { n }) : ""; });
    jobs.track(job, { task, body });
  } catch (error) {
    if (error instanceof ApiError && error.status === 429) $("err-general").textContent = t("queueStillFull");
    else if (error instanceof ApiError) showError(error);
    else $("err-general").textContent = t("networkError", { message: error.message });
  } finally {
    $("submit").disabled = false;
    $("queue-notice").textContent = "";
  }
}

const actions = {
  reuse(job, image) {
    selectTab(job.task);
    fillFrom(job.params, image.seed);
  },
  retry(job, image, newSeed) {
    actions.reuse(job, image);
    if (newSeed) fillFrom(job.params, null);
    $("task-form").requestSubmit();
  },
  async send(task, job, image) {
    await setInputs([await imageBlob(image)]);
    $("prompt").value = job.params.prompt || "";
    selectTab(task);
  },
};

function wireInputs() {
  $("choose-file").addEventListener("click", () => $("image-file").click());
  $("image-file").addEventListener("change", () => setInputs([...$("image-file").files]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = [...event.dataTransfer.files].filter((file) => file.type.startsWith("image/"));
    if (files.length) setInputs(files);
  });
  $("task-form").addEventListener("input", markTouched);
  $("task-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const task = state.task;
    await submit(task, await requestBody(task));
  });
}

async function boot() {
  translatePage();
  $("language").value = language();
  $("language").addEventListener("change", () => setLanguage($("language").value));
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").hidden = !keys.get();
  $("forget-key").addEventListener("click", () => { keys.clear(); location.reload(); });
  document.addEventListener("needkey", () => { keys.clear(); askForKey(); });
  const info = await loadInfo();
  state.info = info;
  const spec = await getJson("/openapi.json").catch(() => null);
  configure(info, spec);
  $("model-info").textContent = [info.model, info.device, info.dtype].filter(Boolean).join(" · ");
  mask = new MaskPainter();
  outpaint = new OutpaintEditor(sizeMultiple());
  jobs = new JobList({
    onFinished: (job) => gallery.add(job),
    onOpen: (job, index) => gallery.open(job, index),
    onRetry: (task, body) => submit(task, body),
  });
  gallery = new Gallery(actions, info.model);
  buildTabs(info.tasks || []);
  wireInputs();
  $("main").hidden = false;
  selectTab(KNOWN_TASKS.find((task) => (info.tasks || []).includes(task)));
  await gallery.load().catch((error) => banner(error.message));
  document.body.dataset.ready = "true";
}

boot();
