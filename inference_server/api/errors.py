"""Every error answer is JSON `{"error": {code, message, field}}`, whatever raised it."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from inference_server.errors import ApiError

log = logging.getLogger(__name__)


def error_response(error: ApiError):
    response = jsonify(error.to_dict())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        limit = app.config["SETTINGS"].max_upload_mb
        return error_response(ApiError(413, "body_too_large", f"the request body is over MAX_UPLOAD_MB={limit:g}"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(ApiError(exc.code or 400, code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(ApiError(500, "internal", f"internal error ({type(exc).__name__})"))
