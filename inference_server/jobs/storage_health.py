"""Whether results can be stored: after N storage failures in a row the server is not ready, until a write
probe of the files folder (at most every few seconds) or a job's stored result shows it works again.

Every job failing with `storage` (a read-only or full disk) while `/readyz` says ready would keep a load
balancer sending work to a server that can only fail it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)
PROBE_EVERY_S = 3.0


class StorageHealth:
    def __init__(self, failures_allowed: int, probe: Callable[[], None]):
        self.failures_allowed = failures_allowed  # 0: never report not ready
        self._probe = probe  # raises OSError when the folder cannot be written
        self._failures = 0
        self._cause = ""
        self._last_probe = 0.0
        self._lock = threading.Lock()

    def job_stored(self) -> None:
        with self._lock:
            if self._failures >= self.failures_allowed > 0:
                log.info("storing results works again")
            self._failures = 0

    def job_failed_to_store(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures == self.failures_allowed:
                log.error("%d jobs in a row could not store their results: not ready until a write succeeds",
                          self._failures)

    def not_ready_reason(self) -> str | None:
        with self._lock:
            if self.failures_allowed <= 0 or self._failures < self.failures_allowed:
                return None
            if time.monotonic() - self._last_probe < PROBE_EVERY_S:
                return self._reason()
            self._last_probe = time.monotonic()
        try:
            self._probe()
        except (OSError, RuntimeError) as exc:  # a disk that refuses, or a bucket (StorageError)
            with self._lock:
                self._cause = getattr(exc, "strerror", None) or type(exc).__name__  # no path reaches clients
                return self._reason()
        self.job_stored()
        return None

    def _reason(self) -> str:
        cause = f" ({self._cause})" if self._cause else ""
        return (f"storage is failing: {self._failures} jobs in a row could not store their results{cause}; "
                "the files folder must be writable and have space")
