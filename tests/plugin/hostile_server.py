"""Servers that play a broken or hostile party to the plugin's downloads, on loopback only.

HostileServer is the scripted inference server with result files that are too large, drip,
or redirect, and jobs that list more images than asked. ImageHost is any other web host
(a storage host, an internal service, an image URL an agent was given) that records what it
was sent.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.plugin.fake_server import FakeServer, png

MiB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_entry(url: str, seed: int = 7) -> dict:
    return {"url": url, "seed": seed, "width": 64, "height": 64, "mime_type": "image/png"}


def stream_zeros(handler, total: int, length_header: int | None, counter: dict, key: str) -> None:
    """Send a PNG signature then zeros, counting what the socket took, until the peer leaves."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    if length_header is not None:
        handler.send_header("Content-Length", str(length_header))
    handler.end_headers()
    counter[key] = 0
    block = PNG_SIGNATURE + bytes(256 * 1024 - len(PNG_SIGNATURE))
    try:
        while counter[key] < total:
            handler.wfile.write(block)
            counter[key] += len(block)
            block = bytes(len(block))
    except OSError:
        pass  # the plugin stopped reading, as it should


def drip(handler, length: int, every_s: float, counter: dict, key: str, stop: threading.Event) -> None:
    """Announce `length` bytes, then send one byte every `every_s` seconds."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    body = (PNG_SIGNATURE + bytes(length))[:length]
    counter[key] = 0
    try:
        for i in range(length):
            handler.wfile.write(body[i:i + 1])
            handler.wfile.flush()
            counter[key] = i + 1
            if stop.wait(every_s):
                return
    except OSError:
        pass


def redirect(handler, location: str) -> None:
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


class HostileServer(FakeServer):
    """FakeServer whose jobs list `images`, whose /v1/info announces `max_pixels`, and whose
    `routes` (path -> function(handler)) answer as scripted; `sent` counts the bytes they sent."""

    def __init__(self, images: list[dict] | None = None, max_pixels: int | None = None):
        super().__init__("ok")
        self.images = images or [image_entry("/v1/files/fake.png")]
        self.max_pixels = max_pixels
        self.routes: dict = {}
        self.sent: dict[str, int] = {}

    def job(self, status: str) -> dict:
        job = super().job(status)
        job["images"] = self.images if status == "succeeded" else []
        return job

    def route(self, handler, method: str) -> None:
        path = urlsplit(handler.path).path
        if path == "/v1/info" and self.max_pixels is not None:
            return handler._send(200, {"service": "qwen-image-inference-server", "model": "fake",
                                       "limits": {"max_pixels": self.max_pixels}})
        if path in self.routes:
            return self.routes[path](handler)
        return super().route(handler, method)

    def get_count(self, path: str) -> int:
        return sum(1 for method, logged in self.log if method == "GET" and urlsplit(logged).path == path)


class ImageHost:
    """A web host that serves `body` on every path and records each request's path and headers."""

    def __init__(self, body: bytes | None = None, address: str = "127.0.0.1", port: int = 0,
                 ssl_context=None):
        self.body = png(color=(10, 200, 30)) if body is None else body
        self.requests: list[tuple[str, dict]] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{address}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def twin_hosts(first: bytes, second: bytes) -> tuple[ImageHost, ImageHost]:
    """Two hosts on one port, at 127.0.0.2 and 127.0.0.1: one name can resolve to either."""
    for _ in range(50):
        one = ImageHost(first, "127.0.0.2")
        try:
            return one, ImageHost(second, "127.0.0.1", one.port)
        except OSError:  # that port is taken on 127.0.0.1: try another
            one.close()
            time.sleep(0.01)
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
