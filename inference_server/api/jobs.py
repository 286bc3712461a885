"""Jobs and their files: GET/DELETE /v1/jobs/{id}, the SSE stream, GET /v1/files/{name}."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request, send_file, stream_with_context

from inference_server.api.decoding import wait_seconds
from inference_server.api.identity import viewer
from inference_server.errors import ApiError
from inference_server.imaging import MIME_TYPES

bp = Blueprint("jobs", __name__)
_MIME_BY_EXTENSION = {"png": MIME_TYPES["png"], "webp": MIME_TYPES["webp"], "jpg": MIME_TYPES["jpeg"]}


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str):
    jobs = current_app.config["JOBS"]
    wait = wait_seconds(request.args.get("wait"), "wait", clamp=False)
    caller = viewer(request, current_app.config["SETTINGS"])
    if not wait:
        return jsonify(jobs.get(job_id, caller))
    limiter = current_app.config["WAITS"]
    with limiter.hold(limiter.caller(request)):
        return jsonify(jobs.wait(job_id, wait, caller))


@bp.delete("/v1/jobs/<job_id>")
def cancel_job(job_id: str):
    return jsonify(current_app.config["JOBS"].cancel(job_id, viewer(request, current_app.config["SETTINGS"])))


@bp.get("/v1/jobs/<job_id>/events")
def job_events(job_id: str):
    jobs = current_app.config["JOBS"]
    updates = jobs.events(job_id, viewer(request, current_app.config["SETTINGS"]))  # a 404 before the stream
    limiter = current_app.config["WAITS"]
    caller = limiter.caller(request)
    limiter.acquire(caller)  # a 429 before the stream starts

    def stream():
        for job in updates:
            yield ": keep-alive\n\n" if job is None else f"event: job\ndata: {json.dumps(job)}\n\n"

    response = Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(lambda: limiter.release(caller))  # when the stream ends or the client leaves
    return response


@bp.get("/v1/files/<name>")
def get_file(name: str):
    settings = current_app.config["SETTINGS"]
    path = current_app.config["JOBS"].file_path(name, viewer(request, settings))  # a key reads its jobs' files
    if path is None:
        raise ApiError(404, "file_not_found", "no such file (it may have expired)", "name")
    response = send_file(path, mimetype=_MIME_BY_EXTENSION[path.suffix.lstrip(".")], max_age=86400, etag=True)
    if settings.api_keys:  # one key's file: no shared cache may keep it for another
        response.cache_control.public = False
        response.cache_control.private = True
    return response
