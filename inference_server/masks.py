"""Mask and canvas arithmetic for inpaint and outpaint (Pillow and numpy, no torch).

The pipeline binarises masks and drifts unmasked pixels through the VAE, so we
prepare the masks ourselves and composite the original back with a soft mask:
wherever the soft mask is 0 the output is the input, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom


def mask_from_upload(mask: Image.Image) -> Image.Image:
    """White = repaint; an RGBA mask with transparency means transparent = repaint."""
    if mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info):
        alpha = mask.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:
            return Image.eval(alpha, lambda a: 255 - a)
    return mask.convert("L")


def mask_from_region(size: tuple[int, int], box: Box) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box.as_tuple())
    return mask


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation of a boolean mask, exact, in O(pixels) with an integral image."""
    if radius <= 0:
        return mask
    padded = np.pad(mask.astype(np.int32), radius + 1)
    integral = padded.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    window = integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]
    return window > 0


def prepare_inpaint_mask(mask: Image.Image, invert: bool, grow: int, blur: int) -> tuple[Image.Image, Image.Image]:
    """(hard, soft): the binary mask the pipeline repaints, and the blend mask for compositing.

    Thin strokes vanish in the pipeline's 8x latent downsampling, hence `grow`.
    The hard mask covers every pixel the soft mask touches, so nothing is blended from an unrepainted area.
    """
    selected = np.asarray(mask.convert("L")) >= 128
    if invert:
        selected = ~selected
    grown = dilate(selected, grow)
    soft = Image.fromarray((grown * 255).astype(np.uint8))
    if blur > 0:
        soft = soft.filter(ImageFilter.GaussianBlur(blur / 2))
    hard = Image.fromarray(((np.asarray(soft) > 0) * 255).astype(np.uint8))
    return hard, soft


def bounding_box(mask: Image.Image) -> Box | None:
    box = mask.getbbox()
    return Box(*box) if box else None


def padded_box(box: Box, padding: int, size: tuple[int, int]) -> Box:
    width, height = size
    return Box(max(0, box.left - padding), max(0, box.top - padding),
               min(width, box.right + padding), min(height, box.bottom + padding))


def composite(original: Image.Image, generated: Image.Image, soft: Image.Image) -> Image.Image:
    """Integer blend: exact original where soft == 0, exact generated where soft == 255."""
    a = np.asarray(soft, dtype=np.uint32)[..., None]
    o = np.asarray(original.convert("RGB"), dtype=np.uint32)
    g = np.asarray(generated.convert("RGB").resize(original.size, Image.Resampling.LANCZOS), dtype=np.uint32)
    blended = (o * (255 - a) + g * a + 127) // 255
    return Image.fromarray(blended.astype(np.uint8), "RGB")


@dataclass(frozen=True)
class OutpaintCanvas:
    size: tuple[int, int]
    offset: tuple[int, int]  # where the original's top-left lands
    prefill: Image.Image
    hard: Image.Image  # what the pipeline repaints: new area + the overlap band
    soft: Image.Image  # 255 in the new area, a linear ramp across the band, 0 beyond it


def canvas_geometry(size: tuple[int, int], extents: tuple[int, int, int, int],
                    multiple: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((canvas width, height), (x, y) of the original): the original on whole latent cells, the canvas rounded up
    so the pipeline never floors it. Cheap, so sizes are checked before any canvas is allocated."""
    left, right, top, bottom = extents
    w, h = size
    x0 = -(-left // multiple) * multiple
    y0 = -(-top // multiple) * multiple
    return (-(-(x0 + w + right) // multiple) * multiple, -(-(y0 + h + bottom) // multiple) * multiple), (x0, y0)


def outpaint_canvas(image: Image.Image, extents: tuple[int, int, int, int], multiple: int, band: int) -> OutpaintCanvas:
    """Place the original on a larger canvas (see `canvas_geometry`), and mask the rest."""
    w, h = image.size
    (cw, ch), (x0, y0) = canvas_geometry(image.size, extents, multiple)
    rgb = image.convert("RGB")
    # Prefill with a stretched, blurred copy: with strength 1 it barely matters, but it avoids a hard border.
    prefill = rgb.resize((cw, ch), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(16))
    prefill.paste(rgb, (x0, y0))
    alpha = np.full((ch, cw), 255.0)
    inside = _band_ramp(w, h, band, extended=(x0 > 0, cw > x0 + w, y0 > 0, ch > y0 + h))
    alpha[y0:y0 + h, x0:x0 + w] = inside
    soft = Image.fromarray(np.rint(alpha).astype(np.uint8))
    hard = Image.fromarray(((alpha > 0) * 255).astype(np.uint8))
    return OutpaintCanvas((cw, ch), (x0, y0), prefill, hard, soft)


def _band_ramp(w: int, h: int, band: int, extended: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Alpha inside the original: falls from 255 at an extended edge to 0 at `band` px in."""
    if band <= 0:
        return np.zeros((h, w))
    xs, ys = np.arange(w, dtype=float), np.arange(h, dtype=float)
    big = float(band)
    distances = [
        np.broadcast_to(xs[None, :] if extended[0] else big, (h, w)),
        np.broadcast_to((w - 1 - xs)[None, :] if extended[1] else big, (h, w)),
        np.broadcast_to(ys[:, None] if extended[2] else big, (h, w)),
        np.broadcast_to((h - 1 - ys)[:, None] if extended[3] else big, (h, w)),
    ]
    nearest = np.minimum.reduce(distances)
    return np.clip(1.0 - nearest / band, 0.0, 1.0) * 255.0
