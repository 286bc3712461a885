"""Jobs and their files: GET/DELETE /v1/jobs/{id}, the SSE stream, GET /v1/files/{name}."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request, send_file, stream_with_context

from inference_server.api.decoding import wait_seconds
from inference_server.errors import ApiError
from inference_server.imaging import MIME_TYPES

bp = Blueprint("jobs", __name__)
_MIME_BY_EXTENSION = {"png": MIME_TYPES["png"], "webp": MIME_TYPES["webp"], "jpg": MIME_TYPES["jpeg"]}


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str):
    jobs, links = current_app.config["JOBS"], current_app.config["FILE_LINKS"]
    wait = wait_seconds(request.args.get("wait"), "wait", clamp=False)
    if not wait:
        return jsonify(links.render(jobs.get(job_id)))
    limiter = current_app.config["WAITS"]
    with limiter.hold(limiter.caller(request)):
        return jsonify(links.render(jobs.wait(job_id, wait)))


@bp.delete("/v1/jobs/<job_id>")
def cancel_job(job_id: str):
    return jsonify(current_app.config["FILE_LINKS"].render(current_app.config["JOBS"].cancel(job_id)))


@bp.get("/v1/jobs/<job_id>/events")
def job_events(job_id: str):
    jobs, links = current_app.config["JOBS"], current_app.config["FILE_LINKS"]
    jobs.get(job_id)  # a 404 before the stream starts
    limiter = current_app.config["WAITS"]
    caller = limiter.caller(request)
    limiter.acquire(caller)  # a 429 before the stream starts

    def stream():
        for job in jobs.events(job_id):
            yield ": keep-alive\n\n" if job is None else f"event: job\ndata: {json.dumps(links.render(job))}\n\n"

    response = Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(lambda: limiter.release(caller))  # when the stream ends or the client leaves
    return response


@bp.get("/v1/files/<name>")
def get_file(name: str):
    path = current_app.config["JOBS"].files.path(name)
    if path is None:
        raise ApiError(404, "file_not_found", "no such file (it may have expired)", "name")
    return send_file(path, mimetype=_MIME_BY_EXTENSION[path.suffix.lstrip(".")], max_age=86400, etag=True)
