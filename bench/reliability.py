"""Reliability run: overload, soak and crash scenarios against the real server, written to docs/reliability.md.

Why this exists: the server's promises under stress (a bounded queue that refuses with 429 and Retry-After
rather than losing work, no memory creep over many jobs, no finished result lost to a crash, a cut job that
reads `interrupted` instead of `running` forever, a wedged worker that fails /readyz) are only worth stating
with measured figures. This measures them on loopback with the tiny CPU model and writes the figures, so the
document is generated, never typed by hand.

  load   N requests from 32 client threads against MAX_QUEUE=16; every answer must be a served job or a 429
         with Retry-After (the client then waits Retry-After, capped at 2 s so the run stays bounded)
  soak   M jobs of all four tasks; the worker's RSS after the first 10% against the end (target: < 5% drift)
  crash  a wedged worker, kill -9 of the engine process, kill -9 of the HTTP worker, kill -9 of the whole server
         then a restart on the same DATA_DIR
  front door  idle, slow-header and event-stream connections held at once; /healthz latency and a job meanwhile
  floods  8 threads repeat one seeded request (cache hits) for 60 s: DATA_DIR growth, /healthz latency; and
         expiry of 1,000 of 100,000 stored jobs (bench.floods, bench.expiry)
  uploads  32 parallel 16 MB JSON inpaint requests; the HTTP process's peak RSS (target: < 2 GB)

`--quick` is a short run (tests/server/test_reliability_smoke.py). The exit status is 1 when a target fails.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image, ImageDraw

from bench import expiry, floods, starvation, upload_flood
from bench.provenance import commit, machine
from tests.support import ROOT, ServerProcess, png_b64

ENDED = ("succeeded", "failed", "cancelled")
TINY = {"width": 32, "height": 32, "num_inference_steps": 1}
CLIENTS, MAX_QUEUE, BACKOFF_CAP_S, STALL_S = 32, 16, 2, 2
SLOW = {"X-Inject-Fault": "slow=0.2"}  # 50 steps of 0.2 s: a job surely mid-run when killed
INTERRUPTED = "failed/interrupted"


# judged: whether speed and memory figures get a verdict. The quick run (a test) reports them only: a test must
# not fail because a shared CI machine was slow.
Scale = collections.namedtuple("Scale", "requests load_limit_s soak_jobs judged held flood_s expiry")
FULL = Scale(500, 600, 1000, True, (1000, 200, 200), 60, (100_000, 1_000))
QUICK = Scale(60, 120, 60, False, (100, 20, 20), 5, (10_000, 100))
FLOOD_THREADS = 8


def verdict(scale: Scale, passed: bool) -> bool | None:
    return passed if scale.judged else None


@dataclass
class Row:
    figure: str
    value: str
    target: str = "—"
    ok: bool | None = None  # None: a figure reported, with no target


# ---- helpers -------------------------------------------------------------------------------
def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f} s" if values else "n/a"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.2f} s · p90 {q[89]:.2f} s · p99 {q[98]:.2f} s · max {max(values):.2f} s"


def wait_for(predicate, timeout: float = 30) -> float | None:
    """Seconds until predicate() is true, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def ready_status(server: ServerProcess) -> int:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{server.url}/readyz", timeout=5).status_code
    return 0


def finish(server: ServerProcess, job: dict, deadline: float, session: requests.Session | None = None) -> dict:
    """Long-poll a job until it ends or the deadline passes."""
    while job["status"] not in ENDED and time.monotonic() < deadline:
        job = (session or server.session).get(f"{server.url}/v1/jobs/{job['id']}", params={"wait": 60},
                                              timeout=90).json()
    return job


def submit(server: ServerProcess, task: str, body: dict, headers: dict | None = None) -> dict:
    return finish(server, server.post(task, body, headers=headers).json(), time.monotonic() + 120)


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
            if response.status_code != 202:
                return answer(response, time.monotonic() - started)
            job = finish(server, response.json(), deadline, local.session)
        except requests.RequestException as exc:
            return type(exc).__name__, time.monotonic() - started, None
        return job["status"], time.monotonic() - started, job["id"]

    start = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(one, range(scale.requests)))
    wall = time.monotonic() - start
    served = [s for status, s, _ in outcomes if status == "succeeded"]
    refused = [s for status, s, _ in outcomes if status == "429"]
    other = sorted({status for status, _, _ in outcomes} - {"succeeded", "429"})
    accepted = [job_id for _, _, job_id in outcomes if job_id]
    stuck = [job_id for job_id in accepted if server.job(job_id)["status"] not in ENDED]
    return [
        Row("requests", str(scale.requests)),
        Row("served (succeeded)", str(len(served))),
        Row("answered 429 with Retry-After ≥ 1", str(len(refused))),
        Row("any other answer", f"{len(outcomes) - len(served) - len(refused)} {', '.join(other)}".strip(), "0",
            not other),
        Row("accepted jobs not ended (lost or stuck)", f"{len(stuck)} of {len(accepted)}", "0", not stuck),
        Row("wall time", f"{wall:.1f} s", f"≤ {scale.load_limit_s:.0f} s", verdict(scale, wall <= scale.load_limit_s)),
        Row("throughput (served jobs / wall time)", f"{len(served) / wall:.2f} jobs/s"),
        Row("latency, served (submit → finished)", percentiles(served)),
        Row("latency, 429 answers", percentiles(refused)),
    ]


def answer(response: requests.Response, elapsed: float) -> tuple[str, float, None]:
    """A refusal: a 429 must carry Retry-After ≥ 1, and a polite client waits that long (capped)."""
    retry = response.headers.get("Retry-After", "")
    if response.status_code != 429:
        return f"HTTP {response.status_code}", elapsed, None
    if not (retry.isdigit() and int(retry) >= 1):
        return "429 without Retry-After", elapsed, None
    time.sleep(min(int(retry), BACKOFF_CAP_S))
    return "429", elapsed, None


# ---- soak ------------------------------------------------------------------------------------
def soak_bodies() -> list[tuple[str, dict]]:
    picture = Image.new("RGB", (32, 32), (40, 90, 160))
    ImageDraw.Draw(picture).ellipse((6, 6, 26, 26), fill=(230, 180, 40))
    image = png_b64(picture)
    return [
        ("generate", {"prompt": "soak", **TINY}),
        ("img2img", {"prompt": "soak", "image": image, "strength": 0.6, "num_inference_steps": 2}),
        ("inpaint", {"prompt": "soak", "image": image, "region": {"x": 8, "y": 8, "width": 16, "height": 16},
                     "num_inference_steps": 1}),
        ("outpaint", {"prompt": "soak", "image": image, "left": 16, "right": 16, "num_inference_steps": 1}),
    ]


def soak(scale: Scale, server: ServerProcess) -> list[Row]:
    bodies = soak_bodies()
    every, warmup = scale.soak_jobs // 20, scale.soak_jobs // 10
    (worker,) = server.worker_pids()
    (engine,) = server.engine_pids()
    rss: dict[int, int] = {}
    failed = 0
    with ThreadPoolExecutor(2) as pool:  # two clients keep the single worker busy between requests
        for done in range(every, scale.soak_jobs + 1, every):
            jobs = pool.map(lambda i: submit(server, *bodies[i % len(bodies)]), range(done - every, done))
            failed += sum(job["status"] != "succeeded" for job in jobs)
            rss[done] = server.tree_rss()
    base, final = rss[warmup], rss[scale.soak_jobs]
    peak = max(value for jobs, value in rss.items() if jobs >= warmup)
    drift = (final - base) / base * 100
    same_worker = server.worker_pids() == [worker] and server.engine_pids() == [engine]
    return [
        Row("jobs (generate, img2img, inpaint, outpaint in turn)", str(scale.soak_jobs)),
        Row("jobs not succeeded", str(failed), "0", failed == 0),
        Row("worker process replaced during the soak", "no" if same_worker else "yes", "no", same_worker),
        Row(f"RSS after warm-up ({warmup} jobs)", f"{base / 2**20:.0f} MiB"),
        Row("RSS at the end", f"{final / 2**20:.0f} MiB"),
        Row("RSS max after warm-up", f"{peak / 2**20:.0f} MiB ({(peak - base) / base * 100:+.1f}%)"),
        Row("RSS drift (end vs after warm-up)", f"{drift:+.2f}%", "< 5%", verdict(scale, abs(drift) < 5)),
    ]


# ---- crash -----------------------------------------------------------------------------------
def wedge(server: ServerProcess) -> list[Row]:
    job = server.post("generate", {"prompt": "wedge", **TINY}, wait=None, headers={"X-Inject-Fault": "wedge"}).json()
    to_503 = wait_for(lambda: ready_status(server) == 503)
    server.session.delete(f"{server.url}/v1/jobs/{job['id']}")
    to_200 = wait_for(lambda: ready_status(server) == 200)
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
    after, cut_reads = submit(server, "generate", {"prompt": "after", **TINY}), reads(server.job(cut))
    return [
        Row("kill -9 of the worker: /readyz 200 again after", f"{ready_s:.1f} s", "ready", True),
        Row("the cut job reads", cut_reads, INTERRUPTED, cut_reads == INTERRUPTED),
        Row("next job on the new worker", after["status"], "succeeded", after["status"] == "succeeded"),
    ]


def kill_server(server: ServerProcess) -> list[Row]:
    done = [submit(server, "generate", {"prompt": f"keep {seed}", **TINY, "seed": seed}) for seed in range(3)]
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
    if wait_for(lambda: server.job(job_id)["status"] == "running") is None:
        raise RuntimeError("the slow job never started running")
    return job_id


def reads(job: dict) -> str:
    return f"{job['status']}/{(job['error'] or {}).get('code', '')}".rstrip("/")


def seconds(value: float | None) -> str:
    return "never (30 s)" if value is None else f"{value:.1f} s"


# ---- the report ------------------------------------------------------------------------------
def header(quick: bool) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"# Reliability figures\n\nGenerated by `make reliability` (`python -m bench.reliability"
            f"{' --quick' if quick else ''}`); do not edit by hand.\n\n"
            f"- Machine: {machine()}\n"
            f"- Date: {now}\n- Commit: {commit()}\n"
            f"- Model: the tiny random-weight Qwen-Image on the CPU, over loopback (timings are noisy on a shared "
            f"machine)\n- The round-2 attacks on the server and the plugin (floods, corrupt state, tenants, hostile "
            f"downloads), the NSFW policy and the package signature, with their figures and the tests that hold "
            f"them: [hardening.md](hardening.md)\n")


def section(title: str, intro: str, rows: list[Row]) -> str:
    lines = [f"## {title}", "", intro, "", "| Figure | Value | Target | Result |", "|---|---|---|---|"]
    for row in rows:
        result = "" if row.ok is None else ("PASS" if row.ok else "**FAIL**")
        lines.append(f"| {row.figure} | {row.value} | {row.target} | {result} |")
    return "\n".join(lines) + "\n"


def scenario(name: str, run, server: ServerProcess) -> list[Row]:
    start = time.monotonic()
    try:
        server.wait_ready()
        print(f"reliability: {name} (server ready after {time.monotonic() - start:.0f} s)", file=sys.stderr)
        return run(server)
    except Exception as exc:  # the report says which scenario broke, and the others still run
        print(server.log_tail(), file=sys.stderr)
        return [Row("scenario ran", f"{type(exc).__name__}: {exc}".replace("|", "/")[:300], "yes", False)]
    finally:
        server.stop()
        print(f"reliability: {name} done in {time.monotonic() - start:.0f} s", file=sys.stderr)


def run_all(scale: Scale, tmp: Path) -> dict[str, list[Row]]:
    servers = {
        # RATE_LIMIT off: these two measure the queue and memory, not the per-key rate (Floods does).
        "Load": ServerProcess(tmp / "load", MAX_QUEUE=str(MAX_QUEUE), RATE_LIMIT="0"),
        "Soak": ServerProcess(tmp / "soak", RATE_LIMIT="0"),
        "Crash": ServerProcess(tmp / "crash", INJECT_FAULTS="1", WORKER_STALL_S=str(STALL_S)),
        "Front door": ServerProcess(tmp / "front-door", INJECT_FAULTS="1", MAX_WAITS_PER_KEY=str(scale.held[2] + 8)),
        "Floods": ServerProcess(tmp / "floods"),
        "Uploads": ServerProcess(tmp / "uploads", **upload_flood.SERVER_ENV),
    }
    runs = {"Load": lambda s: load(scale, s), "Soak": lambda s: soak(scale, s),
            "Crash": lambda s: wedge(s) + [Row(*row) for row in starvation.kill_engine(s)] + kill_worker(s)
            + kill_server(s),
            "Front door": lambda s: [Row(*row) for row in starvation.front_door(s, *scale.held, scale.judged)],
            "Floods": lambda s: [Row(*row) for row in floods.cache_hit_flood(s, scale.flood_s, FLOOD_THREADS,
                                                                             scale.judged)]
            + [Row(*expiry.row(*scale.expiry, scale.judged))],
            "Uploads": lambda s: [Row(*row) for row in upload_flood.flood(s, 32 if scale.judged else 8, scale.judged)]}
    try:
        for server in servers.values():  # the three load their models at once, then measure one at a time
            server.start(wait_ready=False)
        for server in servers.values():
            with contextlib.suppress(Exception):  # a server that cannot start is reported by its scenario
                server.wait_ready()
        return {name: scenario(name, runs[name], server) for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for the smoke test")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        rows = run_all(scale, Path(tmp))
    intros = {
        "Load": f"{scale.requests} `POST /v1/generate` (32×32, 1 step, random seeds) from {CLIENTS} client threads "
                f"against `MAX_QUEUE={MAX_QUEUE}`. An accepted job is long-polled until it ends; a 429 makes its "
                f"client wait Retry-After (at most {BACKOFF_CAP_S} s) before its next request.",
        "Soak": f"{scale.soak_jobs} jobs from 2 client threads on a fresh server; the RSS of the server's whole "
                f"process tree (the HTTP worker and the engine's process) is sampled every {scale.soak_jobs // 20} "
                f"jobs.",
        "Crash": "One server with `INJECT_FAULTS=1`: a wedged job; kill -9 of the engine's process mid-job (the "
                 "HTTP process starts a new one); kill -9 of the HTTP worker mid-job (gunicorn starts a new one, "
                 "and the engine dies with it); then kill -9 of the whole process group mid-job and a restart on "
                 "the same `DATA_DIR`.",
        "Front door": "Connections held open at once against the gevent front door: silent sockets, sockets that "
                      "sent half a request line and headers, and `/v1/jobs/{id}/events` streams on a running job. "
                      "Meanwhile 200 sequential `GET /healthz` are timed and a job is submitted and long-polled.",
        "Floods": f"{FLOOD_THREADS} client threads send one seeded request for {scale.flood_s} s as fast as they can "
                  "(every answer after the first is a cache hit or a 429), with the default settings "
                  "(`RATE_LIMIT=600/60`); `/healthz` is timed every 20 ms meanwhile. Then `remove_expired` on a "
                  f"store of {scale.expiry[0]:,} jobs of which {scale.expiry[1]:,} expired (`bench/expiry.py`).",
        "Uploads": f"{32 if scale.judged else 8} clients POST the same 16 MB JSON inpaint request (a 2000×2000 "
                   "noise PNG in base64) at once, with default `MAX_UPLOAD_MB` and `UPLOAD_BUDGET_MB`. The HTTP "
                   "process's RSS is sampled every 20 ms. Accepted jobs wait in the queue with their decoded images "
                   "(the `wedge` fault holds the first), and are cancelled at the end.",
    }
    report = "\n".join([header(args.quick)] + [section(name, intros[name], rows[name]) for name in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 1 if any(row.ok is False for section_rows in rows.values() for row in section_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
