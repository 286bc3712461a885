"""Submits per caller per time (RATE_LIMIT=N/S): a token bucket per API key (or address without keys).

Every submit counts, a cache hit too: a hit is cheap to answer, but each one is a stored job, and a flood of
them must not fill the disk or crowd out the health checks. Beyond the rate: 429 `rate_limited` with
Retry-After, before the body is read.
"""

from __future__ import annotations

import math
import threading
import time

from flask import Flask, request

from inference_server.api.wait_limits import WaitLimiter
from inference_server.errors import ApiError

MAX_CALLERS = 10_000  # buckets kept; full (idle) ones are dropped beyond this


def parse_rate(spec: str) -> tuple[int, float] | None:
    """"N/S" -> (N requests, per S seconds); "", "0" or "off" -> None (no limit)."""
    text = spec.strip().lower()
    if text in ("", "0", "off"):
        return None
    count, _, seconds = text.partition("/")
    try:
        parsed = int(count), float(seconds or 1)
    except ValueError:
        parsed = (0, 0.0)
    if parsed[0] <= 0 or parsed[1] <= 0:
        raise ValueError(f"RATE_LIMIT={spec!r}: write N/S (N requests per S seconds), or 0 for no limit")
    return parsed


class RateLimiter:
    def __init__(self, count: int, seconds: float):
        self.capacity = count
        self.per_second = count / seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 when the request may go; otherwise the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.per_second)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                return (1 - tokens) / self.per_second
            self._buckets[caller] = (tokens - 1, now)
            if len(self._buckets) > MAX_CALLERS:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        for caller, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.per_second >= self.capacity:
                del self._buckets[caller]


def register(app: Flask) -> None:
    """After the key check: only a valid key (or, without keys, an address) spends its own bucket."""
    spec = app.config["SETTINGS"].rate_limit
    rate = parse_rate(spec)
    if rate is None:
        return
    limiter = RateLimiter(*rate)

    @app.before_request
    def limit_submits():
        if request.method != "POST":
            return None
        wait = limiter.take(WaitLimiter.caller(request))
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"this key sent more than RATE_LIMIT={spec} submits: "
                                                f"retry after {retry} s", headers={"Retry-After": str(retry)})
        return None
