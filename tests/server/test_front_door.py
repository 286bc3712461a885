"""The front door cannot be starved, and the engine's process can die without taking the server down.

A real server process over real sockets. Before the gevent front door, 32 sockets that sent one byte
each stalled every endpoint, `/healthz` included, for as long as they were held.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support import ServerProcess

KEYS = [f"key-{i}" for i in range(6)]
PER_KEY = 20
TINY = {"width": 32, "height": 32, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Keys 1-4 wait on key 0's jobs: they are admin keys, which see every key's jobs (keys are tenants).
    server = ServerProcess(tmp_path_factory.mktemp("front-door"), api_key=",".join(KEYS), INJECT_FAULTS="1",
                           HEADER_TIMEOUT_S="2", BODY_TIMEOUT_S="2", MAX_WAITS_PER_KEY=str(PER_KEY),
                           ADMIN_KEYS=",".join(KEYS[1:5]))
    server.session.headers["Authorization"] = f"Bearer {KEYS[0]}"
    server.start()
    yield server
    server.stop()


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def slow_job(server, steps=40, slow="0.25") -> str:
    body = {"prompt": "slow", "width": 32, "height": 32, "num_inference_steps": steps}
    return server.post("generate", body, wait=None, headers={"X-Inject-Fault": f"slow={slow}"}).json()["id"]


def test_idle_slow_and_waiting_clients_do_not_starve_healthz(server):
    blocker = slow_job(server, steps=60)
    held: list[socket.socket] = []
    try:
        held += [connect(server) for _ in range(150)]  # idle: connected, nothing sent
        for _ in range(60):  # slow headers: a request line, then nothing
            sock = connect(server)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        for index in range(40):  # long-polls and event streams on the running job, over several keys
            sock = connect(server)
            key = KEYS[1 + index % 4]
            path = f"/v1/jobs/{blocker}?wait=60" if index % 2 else f"/v1/jobs/{blocker}/events"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
            held.append(sock)
        time.sleep(0.5)
        answers = [requests.get(f"{server.url}/healthz", timeout=5) for _ in range(20)]
        assert all(answer.status_code == 200 for answer in answers)
        job = server.run("generate", {"prompt": "still served", **TINY}, headers={"Authorization": f"Bearer {KEYS[5]}"})
        assert job["status"] == "succeeded"
    finally:
        for sock in held:
            sock.close()
        server.session.delete(f"{server.url}/v1/jobs/{blocker}")


def test_headers_that_never_finish_are_cut(server):
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    started = time.monotonic()
    assert sock.recv(1024) == b""  # the server closed it (HEADER_TIMEOUT_S=2), long before our 10 s timeout
    assert time.monotonic() - started < 9
    sock.close()


def test_a_body_that_never_finishes_gets_408_in_json(server):
    sock = connect(server)
    sock.sendall(f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS[0]}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":".encode())
    answer = sock.recv(4096).decode()
    sock.close()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408") and json.loads(body)["error"]["code"] == "request_timeout"


def test_gunicorns_own_errors_are_json(server):
    sock = connect(server)
    sock.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = sock.recv(4096).decode().partition("\r\n\r\n")
    sock.close()
    assert head.startswith("HTTP/1.1 414") and "application/json" in head
    assert json.loads(body)["error"]["code"] == "uri_too_long"


def test_one_key_cannot_hold_more_than_its_share_of_waits(server):
    blocker = slow_job(server, steps=60)
    auth = {"Authorization": f"Bearer {KEYS[4]}"}
    with ThreadPoolExecutor(PER_KEY) as pool:
        polls = [pool.submit(requests.get, f"{server.url}/v1/jobs/{blocker}", params={"wait": 20}, headers=auth,
                             timeout=60) for _ in range(PER_KEY)]
        time.sleep(1.5)
        refused = requests.get(f"{server.url}/v1/jobs/{blocker}", params={"wait": 5}, headers=auth, timeout=10)
        stream = requests.get(f"{server.url}/v1/jobs/{blocker}/events", headers=auth, timeout=10)
        other_key = requests.get(f"{server.url}/v1/jobs/{blocker}", params={"wait": 0.5},
                                 headers={"Authorization": f"Bearer {KEYS[3]}"}, timeout=10)
        server.session.delete(f"{server.url}/v1/jobs/{blocker}")
        assert all(poll.result().status_code == 200 for poll in polls)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_waits"
    assert stream.status_code == 429
    assert other_key.status_code == 200
    # the slots come back once the waits end
    assert requests.get(f"{server.url}/v1/jobs/{blocker}", params={"wait": 1}, headers=auth, timeout=10).ok


# ---- the engine's own process ----------------------------------------------------------------
def test_the_http_process_has_no_torch_loaded(server):
    (worker,) = server.worker_pids()
    (engine,) = server.engine_pids()
    assert "libtorch" not in Path(f"/proc/{worker}/maps").read_text()
    assert "libtorch" in Path(f"/proc/{engine}/maps").read_text()


def test_an_engine_that_dies_mid_job_fails_it_and_comes_back(server):
    (worker,) = server.worker_pids()
    (engine,) = server.engine_pids()
    job_id = slow_job(server)
    deadline = time.monotonic() + 30
    while server.job(job_id)["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(engine, signal.SIGKILL)  # what the kernel's OOM killer does
    job = server.job(job_id, wait=30)
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost", job
    assert requests.get(f"{server.url}/healthz", timeout=5).ok  # the front door never went away
    server.wait_ready(120)
    assert server.worker_pids() == [worker] and server.engine_pids() != [engine]
    after = server.run("generate", {"prompt": "after the crash", "seed": 3, **TINY})
    assert after["status"] == "succeeded"


def test_a_crash_inside_a_step_is_worker_lost_too(server):
    job_id = server.post("generate", {"prompt": "crash", **TINY}, wait=None,
                         headers={"X-Inject-Fault": "crash"}).json()["id"]
    job = server.job(job_id, wait=30)
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost"
    server.wait_ready(120)
    assert server.run("generate", {"prompt": "fine", **TINY})["status"] == "succeeded"


def test_the_seed_reproduces_bytes_across_an_engine_restart(server):
    body = {"prompt": "same bytes", "seed": 11, **TINY}
    first = server.run("generate", {**body, "output_format": "webp"})
    (engine,) = server.engine_pids()
    os.kill(engine, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while server.engine_pids() in ([engine], []):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    server.wait_ready(120)
    second = server.run("generate", {**body, "output_format": "webp", "num_images": 2})  # no cache hit: 2 images
    assert second["cache"] == "miss"
    assert server.file_bytes(second["images"][0]) == server.file_bytes(first["images"][0])

