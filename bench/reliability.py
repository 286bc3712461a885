"""Reliability run: overload, soak and crash scenarios against the real server, written to docs/reliability.md.

Why this exists: the server's promises under stress (a bounded queue that refuses with 429 and Retry-After
rather than losing work, no memory creep over many jobs, no finished result lost to a crash, a cut job that
reads `interrupted` instead of `running` forever, a wedged worker that fails /readyz) are only worth stating
with measured figures. This script measures them on loopback with the tiny CPU model and writes the figures,
so the document is generated, never typed by hand.

  load   N requests from 32 client threads against MAX_QUEUE=16; every answer must be a served job or a 429
         with Retry-After (the client then waits Retry-After, capped at 2 s so the run stays bounded)
  soak   M jobs of all four tasks; the worker's RSS after the first 10% against the end (target: < 5% drift)
  crash  a wedged worker, kill -9 of the worker, kill -9 of the whole server then a restart on the same DATA_DIR

`--quick` runs a smaller version (tests/server/test_reliability_smoke.py); the exit status is non-zero when any
target fails.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
from PIL import Image, ImageDraw

from tests.support import ROOT, ServerProcess, png_b64

ENDED = ("succeeded", "failed", "cancelled")
TINY = {"width": 32, "height": 32, "num_inference_steps": 1}
BACKOFF_CAP_S = 2
STALL_S = 2
SLOW = {"X-Inject-Fault": "slow=0.2"}  # 50 steps of 0.2 s: a job that is surely mid-run when killed
INTERRUPTED = "failed/interrupted"


@dataclass(frozen=True)
class Scale:
    requests: int
    clients: int
    max_queue: int
    load_limit_s: float
    soak_jobs: int


FULL = Scale(requests=500, clients=32, max_queue=16, load_limit_s=600, soak_jobs=1000)
QUICK = Scale(requests=60, clients=32, max_queue=16, load_limit_s=120, soak_jobs=100)


@dataclass
class Row:
    figure: str
    value: str
    target: str = "—"
    ok: bool | None = None  # None: reported, no target


# ---- helpers -------------------------------------------------------------------------------
def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a" if not values else f"{values[0]:.2f} s"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.2f} s · p90 {q[89]:.2f} s · p99 {q[98]:.2f} s · max {max(values):.2f} s"


def wait_for(predicate, timeout: float) -> float | None:
    """Seconds until predicate() is true, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def ready_status(server: ServerProcess) -> int:
    try:
        return requests.get(f"{server.url}/readyz", timeout=5).status_code
    except requests.RequestException:
        return 0


def finish(server: ServerProcess, job: dict, deadline: float, session: requests.Session | None = None) -> dict:
    """Long-poll a job until it ends or the deadline passes."""
    session = session or server.session
    while job["status"] not in ENDED and time.monotonic() < deadline:
        job = session.get(f"{server.url}/v1/jobs/{job['id']}", params={"wait": 60}, timeout=90).json()
    return job


def picture(size: int = 48) -> str:
    image = Image.new("RGB", (size, size), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((8, 8, size - 8, size - 8), fill=(230, 180, 40))
    return png_b64(image)


# ---- load ------------------------------------------------------------------------------------
def load(scale: Scale, server: ServerProcess) -> list[Row]:
    deadline = time.monotonic() + scale.load_limit_s
    local = threading.local()

    def one(i: int) -> tuple[str, float, str | None]:
        if time.monotonic() > deadline:
            return "not sent (time limit)", 0.0, None
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers.update(server.session.headers)
        started = time.monotonic()
        try:
            response = local.session.post(f"{server.url}/v1/generate", json={"prompt": f"load {i}", **TINY},
                                          timeout=90)
            if response.status_code == 429:
                return refused(response, time.monotonic() - started)
            if response.status_code != 202:
                return f"HTTP {response.status_code}", time.monotonic() - started, None
            job = finish(server, response.json(), deadline, local.session)
        except requests.RequestException as exc:
            return type(exc).__name__, time.monotonic() - started, None
        return job["status"], time.monotonic() - started, job["id"]

    def refused(response: requests.Response, elapsed: float) -> tuple[str, float, None]:
        retry = response.headers.get("Retry-After", "")
        if not (retry.isdigit() and int(retry) >= 1):
            return "429 without Retry-After", elapsed, None
        time.sleep(min(int(retry), BACKOFF_CAP_S))
        return "429", elapsed, None

    start = time.monotonic()
    with ThreadPoolExecutor(scale.clients) as pool:
        outcomes = list(pool.map(one, range(scale.requests)))
    wall = time.monotonic() - start
    served = [s for status, s, _ in outcomes if status == "succeeded"]
    rejected = [s for status, s, _ in outcomes if status == "429"]
    other = sorted({status for status, _, _ in outcomes} - {"succeeded", "429"})
    accepted = [job_id for _, _, job_id in outcomes if job_id]
    stuck = [j for j in accepted if server.job(j)["status"] not in ENDED]
    return [
        Row("requests", str(scale.requests)),
        Row("served (succeeded)", str(len(served))),
        Row("answered 429 with Retry-After ≥ 1", str(len(rejected))),
        Row("any other answer", f"{len(outcomes) - len(served) - len(rejected)} {', '.join(other)}".strip(), "0",
            len(served) + len(rejected) == len(outcomes)),
        Row("accepted jobs not ended (lost or stuck)", f"{len(stuck)} of {len(accepted)}", "0", not stuck),
        Row("wall time", f"{wall:.1f} s", f"≤ {scale.load_limit_s:.0f} s", wall <= scale.load_limit_s),
        Row("throughput (served jobs / wall time)", f"{len(served) / wall:.2f} jobs/s"),
        Row("latency, served (submit → finished)", percentiles(served)),
        Row("latency, 429 answers", percentiles(rejected)),
    ]


# ---- soak ------------------------------------------------------------------------------------
def soak_bodies() -> list[tuple[str, dict]]:
    image = picture()
    return [
        ("generate", {"prompt": "soak", **TINY}),
        ("img2img", {"prompt": "soak", "image": image, "strength": 0.6, "num_inference_steps": 2}),
        ("inpaint", {"prompt": "soak", "image": image, "region": {"x": 16, "y": 16, "width": 16, "height": 16},
                     "num_inference_steps": 1}),
        ("outpaint", {"prompt": "soak", "image": image, "left": 16, "right": 16, "num_inference_steps": 1}),
    ]


def soak(scale: Scale, server: ServerProcess) -> list[Row]:
    bodies = soak_bodies()
    every, warmup = scale.soak_jobs // 20, scale.soak_jobs // 10
    (worker,) = server.worker_pids()

    def one(i: int) -> str:
        task, body = bodies[i % len(bodies)]
        return finish(server, server.post(task, body).json(), time.monotonic() + 120)["status"]

    rss: dict[int, int] = {}
    failed = 0
    with ThreadPoolExecutor(2) as pool:  # two clients keep the single worker busy between requests
        for done in range(every, scale.soak_jobs + 1, every):
            failed += sum(status != "succeeded" for status in pool.map(one, range(done - every, done)))
            rss[done] = psutil.Process(worker).memory_info().rss
    base, final = rss[warmup], rss[scale.soak_jobs]
    peak = max(v for k, v in rss.items() if k >= warmup)
    drift = (final - base) / base * 100
    mib = 2 ** 20
    return [
        Row("jobs (generate, img2img, inpaint, outpaint in turn)", str(scale.soak_jobs)),
        Row("jobs not succeeded", str(failed), "0", failed == 0),
        Row("worker process replaced during the soak", "no" if server.worker_pids() == [worker] else "yes", "no",
            server.worker_pids() == [worker]),
        Row(f"RSS after warm-up ({warmup} jobs)", f"{base / mib:.0f} MiB"),
        Row("RSS at the end", f"{final / mib:.0f} MiB"),
        Row("RSS max after warm-up", f"{peak / mib:.0f} MiB ({(peak - base) / base * 100:+.1f}%)"),
        Row("RSS drift (end vs after warm-up)", f"{drift:+.2f}%", "< 5%", abs(drift) < 5),
    ]


# ---- crash -----------------------------------------------------------------------------------
def crash(server: ServerProcess) -> list[Row]:
    return wedge(server) + kill_worker(server) + kill_server(server)


def wedge(server: ServerProcess) -> list[Row]:
    job = server.post("generate", {"prompt": "wedge", **TINY}, wait=None, headers={"X-Inject-Fault": "wedge"}).json()
    to_503 = wait_for(lambda: ready_status(server) == 503, 30)
    server.session.delete(f"{server.url}/v1/jobs/{job['id']}")
    to_200 = wait_for(lambda: ready_status(server) == 200, 30)
    status = server.job(job["id"], wait=10)["status"]
    return [
        Row(f"wedged worker (WORKER_STALL_S={STALL_S}): /readyz 503 after", seconds(to_503), "503", to_503 is not None),
        Row("wedged job cancelled: /readyz 200 again after", seconds(to_200), "200", to_200 is not None),
        Row("the wedged job reads", status, "cancelled", status == "cancelled"),
    ]


def kill_worker(server: ServerProcess) -> list[Row]:
    cut = start_slow_job(server)
    (worker,) = server.worker_pids()
    os.kill(worker, signal.SIGKILL)  # what the kernel's OOM killer does
    start = time.monotonic()
    server.wait_ready()
    ready_s = time.monotonic() - start
    after = finish(server, server.post("generate", {"prompt": "after", **TINY}).json(), time.monotonic() + 60)
    cut_reads = reads(server.job(cut))
    return [
        Row("kill -9 of the worker: /readyz 200 again after", f"{ready_s:.1f} s", "ready", True),
        Row("the cut job reads", cut_reads, INTERRUPTED, cut_reads == INTERRUPTED),
        Row("next job on the new worker", after["status"], "succeeded", after["status"] == "succeeded"),
    ]


def kill_server(server: ServerProcess) -> list[Row]:
    done = [finish(server, server.post("generate", {"prompt": f"keep {i}", **TINY, "seed": i}).json(),
                   time.monotonic() + 60) for i in range(3)]
    before = [server.file_bytes(job["images"][0]) for job in done]
    cut = start_slow_job(server)
    server.kill()
    start = time.monotonic()
    server.start()
    ready_s = time.monotonic() - start
    kept = sum(server.file_bytes(server.job(job["id"])["images"][0]) == data for job, data in zip(done, before))
    cut_reads = reads(server.job(cut))
    return [
        Row("kill -9 of the whole server, restart: ready after", f"{ready_s:.1f} s", "ready", True),
        Row("finished results served with identical bytes", f"{kept} of {len(done)}", "all", kept == len(done)),
        Row("the cut job reads", cut_reads, INTERRUPTED, cut_reads == INTERRUPTED),
    ]


def start_slow_job(server: ServerProcess) -> str:
    job = server.post("generate", {"prompt": "cut", **TINY, "num_inference_steps": 50}, wait=None, headers=SLOW)
    job_id = job.json()["id"]
    if wait_for(lambda: server.job(job_id)["status"] == "running", 30) is None:
        raise RuntimeError("the slow job never started running")
    return job_id


def reads(job: dict) -> str:
    return f"{job['status']}/{(job['error'] or {}).get('code', '')}".rstrip("/")


def seconds(value: float | None) -> str:
    return "never (30 s)" if value is None else f"{value:.1f} s"


# ---- the report ------------------------------------------------------------------------------
def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def header(scale: Scale) -> str:
    commit = git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "-uno") else "")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"# Reliability figures\n\nGenerated by `make reliability` (`bench/reliability.py`{' --quick' if scale is QUICK else ''}); "
            f"do not edit by hand.\n\n"
            f"- Machine: {socket.gethostname()}, {os.cpu_count()} CPUs, {platform.platform()}\n"
            f"- Date: {now}\n- Commit: {commit}\n"
            f"- Model: the tiny random-weight Qwen-Image on the CPU, over loopback; timings are noisy on a shared "
            f"machine.\n")


def section(title: str, intro: str, rows: list[Row]) -> str:
    lines = [f"## {title}", "", intro, "", "| Figure | Value | Target | Result |", "|---|---|---|---|"]
    for row in rows:
        result = "" if row.ok is None else ("PASS" if row.ok else "**FAIL**")
        lines.append(f"| {row.figure} | {row.value} | {row.target} | {result} |")
    return "\n".join(lines) + "\n"


def scenario(name: str, run, server: ServerProcess) -> list[Row]:
    print(f"reliability: {name} ...", file=sys.stderr, flush=True)
    try:
        server.wait_ready()
        return run(server)
    except Exception as exc:  # the report says which scenario broke, and the others still run
        print(server.log_tail(), file=sys.stderr)
        return [Row("scenario ran", f"{type(exc).__name__}: {exc}".replace("|", "/")[:300], "yes", False)]
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for the smoke test")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        # All three load their model at once; each scenario waits for its own server.
        servers = {
            "load": ServerProcess(Path(tmp, "load"), MAX_QUEUE=str(scale.max_queue)),
            "soak": ServerProcess(Path(tmp, "soak")),
            "crash": ServerProcess(Path(tmp, "crash"), INJECT_FAULTS="1", WORKER_STALL_S=str(STALL_S)),
        }
        for server in servers.values():
            server.start(wait_ready=False)
        load_rows = scenario("load", lambda s: load(scale, s), servers["load"])
        soak_rows = scenario("soak", lambda s: soak(scale, s), servers["soak"])
        crash_rows = scenario("crash", crash, servers["crash"])
    report = "\n".join([
        header(scale),
        section("Load", f"{scale.requests} `POST /v1/generate` (32×32, 1 step, random seeds) from {scale.clients} "
                f"client threads against `MAX_QUEUE={scale.max_queue}`; an accepted job is long-polled until it "
                f"ends, a 429 makes its client wait Retry-After (at most {BACKOFF_CAP_S} s) before its next "
                f"request.", load_rows),
        section("Soak", f"{scale.soak_jobs} jobs from 2 client threads on a fresh server; the worker's RSS "
                f"(it owns the model) is sampled every {scale.soak_jobs // 20} jobs.", soak_rows),
        section("Crash", "One server with `INJECT_FAULTS=1`: a wedged job, then kill -9 of the worker mid-job "
                "(gunicorn starts a new one), then kill -9 of the whole process group mid-job and a restart on "
                "the same `DATA_DIR`.", crash_rows),
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 1 if any(row.ok is False for row in load_rows + soak_rows + crash_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
