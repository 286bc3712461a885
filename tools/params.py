"""Translate Dify tool parameters into the server's request fields (pure, no SDK import)."""

import json
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
}
# Which image inputs each task takes, and whether it needs them.
TASK_IMAGES: dict[str, dict[str, bool]] = {
    "generate": {},
    "img2img": {"image": True},
    "inpaint": {"image": True, "mask": False},
    "outpaint": {"image": True},
}
PROMPT_REQUIRED = frozenset({"generate", "img2img"})

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
        raise ParameterError("Parameter 'prompt' is required: describe the image to create.")
    body: dict = {"prompt": prompt} if prompt.strip() else {}
    for name in TASK_PARAMS[task]:
        value = params.get(name)
        if value is None or (isinstance(value, str) and not value.strip()) or value == UNSET:
            continue
        body[RENAMED.get(name, name)] = _convert(name, value)
    # An explicit size wins over the aspect preset on generate.
    if task == "generate" and "width" in body and "height" in body:
        body.pop("aspect_ratio", None)
    return body


def source_parameter(name: str, params: Mapping) -> str:
    """The tool parameter an image input's URL came from, for error messages: a file or '<name>_url'."""
    file = params.get(name)
    return name if file else f"{name}_url"


def image_sources(task: str, params: Mapping) -> dict[str, str]:
    """The URL of each image input: the Dify file wins over the agent's *_url string."""
    sources = {}
    for name, required in TASK_IMAGES[task].items():
        file = params.get(name)
        if isinstance(file, list):  # a workflow may map a files array: its first image
            file = file[0] if file else None
        url = getattr(file, "url", None) or (file.get("url") if isinstance(file, Mapping) else None)
        url = url or str(params.get(f"{name}_url") or "").strip()
        if url:
            sources[name] = url
        elif required:
            raise ParameterError(
                f"Parameter '{name}' is required: give the {name} as a file or as '{name}_url'."
            )
    return sources
