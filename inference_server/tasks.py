"""The one registry of tasks: each task's request model, image inputs, plan builder, model and pipeline.

The routes, the OpenAPI schema, `/v1/info`, validation, planning and the restart replay all read a
`TaskSpec` and spell out none of it again. Adding a task is one spec here plus its plan function
(docs/architecture.md, "Adding a task").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator

from PIL import Image

from inference_server import plans
from inference_server.errors import ApiError
from inference_server.families import Family
from inference_server.imaging import decode_image
from inference_server.model_names import BASE, EDIT
from inference_server.plans import Limits, Plan
from inference_server.schemas import (
    EditRequest, GenerateRequest, Img2ImgRequest, InpaintRequest, OutpaintRequest, TaskRequest, validate_request,
)

PlanBuilder = Callable[[TaskRequest, dict[str, Image.Image], Family, Limits], Plan]


@dataclass(frozen=True)
class ImageInput:
    """An image a task takes: in JSON a base64 string or data URI, in multipart a file part."""

    name: str
    required: bool
    description: str
    max_count: int = 1  # over 1: a list in JSON, repeated parts in multipart, named `name[i]`


@dataclass(frozen=True)
class TaskSpec:
    name: str
    summary: str
    request_model: type[TaskRequest]
    images: tuple[ImageInput, ...]
    build_plan: PlanBuilder
    pipeline: str  # the pipeline kind the engine runs: text2image | image2image | inpainting | ...
    model: str = BASE  # the served model, by name (model_names.py)

    @property
    def image_names(self) -> tuple[str, ...]:
        return tuple(image.name for image in self.images)

    def read(self, fields: dict, raw_images: dict[str, bytes], max_pixels: int) -> "ReadRequest":
        """Fields validated and images decoded, or a 4xx naming the field."""
        validated = validate_request(self.request_model, fields)
        for image in self.images:
            if image.required and not any(key == image.name or key.startswith(f"{image.name}[")
                                          for key in raw_images):
                raise ApiError(422, "missing_field", f"{image.name}: {self.name} needs an input image", image.name)
        decoded = {name: decode_image(data, name, max_pixels) for name, data in raw_images.items()}
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in raw_images.items()}
        return ReadRequest(validated, decoded, digests)

    def plan(self, read: "ReadRequest", family: Family, limits: Limits) -> Plan:
        plan = self.build_plan(read.validated, read.images, family, limits)
        plan.task, plan.pipeline, plan.model = self.name, self.pipeline, self.model
        plan.params = {"task": self.name, **plan.params}
        plan.input_digest = "|".join(f"{name}:{read.digests[name]}" for name in sorted(read.digests))
        plan.cacheable = read.validated.seed is not None
        return plan


@dataclass
class ReadRequest:
    """A request read from HTTP, or from the store after a restart: fields checked, images decoded."""

    validated: TaskRequest
    images: dict[str, Image.Image]
    digests: dict[str, str]


class TaskRegistry:
    """Tasks by name, in the order they were registered (the order of `/v1/info` and the docs)."""

    def __init__(self, specs: tuple[TaskSpec, ...] = ()):
        self._specs: dict[str, TaskSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: TaskSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"task {spec.name!r} is registered twice")
        self._specs[spec.name] = spec

    def copy(self) -> "TaskRegistry":
        return TaskRegistry(tuple(self))

    def get(self, name: str) -> TaskSpec:
        """The spec, or a 404 that lists the tasks there are."""
        spec = self._specs.get(name)
        if spec is None:
            raise ApiError(404, "unknown_task", f"no task {name!r}: use one of {', '.join(self._specs)}")
        return spec

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(tuple(self._specs.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._specs


_IMAGE = "Input image: base64 or a data: URI (PNG, JPEG, WebP)"
_MASK = "Mask image: white = repaint, or RGBA with transparent = repaint"
_EDIT_IMAGES = ("1 to 3 images, base64 or data: URIs: image 1 is edited, the others are references "
                "(\"the person from image 2\")")
_EDIT_MASK = "Optional mask over image 1: white = may change; pixels outside stay exactly as sent"

DEFAULT_TASKS = TaskRegistry((
    TaskSpec("generate", "Text to image", GenerateRequest, (), plans.plan_generate, "text2image"),
    TaskSpec("inpaint", "Repaint the area a mask or a rectangle selects", InpaintRequest,
             (ImageInput("image", True, _IMAGE), ImageInput("mask", False, _MASK)), plans.plan_inpaint, "inpainting"),
    TaskSpec("outpaint", "Extend the canvas on any side, or to an aspect ratio", OutpaintRequest,
             (ImageInput("image", True, _IMAGE),), plans.plan_outpaint, "inpainting"),
    TaskSpec("img2img", "Redraw an image from a prompt, keeping its composition", Img2ImgRequest,
             (ImageInput("image", True, _IMAGE),), plans.plan_img2img, "image2image"),
    TaskSpec("edit", "Edit image 1 the way the prompt says, with up to two reference images (Qwen-Image-Edit)",
             EditRequest, (ImageInput("images", True, _EDIT_IMAGES, max_count=3),
                           ImageInput("mask", False, _EDIT_MASK)), plans.plan_edit, "instruction", model=EDIT),
))

# The tasks behind OpenAI's Images API (api/openai_images.py), preferred first: an operation runs the first one
# registered whose model is served. An edit without a mask goes to `edit` when an edit model is served.
OPENAI_IMAGE_TASKS = {"generations": ("generate",), "masked_edits": ("inpaint",), "edits": ("edit", "img2img")}


def first_served(registry: TaskRegistry, names: tuple[str, ...], served_models) -> TaskSpec | None:
    """The first of `names` that is registered and whose model is among `served_models`."""
    for name in names:
        if name in registry and registry.get(name).model in served_models:
            return registry.get(name)
    return None
