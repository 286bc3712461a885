"""Play Dify's side of the plugin: the daemon's stdio JSON-lines protocol and the file service.

Only stdlib, requests and PIL here: importing dify_plugin would gevent-patch the test process.
"""

import base64
import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "qwen_image"


@dataclass
class Result:
    """Everything one request streamed back, blobs joined by id."""

    stream: list = field(default_factory=list)
    error: dict | None = None
    blobs: list = field(default_factory=list)  # (meta, bytes) in arrival order

    def of_type(self, kind: str) -> list:
        return [m for m in self.stream if m.get("type") == kind]

    @property
    def text(self) -> str:
        return "".join(m["message"]["text"] for m in self.of_type("text"))

    @property
    def jsons(self) -> list:
        return [m["message"]["json_object"] for m in self.of_type("json")]

    @property
    def variables(self) -> dict:
        return {m["message"]["variable_name"]: m["message"]["variable_value"] for m in self.of_type("variable")}


class PluginProcess:
    """`python -m main` with INSTALL_METHOD=local, as Dify's plugin daemon starts it."""

    def __init__(self, root: Path = ROOT, env: dict | None = None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("REMOTE_INSTALL")}
        full_env.update({"INSTALL_METHOD": "local", "PYTHONUNBUFFERED": "1"}, **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "main"], cwd=root, env=full_env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.manifest: dict | None = None
        self.logs: list[dict] = []
        self.garbage: list[str] = []  # stdout lines that are not protocol messages
        self.stderr = collections.deque(maxlen=200)
        self.llm_replies: list[str] = []  # answers for reverse LLM calls, in order
        self.llm_requests: list[dict] = []
        self._ready = threading.Event()
        self._sessions: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip())

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.garbage.append(line)
                continue
            event = obj.get("event") if isinstance(obj, dict) else None
            if event is None and self.manifest is None and isinstance(obj, dict) and "name" in obj:
                self.manifest = obj
            elif event == "heartbeat":
                self._ready.set()
            elif event == "log":
                self.logs.append(obj["data"])
            elif event == "session":
                self._on_session(obj["session_id"], obj["data"])
            else:
                self.garbage.append(line)

    def _on_session(self, session_id: str, data: dict) -> None:
        if data.get("type") == "invoke":  # a reverse call: answer as Dify would
            self._answer_invoke(session_id, data["data"])
            return
        with self._lock:
            target = self._sessions.get(session_id)
        if target is None:
            self.garbage.append(json.dumps(data))
        else:
            target.put(data)

    def _answer_invoke(self, session_id: str, call: dict) -> None:
        self.llm_requests.append(call)
        reply_id = call["backwards_request_id"]
        answers = []
        if call.get("type") == "llm" and self.llm_replies:
            chunk = {"model": call["request"].get("model", "fake"),
                     "delta": {"index": 0, "message": {"role": "assistant", "content": self.llm_replies.pop(0)}}}
            answers.append({"event": "response", "message": "", "data": chunk})
            answers.append({"event": "end", "message": "", "data": None})
        else:
            answers.append({"event": "error", "message": "the test harness has no answer for this call", "data": None})
        for answer in answers:
            self.send({"session_id": session_id, "event": "backwards_response",
                       "data": {"backwards_request_id": reply_id, **answer}})

    def send(self, obj: dict) -> None:
        with self._lock:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()

    def wait_ready(self, timeout: float = 120) -> None:
        if not self._ready.wait(timeout):
            raise RuntimeError("plugin sent no heartbeat; stderr:\n" + "\n".join(self.stderr))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, data: dict, timeout: float = 300) -> Result:
        session_id = uuid.uuid4().hex
        inbox: queue.Queue = queue.Queue()
        with self._lock:
            self._sessions[session_id] = inbox
        self.send({"session_id": session_id, "conversation_id": None, "message_id": None, "app_id": None,
                   "endpoint_id": None, "context": {}, "event": "request", "data": {"user_id": "u1", **data}})
        result, chunks = Result(), {}
        end = time.monotonic() + timeout
        try:
            while True:
                try:
                    msg = inbox.get(timeout=max(0.1, end - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError(f"no end of session within {timeout} s; stderr:\n" + "\n".join(self.stderr))
                if msg["type"] == "end":
                    return result
                if msg["type"] == "error":
                    result.error = msg["data"]
                    continue
                item = msg["data"]
                if item.get("type") == "blob_chunk":
                    self._join_blob(item, chunks, result)
                else:
                    result.stream.append(item)
        finally:
            with self._lock:
                self._sessions.pop(session_id, None)

    @staticmethod
    def _join_blob(item: dict, chunks: dict, result: Result) -> None:
        blob = item["message"]
        parts = chunks.setdefault(blob["id"], {})
        if blob["end"]:
            data = b"".join(parts[i] for i in sorted(parts))
            assert len(data) == blob["total_length"], "blob chunks do not add up"
            result.blobs.append((item.get("meta") or {}, data))
        else:
            parts[blob["sequence"]] = base64.b64decode(blob["blob"])

    def validate(self, credentials: dict, timeout: float = 120) -> Result:
        return self.request({"type": "tool", "action": "validate_tool_credentials",
                             "provider": PROVIDER, "credentials": credentials}, timeout)

    def invoke(self, tool: str, credentials: dict, parameters: dict, timeout: float = 300) -> Result:
        return self.request({"type": "tool", "action": "invoke_tool", "provider": PROVIDER, "tool": tool,
                             "credentials": credentials, "credential_type": "api-key",
                             "tool_parameters": parameters}, timeout)

    def close(self) -> None:
        # The SDK spins on a closed stdin, so stop the process rather than wait for it.
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class FileService:
    """Dify's file service: signed-looking URLs for registered bytes, plus a slow path and a redirect."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                service.requests.append(self.path)
                path = urlsplit(self.path).path
                if path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(urlsplit(self.path).query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/slow/"):
                    service.release.wait(120)  # never answers within a test's budget
                    path = path[len("/slow"):]
                data = service.files.get(path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Type", "image/png" if data is not None else "text/plain")
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, name: str, data: bytes) -> str:
        """Register bytes; return the path part of the URL Dify would sign."""
        path = f"/files/{uuid.uuid4().hex}/file-preview"
        self.files[path] = data
        return path + f"?timestamp={int(time.time())}&nonce={uuid.uuid4().hex}&sign=x"

    def file_param(self, path: str, filename: str = "in.png", base: str | None = None) -> dict:
        """The dict Dify puts in tool_parameters for a file variable."""
        return {"dify_model_identity": "__dify__file__", "url": (self.base if base is None else base) + path,
                "mime_type": "image/png", "filename": filename, "extension": ".png",
                "size": len(self.files.get(urlsplit(path).path, b"")), "type": "image"}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
