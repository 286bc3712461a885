"""One instruction-edit call on a Qwen-Image-Edit pipeline: the call's arguments, and running it seeded.

`edit_call` builds the keyword arguments, so the server's generic `Engine.run(pipeline, call, seeds, on_step)`
can run an edit like any other task; `run_edit` runs one image directly (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

import torch
from PIL import Image

from inference_server.families import QWEN_EDIT, Family, edit_default_size

_AREA_LOCK = threading.Lock()


@contextlib.contextmanager
def reference_area(pixels: int | None):
    """Let Edit Plus VAE-encode its input images at about `pixels` instead of 1 MP, for the duration.

    The pipeline encodes every input at ~1 MP whatever the output size (its module constant VAE_IMAGE_SIZE,
    read at call time): on the CPU that is seconds per image even for the tiny model. Tests pass a small area
    to stay fast; the real model wants the default (None), which this leaves untouched.
    """
    if pixels is None:
        yield
        return
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

    with _AREA_LOCK:
        saved, plus.VAE_IMAGE_SIZE = plus.VAE_IMAGE_SIZE, pixels
        try:
            yield
        finally:
            plus.VAE_IMAGE_SIZE = saved


def edit_call(prompt: str, images: list[Image.Image], width: int | None = None, height: int | None = None,
              steps: int | None = None, true_cfg_scale: float | None = None, negative_prompt: str = "",
              family: Family = QWEN_EDIT) -> dict:
    """The pipeline's keyword arguments. Image 1 is the one edited; the others are references.

    The size is always passed: without one, the first image's aspect ratio at about 1 MP (the Plus pipeline
    on its own would size from the last image). A size off the family's multiple is floored, as the pipeline
    would, but here before the call so the size reported is the size made.
    """
    if not 1 <= len(images) <= family.max_images:
        raise ValueError(f"{family.name} takes 1 to {family.max_images} images, not {len(images)}")
    images = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
    if width is None or height is None:
        default_w, default_h = edit_default_size(*images[0].size, family.size_multiple)
        width, height = width or default_w, height or default_h
    multiple = family.size_multiple
    width, height = max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)
    guidance = family.default_guidance if true_cfg_scale is None else true_cfg_scale
    return {"prompt": prompt, "image": images if family.max_images > 1 else images[0], "width": width,
            "height": height, "num_inference_steps": steps or family.default_steps,
            **family.guidance_kwargs(guidance, negative_prompt)}


def run_edit(pipe, prompt: str, images: list[Image.Image], width: int | None = None, height: int | None = None,
             steps: int | None = None, true_cfg_scale: float | None = None, negative_prompt: str = "",
             seed: int = 0, callback_on_step_end: Callable | None = None,
             family: Family = QWEN_EDIT, area: int | None = None) -> Image.Image:
    """One edited image; the same seed and arguments give the same bytes (a CPU generator, as Engine.run).
    `area`: see `reference_area`."""
    call = edit_call(prompt, images, width, height, steps, true_cfg_scale, negative_prompt, family)
    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.inference_mode(), reference_area(area):
        result = pipe(**call, generator=generator, callback_on_step_end=callback_on_step_end, output_type="pil")
    return result.images[0]
