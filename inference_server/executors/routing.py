"""Hands each job's events to whoever iterates that job: shared by the executors."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

from inference_server.executors.events import ENDING, Failed, JobEvent


class EventRouter:
    def __init__(self):
        self._mailboxes: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()

    def open(self, job_id: str) -> Iterator[JobEvent]:
        """Call before the job is sent, so no event of it can arrive unrouted."""
        mailbox: queue.Queue = queue.Queue()
        with self._lock:
            self._mailboxes[job_id] = mailbox
        return self._drain(job_id, mailbox)

    def _drain(self, job_id: str, mailbox: queue.Queue) -> Iterator[JobEvent]:
        try:
            while True:
                event = mailbox.get()
                yield event
                if isinstance(event, ENDING):
                    return
        finally:
            with self._lock:
                self._mailboxes.pop(job_id, None)

    def route(self, event: JobEvent) -> None:
        with self._lock:
            mailbox = self._mailboxes.get(event.job_id)
        if mailbox is not None:
            mailbox.put(event)

    def fail_all(self, code: str, message: str) -> None:
        """The engine is gone: every job still open ends now (each gets one `Failed`)."""
        with self._lock:
            open_jobs = list(self._mailboxes)
        for job_id in open_jobs:
            self.route(Failed(job_id, code, message))
