"""Reliability scenario of issue 15, item 3: many large JSON uploads at once against the HTTP process.

32 clients each POST a 16 MB JSON inpaint request (a 2000×2000 noise PNG in base64) at the same moment.
The HTTP process (one gevent worker) reads, parses and decodes them; its RSS is sampled meanwhile.
The jobs carry the `wedge` fault (the server runs with INJECT_FAULTS=1 and a long WORKER_STALL_S): accepted
jobs stay queued with their decoded images, the worst case for the HTTP process's memory, and the engine
does not take the CPU that the front door is measured on. Returns (figure, value, target, ok) rows for
`bench.reliability`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

from tests.support import ServerProcess

PEAK_TARGET_MB = 2048
SERVER_ENV = {"INJECT_FAULTS": "1", "WORKER_STALL_S": "3600"}


def inpaint_body(side: int = 2000) -> bytes:
    """About 16 MB of JSON: a noise PNG (it does not compress) and a small region to repaint."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return json.dumps({"prompt": "flood", "num_inference_steps": 1, "image": base64.b64encode(buffer.getvalue())
                       .decode(), "region": {"x": 0, "y": 0, "width": 64, "height": 64}}).encode()


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Sampler(threading.Thread):
    """The highest RSS of one process seen every 20 ms (VmHWM would include its start-up)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, _rss_mb(self.pid))
            time.sleep(0.02)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def send_all(server: ServerProcess, body: bytes, clients: int) -> Counter:
    """`clients` POSTs of `body` at once; the count of each answer (status, code)."""
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json",
               "X-Inject-Fault": "wedge"}
    start = threading.Barrier(clients)

    def one(_):
        start.wait()
        try:
            response = requests.post(f"{server.url}/v1/inpaint", data=body, headers=headers, timeout=300)
        except requests.RequestException as exc:
            return type(exc).__name__, None, None
        payload = response.json()
        code = (payload.get("error") or {}).get("code") if response.status_code >= 400 else None
        return str(response.status_code), code, (payload.get("id"), response.headers.get("Retry-After"))

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, range(clients)))
    for status, _, extra in answers:  # leave the queue empty for what runs next
        if status == "202":
            requests.delete(f"{server.url}/v1/jobs/{extra[0]}", headers=headers, timeout=30)
    counts = Counter(f"{status} {code}" if code else status for status, code, _ in answers)
    missing = sum(1 for status, _, extra in answers if status == "503" and not extra[1])
    if missing:
        counts["503 without Retry-After"] = missing
    return counts


def flood(server: ServerProcess, clients: int = 32, judged: bool = True) -> list[tuple]:
    body = inpaint_body()
    (worker,) = server.worker_pids()
    before = _rss_mb(worker)
    sampler = _Sampler(worker)
    sampler.start()
    one = send_all(server, body, 1)
    single_peak = sampler.peak
    many = send_all(server, body, clients)
    peak = sampler.stop()
    time.sleep(2)
    after = _rss_mb(worker)
    answered = ", ".join(f"{count}× {name}" for name, count in sorted(many.items()) if count and "without" not in name)
    bad = [name for name in many if many[name] and not name.startswith(("202", "503", "429"))]
    return [
        ("one 16 MB JSON request: HTTP process RSS before → peak",
         f"{before:.0f} → {single_peak:.0f} MB ({len(body) / 2**20:.1f} MB body; {', '.join(one)})", "—", None),
        (f"{clients} at once: answers", answered, "202, or 503/429 with Retry-After",
         not bad and not many["503 without Retry-After"]),
        (f"{clients} at once: HTTP process peak RSS", f"{peak:.0f} MB", f"< {PEAK_TARGET_MB} MB",
         (peak < PEAK_TARGET_MB) if judged else None),
        ("HTTP process RSS 2 s after", f"{after:.0f} MB", "—", None),
    ]


if __name__ == "__main__":  # a quick look: python -m bench.upload_flood
    import tempfile

    with tempfile.TemporaryDirectory(prefix="upload-flood-") as tmp:
        server = ServerProcess(Path(tmp), **SERVER_ENV).start()
        try:
            for row in flood(server):
                print(" | ".join(str(cell) for cell in row))
        finally:
            server.stop()
