"""Serve with gunicorn: one gevent worker process for HTTP, the engine in that worker's child process."""

from __future__ import annotations

import resource
import sys

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from inference_server import logs
from inference_server.config import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self):
        s = self.settings
        self.cfg.set("bind", f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}")
        # One HTTP process: it owns the job queue and supervises the one engine process.
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "inference_server.front_door.FrontDoorWorker")
        self.cfg.set("worker_connections", s.max_connections)
        self.cfg.set("timeout", 0)  # long-polls and event streams hold a connection for up to 60 s
        self.cfg.set("graceful_timeout", 10)
        # gevent workers bound the request line and headers by the keep-alive timer: a slow-header deadline.
        self.cfg.set("keepalive", s.header_timeout_s)
        self.cfg.set("accesslog", None)
        self.cfg.set("loglevel", "warning")

    def load(self):
        from inference_server.app import create_app
        from inference_server.front_door import BodyDeadline

        app = create_app(self.settings)
        _check_storage(app)
        app.config["JOBS"].start()
        app.wsgi_app = BodyDeadline(app.wsgi_app, self.settings.body_timeout_s)
        return app


def _raise_open_file_limit() -> None:
    """Every idle connection is a file descriptor: take the hard limit, not the soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def _check_storage(app) -> None:
    """A bucket that is missing or unreachable stops the server now, with what to fix, not at the first job.

    Checked in the worker, after gevent has patched ssl: boto3 in gunicorn's master would break it.
    """
    try:
        check = getattr(app.config["JOBS"].files, "check", None)
        if check is not None:
            check()
    except RuntimeError as exc:
        sys.stderr.write(f"refusing to start: {exc}\n")
        sys.exit(Arbiter.WORKER_BOOT_ERROR)  # gunicorn's master then stops, saying the worker failed to boot


def serve(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    logs.configure()
    settings.check_bind_safety()
    _raise_open_file_limit()
    _Gunicorn(settings).run()
