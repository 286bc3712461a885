// Outpaint: drag a handle on an edge to extend the canvas; the pixel amounts show in (and come from) the fields.
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const SIDES = ["left", "right", "top", "bottom"];
const MAX_EXTENT = 4096;

export class OutpaintEditor {
  constructor(multiple) {
    this.multiple = multiple;
    this.size = null;  // the image's {width, height} in pixels
    this.stage = $("outpaint-stage");
    this.handles = [...this.stage.querySelectorAll(".handle")];
    for (const handle of this.handles) {
      handle.addEventListener("pointerdown", (e) => this.grab(e, handle.dataset.side));
      handle.addEventListener("keydown", (e) => this.key(e, handle.dataset.side));
    }
    for (const side of SIDES) $(side).addEventListener("input", () => { $("target-ratio").value = ""; this.layout(); });
    $("target-ratio").addEventListener("change", () => this.applyRatio($("target-ratio").value));
    window.addEventListener("resize", () => this.layout());
    document.addEventListener("languagechange", () => this.label());
    this.label();
  }

  label() {
    for (const handle of this.handles) {
      handle.setAttribute("aria-label", t("extend", { side: t(handle.dataset.side) }));
    }
  }

  setImage(url, width, height) {
    this.size = { width, height };
    $("outpaint-image").src = url;
    this.stage.hidden = false;
    this.layout();
  }

  value(side) { return Math.max(0, Number($(side).value) || 0); }

  set(side, value) {
    const snapped = Math.round(value / this.multiple) * this.multiple;
    $(side).value = Math.max(0, Math.min(MAX_EXTENT, snapped));
  }

  /** The image sits at the middle at half the stage; the frame around it is the extended canvas. */
  scale() {
    const box = this.stage.getBoundingClientRect();
    return Math.min(box.width * 0.5 / this.size.width, box.height * 0.5 / this.size.height, 4);
  }

  layout() {
    if (!this.size || this.stage.hidden) return;
    const box = this.stage.getBoundingClientRect();
    const s = this.scale();
    const w = this.size.width * s, h = this.size.height * s;
    const x = (box.width - w) / 2, y = (box.height - h) / 2;
    $("outpaint-image").classList.toggle("pixelated", s >= 2);
    Object.assign($("outpaint-image").style, { left: `${x}px`, top: `${y}px`, width: `${w}px`, height: `${h}px` });
    const e = Object.fromEntries(SIDES.map((side) => [side, this.value(side) * s]));
    const frame = { left: x - e.left, top: y - e.top, right: x + w + e.right, bottom: y + h + e.bottom };
    Object.assign($("outpaint-frame").style, {
      left: `${frame.left}px`, top: `${frame.top}px`,
      width: `${frame.right - frame.left}px`, height: `${frame.bottom - frame.top}px`,
    });
    const midX = (frame.left + frame.right) / 2, midY = (frame.top + frame.bottom) / 2;
    const at = { left: [frame.left, midY], right: [frame.right, midY], top: [midX, frame.top], bottom: [midX, frame.bottom] };
    for (const handle of this.handles) {
      const [hx, hy] = at[handle.dataset.side];
      Object.assign(handle.style, { left: `${hx}px`, top: `${hy}px` });
      handle.setAttribute("aria-valuenow", this.value(handle.dataset.side));
      handle.setAttribute("aria-valuemin", 0);
      handle.setAttribute("aria-valuemax", MAX_EXTENT);
    }
  }

  grab(event, side) {
    event.preventDefault();
    const handle = event.currentTarget;
    handle.setPointerCapture(event.pointerId);
    const start = { x: event.clientX, y: event.clientY, value: this.value(side), s: this.scale() };
    const move = (e) => {
      const dx = (e.clientX - start.x) / start.s, dy = (e.clientY - start.y) / start.s;
      const delta = { left: -dx, right: dx, top: -dy, bottom: dy }[side];
      this.set(side, start.value + delta);
      $("target-ratio").value = "";
      this.layout();
    };
    const stop = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", stop);
      handle.removeEventListener("pointercancel", stop);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", stop);
    handle.addEventListener("pointercancel", stop);
  }

  key(event, side) {
    const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    this.set(side, this.value(side) + step * this.multiple);
    this.layout();
  }

  /** Extend evenly on the two sides that reach the ratio (like the server's aspect_ratio, but shown). */
  applyRatio(ratio) {
    if (!ratio || !this.size) return;
    const [rw, rh] = ratio.split(":").map(Number);
    const { width, height } = this.size;
    for (const side of SIDES) $(side).value = 0;
    if (width / height < rw / rh) {
      const extra = Math.ceil(height * rw / rh) - width;
      this.set("left", extra / 2);
      this.set("right", extra - this.value("left"));
    } else {
      const extra = Math.ceil(width * rh / rw) - height;
      this.set("top", extra / 2);
      this.set("bottom", extra - this.value("top"));
    }
    this.layout();
  }
}
