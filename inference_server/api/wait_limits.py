"""How many long-polls and event streams one caller may hold open at once (MAX_WAITS_PER_KEY).

A waiting connection costs the front door little, but not nothing: one key must not hold thousands.
The caller is its API key (hashed), or its address when the server has no keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from typing import Iterator

from flask import Request

from inference_server.api.security import bearer_token
from inference_server.errors import ApiError


class WaitLimiter:
    def __init__(self, per_caller: int):
        self.per_caller = per_caller
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    @staticmethod
    def caller(request: Request) -> str:
        token = bearer_token(request)
        if token:
            return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        return f"addr:{request.remote_addr}"

    def acquire(self, caller: str) -> None:
        with self._lock:
            if self._open[caller] >= self.per_caller:
                raise ApiError(429, "too_many_waits",
                               f"this key already holds {self.per_caller} long-polls or event streams "
                               "(MAX_WAITS_PER_KEY): close one, or poll without waiting", headers={"Retry-After": "1"})
            self._open[caller] += 1

    def release(self, caller: str) -> None:
        with self._lock:
            self._open[caller] -= 1
            if self._open[caller] <= 0:
                del self._open[caller]

    @contextlib.contextmanager
    def hold(self, caller: str) -> Iterator[None]:
        self.acquire(caller)
        try:
            yield
        finally:
            self.release(caller)
