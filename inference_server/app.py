"""The application factory: settings, the task registry, the job service and its executor, the blueprints.

Building an app is cheap: it starts no thread and loads no model until `app.config["JOBS"].start()`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Callable

from flask import Flask, g, request
from PIL import Image

from inference_server import logs
from inference_server.api import (
    errors, hosts, job_list, jobs, meta, openai_images, openapi, playground, rate_limits, security, tasks,
    tool_schema,
)
from inference_server.api.file_links import FileLinks
from inference_server.api.upload_budget import UploadBudget
from inference_server.api.wait_limits import WaitLimiter
from inference_server.config import Settings
from inference_server.executors.events import Executor
from inference_server.jobs.service import JobService
from inference_server.metrics import Metrics
from inference_server.tasks import DEFAULT_TASKS, TaskRegistry

log = logging.getLogger("inference_server.http")


def make_executor(settings: Settings, engine_loader: Callable | None = None) -> Executor:
    """In-process with a given loader (tests' fake engines); Ray Serve replicas; or the engine in a child process."""
    if engine_loader is not None:
        from inference_server.executors.in_process import InProcessExecutor

        return InProcessExecutor(settings, engine_loader)
    if settings.executor == "ray":
        from inference_server.executors.ray_serve import RayExecutor

        return RayExecutor(settings)
    if settings.executor != "local":
        raise SystemExit(f"EXECUTOR must be local or ray, not {settings.executor!r}")
    from inference_server.executors.local import LocalExecutor

    return LocalExecutor(settings)


def create_app(settings: Settings | None = None, engine_loader: Callable | None = None,
               tasks_registry: TaskRegistry | None = None, executor: Executor | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=int(settings.max_upload_mb * 1024 * 1024),
                      JSON_SORT_KEYS=False)
    app.json.ensure_ascii = False
    Image.MAX_IMAGE_PIXELS = settings.max_pixels  # Pillow's decompression-bomb guard, set once per process
    metrics = Metrics()
    app.config["METRICS"] = metrics
    app.config["WAITS"] = WaitLimiter(settings.max_waits_per_key)
    app.config["FILE_LINKS"] = FileLinks(settings)
    app.config["UPLOADS"] = UploadBudget.from_settings(settings)
    app.config["JOBS"] = JobService(settings, executor or make_executor(settings, engine_loader), metrics,
                                    tasks_registry or DEFAULT_TASKS)
    app.config["FILE_LINKS"].name_storage(app.config["JOBS"].files)
    _access_log(app)
    errors.register(app)
    hosts.register(app)  # before the key check: a request for another host, or from another site, goes no further
    security.register(app)
    rate_limits.register(app)  # after the key check
    for blueprint in (tasks.bp, jobs.bp, meta.bp, openapi.bp, job_list.bp, playground.bp, tool_schema.bp,
                      openai_images.bp):
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
