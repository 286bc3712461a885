"""Reliability scenarios of the process split: a front door held by idle, slow and waiting clients, and an
engine process killed mid-job. Each returns (figure, value, target, ok) rows for `bench.reliability`.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import time

import requests

from tests.support import ServerProcess

SLOW_JOB = {"prompt": "held", "width": 32, "height": 32, "num_inference_steps": 150}  # the most allowed


def _open(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def front_door(server: ServerProcess, idle: int, slow_headers: int, streams: int, judged: bool) -> list[tuple]:
    """Hold `idle` silent sockets, `slow_headers` half-sent requests and `streams` event streams at once,
    then time `/healthz` and run a job through it all."""
    blocker = server.post("generate", SLOW_JOB, wait=None, headers={"X-Inject-Fault": "slow=0.2"}).json()["id"]
    held: list[socket.socket] = []
    try:
        held += [_open(server) for _ in range(idle)]
        for _ in range(slow_headers):
            sock = _open(server)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        for _ in range(streams):
            sock = _open(server)
            sock.sendall(f"GET /v1/jobs/{blocker}/events HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: Bearer {server.api_key}\r\n\r\n".encode())
            held.append(sock)
        opened = sum(1 for sock in held[-streams:] if sock.recv(64).startswith(b"HTTP/1.1 200")) if streams else 0
        latencies = []
        with requests.Session() as session:
            for _ in range(200):
                started = time.perf_counter()
                ok = session.get(f"{server.url}/healthz", timeout=10).status_code == 200
                latencies.append((time.perf_counter() - started) * 1000 if ok else float("inf"))
        server.session.delete(f"{server.url}/v1/jobs/{blocker}")
        job = server.run("generate", {"prompt": "through the crowd", "width": 32, "height": 32,
                                      "num_inference_steps": 2}, timeout=120)
    finally:
        for sock in held:
            sock.close()
    p99 = statistics.quantiles(latencies, n=100)[98]
    return [
        ("connections held at once", f"{idle} idle + {slow_headers} slow-header + {opened} event streams",
         f"{idle} + {slow_headers} + {streams}", opened == streams),
        ("/healthz latency meanwhile, p50 / p99", f"{statistics.median(latencies):.1f} / {p99:.1f} ms",
         "p99 < 100 ms", (p99 < 100) if judged else None),
        ("a job submitted meanwhile", job["status"], "succeeded", job["status"] == "succeeded"),
    ]


def kill_engine(server: ServerProcess) -> list[tuple]:
    """kill -9 of the engine's process mid-job: the job fails `worker_lost`, the front door stays up."""
    (worker,) = server.worker_pids()
    (engine,) = server.engine_pids()
    job_id = server.post("generate", SLOW_JOB, wait=None, headers={"X-Inject-Fault": "slow=0.2"}).json()["id"]
    deadline = time.monotonic() + 30
    while server.job(job_id)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(engine, signal.SIGKILL)
    started = time.monotonic()
    job = server.job(job_id, wait=30)
    healthz = requests.get(f"{server.url}/healthz", timeout=5).status_code
    server.wait_ready()
    ready_s = time.monotonic() - started
    after = server.run("generate", {"prompt": "after", "width": 32, "height": 32, "num_inference_steps": 1})
    reads = f"{job['status']}/{(job['error'] or {}).get('code', '')}"
    return [
        ("kill -9 of the engine process: the job reads", reads, "failed/worker_lost", reads == "failed/worker_lost"),
        ("/healthz meanwhile", str(healthz), "200", healthz == 200),
        ("engine restarted, /readyz 200 after", f"{ready_s:.1f} s", "ready", True),
        ("same HTTP process", "yes" if server.worker_pids() == [worker] else "no", "yes",
         server.worker_pids() == [worker]),
        ("next job", after["status"], "succeeded", after["status"] == "succeeded"),
    ]
