// The inpaint mask: paint (brush, eraser) or drag a rectangle over the image; shown translucent red.
const $ = (id) => document.getElementById(id);
const PAINT = "rgb(255, 32, 96)";

export class MaskPainter {
  constructor() {
    this.imageCanvas = $("mask-image");
    this.overlay = $("mask-overlay");
    this.ctx = this.overlay.getContext("2d", { willReadFrequently: true });
    this.rect = null;  // {x, y, width, height} in image pixels, in rectangle mode
    this.drag = null;
    this.overlay.addEventListener("pointerdown", (e) => this.start(e));
    this.overlay.addEventListener("pointermove", (e) => this.move(e));
    this.overlay.addEventListener("pointerup", (e) => this.end(e));
    this.overlay.addEventListener("pointercancel", (e) => this.end(e));
    $("clear-mask").addEventListener("click", () => this.clear());
    $("invert-mask").addEventListener("click", () => this.invert());
    for (const radio of document.querySelectorAll("input[name=mask-mode]")) {
      radio.addEventListener("change", () => { if (this.rect || this.mode() === "rect") this.clear(); });
    }
  }

  mode() { return document.querySelector("input[name=mask-mode]:checked").value; }

  /** A new image: both canvases take its size in pixels, so the mask is exactly the image's size. */
  setImage(bitmap) {
    for (const canvas of [this.imageCanvas, this.overlay]) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    this.imageCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.clear();
    $("mask-stage").hidden = false;
    const scale = Math.min(560 / bitmap.width, 420 / bitmap.height, 8);
    for (const canvas of [this.imageCanvas, this.overlay]) {
      canvas.classList.toggle("pixelated", scale >= 2);  // a tiny image shows its pixels, not a blur
      canvas.style.width = `${Math.round(bitmap.width * scale)}px`;
      canvas.style.height = `${Math.round(bitmap.height * scale)}px`;
    }
  }

  point(event) {
    const box = this.overlay.getBoundingClientRect();
    return {
      x: (event.clientX - box.left) * this.overlay.width / box.width,
      y: (event.clientY - box.top) * this.overlay.height / box.height,
      scale: this.overlay.width / box.width,
    };
  }

  start(event) {
    if (event.button !== 0) return;
    this.overlay.setPointerCapture(event.pointerId);
    const p = this.point(event);
    this.drag = { from: p, last: p };
    if (this.mode() !== "rect") this.stroke(p, p);
  }

  move(event) {
    if (!this.drag) return;
    const p = this.point(event);
    if (this.mode() === "rect") this.drawRect(this.drag.from, p);
    else this.stroke(this.drag.last, p);
    this.drag.last = p;
  }

  end(event) {
    if (!this.drag) return;
    if (this.mode() === "rect") this.drawRect(this.drag.from, this.point(event));
    this.drag = null;
  }

  stroke(a, b) {
    const ctx = this.ctx;
    ctx.save();
    ctx.globalCompositeOperation = this.mode() === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = PAINT;
    ctx.lineWidth = Number($("brush-size").value) * b.scale;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
    ctx.restore();
  }

  drawRect(a, b) {
    const clamp = (v, max) => Math.max(0, Math.min(max, Math.round(v)));
    const x0 = clamp(Math.min(a.x, b.x), this.overlay.width), x1 = clamp(Math.max(a.x, b.x), this.overlay.width);
    const y0 = clamp(Math.min(a.y, b.y), this.overlay.height), y1 = clamp(Math.max(a.y, b.y), this.overlay.height);
    this.ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.rect = x1 > x0 && y1 > y0 ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : null;
    if (this.rect) {
      this.ctx.fillStyle = PAINT;
      this.ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    }
  }

  clear() {
    this.ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.rect = null;
  }

  invert() {
    if (this.rect) {  // a rectangle turns into a painted mask of everything else
      this.rect = null;
      document.querySelector("input[name=mask-mode][value=brush]").checked = true;
    }
    const data = this.ctx.getImageData(0, 0, this.overlay.width, this.overlay.height);
    for (let i = 0; i < data.data.length; i += 4) {
      data.data[i] = 255; data.data[i + 1] = 32; data.data[i + 2] = 96;
      data.data[i + 3] = 255 - data.data[i + 3];
    }
    this.ctx.putImageData(data, 0, 0);
  }

  /** What the request carries: {region} for a rectangle, {mask: PNG blob} for paint, {} when nothing is marked. */
  async toRequest() {
    if (this.mode() === "rect") return this.rect ? { region: { ...this.rect } } : {};
    const { width, height } = this.overlay;
    if (!width) return {};
    const painted = this.ctx.getImageData(0, 0, width, height);
    const out = new ImageData(width, height);
    let any = false;
    for (let i = 0; i < painted.data.length; i += 4) {
      const alpha = painted.data[i + 3];
      any ||= alpha > 0;
      out.data[i] = out.data[i + 1] = out.data[i + 2] = alpha;  // white = repaint
      out.data[i + 3] = 255;
    }
    if (!any) return {};
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").putImageData(out, 0, 0);
    return { mask: await new Promise((resolve) => canvas.toBlob(resolve, "image/png")) };
  }
}
