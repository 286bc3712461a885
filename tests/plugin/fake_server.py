"""A scripted stand-in for the inference server, only for failures the real one cannot be
made to show on demand: hanging, answering 503 first, never finishing a job."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image


def png(width: int = 64, height: int = 64, color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


class FakeServer:
    """Modes: 'ok', 'hang' (answers nothing), 'slow_job' (a job that never ends), 'other' (not our service)."""

    def __init__(self, mode: str = "ok", fail_first: int = 0):
        self.mode = mode
        self.fail_first = fail_first  # how many requests get 503 before the real answer
        self.log: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, bytes]] = []  # (path, body) of every request that had one
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict | bytes, ctype: str = "application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the plugin gave up on this request, as it should

            def _handle(self, method: str):
                fake.log.append((method, self.path))
                if self.headers.get("Content-Length"):
                    fake.bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
                if fake.mode == "hang":
                    fake.release.wait(120)
                    return self._send(503, {"error": {"code": "not_ready", "message": "hung", "field": None}})
                if fake.fail_first > 0:
                    fake.fail_first -= 1
                    return self._send(503, {"error": {"code": "not_ready", "message": "warming up", "field": None}})
                fake.route(self, method)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def job(self, status: str) -> dict:
        images = [{"url": "/v1/files/fake.png", "seed": 7, "width": 64, "height": 64, "mime_type": "image/png"}]
        return {"id": "job-fake", "task": "generate", "status": status, "position": 0,
                "progress": {"step": 1, "total": 50}, "params": {}, "notices": [],
                "images": images if status == "succeeded" else [], "error": None,
                "cache": "miss", "timings": {"queued_s": 0.0, "run_s": 0.1}}

    def route(self, handler, method: str) -> None:
        parts = urlsplit(handler.path)
        if parts.path == "/v1/info":
            service = "other-service" if self.mode == "other" else "qwen-image-inference-server"
            return handler._send(200, {"service": service, "model": "fake"})
        if parts.path == "/readyz":
            return handler._send(200, {"status": "ready"})
        if parts.path == "/v1/files/fake.png":
            return handler._send(200, png(), "image/png")
        if method == "POST" and parts.path.startswith("/v1/"):
            if self.mode == "slow_job":
                self.release.wait(int(handler.headers.get("Prefer", "wait=0").split("=")[1]))
                return handler._send(202, self.job("running"))
            return handler._send(200, self.job("succeeded"))
        if parts.path == "/v1/jobs/job-fake":
            if method == "DELETE":
                return handler._send(200, self.job("cancelled"))
            self.release.wait(int(parse_qs(parts.query).get("wait", ["0"])[0]))
            return handler._send(200, self.job("running" if self.mode == "slow_job" else "succeeded"))
        return handler._send(404, {"error": {"code": "not_found", "message": parts.path, "field": None}})

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
