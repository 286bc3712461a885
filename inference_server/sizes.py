"""Size arithmetic: snapping to the model's multiple, presets, outpaint extents."""

from __future__ import annotations

import math


def snap(value: int, multiple: int) -> int:
    """Nearest multiple (halves round up), never below one multiple (the pipeline would floor silently)."""
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def round_up(value: int, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


def parse_ratio(ratio: str) -> float:
    w, h = ratio.split(":")
    return int(w) / int(h)


def extents_for_ratio(width: int, height: int, ratio: str, multiple: int) -> tuple[int, int, int, int]:
    """Left/right/top/bottom that widen (or heighten) the image to `ratio` on a canvas of whole multiples.

    The original is centred, its offset floored to a multiple so it sits on whole latent cells.
    """
    target = parse_ratio(ratio)
    if width / height < target:
        canvas = max(snap(round(height * target), multiple), round_up(width, multiple))
        left = (canvas - width) // 2 // multiple * multiple
        return left, canvas - width - left, 0, 0
    canvas = max(snap(round(width / target), multiple), round_up(height, multiple))
    top = (canvas - height) // 2 // multiple * multiple
    return 0, 0, top, canvas - height - top


def scale_to_min_side(width: int, height: int, min_side: int, multiple: int) -> tuple[int, int]:
    """Grow a box so its short side reaches `min_side` (quality), then round up to the multiple."""
    scale = max(1.0, min_side / min(width, height))
    return round_up(round(width * scale), multiple), round_up(round(height * scale), multiple)
