"""The engine's process: load the models, then run the plans the parent sends, reporting events.

Started by `local.py` as `python -m inference_server.executors.child`. Commands arrive on stdin
(`("start", settings, loader)`, then `("run", job_id, plan, fault)` and `("cancel", job_id)`), events
leave on stdout, and everything the libraries print goes to stderr, the server's log. The child encodes
and stores the images itself: only plans, events and file names cross the pipes.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import signal
import sys
import threading
from typing import BinaryIO, Callable

from inference_server import logs
from inference_server.executors.events import LoadFailed, Loaded
from inference_server.executors.job_runner import JobRunner
from inference_server.executors.wire import read_message, write_message

log = logging.getLogger(__name__)


def load_callable(path: str):
    """`package.module:function`, so the loader can be named across a process boundary."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _die_with_parent(death_signal: int) -> None:
    """Linux: the kernel signals this process if the server process dies, so no orphan holds the GPU."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, death_signal)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def connect_to_parent(death_signal: int = signal.SIGKILL) -> tuple[BinaryIO, Callable[[object], None]]:
    """(commands in, a thread-safe emit of events out); stdout is the event pipe only, prints go to stderr."""
    _die_with_parent(death_signal)
    commands_in = sys.stdin.buffer
    events_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a library's print must not corrupt the event pipe
    sys.stdout = sys.stderr
    logs.configure()
    write_lock = threading.Lock()

    def emit(event) -> None:
        with write_lock:
            write_message(events_out, event)

    return commands_in, emit


def main() -> int:
    commands_in, emit = connect_to_parent()
    start = read_message(commands_in)
    if start is None:
        return 0
    _, settings, loader = start
    try:
        engine = load_callable(loader)(settings)
        runner = JobRunner(engine, settings, emit)  # loads the safety checker too
    except Exception as exc:
        log.exception("model failed to load")
        emit(LoadFailed(f"{type(exc).__name__}: {exc}"))
        return 1
    emit(Loaded(engine.model_infos()))
    runs: queue.Queue = queue.Queue()
    threading.Thread(target=_read_commands, args=(commands_in, runner, runs), name="commands", daemon=True).start()
    while (command := runs.get()) is not None:
        _, job_id, plan, fault = command
        runner.run(job_id, plan, fault)
    runner.close()
    return 0


def _read_commands(commands_in, runner: JobRunner, runs: queue.Queue) -> None:
    """Cancels act at once (the running job checks at its next step); runs wait their turn."""
    while (command := read_message(commands_in)) is not None:
        if command[0] == "cancel":
            runner.cancel(command[1])
        else:
            runner.accept(command[1])  # a cancel that follows it in the pipe reaches it while it waits
            runs.put(command)
    runs.put(None)  # the parent closed the pipe: finish what was sent, then exit


if __name__ == "__main__":
    sys.exit(main())
