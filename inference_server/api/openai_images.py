"""OpenAI's Images API on our tasks: GET /v1/models, POST /v1/images/generations, POST /v1/images/edits.

Synchronous, as OpenAI's clients expect: submit through `api.tasks.submit_task`, then wait for the job up to
OPENAI_WAIT_S (each wait costs the gevent front door a greenlet, not a thread). Errors on these routes are
in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the `openai` SDK raises the right
class. Decoding and encoding only: the tasks, plans and models stay where they are. docs/openai.md.
"""

from __future__ import annotations

import base64
import contextlib
import time
from typing import Callable

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.decoding import read_json_body
from inference_server.api.multipart import read_multipart
from inference_server.api.openai_mapping import (
    EXTENSIONS, MASKED_EXTENSIONS, PARAM_NAMES, RESPONSE_FORMATS, bad, choice, task_fields,
)
from inference_server.api.tasks import submit_task
from inference_server.errors import ApiError
from inference_server.imaging import decode_image
from inference_server.jobs.status import ENDED, JobStatus
from inference_server.tasks import OPENAI_IMAGE_TASKS, TaskSpec, first_served

bp = Blueprint("openai_images", __name__)
OWNER = "qwen-image-server"
MAX_EDIT_IMAGES = 3
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}
NO_RETRY = {"x-should-retry": "false"}  # the SDK would retry a 5xx, and queue the same job again


@bp.get("/v1/models")
def list_models():
    models = current_app.config["JOBS"].models()
    return jsonify({"object": "list", "data": [
        {"id": model.model_id, "object": "model", "created": 0, "owned_by": OWNER} for model in models.values()]})


@bp.post("/v1/images/generations")
def generations():
    with contextlib.ExitStack() as reading:  # the upload budget, as for /v1/<task>: until the job is queued
        reading.enter_context(current_app.config["UPLOADS"].reserve(request))
        body = read_json_body(request) if request.is_json else None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "send a JSON object like {\"prompt\": \"...\"}")
        spec = _served(OPENAI_IMAGE_TASKS["generations"])
        return _run(spec, body, {}, EXTENSIONS, queued=reading.close)


# One over the most, so that a fourth image is answered by the count check (naming `image`, as OpenAI does).
_EDIT_FILES = {"image": MAX_EDIT_IMAGES + 1, "image[]": MAX_EDIT_IMAGES + 1, "mask": 1}


@bp.post("/v1/images/edits")
def edits():
    if request.mimetype != "multipart/form-data":
        raise ApiError(400, "unsupported_media_type", "send multipart/form-data with the image file(s)", "image")
    with contextlib.ExitStack() as reading:  # the upload budget, as for /v1/<task>: until the job is queued
        reading.enter_context(current_app.config["UPLOADS"].reserve(request))
        spec, body, raw, extensions = _edit_request()
        return _run(spec, body, raw, extensions, queued=reading.close)


def _edit_request() -> tuple[TaskSpec, dict, dict[str, bytes], tuple[str, ...]]:
    """Read with the tasks' own multipart reader (part limits, spooled files, unknown file parts refused)."""
    form = read_multipart(request.stream, request.mimetype_params.get("boundary", ""), _EDIT_FILES)
    body = dict(form.fields)
    files = form.file_contents()
    photos = [data for name, data in files if name != "mask"]
    if not 1 <= len(photos) <= MAX_EDIT_IMAGES:
        raise bad("image", f"send 1 to {MAX_EDIT_IMAGES} images, not {len(photos)}")
    masks = [data for name, data in files if name == "mask"]
    if masks:
        spec = _served(OPENAI_IMAGE_TASKS["masked_edits"])
        if len(photos) > 1:
            raise bad("image", "a masked edit takes one image")
        raw = {spec.images[0].name: photos[0], spec.images[1].name: _openai_mask(masks[0])}
        return spec, body, raw, EXTENSIONS + MASKED_EXTENSIONS
    spec = _served(OPENAI_IMAGE_TASKS["edits"])
    photo = spec.images[0]
    if len(photos) > photo.max_count:
        raise bad("image", f"this server's edit takes {photo.max_count} image(s), not {len(photos)}")
    raw = {photo.name: photos[0]} if photo.max_count == 1 else {f"{photo.name}[{i}]": data
                                                               for i, data in enumerate(photos)}
    return spec, body, raw, EXTENSIONS + ("strength",)


def _openai_mask(data: bytes) -> bytes:
    """OpenAI's convention: the mask's transparent pixels are the area to change, which is ours for RGBA masks."""
    mask = decode_image(data, "mask", current_app.config["SETTINGS"].max_pixels)
    if "A" not in mask.getbands() and "transparency" not in mask.info:
        raise bad("mask", "the mask needs an alpha channel: its transparent pixels are the area to change")
    if mask.convert("RGBA").getchannel("A").getextrema()[0] == 255:
        raise bad("mask", "the mask has no transparent pixel, so there is nothing to change")
    return data


def _served(names: tuple[str, ...]) -> TaskSpec:
    jobs = current_app.config["JOBS"]
    served = jobs.models()
    if not served:
        raise ApiError(503, "not_ready", jobs.not_ready_reason() or "the model is still loading",
                       headers={"Retry-After": "5"})
    spec = first_served(jobs.tasks, names, served)
    if spec is None:
        raise ApiError(404, "task_unavailable", "this server serves no model for this operation")
    return spec


def _run(spec: TaskSpec, body: dict, raw_images: dict[str, bytes], extensions: tuple[str, ...],
         queued: Callable[[], None] = lambda: None):
    """Submit, then wait up to OPENAI_WAIT_S; `queued` is called once the job is queued (the upload budget)."""
    jobs, settings = current_app.config["JOBS"], current_app.config["SETTINGS"]
    family = jobs.models()[spec.model].family
    response_format = choice(body.get("response_format"), RESPONSE_FORMATS, "response_format")
    fields, notices = task_fields(body, family, spec.request_model.model_fields, extensions)
    limiter = current_app.config["WAITS"]
    with limiter.hold(limiter.caller(request)):  # before queueing: a refused wait must not leave a job behind
        try:
            job = submit_task(spec.name, fields, raw_images)
        except ApiError as error:
            raise _as_openai_param(error, spec) from None
        raw_images.clear()  # not held while the request waits for its job
        queued()
        deadline = time.monotonic() + settings.openai_wait_s
        while job["status"] not in ENDED and time.monotonic() < deadline:
            job = jobs.wait(job["id"], min(60.0, max(0.0, deadline - time.monotonic())))
    if job["status"] != JobStatus.SUCCEEDED:
        raise _job_error(job, settings.openai_wait_s)
    images = [image for image in job["images"] if not image.get("blocked")]  # the safety policy's are not sent
    if len(images) < len(job["images"]):
        notices = notices + [f"{len(job['images']) - len(images)} image(s) blocked by the server's content policy"]
    answer = {"created": int(time.time()), "data": [_datum(image, response_format) for image in images],
              "output_format": job["params"].get("output_format", "png"), "job_id": job["id"]}
    if job["images"]:
        answer["size"] = f"{job['images'][0]['width']}x{job['images'][0]['height']}"
    if notices or job.get("notices"):
        answer["notices"] = notices + list(job.get("notices") or [])
    return jsonify(answer)


def _datum(image: dict, response_format: str) -> dict:
    links = current_app.config["FILE_LINKS"]
    rendered = links.render({"images": [image]})["images"][0]
    if response_format == "url":
        return {"url": rendered["absolute_url"]}
    try:
        data = current_app.config["JOBS"].files.read(image["url"].rsplit("/", 1)[1].split("?")[0])
    except (OSError, RuntimeError):  # a disk or a bucket that cannot be read now
        data = None
    if data is None:
        raise ApiError(500, "file_missing", "the job's image cannot be read from storage", headers=NO_RETRY)
    return {"b64_json": base64.b64encode(data).decode()}


def _job_error(job: dict, waited_s: float) -> ApiError:
    if job["status"] not in ENDED:
        return ApiError(504, "job_timeout", f"job {job['id']} did not finish within OPENAI_WAIT_S={waited_s:g} s; "
                                            f"it goes on: GET /v1/jobs/{job['id']} has it", headers=NO_RETRY)
    error = job.get("error") or {}
    status = 409 if job["status"] == JobStatus.CANCELLED else 500
    return ApiError(status, error.get("code", "failed"),
                    f"job {job['id']} {job['status']}: {error.get('message', 'no details')}", headers=NO_RETRY)


def _as_openai_param(error: ApiError, spec: TaskSpec) -> ApiError:
    """Our task's field named as OpenAI's request names it (num_images -> n)."""
    field = error.field
    if field is not None:
        root = field.split("[", 1)[0].split(".", 1)[0]
        if root in spec.image_names:
            field = "mask" if len(spec.images) > 1 and root == spec.images[1].name else "image"
        else:
            field = PARAM_NAMES.get(root, field)
    return ApiError(error.status, error.code, error.message, field, error.headers)


@bp.after_request
def openai_error_shape(response):
    """Every error on these routes, whoever raised it (auth, body size, the job), in OpenAI's shape."""
    if response.status_code < 400 or not response.is_json:
        return response
    error = (response.get_json(silent=True) or {}).get("error")
    if not isinstance(error, dict) or "field" not in error:
        return response
    if response.status_code == 422:
        response.status_code = 400  # OpenAI answers an invalid parameter with 400 (the SDK's BadRequestError)
    kind = _TYPES.get(response.status_code, "server_error" if response.status_code >= 500 else "invalid_request_error")
    response.set_data(current_app.json.dumps({"error": {
        "message": error.get("message"), "type": kind, "param": error.get("field"), "code": error.get("code")}}))
    return response
