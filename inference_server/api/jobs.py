"""Jobs and their files: GET/DELETE /v1/jobs/{id}, the SSE stream, GET /v1/files/{name}."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g, jsonify, redirect, request, send_file, stream_with_context

from inference_server.api.decoding import wait_seconds
from inference_server.api.identity import viewer
from inference_server.errors import ApiError
from inference_server.imaging import MIME_TYPES

bp = Blueprint("jobs", __name__)
_MIME_BY_EXTENSION = {"png": MIME_TYPES["png"], "webp": MIME_TYPES["webp"], "jpg": MIME_TYPES["jpeg"]}


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str):
    jobs, links = current_app.config["JOBS"], current_app.config["FILE_LINKS"]
    wait = wait_seconds(request.args.get("wait"), "wait", clamp=False)
    caller = viewer(request, current_app.config["SETTINGS"])
    if not wait:
        return jsonify(links.render(jobs.get(job_id, caller)))
    limiter = current_app.config["WAITS"]
    with limiter.hold(limiter.caller(request)):
        return jsonify(links.render(jobs.wait(job_id, wait, caller)))


@bp.delete("/v1/jobs/<job_id>")
def cancel_job(job_id: str):
    return jsonify(current_app.config["FILE_LINKS"].render(
        current_app.config["JOBS"].cancel(job_id, viewer(request, current_app.config["SETTINGS"]))))


@bp.get("/v1/jobs/<job_id>/events")
def job_events(job_id: str):
    jobs, links = current_app.config["JOBS"], current_app.config["FILE_LINKS"]
    updates = jobs.events(job_id, viewer(request, current_app.config["SETTINGS"]))  # a 404 before the stream
    limiter = current_app.config["WAITS"]
    caller = limiter.caller(request)
    limiter.acquire(caller)  # a 429 before the stream starts

    def stream():
        for job in updates:
            yield ": keep-alive\n\n" if job is None else f"event: job\ndata: {json.dumps(links.render(job))}\n\n"

    response = Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(lambda: limiter.release(caller))  # when the stream ends or the client leaves
    return response


@bp.get("/v1/files/<name>")
def get_file(name: str):
    settings, jobs = current_app.config["SETTINGS"], current_app.config["JOBS"]
    reader = None if g.get("signed_link") else viewer(request, settings)  # a signed link is for whoever holds it
    if not jobs.may_read_file(name, reader):  # a key reads only its jobs' files
        raise _NOT_FOUND
    if settings.storage == "s3":
        return _object(settings, jobs.files, name)
    path = jobs.files.path(name)
    if path is None:
        raise _NOT_FOUND
    response = send_file(path, mimetype=_MIME_BY_EXTENSION[path.suffix.lstrip(".")], max_age=86400, etag=True)
    if settings.api_keys:  # one key's file: no shared cache may keep it for another
        response.cache_control.public = False
        response.cache_control.private = True
    return response


_NOT_FOUND = ApiError(404, "file_not_found", "no such file (it may have expired)", "name")


def _object(settings, files, name: str):
    """From the bucket: a redirect to a presigned URL (S3_PRESIGN=1), or the bytes streamed through."""
    extension = name.rsplit(".", 1)[-1]
    try:
        if extension not in _MIME_BY_EXTENSION or not files.exists(name):
            raise _NOT_FOUND
        if settings.s3_presign:
            return redirect(files.presigned_url(name, int(settings.file_url_ttl_s)), code=302)
        data = files.read(name)
    except RuntimeError:  # the bucket is unreachable: say so, without its details
        raise ApiError(503, "storage_unavailable", "the result store cannot be read now; try again",
                       headers={"Retry-After": "5"}) from None
    if data is None:
        raise _NOT_FOUND
    return Response(data, mimetype=_MIME_BY_EXTENSION[extension], headers={"Cache-Control": "private, max-age=86400"})
