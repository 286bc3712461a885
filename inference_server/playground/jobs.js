// Each submitted job as a card: queue position, a progress bar fed by the event stream, cancel, its images.
import { apiFetch, followJob, imageSrc, isEnded } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, text = "") {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
  if (text) el.textContent = text;
  return el;
}

export class JobList {
  /** onFinished(job): a job succeeded; onOpen(job, index): show an image; onRetry(task, body): submit again. */
  constructor({ onFinished, onOpen, onRetry }) {
    this.list = $("jobs");
    this.cards = [];
    this.onFinished = onFinished;
    this.onOpen = onOpen;
    this.onRetry = onRetry;
    document.addEventListener("languagechange", () => this.cards.forEach((card) => this.render(card)));
  }

  /** Follow a job the server accepted; `request` is {task, body}, kept for Retry. */
  track(job, request) {
    const card = { job, request, polling: false, root: element("li", { class: "job" }) };
    card.title = element("div", { class: "job-head" });
    card.status = element("p", { class: "status", role: "status" });
    card.bar = element("div", { class: "progress", role: "progressbar", "aria-valuemin": "0" });
    card.bar.append(element("div", { class: "bar" }));
    card.thumbs = element("div", { class: "thumbs" });
    card.buttons = element("div", { class: "buttons" });
    card.root.append(card.title, card.status, card.bar, card.thumbs, card.buttons);
    this.list.prepend(card.root);
    $("no-jobs").hidden = true;
    this.cards.push(card);
    this.render(card);
    this.follow(card);
    return card;
  }

  async follow(card) {
    const update = (job) => { card.job = job; this.render(card); };
    try {
      const last = await followJob(card.job.id, update, () => { card.polling = true; this.render(card); });
      if (last) update(last);
    } catch (error) {
      card.error = error.message;
      this.render(card);
      return;
    }
    if (card.job.status === "succeeded") {
      await this.showImages(card);
      this.onFinished(card.job);
    }
  }

  async showImages(card) {
    card.thumbs.replaceChildren();
    card.job.images.forEach((image, index) => {
      const button = element("button", { type: "button", class: "thumb" });
      const img = element("img", { alt: card.job.params.prompt || t(`tab_${card.job.task}`) });
      button.append(img);
      button.addEventListener("click", () => this.onOpen(card.job, index));
      card.thumbs.append(button);
      imageSrc(image).then((src) => { img.src = src; }).catch((error) => { img.title = error.message; });
    });
  }

  render(card) {
    const { job } = card;
    const total = Math.max(1, job.progress ? job.progress.total : 1);
    const step = job.status === "succeeded" ? total : Math.min(total, job.progress ? job.progress.step : 0);
    card.root.dataset.status = job.status;
    card.title.replaceChildren(element("strong", {}, t(`tab_${job.task}`)), document.createTextNode(" "),
      element("span", { class: "prompt" }, (job.params && job.params.prompt) || ""));
    card.bar.setAttribute("aria-label", t("progress"));
    card.bar.setAttribute("aria-valuemax", String(total));
    card.bar.setAttribute("aria-valuenow", String(step));
    card.bar.firstChild.style.width = `${(100 * step) / total}%`;
    let text;
    if (card.error) text = card.error;
    else if (job.status === "queued") text = job.position ? t("queuedAt", { n: job.position }) : t("queued");
    else if (job.status === "running") text = t("runningStep", { step, total });
    else text = t(job.status);
    if (job.error && job.status !== "cancelled") text += `: ${job.error.message}`;
    if (card.polling && !isEnded(job)) text += ` ${t("polling")}`;
    card.status.textContent = text;
    card.buttons.replaceChildren();
    if (!isEnded(job) && !card.error) {
      const cancel = element("button", { type: "button" }, t("cancel"));
      cancel.addEventListener("click", () => this.cancel(card, cancel));
      card.buttons.append(cancel);
    } else if (job.status !== "succeeded" || card.error) {
      const retry = element("button", { type: "button" }, t("retry"));
      retry.addEventListener("click", () => this.onRetry(card.request.task, card.request.body));
      card.buttons.append(retry);
    }
  }

  async cancel(card, button) {
    button.disabled = true;
    const response = await apiFetch(`/v1/jobs/${encodeURIComponent(card.job.id)}`, { method: "DELETE" });
    if (response.ok) {
      card.job = await response.json();
      this.render(card);
    } else {
      button.disabled = false;
    }
  }
}
