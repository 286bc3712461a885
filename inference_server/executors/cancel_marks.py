"""Which jobs were cancelled, for the engine side of an executor, without keeping ids for ever.

A cancel can reach the engine side before the job's run (it crossed the run on the way) or after its end
(it crossed the job's last event). The first must still stop the job; the second must not be kept for the
life of the process. So: a mark per job that is live (accepted, not yet ended), and a bounded memory of the
latest cancels for jobs that are not live, which `accept` reads.
"""

from __future__ import annotations

import collections
import threading

REMEMBERED_CANCELS = 1024  # cancels of jobs not (yet) live; the oldest are forgotten first


class CancelMarks:
    def __init__(self, remembered: int = REMEMBERED_CANCELS):
        self._remembered = remembered
        self._live: dict[str, bool] = {}  # job id -> whether a cancel came
        self._not_live: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def accept(self, job_id: str) -> None:
        """The job's run is on its way or starting: from now on it is live (idempotent)."""
        with self._lock:
            if job_id not in self._live:
                self._live[job_id] = self._not_live.pop(job_id, False) is None

    def cancel(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._live:
                self._live[job_id] = True
                return
            self._not_live[job_id] = None
            self._not_live.move_to_end(job_id)
            while len(self._not_live) > self._remembered:
                self._not_live.popitem(last=False)

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return self._live.get(job_id, False)

    def forget(self, job_id: str) -> None:
        """The job ended."""
        with self._lock:
            self._live.pop(job_id, None)

    def held(self) -> int:
        """How many ids are kept (for tests: bounded, however many late cancels come)."""
        with self._lock:
            return len(self._live) + len(self._not_live)
