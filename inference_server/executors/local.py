"""The local executor: the engine in a child process it starts and supervises, as Replicate's cog does.

A model crash or the OOM killer takes down the child, not the server: the job in flight fails with
`worker_lost` and a new child loads the models again. The HTTP process never imports torch.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from typing import Iterator

from inference_server.config import Settings
from inference_server.executors.events import LOAD_FAILED, Failed, JobEvent, LoadFailed, Loaded, ModelInfo
from inference_server.executors.routing import EventRouter
from inference_server.executors.wire import read_message, write_message

log = logging.getLogger(__name__)
DEFAULT_LOADER = "inference_server.engine:load_engine"
RESTART_PAUSE_S = 1.0
RETRY_LOAD_S = 3.0


class LocalExecutor:
    CHILD_MODULE = "inference_server.executors.child"  # speaks `wire` on its stdin and stdout

    def __init__(self, settings: Settings, loader: str = DEFAULT_LOADER):
        self.settings = settings
        self.loader = loader
        self._router = EventRouter()
        self._models: dict[str, ModelInfo] | None = None
        self._capacity = 1
        self._load_error: str | None = None
        self._restarting: str | None = None
        self._child: subprocess.Popen | None = None
        self._send_lock = threading.Lock()
        self._stopping = False
        self.restarts = 0

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._supervise, name="engine-supervisor", daemon=True).start()

    def _supervise(self) -> None:
        try:
            self._supervise_forever()
        except Exception as exc:  # a broken pipe or an unreadable event: never leave jobs running for ever
            log.exception("the engine supervisor failed")
            self._load_error = f"the engine supervisor failed ({type(exc).__name__}); see the server log"
            self._router.fail_all("worker_lost", "the engine process was lost during the job: submit it again")

    def _supervise_forever(self) -> None:
        while not self._stopping:
            child = self._spawn()
            loaded = read_message(child.stdout)
            if isinstance(loaded, LoadFailed) and loaded.retry:  # e.g. a Ray cluster not reachable yet
                child.wait()
                self._restarting = loaded.message
                time.sleep(RETRY_LOAD_S)
                continue
            if not isinstance(loaded, Loaded):
                code = child.wait()
                self._load_error = loaded.message if isinstance(loaded, LoadFailed) else \
                    f"the engine process exited with code {code} while loading (see the server log)"
                return  # a model that cannot load will not load by trying again: /readyz says why
            self._models = {name: ModelInfo(**info) for name, info in loaded.models.items()}
            self._capacity = loaded.capacity
            self._restarting = None
            log.info("engine ready", extra={"pid": child.pid, "models": list(self._models)})
            while (event := read_message(child.stdout)) is not None:
                self._router.route(event)
            code = child.wait()
            if self._stopping:
                return
            self.restarts += 1
            self._restarting = f"the engine process exited with code {code}; it is restarting"
            log.error("the engine process exited", extra={"code": code, "pid": child.pid})
            self._router.fail_all("worker_lost", f"the engine process exited with code {code} during the job; "
                                                 "it was restarted: submit the job again")
            time.sleep(RESTART_PAUSE_S)

    def _spawn(self) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-m", self.CHILD_MODULE],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        write_message(child.stdin, ("start", self.settings, self.loader))
        self._child = child
        return child

    def stop(self) -> None:
        self._stopping = True
        child = self._child
        if child is None or child.poll() is not None:
            return
        try:
            child.stdin.close()  # the child finishes what it was sent, then exits
            child.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()

    # ---- state -----------------------------------------------------------------------------
    def models(self) -> dict[str, ModelInfo] | None:
        return self._models

    def not_ready_reason(self) -> str | None:
        if self._load_error:
            return f"{LOAD_FAILED}: {self._load_error}"
        if self._models is None:
            return self._restarting or "the model is still loading"
        return self._restarting

    def capacity(self) -> int:
        return self._capacity

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child else None

    # ---- jobs ------------------------------------------------------------------------------
    def submit(self, job_id: str, plan, fault: str | None = None) -> Iterator[JobEvent]:
        events = self._router.open(job_id)
        if not self._send(("run", job_id, plan, fault)):
            self._router.route(Failed(job_id, "worker_lost", "the engine process is not running; try again"))
        return events

    def cancel(self, job_id: str) -> None:
        self._send(("cancel", job_id))

    def _send(self, command) -> bool:
        child = self._child
        if child is None or self._restarting:
            return False
        try:
            with self._send_lock:
                write_message(child.stdin, command)
            return True
        except (OSError, ValueError):  # the child is gone; the supervisor fails its jobs and restarts it
            return False
