"""From a validated request and its decoded images to a plan the engine can run (no torch).

A plan is plain, picklable data: the resolved parameters the job reports, the pipeline call, and the
named operation that turns each raw pipeline image into the result (`compositing`). Everything that
can be wrong with a request is found here, before it is queued. Which builder serves which task is
the registry's business (`tasks.py`): nothing here names a task.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field

from PIL import Image

from inference_server import masks, sizes
from inference_server.compositing import BlendOnto, Finish, PasteBack
from inference_server.errors import ApiError
from inference_server.families import Family, edit_default_size
from inference_server.model_names import BASE
from inference_server.schemas import (
    EditRequest, GenerateRequest, Img2ImgRequest, InpaintRequest, OutpaintRequest, TaskRequest,
)


@dataclass
class Plan:
    task: str
    pipeline: str  # "text2image" | "image2image" | "inpainting"
    params: dict  # what the job reports as `params`
    seeds: list[int]
    call: dict  # pipeline keyword arguments, generators excepted
    notices: list[str] = field(default_factory=list)
    finish: Finish = None  # how a raw image becomes the result (None: as it is)
    input_digest: str = ""
    cacheable: bool = False  # only requests with an explicit seed are repeatable
    model: str = BASE  # the name of the served model that runs it

    def cache_key(self, model: str) -> str:
        """Model, task, every parameter, the seeds and the input images' hashes."""
        material = json.dumps([model, self.task, self.params, self.input_digest], sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    masked_min_size: int


def _common(request: TaskRequest, family: Family) -> tuple[dict, list[int], dict]:
    seed = request.seed if request.seed is not None else random.randrange(0, 2**32 - 4)
    steps = request.num_inference_steps or family.default_steps
    guidance = family.default_guidance if request.guidance is None else request.guidance
    params = {
        "prompt": request.prompt, "negative_prompt": request.negative_prompt,
        "num_inference_steps": steps, "guidance": guidance, "seed": seed, "num_images": request.num_images,
        "output_format": request.output_format,
    }
    call = {"prompt": request.prompt, "num_inference_steps": steps,
            **family.guidance_kwargs(guidance, request.negative_prompt)}
    return params, [seed + i for i in range(request.num_images)], call


def _snapped(width: int, height: int, family: Family, limits: Limits, notices: list[str],
             field_prefix: str = "") -> tuple[int, int]:
    m = family.size_multiple
    w, h = sizes.snap(width, m), sizes.snap(height, m)
    for name, before, after in (("width", width, w), ("height", height, h)):
        if before != after:
            notices.append(f"{field_prefix}{name} {before} snapped to {after} (multiple of {m})")
    _check_pixels(w, h, limits, "width")
    return w, h


def _check_pixels(width: int, height: int, limits: Limits, field_name: str) -> None:
    if width * height > limits.max_pixels:
        raise ApiError(422, "too_many_pixels",
                       f"{width}x{height} is over MAX_PIXELS={limits.max_pixels}", field_name)


def plan_generate(request: GenerateRequest, images, family: Family, limits: Limits) -> Plan:
    notices: list[str] = []
    params, seeds, call = _common(request, family)
    if request.width is not None:
        width, height = _snapped(request.width, request.height, family, limits, notices)
    else:
        width, height = family.presets[request.aspect_ratio or "1:1"]
        _check_pixels(width, height, limits, "aspect_ratio")
        params["aspect_ratio"] = request.aspect_ratio or "1:1"
    params.update(width=width, height=height)
    call.update(width=width, height=height)
    return Plan("", "", params, seeds, call, notices)


def plan_img2img(request: Img2ImgRequest, images, family: Family, limits: Limits) -> Plan:
    notices: list[str] = []
    params, seeds, call = _common(request, family)
    source = images["image"].convert("RGB")
    width, height = (request.width, request.height) if request.width is not None else source.size
    width, height = _snapped(width, height, family, limits, notices)
    params.update(width=width, height=height, strength=request.strength)
    call.update(width=width, height=height, strength=request.strength,
                image=source.resize((width, height), Image.Resampling.LANCZOS))
    return Plan("", "", params, seeds, call, notices)


def _inpaint_mask(request: InpaintRequest, image: Image.Image, mask: Image.Image | None,
                  notices: list[str]) -> Image.Image:
    if mask is not None and request.region is not None:
        raise ApiError(422, "invalid_value", "region: give either a mask or a region, not both", "region")
    if mask is None and request.region is None:
        raise ApiError(422, "missing_field", "mask: an inpaint needs a mask image or a region", "mask")
    if request.region is not None:
        r = request.region
        if r.x >= image.width or r.y >= image.height:
            raise ApiError(422, "invalid_value",
                           f"region: ({r.x}, {r.y}) lies outside the {image.width}x{image.height} image", "region")
        box = masks.Box(r.x, r.y, min(image.width, r.x + r.width), min(image.height, r.y + r.height))
        return masks.mask_from_region(image.size, box)
    mask = masks.mask_from_upload(mask)
    if mask.size != image.size:
        notices.append(f"mask {mask.width}x{mask.height} resized to the image's {image.width}x{image.height}")
        mask = mask.resize(image.size, Image.Resampling.NEAREST)
    return mask


def plan_inpaint(request: InpaintRequest, images, family: Family, limits: Limits) -> Plan:
    notices: list[str] = []
    params, seeds, call = _common(request, family)
    original = images["image"].convert("RGB")
    mask = _inpaint_mask(request, original, images.get("mask"), notices)
    hard, soft = masks.prepare_inpaint_mask(mask, request.mask_invert, request.mask_grow, request.mask_blur)
    selected = masks.bounding_box(hard)
    if selected is None:
        raise ApiError(422, "empty_mask", "mask: the mask selects no pixels (white = repaint)", "mask")
    m = family.size_multiple
    if request.inpaint_area == "masked":
        box = masks.padded_box(selected, request.masked_padding, original.size)
        # Upscale small crops for detail, but never past the image's own short side, nor past MAX_PIXELS.
        min_side = min(limits.masked_min_size, min(original.size))
        width, height = sizes.scale_to_min_side(box.width, box.height, min_side, m)
        if width * height > limits.max_pixels:
            scale = (limits.max_pixels / (box.width * box.height)) ** 0.5
            width, height = (max(m, int(box.width * scale) // m * m), max(m, int(box.height * scale) // m * m))
    else:
        box = masks.Box(0, 0, original.width, original.height)
        width, height = sizes.round_up(original.width, m), sizes.round_up(original.height, m)
    _check_pixels(width, height, limits, "image")
    crop = box.as_tuple()
    params.update(width=original.width, height=original.height, strength=request.strength,
                  inpaint_area=request.inpaint_area, mask_blur=request.mask_blur, mask_grow=request.mask_grow,
                  mask_invert=request.mask_invert, processing_size=[width, height], processing_box=list(crop))
    if request.inpaint_area == "masked":
        params["masked_padding"] = request.masked_padding
    if request.region is not None:
        params["region"] = request.region.model_dump()
    call.update(width=width, height=height, strength=request.strength,
                image=original.crop(crop).resize((width, height), Image.Resampling.LANCZOS),
                mask_image=hard.crop(crop).resize((width, height), Image.Resampling.NEAREST))
    return Plan("", "", params, seeds, call, notices, PasteBack(original, soft, crop))


def plan_outpaint(request: OutpaintRequest, images, family: Family, limits: Limits) -> Plan:
    notices: list[str] = []
    params, seeds, call = _common(request, family)
    original = images["image"].convert("RGB")
    if request.aspect_ratio is not None:
        extents = sizes.extents_for_ratio(original.width, original.height, request.aspect_ratio,
                                           family.size_multiple)
        params["aspect_ratio"] = request.aspect_ratio
    else:
        extents = (request.left, request.right, request.top, request.bottom)
    (width, height), offset = masks.canvas_geometry(original.size, extents, family.size_multiple)
    _check_pixels(width, height, limits, "aspect_ratio" if request.aspect_ratio else "right")
    canvas = masks.outpaint_canvas(original, extents, family.size_multiple, request.feather)
    asked = (original.width + extents[0] + extents[1], original.height + extents[2] + extents[3])
    if (width, height) != asked:
        notices.append(f"canvas {asked[0]}x{asked[1]} rounded up to {width}x{height} (multiple of "
                       f"{family.size_multiple}); the original sits at {offset}")
    params.update(width=width, height=height, left=extents[0], right=extents[1], top=extents[2],
                  bottom=extents[3], feather=request.feather, offset=list(canvas.offset), strength=1.0)
    call.update(width=width, height=height, strength=1.0, image=canvas.prefill, mask_image=canvas.hard)
    return Plan("", "", params, seeds, call, notices, BlendOnto(canvas.prefill, canvas.soft))


def plan_edit(request: EditRequest, images, family: Family, limits: Limits) -> Plan:
    """Image 1 is edited, the others are references. Without a size: image 1's aspect ratio at about 1 MP.

    With a mask, the result has image 1's size and its pixels outside the (grown, blurred) mask, as inpaint.
    """
    notices: list[str] = []
    params, seeds, call = _common(request, family)
    inputs = [images[name].convert("RGB") for name in sorted((n for n in images if n.startswith("images[")),
                                                               key=lambda n: int(n[7:-1]))]
    if len(inputs) > family.max_images:
        raise ApiError(422, "invalid_value", f"images: this edit model takes at most {family.max_images} image(s), "
                                             f"not {len(inputs)}", "images")
    first = inputs[0]
    if request.width is not None:
        width, height = _snapped(request.width, request.height, family, limits, notices)
    else:
        width, height = edit_default_size(first.width, first.height, family.size_multiple)
        _check_pixels(width, height, limits, "images[0]")
    params.update(width=width, height=height, images=len(inputs))
    finish = None
    if images.get("mask") is not None:
        mask = masks.mask_from_upload(images["mask"])
        if mask.size != first.size:
            notices.append(f"mask {mask.width}x{mask.height} resized to image 1's {first.width}x{first.height}")
            mask = mask.resize(first.size, Image.Resampling.NEAREST)
        hard, soft = masks.prepare_inpaint_mask(mask, request.mask_invert, request.mask_grow, request.mask_blur)
        if masks.bounding_box(hard) is None:
            raise ApiError(422, "empty_mask", "mask: the mask selects no pixels (white = change)", "mask")
        finish = PasteBack(first, soft, (0, 0, first.width, first.height))
        params.update(width=first.width, height=first.height, processing_size=[width, height],
                      mask_blur=request.mask_blur, mask_grow=request.mask_grow, mask_invert=request.mask_invert)
    call.update(image=inputs if family.max_images > 1 else first, width=width, height=height)
    return Plan("", "", params, seeds, call, notices, finish)
