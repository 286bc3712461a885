"""How a raw pipeline image becomes the result: a named operation with its parameters.

Plain, picklable data, so a plan can cross into the engine's process; the engine process applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from inference_server import masks


@dataclass(frozen=True)
class PasteBack:
    """Inpaint: blend the generated crop into the original through the soft mask, paste it at `box`."""

    original: Image.Image
    soft_mask: Image.Image
    box: tuple[int, int, int, int]

    def apply(self, generated: Image.Image) -> Image.Image:
        patch = masks.composite(self.original.crop(self.box), generated, self.soft_mask.crop(self.box))
        result = self.original.copy()
        result.paste(patch, self.box[:2])
        return result


@dataclass(frozen=True)
class BlendOnto:
    """Outpaint: the original canvas wins wherever the feathered mask says it stays."""

    base: Image.Image
    soft_mask: Image.Image

    def apply(self, generated: Image.Image) -> Image.Image:
        return masks.composite(self.base, generated, self.soft_mask)


Finish = PasteBack | BlendOnto | None


def apply_finish(finish: Finish, generated: Image.Image) -> Image.Image:
    return generated if finish is None else finish.apply(generated)
