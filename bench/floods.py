"""Flood scenarios for `bench.reliability`: a flood of cache hits against the default RATE_LIMIT. It returns
(figure, value, target, ok) rows, as `bench.starvation` does.

A repeated seeded request is answered from the cache, cheaply: an attacker once sent 730 a second, each stored
as a full job row (505 MB in 30 s). Now a hit is a small record pointing at the original job, and every submit
spends the key's rate budget, so the store barely grows and the health checks stay quick.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time

import requests

from tests.support import ServerProcess

DATA_DIR_TARGET = 5 * 2**20
FLOOD = {"prompt": "flood " + "a rose garden at dusk, " * 150, "negative_prompt": "blurry " * 300, "width": 32,
         "height": 32, "num_inference_steps": 1, "seed": 1}


def data_dir_bytes(server: ServerProcess) -> int:
    """What the server stores: everything under DATA_DIR but the log file the test harness keeps there."""
    return sum(path.stat().st_size for path in server.data_dir.rglob("*")
               if path.is_file() and path != server.log_path)


def cache_hit_flood(server: ServerProcess, seconds: float, threads: int, judged: bool) -> list[tuple]:
    first = server.run("generate", FLOOD)
    before, log_before = data_dir_bytes(server), server.log_path.stat().st_size
    answers: collections.Counter[str] = collections.Counter()
    last_hit: list[dict] = []
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def flood() -> None:
        with requests.Session() as session:
            session.headers.update(server.session.headers)
            while time.monotonic() < deadline:
                response = session.post(f"{server.url}/v1/generate", json=FLOOD, timeout=30)
                kind = classify(response)
                with lock:
                    answers[kind] += 1
                    if kind == "hit":
                        last_hit[:] = [response.json()]

    def health() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                ok = session.get(f"{server.url}/healthz", timeout=10).status_code == 200
                latencies.append((time.perf_counter() - started) * 1000 if ok else float("inf"))
                time.sleep(0.02)

    workers = [threading.Thread(target=flood) for _ in range(threads)] + [threading.Thread(target=health)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    growth = data_dir_bytes(server) - before
    log_growth = server.log_path.stat().st_size - log_before
    sent = sum(answers.values())
    other = {kind: count for kind, count in answers.items() if kind not in ("hit", "429")}
    read_back = server.job(last_hit[0]["id"]) if last_hit else {}
    same = bool(last_hit) and _unsigned(read_back) == _unsigned(last_hit[0]) \
        and _unsigned(read_back)["images"] == _unsigned(first)["images"]
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else float("inf")
    return [
        ("flood", f"{threads} threads × {seconds:.0f} s of one seeded 32×32 request with 4,500-character prompts, "
                  f"ignoring Retry-After; default RATE_LIMIT", "—", None),
        ("requests answered", f"{sent} ({sent / seconds:.0f}/s)", "—", None),
        ("answered from the cache", str(answers["hit"]), "—", None),
        ("refused 429 rate_limited with Retry-After ≥ 1", str(answers["429"]), "—", None),
        ("any other answer", ", ".join(f"{k} × {v}" for k, v in other.items()) or "0", "0", not other),
        ("a hit read back by GET: the same JSON, the original's images", "yes" if same else "no", "yes", same),
        ("DATA_DIR growth (store and files; the harness's server.log apart)", f"{growth / 2**20:.2f} MB",
         "< 5 MB", growth < DATA_DIR_TARGET),
        ("server.log growth meanwhile (an access-log line per request)", f"{log_growth / 2**20:.2f} MB", "—", None),
        ("/healthz latency meanwhile, p50 / p99", f"{statistics.median(latencies):.1f} / {p99:.1f} ms",
         "p99 < 100 ms", (p99 < 100) if judged else None),
    ]


def classify(response: requests.Response) -> str:
    if response.status_code == 429:
        retry = response.headers.get("Retry-After", "")
        code = response.json().get("error", {}).get("code")
        return "429" if code == "rate_limited" and retry.isdigit() and int(retry) >= 1 else f"429 {code} {retry}"
    if response.status_code in (200, 202) and response.json().get("cache") == "hit":
        return "hit"
    return f"HTTP {response.status_code}"


def _unsigned(job: dict) -> dict:
    """The job without its image links' signatures and expiry, which are minted afresh at every read."""
    strip = lambda url: url.split("?")[0]  # noqa: E731
    return {**job, "images": [{**image, **{k: strip(image[k]) for k in ("url", "absolute_url") if k in image}}
                              for image in job.get("images", [])]}
