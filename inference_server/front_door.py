"""The front door: gunicorn's gevent worker, so a connection costs a greenlet, never a thread.

A connection that is still sending its headers, or only waiting (a long-poll, an event stream), holds no
thread that others need: 32 one-byte sockets can no longer stall `/healthz`. On top of gevent:
- headers must arrive within HEADER_TIMEOUT_S (gunicorn's keep-alive timer covers the request line
  and headers), and a body within BODY_TIMEOUT_S (`BodyDeadline`), or the connection is closed / 408;
- gunicorn's own error answers (400, 414, 431...) are JSON in our error shape, not HTML pages.
"""

from __future__ import annotations

import json
import time

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.exceptions import RequestTimeout

from inference_server.heap import give_large_buffers_back


def write_json_error(sock, status_int: int, reason: str, message: str) -> None:
    """gunicorn's `util.write_error`, in the API's error shape."""
    code = reason.lower().replace(" ", "_") or "bad_request"
    body = json.dumps({"error": {"code": code, "message": message or reason, "field": None}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
    util.write_nonblock(sock, head + body)


class FrontDoorWorker(GeventWorker):
    def init_process(self):
        util.write_error = write_json_error  # this worker process only answers in our shape
        give_large_buffers_back()
        super().init_process()


class BodyDeadline:
    """WSGI middleware: the whole request body must arrive within `seconds`, or the request gets 408."""

    def __init__(self, app, seconds: float):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        environ["wsgi.input"] = _DeadlineInput(environ["wsgi.input"], time.monotonic() + self.seconds)
        return self.app(environ, start_response)


class BodyTimeout(RequestTimeout):
    """Raised from a body read past its deadline; the app's error handlers answer 408 in JSON."""

    description = "the request body did not arrive within BODY_TIMEOUT_S"


class _DeadlineInput:
    def __init__(self, stream, deadline: float):
        self._stream = stream
        self._deadline = deadline

    def _bounded(self, method, *args):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimeout()
        try:
            with gevent.Timeout(remaining):
                return method(*args)
        except gevent.Timeout:
            raise BodyTimeout() from None

    def read(self, *args):
        return self._bounded(self._stream.read, *args)

    def readline(self, *args):
        return self._bounded(self._stream.readline, *args)

    def readlines(self, *args):
        return self._bounded(self._stream.readlines, *args)

    def __iter__(self):
        while line := self.readline():
            yield line
