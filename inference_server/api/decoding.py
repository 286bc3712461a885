"""Turn a JSON or multipart request into plain fields and image bytes."""

from __future__ import annotations

import json
import math

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from inference_server.api.multipart import read_multipart
from inference_server.errors import ApiError
from inference_server.imaging import decode_base64


def read_task_body(request: Request, inputs: tuple) -> tuple[dict, dict[str, bytes]]:
    """(fields, images) for a task's `ImageInput`s. Images arrive as base64/data URIs in JSON, or files in multipart.

    An input that takes several images yields `name[0]`, `name[1]`... in order.
    """
    takes = {image.name: image.max_count for image in inputs}
    if request.mimetype == "application/json":
        return _from_json(request, takes)
    if request.mimetype == "multipart/form-data":
        form = read_multipart(request.stream, request.mimetype_params.get("boundary", ""), takes)
        return _from_form(form.fields, form.file_contents(), takes)
    if request.mimetype == "application/x-www-form-urlencoded":
        return _from_form(list(request.form.items(multi=True)), [], takes)
    raise ApiError(400, "unsupported_media_type",
                   f"send application/json or multipart/form-data, not {request.mimetype or 'nothing'}")


def read_json_body(request: Request):
    """The body as JSON: 400 when malformed, nested too deeply or with a key given twice; 413 when too long."""
    return parse_json(_whole_body(request))


def _from_json(request: Request, takes: dict[str, int]) -> tuple[dict, dict[str, bytes]]:
    body = read_json_body(request)
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


def _whole_body(request: Request) -> bytes:
    """The body, not cached on the request (its bytes go once parsed); a chunked one past the limit is a 413.

    werkzeug stops a chunked body at MAX_CONTENT_LENGTH without a word: one byte more says it was longer.
    """
    data = request.stream.read()
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit \
            and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return data


def _json_image(value, field: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(422, "invalid_image", f"{field}: send the image as a base64 string or data URI", field)
    if value.startswith(("http://", "https://", "file:")):
        raise ApiError(422, "invalid_image", f"{field}: send the image bytes (base64), not a URL or path", field)
    return decode_base64(value, field)


def parse_json(data: bytes, field: str | None = None):
    """JSON, or a 400: never the RecursionError of a body nested 10,000 deep, nor a key given twice."""
    try:
        return json.loads(data, object_pairs_hook=_no_repeated_keys)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the JSON is nested too deeply", field) from None
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON", field) from None


def _no_repeated_keys(pairs: list[tuple]) -> dict:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ApiError(400, "invalid_json", f"{repeated}: given twice in one JSON object", repeated)
    return value


def _from_form(items: list[tuple[str, str]], files: list[tuple[str, bytes]],
               takes: dict[str, int]) -> tuple[dict, dict[str, bytes]]:
    fields: dict = {}
    region_parts: dict = {}  # region.x, region.y, ... as separate form fields
    seen: set[str] = set()
    for key, value in items:
        if key in seen:
            raise ApiError(422, "invalid_value", f"{key}: given twice", key)
        seen.add(key)
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
    for key, data in files:  # names and counts were checked as the parts arrived (`read_multipart`)
        if takes[key] == 1:
            images[key] = data
        else:
            images[f"{key}[{sum(1 for name in images if name.startswith(key + '['))}]"] = data
    return fields, images


def _json_object(raw: str, field: str) -> dict:
    try:
        value = parse_json(raw, field)
    except ApiError:
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
