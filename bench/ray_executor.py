"""`python -m bench.ray_executor`: EXECUTOR=ray on the CPU, as ratios (rows for bench/results.md).

- P7-cpu, dispatch overhead: a tiny-model job through EXECUTOR=ray (one replica, a local Ray started by the
  server) ÷ the same job through EXECUTOR=local, over HTTP, in alternating rounds.
- P8-cpu, scaling: throughput with N replicas of a stand-in engine that sleeps through its steps as a GPU
  would (so two cores do not cap it) ÷ (N × the throughput of one replica), for N = 1, 2, 4, through the job
  service's dispatcher (one job in flight per replica).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.ratios import Row
from tests.ray_head import RayHead
from tests.server.fake_engine import FakeEngine
from tests.support import ServerProcess

STEP_S = 0.1  # the stand-in's step: 8 steps make a 0.8 s job, about a fast-mode 1024² image on an H100
STEPS = 8
JOBS_PER_REPLICA = 10
P7_BODY = {"prompt": "a red lantern", "width": 128, "height": 128, "num_inference_steps": 8}


def sleeping_engine(_settings) -> FakeEngine:
    """The replicas' loader for P8: no model, only the device's time."""
    return FakeEngine(step_s=STEP_S)


def p7_dispatch_overhead(work: Path, rounds: int = 8) -> Row:
    # One torch thread on both sides: Ray gives a fractional-CPU replica OMP_NUM_THREADS=1, and on two busy
    # cores that alone changes a tiny-model job's time many times over; the ratio is to show the dispatch.
    threads = {"OMP_NUM_THREADS": "1"}
    local = ServerProcess(work / "p7-local", EXECUTOR="local", **threads).start(timeout=600)
    ray = ServerProcess(work / "p7-ray", EXECUTOR="ray", RAY_REPLICAS="1", **threads).start(timeout=600)
    ratios, medians = [], {"local": [], "ray": []}
    try:
        for i in range(rounds + 1):  # round 0 warms both up
            body = {**P7_BODY, "seed": 100 + i}  # a new seed each round: never a cache hit
            order = [("local", local), ("ray", ray)] if i % 2 else [("ray", ray), ("local", local)]
            times = {}
            for name, server in order:
                started = time.perf_counter()
                server.run("generate", body)
                times[name] = time.perf_counter() - started
            if i:
                ratios.append(times["ray"] / times["local"])
                for name in times:
                    medians[name].append(times[name])
    finally:
        ray.stop()
        local.stop()
    ray_s, local_s = statistics.median(medians["ray"]), statistics.median(medians["local"])
    return Row("P7-cpu", "a tiny-model job (128², 8 steps) through EXECUTOR=ray ÷ through EXECUTOR=local",
               statistics.median(ratios), 1.0,
               f"median of {rounds} alternating rounds; medians {ray_s:.3f} s and {local_s:.3f} s")


def throughput(work: Path, head: RayHead, replicas: int) -> float:
    """Jobs per second with `replicas` sleeping replicas, JOBS_PER_REPLICA each, all submitted at once."""
    from inference_server.app import create_app
    from inference_server.config import Settings
    from inference_server.executors.ray_serve import RayExecutor

    os.environ.update(head.auth_env)  # the Ray driver, a child of this process, joins with the head's token
    settings = Settings(data_dir=work / f"p8-{replicas}", executor="ray", ray_address=head.address,
                        ray_replicas=str(replicas), max_queue=256, png_metadata=False)
    app = create_app(settings, executor=RayExecutor(settings, loader="bench.ray_executor:sleeping_engine"))
    service = app.config["JOBS"]
    client = app.test_client()
    service.start()
    try:
        deadline = time.monotonic() + 600
        while service.not_ready_reason():
            assert time.monotonic() < deadline, service.not_ready_reason()
            time.sleep(0.1)
        body = {"prompt": "p8", "width": 64, "height": 64, "num_inference_steps": STEPS}
        warm = client.post("/v1/generate", json={**body, "seed": 0}).get_json()  # every replica answers once
        service.wait(warm["id"], 60)
        started = time.perf_counter()
        ids = [client.post("/v1/generate", json={**body, "seed": 1 + i}).get_json()["id"]
               for i in range(JOBS_PER_REPLICA * replicas)]
        ended = [service.wait(job_id, 600) for job_id in ids]
        elapsed = time.perf_counter() - started
        assert all(job["status"] == "succeeded" for job in ended), ended
        return len(ids) / elapsed
    finally:
        service.stop()


def p8_scaling(work: Path) -> list[Row]:
    head = RayHead(work / "p8-head", num_cpus=2).start()
    try:
        rates = {n: throughput(work, head, n) for n in (1, 2, 4)}
    finally:
        head.stop()
    rows = []
    for n in (2, 4):
        rows.append(Row(f"P8-cpu-{n}", f"throughput with {n} replicas ÷ {n} × one replica (stand-in engine, "
                                       f"{STEPS} × {STEP_S:g} s sleeping steps)",
                        rates[n] / (n * rates[1]), 0.9, f"{rates[n]:.2f} ÷ ({n} × {rates[1]:.2f}) jobs/s"))
    return rows


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        rows = [p7_dispatch_overhead(work), *p8_scaling(work)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:  # P7 is reported (a ratio of about 1 is the hope); P8 is a goal from below
        goal = "report" if row.key == "P7-cpu" else f"≥ {row.target}"
        sys.stdout.write(f"| {row.key} | {row.what} | **{row.measured:.3f}** ({row.detail}) | {goal} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
