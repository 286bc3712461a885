"""OpenAI Images request fields mapped onto our task fields: size, quality, n and the extensions.

Plain data, no flask: `api/openai_images.py` reads the request and calls these; docs/openai.md has the tables.
"""

from __future__ import annotations

import math
import re

from inference_server.errors import ApiError
from inference_server.families import Family

# The sizes DALL·E 2/3 and gpt-image clients send. They name an aspect ratio more than a pixel count, so they
# are mapped to the served model's recommended size for the nearest ratio (its presets), with a notice.
OPENAI_SIZES = frozenset({"256x256", "512x512", "1024x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536"})
# quality -> share of the model's default steps (docs/openai.md); `num_inference_steps` overrides it.
QUALITY_STEPS = {"low": 0.25, "medium": 0.5, "standard": 1.0, "high": 1.0, "hd": 1.0, "auto": 1.0}
RESPONSE_FORMATS = ("b64_json", "url")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
EXTENSIONS = ("seed", "negative_prompt", "num_inference_steps", "guidance")
MASKED_EXTENSIONS = ("mask_blur", "mask_grow", "strength")
# Fields that OpenAI's clients send and that change nothing here (documented as ignored).
IGNORED = frozenset({"model", "user", "style", "background", "moderation", "output_compression", "input_fidelity",
                     "partial_images"})
# Our task fields named as the OpenAI request names them, for error messages' `param`.
PARAM_NAMES = {"num_images": "n", "width": "size", "height": "size", "aspect_ratio": "size"}


def bad(param: str, message: str) -> ApiError:
    return ApiError(400, "invalid_value", f"{param}: {message}", param)


def size_fields(size: str | None, family: Family, takes_size: bool) -> tuple[dict, list[str]]:
    """width/height for `size` (`auto` or WxH), and notices for what was changed or ignored."""
    size = (size or "auto").strip().lower()
    if size == "auto":
        return {}, []
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", size)
    if not match or not all(int(side) > 0 for side in match.groups()):
        raise bad("size", f"{size!r} is not auto or WIDTHxHEIGHT, such as 1024x1024")
    width, height = map(int, match.groups())
    if not takes_size:
        return {}, [f"size {size} ignored: this edit keeps the input image's size"]
    if size in OPENAI_SIZES and family.presets:
        ratio, (width, height) = min(family.presets.items(),
                                     key=lambda item: abs(math.log(item[1][0] / item[1][1]) - math.log(width / height)))
        return {"width": width, "height": height}, [
            f"size {size} made at {width}x{height}, the model's recommended size for {ratio}"]
    return {"width": width, "height": height}, []


def steps_for(quality: str | None, family: Family) -> int | None:
    """None for the model's default steps; otherwise the preset's share of them."""
    if quality is None or quality == "":
        return None
    if quality not in QUALITY_STEPS:
        raise bad("quality", f"use one of {', '.join(QUALITY_STEPS)}")
    return None if QUALITY_STEPS[quality] == 1.0 else max(1, round(family.default_steps * QUALITY_STEPS[quality]))


def choice(value: str | None, allowed: tuple[str, ...], param: str) -> str:
    value = allowed[0] if value in (None, "") else str(value)
    if value not in allowed:
        raise bad(param, f"use one of {', '.join(allowed)}")
    return value


def task_fields(body: dict, family: Family, model_fields, extensions: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Our task's fields from an OpenAI request's (JSON values or form strings), and the notices."""
    unknown = set(body) - IGNORED - {"prompt", "n", "size", "quality", "response_format", "output_format",
                                     "stream", *EXTENSIONS, *MASKED_EXTENSIONS}
    if unknown:
        name = sorted(unknown)[0]
        raise bad(name, "not a parameter of this endpoint (docs/openai.md lists them)")
    if str(body.get("stream", "")).lower() in ("true", "1"):
        raise bad("stream", "streaming partial images is not supported: leave stream out")
    fields: dict = {"prompt": body.get("prompt") or ""}
    if body.get("n") not in (None, ""):
        fields["num_images"] = body["n"]
    if body.get("output_format") not in (None, ""):
        fields["output_format"] = choice(body["output_format"], OUTPUT_FORMATS, "output_format")
    sizes, notices = size_fields(body.get("size"), family, "width" in model_fields)
    fields.update(sizes)
    steps = steps_for(body.get("quality"), family)
    if steps is not None:
        fields["num_inference_steps"] = steps
    for name in (*EXTENSIONS, *MASKED_EXTENSIONS):
        if body.get(name) in (None, ""):
            continue
        if name not in extensions or name not in model_fields:
            raise bad(name, "not used by this request (mask_blur, mask_grow and strength need a mask)")
        fields[name] = body[name]
    return fields, notices
