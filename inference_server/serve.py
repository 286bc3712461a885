"""Serve with gunicorn: one worker process owns the model, threads handle HTTP."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from inference_server import logs
from inference_server.config import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self):
        s = self.settings
        self.cfg.set("bind", f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}")
        # One process: the model is loaded once, and jobs run one at a time per device.
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", s.http_threads)
        # Long-polls and event streams hold a connection for up to 60 s.
        self.cfg.set("timeout", 0)
        self.cfg.set("graceful_timeout", 10)
        self.cfg.set("keepalive", 75)
        self.cfg.set("accesslog", None)
        self.cfg.set("loglevel", "warning")

    def load(self):
        from inference_server.app import create_app

        return create_app(self.settings)


def serve(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    logs.configure()
    settings.check_bind_safety()
    _Gunicorn(settings).run()
