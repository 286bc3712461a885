"""The engine on a thread of this process: for tests that build the app with a fake or faulty engine.

The same `JobRunner` as the child process, so what a test sees is what the child does.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Iterator

from inference_server.config import Settings
from inference_server.executors.events import LOAD_FAILED, JobEvent, ModelInfo
from inference_server.executors.job_runner import JobRunner
from inference_server.executors.routing import EventRouter

log = logging.getLogger(__name__)


class InProcessExecutor:
    def __init__(self, settings: Settings, engine_loader: Callable):
        self.settings = settings
        self.engine_loader = engine_loader
        self._router = EventRouter()
        self._runner: JobRunner | None = None
        self._models: dict[str, ModelInfo] | None = None
        self._load_error: str | None = None
        self._runs: queue.Queue = queue.Queue()

    def start(self) -> None:
        threading.Thread(target=self._load_then_run, name="engine", daemon=True).start()

    def _load_then_run(self) -> None:
        try:
            engine = self.engine_loader(self.settings)
            self._runner = JobRunner(engine, self.settings, self._router.route)
        except Exception as exc:
            log.exception("model failed to load")
            self._load_error = f"{type(exc).__name__}: {exc}"
            return
        self._models = {name: ModelInfo(**info) for name, info in engine.model_infos().items()}
        while (run := self._runs.get()) is not None:
            self._runner.run(*run)
        self._runner.close()

    def models(self) -> dict[str, ModelInfo] | None:
        return self._models

    def not_ready_reason(self) -> str | None:
        if self._load_error:
            return f"{LOAD_FAILED}: {self._load_error}"
        return None if self._models is not None else "the model is still loading"

    def capacity(self) -> int:
        return 1

    def submit(self, job_id: str, plan, fault: str | None = None) -> Iterator[JobEvent]:
        events = self._router.open(job_id)
        if self._runner is not None:
            self._runner.accept(job_id)
        self._runs.put((job_id, plan, fault))
        return events

    def cancel(self, job_id: str) -> None:
        if self._runner is not None:
            self._runner.cancel(job_id)

    def stop(self) -> None:
        self._runs.put(None)
