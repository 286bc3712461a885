"""Turn a JSON or multipart request into plain fields and image bytes."""

from __future__ import annotations

import json
import math

from flask import Request

from inference_server.errors import ApiError
from inference_server.imaging import decode_base64

def read_task_body(request: Request, inputs: tuple) -> tuple[dict, dict[str, bytes]]:
    """(fields, images) for a task's `ImageInput`s. Images arrive as base64/data URIs in JSON, or files in multipart.

    An input that takes several images yields `name[0]`, `name[1]`... in order.
    """
    takes = {image.name: image.max_count for image in inputs}
    if request.mimetype == "application/json":
        return _from_json(request, takes)
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return _from_form(request, takes)
    raise ApiError(400, "unsupported_media_type",
                   f"send application/json or multipart/form-data, not {request.mimetype or 'nothing'}")


def _from_json(request: Request, takes: dict[str, int]) -> tuple[dict, dict[str, bytes]]:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    images = {}
    for name in takes:
        if name not in body:
            continue
        value = body.pop(name)
        if value is None:
            continue
        if takes[name] == 1:
            images[name] = _json_image(value, name)
            continue
        if not isinstance(value, list) or not 1 <= len(value) <= takes[name]:
            raise ApiError(422, "invalid_image", f"{name}: send a list of 1 to {takes[name]} images", name)
        for index, item in enumerate(value):
            images[f"{name}[{index}]"] = _json_image(item, f"{name}[{index}]")
    return body, images


def _json_image(value, field: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(422, "invalid_image", f"{field}: send the image as a base64 string or data URI", field)
    if value.startswith(("http://", "https://", "file:")):
        raise ApiError(422, "invalid_image", f"{field}: send the image bytes (base64), not a URL or path", field)
    return decode_base64(value, field)


def _from_form(request: Request, takes: dict[str, int]) -> tuple[dict, dict[str, bytes]]:
    fields: dict = {}
    region_parts: dict = {}  # region.x, region.y, ... as separate form fields
    for key, value in request.form.items():
        if key in takes:
            raise ApiError(422, "invalid_image", f"{key}: upload the image as a file part", key)
        if value == "":
            continue  # an empty form field means "not given"
        if key.startswith("region."):
            region_parts[key.removeprefix("region.")] = value
        elif key == "region":
            fields["region"] = _json_object(value, "region") if value.lstrip().startswith("{") else value
        else:
            fields[key] = value
    if region_parts:
        if "region" in fields:
            raise ApiError(422, "invalid_value", "region: give it as JSON or as region.* fields, not both", "region")
        fields["region"] = region_parts
    images = {}
    for key in request.files:
        if key not in takes:
            raise ApiError(422, "unknown_field", f"{key}: this task takes no file {key}", key)
        parts = request.files.getlist(key)
        if len(parts) > takes[key]:
            raise ApiError(422, "invalid_image", f"{key}: at most {takes[key]} file(s), not {len(parts)}", key)
        if takes[key] == 1:
            images[key] = parts[0].read()
        else:
            images.update({f"{key}[{index}]": part.read() for index, part in enumerate(parts)})
    return fields, images


def _json_object(raw: str, field: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_value", f"{field}: must be a JSON object {{x, y, width, height}}", field)
    return value


def wait_seconds(raw: str | None, field: str, clamp: bool) -> float:
    """Parse a wait of 0-60 s; a `Prefer` header is a preference (clamped), a query is validated."""
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if 0 <= value <= 60:
        return value
    if clamp:
        return 60.0 if value > 60 else 0.0
    raise ApiError(422, "invalid_value", f"{field}: must be a number of seconds from 0 to 60", field)


def prefer_wait(request: Request) -> float:
    for part in request.headers.get("Prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            return wait_seconds(value.strip(), "Prefer", clamp=True)
    return 0.0
