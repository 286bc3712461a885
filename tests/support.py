"""A real inference server process on a free port, as tests, benchmarks and reliability runs need it."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def far_from(box: tuple[int, int, int, int], distance: int, size: tuple[int, int]):
    """Boolean map of the pixels at least `distance` away (square metric) from the box (left, top, right, bottom)."""
    import numpy as np

    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    dx = np.maximum(np.maximum(box[0] - xs, xs - (box[2] - 1)), 0)
    dy = np.maximum(np.maximum(box[1] - ys, ys - (box[3] - 1)), 0)
    return np.maximum(dx, dy) >= distance


def png_b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


class ServerProcess:
    """`python -m inference_server serve` with the given environment; stderr goes to data_dir/server.log."""

    def __init__(self, data_dir: Path, api_key: str = "test-key", **env: str):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "server.log"
        self.env = {
            **os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PORT": str(self.port), "DATA_DIR": str(self.data_dir),
            "API_KEYS": api_key, "MODEL_ID": "tiny", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            **{k: str(v) for k, v in env.items()},
        }
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def start(self, wait_ready: bool = True, timeout: float = 180) -> "ServerProcess":
        log = open(self.log_path, "ab")
        # Its own process group, so a crash test can kill gunicorn's master and worker at once.
        self.process = subprocess.Popen([sys.executable, "-m", "inference_server", "serve"], cwd=ROOT,
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                answer = requests.get(f"{self.url}/readyz", timeout=2)
                if answer.status_code == 200:
                    return
                if "failed to load" in answer.text:  # it will not get better by waiting
                    raise RuntimeError(f"the model failed to load: {answer.text} {self.log_tail()}")
            except (requests.ConnectionError, requests.Timeout):  # no worker accepting yet, or one still booting
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        self.session.close()  # idle keep-alive connections would hold up a graceful shutdown
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """kill -9 the whole server: gunicorn's master and the worker that owns the model."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def worker_pids(self) -> list[int]:
        """gunicorn's HTTP worker (the front door, which holds the job queue)."""
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def engine_pids(self) -> list[int]:
        """The engine's process, the HTTP worker's child, that holds the models."""
        import psutil

        return [child.pid for pid in self.worker_pids() for child in psutil.Process(pid).children()]

    def tree_peak_rss(self) -> int:
        """The whole server's peak RSS in bytes: the sum of each process's VmHWM (master, worker, engine)."""
        import psutil

        total = 0
        for proc in [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        return total

    def tree_rss(self) -> int:
        import psutil

        root = psutil.Process(self.process.pid)
        return sum(proc.memory_info().rss for proc in [root, *root.children(recursive=True)])

    # ---- HTTP helpers --------------------------------------------------------------------
    def post(self, task: str, body: dict, wait: float | None = 60, headers: dict | None = None) -> requests.Response:
        merged = {"Prefer": f"wait={wait:g}"} if wait else {}
        merged.update(headers or {})
        return self.session.post(f"{self.url}/v1/{task}", json=body, headers=merged, timeout=120)

    def run(self, task: str, body: dict, timeout: float = 900, **kwargs) -> dict:
        """Submit, long-poll until the job ends, and return it, asserting it succeeded."""
        response = self.post(task, body, **kwargs)
        job = response.json()
        assert response.status_code in (200, 202), job
        deadline = time.monotonic() + timeout
        while job["status"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
            job = self.job(job["id"], wait=60)
        assert job["status"] == "succeeded", job
        return job

    def job(self, job_id: str, wait: float = 0) -> dict:
        params = {"wait": wait} if wait else {}
        return self.session.get(f"{self.url}/v1/jobs/{job_id}", params=params, timeout=90).json()

    def file_bytes(self, image: dict) -> bytes:
        response = self.session.get(self.url + image["url"], timeout=30)
        response.raise_for_status()
        return response.content

    def images(self, job: dict) -> list[Image.Image]:
        return [Image.open(io.BytesIO(self.file_bytes(image))) for image in job["images"]]


@contextlib.contextmanager
def running_together(servers: dict[str, "ServerProcess"]):
    """Start several servers at once (their models load in parallel), wait for all, stop all at the end."""
    for server in servers.values():
        server.start(wait_ready=False)
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def wait_for(predicate, timeout: float = 30.0):
    """The predicate's first truthy value, polled every 0.05 s; an AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
