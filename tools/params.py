"""Translate Dify tool parameters into the server's request fields (pure, no SDK import)."""

import json
import re
from collections.abc import Mapping

COMMON = ("negative_prompt", "steps", "guidance", "seed", "num_images", "output_format")
# The form and llm parameters each tool sends to its server task, prompt and images aside.
TASK_PARAMS: dict[str, tuple[str, ...]] = {
    "generate": COMMON + ("aspect_ratio", "width", "height"),
    "img2img": COMMON + ("strength", "width", "height"),
    "inpaint": COMMON + (
        "region", "mask_invert", "mask_blur", "mask_grow", "strength", "inpaint_area", "masked_padding",
    ),
    "outpaint": COMMON + ("left", "right", "top", "bottom", "aspect_ratio", "feather"),
    "edit": COMMON + ("width", "height", "mask_invert", "mask_blur", "mask_grow"),  # mask settings: with a mask
}
# Which image inputs each task takes, and whether it needs them.
TASK_IMAGES: dict[str, dict[str, bool]] = {
    "generate": {},
    "img2img": {"image": True},
    "inpaint": {"image": True, "mask": False},
    "outpaint": {"image": True},
    "edit": {"mask": False},
}
# Tasks that take a list of images: the server field (also the `files` parameter), the agents' URL
# parameter, and how many images the task takes.
IMAGE_LISTS: dict[str, tuple[str, str, int, int]] = {"edit": ("images", "image_urls", 1, 3)}
PROMPT_REQUIRED = frozenset({"generate", "img2img", "edit"})

MASK_SETTINGS = ("mask_invert", "mask_blur", "mask_grow")
INTS = frozenset({
    "width", "height", "steps", "seed", "num_images", "mask_blur", "mask_grow", "masked_padding",
    "left", "right", "top", "bottom", "feather",
})
FLOATS = frozenset({"guidance", "strength"})
BOOLS = frozenset({"mask_invert"})
# Tool parameter -> server field, where they differ.
RENAMED = {"steps": "num_inference_steps"}
# Server field -> what the user sees, for the server's 4xx messages.
FIELD_LABELS = {
    "num_inference_steps": "steps",
    "image": "image / image_url",
    "mask": "mask / mask_url",
    "images": "images / image_urls",
}
# Select value meaning "do not send this field".
UNSET = "none"


class ParameterError(ValueError):
    """A tool parameter's value cannot be sent; the message names the parameter."""


def _number(name: str, value, kind):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"Parameter '{name}' must be a number, got {value!r}.") from None
    if kind is int:
        if not number.is_integer():
            raise ParameterError(f"Parameter '{name}' must be a whole number, got {value!r}.")
        return int(number)
    return number


def _bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ParameterError(f"Parameter '{name}' must be true or false, got {value!r}.")


def parse_region(value) -> dict:
    """Accept 'x,y,width,height' (what an agent writes) or a JSON object."""
    if isinstance(value, Mapping):
        raw = dict(value)
    else:
        text = str(value).strip()
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except ValueError:
                raw = None
        else:
            parts = [p for p in text.replace(" ", ",").split(",") if p]
            raw = dict(zip(("x", "y", "width", "height"), parts)) if len(parts) == 4 else None
    if not isinstance(raw, dict) or set(raw) != {"x", "y", "width", "height"}:
        raise ParameterError(
            f"Parameter 'region' must be 'x,y,width,height' in pixels (e.g. '64,64,256,256'), got {value!r}."
        )
    return {k: _number(f"region.{k}", v, int) for k, v in raw.items()}


def _convert(name: str, value):
    if name in INTS:
        return _number(name, value, int)
    if name in FLOATS:
        return _number(name, value, float)
    if name in BOOLS:
        return _bool(name, value)
    if name == "region":
        return parse_region(value)
    return str(value)


def build_body(task: str, params: Mapping, prompt: str) -> dict:
    """The JSON body for POST /v1/<task>, images not included."""
    if task in PROMPT_REQUIRED and not prompt.strip():
        what = "say how to change the image" if task in IMAGE_LISTS else "describe the image to create"
        raise ParameterError(f"Parameter 'prompt' is required: {what}.")
    body: dict = {"prompt": prompt} if prompt.strip() else {}
    for name in TASK_PARAMS[task]:
        value = params.get(name)
        if value is None or (isinstance(value, str) and not value.strip()) or value == UNSET:
            continue
        body[RENAMED.get(name, name)] = _convert(name, value)
    # An explicit size wins over the aspect preset on generate.
    if task == "generate" and "width" in body and "height" in body:
        body.pop("aspect_ratio", None)
    # Dify sends every form setting's default: without a mask, the mask settings mean nothing to an edit.
    if task in IMAGE_LISTS and not (params.get("mask") or str(params.get("mask_url") or "").strip()):
        for name in MASK_SETTINGS:
            body.pop(name, None)
    # Edit sizes go as a pair; alone, neither says what the other should be.
    if task in IMAGE_LISTS and ("width" in body) != ("height" in body):
        raise ParameterError("Parameters 'width' and 'height' go together: give both, or neither to keep "
                             "the first image's aspect ratio.")
    return body


def source_parameter(name: str, params: Mapping) -> str:
    """The tool parameter an image input's URL came from, for error messages: a file or '<name>_url'."""
    file = params.get(name)
    return name if file else f"{name}_url"


def _file_url(file) -> str:
    return getattr(file, "url", None) or (file.get("url") if isinstance(file, Mapping) else None) or ""


def split_urls(text) -> list[str]:
    """An agent's list of URLs: comma- or newline-separated, blanks dropped."""
    return [part.strip() for part in re.split(r"[,\n]", str(text or "")) if part.strip()]


def image_list_sources(task: str, params: Mapping) -> list[tuple[str, str]]:
    """(tool parameter, URL) per image of a task that takes several, in order: the files, then image_urls.

    Both can be given (a workflow's uploaded photo and a URL from an earlier node); the count is checked
    against the task's limits here, before anything is downloaded.
    """
    if task not in IMAGE_LISTS:
        return []
    name, urls_name, least, most = IMAGE_LISTS[task]
    files = params.get(name)
    files = [] if files in (None, "") else files if isinstance(files, list) else [files]
    sources = [(name, _file_url(file)) for file in files]
    if any(not url for _, url in sources):
        raise ParameterError(f"Parameter '{name}': every item must be an image file.")
    sources += [(urls_name, url) for url in split_urls(params.get(urls_name))]
    if not sources:
        raise ParameterError(f"Parameter '{name}' is required: give {least} to {most} images as files, "
                             f"or as '{urls_name}' (http(s) URLs separated by commas or new lines).")
    if not least <= len(sources) <= most:
        raise ParameterError(
            f"Parameters '{name}' and '{urls_name}' give {len(sources)} images together; "
            f"this tool takes {least} to {most}: the first is the one changed, the others are references."
        )
    return sources


def image_sources(task: str, params: Mapping) -> dict[str, str]:
    """The URL of each image input: the Dify file wins over the agent's *_url string."""
    sources = {}
    for name, required in TASK_IMAGES[task].items():
        file = params.get(name)
        if isinstance(file, list):  # a workflow may map a files array: its first image
            file = file[0] if file else None
        url = _file_url(file) or str(params.get(f"{name}_url") or "").strip()
        if url:
            sources[name] = url
        elif required:
            raise ParameterError(
                f"Parameter '{name}' is required: give the {name} as a file or as '{name}_url'."
            )
    return sources
