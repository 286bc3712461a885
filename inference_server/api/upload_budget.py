"""A byte budget for the request bodies the HTTP process reads and decodes at once.

The front door is one gevent process: 32 large uploads are 32 greenlets that each hold their body, its
parsed copy and the decoded image at the same time. A 16 MB JSON inpaint request costs about 10x its size
in RSS while it is decoded (measured: `bench/upload_flood.py`). Each task request reserves its body's size
(Content-Length, or MAX_UPLOAD_MB when it is chunked) before a byte of it is read, and gives it back once it
is planned and queued. When the budget (UPLOAD_BUDGET_MB; by default 4 x MAX_UPLOAD_MB) is spent, the
request gets 503 with Retry-After; its body is read into nothing first, a chunk at a time.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from flask import Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from inference_server.errors import ApiError

MIB = 1024 * 1024
CHUNK_BYTES = 64 * 1024
DEFAULT_UPLOADS = 4  # a budget of this many maximal bodies, when UPLOAD_BUDGET_MB is not set


class UploadBudget:
    def __init__(self, budget_bytes: int, max_body_bytes: int):
        self.budget_bytes = budget_bytes
        self.max_body_bytes = max_body_bytes
        self.in_use = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "UploadBudget":
        max_body = int(settings.max_upload_mb * MIB)
        budget = int(settings.upload_budget_mb * MIB) if settings.upload_budget_mb > 0 else DEFAULT_UPLOADS * max_body
        return cls(max(budget, max_body), max_body)  # never so small that one maximal body cannot pass

    def cost(self, request: Request) -> int:
        """What reading this body may hold: its declared length, or the most a chunked body may send."""
        length = request.content_length
        if length is None:
            chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
            return self.max_body_bytes if chunked else 0
        return length if length <= self.max_body_bytes else 0  # over the limit: a 413 before it is read

    @contextlib.contextmanager
    def reserve(self, request: Request) -> Iterator[None]:
        cost = self.cost(request)
        with self._lock:
            refused = self.in_use + cost > self.budget_bytes
            if not refused:
                self.in_use += cost
        if refused:
            busy = self.in_use
            _discard_body(request)
            raise ApiError(503, "busy_uploads", f"the server is reading and decoding {busy / MIB:.0f} MB of uploads "
                                                f"(UPLOAD_BUDGET_MB={self.budget_bytes / MIB:g}); try again shortly",
                           headers={"Retry-After": "1"})
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= cost


def _discard_body(request: Request) -> None:
    """Read a refused body into nothing, so that its client, still sending, can read the 503.

    Left to gunicorn, the body is drained within the keep-alive time only (HEADER_TIMEOUT_S); past it the
    connection is reset, and the client sees a reset instead of the answer (measured in bench/upload_flood.py).
    """
    try:
        while request.stream.read(CHUNK_BYTES):
            pass
    except (RequestEntityTooLarge, ClientDisconnected):
        pass
