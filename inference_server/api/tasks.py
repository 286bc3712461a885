"""POST /v1/<task> for every task in the registry: decode, plan, queue; optionally wait."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.decoding import prefer_wait, read_task_body, wait_seconds
from inference_server.api.identity import owner
from inference_server.errors import ApiError
from inference_server.jobs.status import ENDED

bp = Blueprint("tasks", __name__)
log = logging.getLogger(__name__)


def submit_task(task: str, fields: dict, raw_images: dict[str, bytes]) -> dict:
    """Plan and queue one job; the public job. Other front ends (OpenAI's API) call this too."""
    settings = current_app.config["SETTINGS"]
    jobs = current_app.config["JOBS"]
    plan = jobs.plan(task, fields, raw_images)
    fault = request.headers.get("X-Inject-Fault") if settings.inject_faults else None
    job = jobs.submit(plan, fault, inputs=(fields, raw_images), owner=owner(request, settings))
    if settings.log_prompts:
        log.info("prompt", extra={"job_id": job["id"], "prompt": plan.params.get("prompt"),
                                  "negative_prompt": plan.params.get("negative_prompt")})
    return job


@bp.post("/v1/<task>")
def submit(task: str):
    jobs = current_app.config["JOBS"]
    spec = jobs.tasks.get(task)  # 404 naming the tasks there are
    fields, raw_images = read_task_body(request, spec.images)
    # ?wait=N is Prefer: wait=N for clients that cannot send headers (Dify's custom tools: docs/dify-custom-tool.md)
    query_wait = request.args.get("wait")
    wait = wait_seconds(query_wait, "wait", clamp=False) if query_wait is not None else prefer_wait(request)
    # JSON null means "not given", as an empty form field does: Dify's custom tools send null for absent properties
    job = submit_task(task, {key: value for key, value in fields.items() if value is not None}, raw_images)
    if wait and job["status"] not in ENDED:
        limiter = current_app.config["WAITS"]
        try:
            with limiter.hold(limiter.caller(request)):
                job = jobs.wait(job["id"], wait)
        except ApiError as refused:  # the job is queued all the same: answer 202 and say why it did not wait
            if refused.code != "too_many_waits":
                raise
            wait = 0
    finished = job["status"] in ENDED
    response = jsonify(current_app.config["FILE_LINKS"].render(job))
    response.status_code = 200 if finished and wait else 202
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    if wait and query_wait is None:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
    return response
