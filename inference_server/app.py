"""The application factory: settings, the job service, one blueprint per concern."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Callable

from flask import Flask, g, request
from PIL import Image

from inference_server import logs
from inference_server.api import errors, job_list, jobs, openapi, playground, security, service, tasks
from inference_server.config import Settings
from inference_server.jobs.service import JobService
from inference_server.metrics import Metrics

log = logging.getLogger("inference_server.http")


def _load_engine(settings: Settings):
    """Imported here, in the worker thread, so the HTTP layer never imports torch."""
    from inference_server.engine import load_engine

    return load_engine(settings)


def create_app(settings: Settings | None = None, engine_loader: Callable | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=int(settings.max_upload_mb * 1024 * 1024),
                      JSON_SORT_KEYS=False)
    app.json.ensure_ascii = False
    Image.MAX_IMAGE_PIXELS = settings.max_pixels  # Pillow's decompression-bomb guard, set once per process
    metrics = Metrics()
    app.config["METRICS"] = metrics
    app.config["JOBS"] = JobService(settings, engine_loader or _load_engine, metrics)
    _access_log(app)
    errors.register(app)
    security.register(app)
    for blueprint in (tasks.bp, jobs.bp, service.bp, openapi.bp, job_list.bp, playground.bp):
        app.register_blueprint(blueprint)
    return app


def _access_log(app: Flask) -> None:
    @app.before_request
    def start():
        g.started = time.perf_counter()
        sent = request.headers.get("X-Request-ID", "")
        logs.request_id.set(sent[:64] if sent.isprintable() and sent else uuid.uuid4().hex[:16])

    @app.after_request
    def done(response):
        response.headers["X-Request-ID"] = logs.request_id.get() or ""
        if request.path not in ("/healthz", "/readyz", "/metrics"):
            log.info("%s %s %s", request.method, request.path, response.status_code,
                     extra={"status": response.status_code,
                            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1)})
        return response
