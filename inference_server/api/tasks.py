"""POST /v1/{generate,inpaint,outpaint,img2img}: validate, plan, queue; optionally wait."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.decoding import prefer_wait, read_task_body
from inference_server.errors import ApiError
from inference_server.plans import Limits, make_plan, read_request
from inference_server.schemas import IMAGE_FIELDS

bp = Blueprint("tasks", __name__)
log = logging.getLogger(__name__)
TASKS = tuple(IMAGE_FIELDS)


@bp.post("/v1/<task>")
def submit(task: str):
    if task not in TASKS:
        raise ApiError(404, "unknown_task", f"no task {task!r}: use one of {', '.join(TASKS)}")
    settings = current_app.config["SETTINGS"]
    jobs = current_app.config["JOBS"]
    fields, raw_images = read_task_body(request, IMAGE_FIELDS[task])
    read = read_request(task, fields, raw_images, settings.max_pixels)
    engine = jobs.engine
    if engine is None:
        raise ApiError(503, "not_ready", jobs.not_ready_reason() or "not ready", headers={"Retry-After": "5"})
    plan = make_plan(task, read.validated, read.images, read.digests, engine.family,
                     Limits(settings.max_pixels, settings.masked_min_size))
    fault = request.headers.get("X-Inject-Fault") if settings.inject_faults else None
    job = jobs.submit(plan, fault, inputs=(fields, raw_images))
    if settings.log_prompts:
        log.info("prompt", extra={"job_id": job["id"], "prompt": read.validated.prompt,
                                  "negative_prompt": read.validated.negative_prompt})
    wait = prefer_wait(request)
    if wait and job["status"] not in ("succeeded", "failed", "cancelled"):
        job = jobs.wait(job["id"], wait)
    finished = job["status"] in ("succeeded", "failed", "cancelled")
    response = jsonify(job)
    response.status_code = 200 if finished and wait else 202
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
    return response
