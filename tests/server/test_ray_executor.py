"""EXECUTOR=ray on a real local Ray cluster (one head for the module, loopback only): two CPU replicas of the
tiny model behind a real `python -m inference_server serve` (gunicorn's gevent worker).

Same bytes as EXECUTOR=local, cancel of a running job, a replica killed with kill -9, the queue's 429, a
front door that restarts and reuses the running replicas, and an unreachable cluster named by /readyz.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import psutil
import pytest
import requests
from PIL import Image, ImageDraw

from inference_server.executors.ray_bridge import ray_temp_dir
from tests.ray_head import RayHead
from tests.server.test_layering import imported_after
from tests.support import ServerProcess, free_port, png_b64, wait_for

pytestmark = pytest.mark.ray
TINY = {"width": 48, "height": 48, "num_inference_steps": 3}
RAY_WAIT_S = 60.0  # replicas on a shared 2-core machine: twice the usual wait
SLOW = {"X-Inject-Fault": "slow=0.25"}


def photo(width=64, height=48) -> Image.Image:
    image = Image.new("RGB", (width, height), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((8, 8, width - 12, height - 8), fill=(230, 180, 40))
    return image


def every_task() -> list[tuple[str, dict]]:
    source = png_b64(photo())
    return [
        ("generate", {"prompt": "a red lantern", "seed": 11, "num_images": 2, **TINY}),
        ("img2img", {"prompt": "watercolour", "image": source, "strength": 0.6, "seed": 2, "num_inference_steps": 4}),
        ("inpaint", {"prompt": "a bird", "image": source, "region": {"x": 20, "y": 16, "width": 16, "height": 12},
                     "inpaint_area": "masked", "masked_padding": 4, "seed": 5, "num_inference_steps": 3}),
        ("outpaint", {"prompt": "a beach", "image": source, "left": 16, "right": 16, "seed": 6,
                      "num_inference_steps": 3}),
        ("generate", {"prompt": "a teapot", "seed": 7, **TINY}),
    ]


def replica_pids() -> list[int]:
    """The Serve replicas' processes (Ray titles them `ray::ServeReplica:<app>:<deployment>`)."""
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("ServeReplica:qwen-image" in part for part in proc.info["cmdline"] or ()):
            pids.append(proc.pid)
    return sorted(pids)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    head = RayHead(tmp_path_factory.mktemp("rayhead")).start()
    yield head
    head.stop()


def ray_server(data_dir, head: RayHead) -> ServerProcess:
    return ServerProcess(data_dir, EXECUTOR="ray", RAY_ADDRESS=head.address, RAY_REPLICAS="2", INJECT_FAULTS="1",
                         MASKED_MIN_SIZE="64", MAX_QUEUE="3", **head.auth_env)


def started(server: ServerProcess, timeout: float = 300) -> ServerProcess:
    try:
        return server.start(timeout=timeout)
    except BaseException:
        server.kill()
        raise


@pytest.fixture(scope="module")
def ray_data(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-server")


@pytest.fixture(scope="module")
def ray_front(ray_head, ray_data):
    """A list holding the live front door: the restart test swaps in a new one on the same cluster."""
    holder = [started(ray_server(ray_data, ray_head))]
    yield holder
    holder[0].stop()


def ended(server: ServerProcess, job: dict, timeout: float = 180) -> dict:
    """The job once it has ended (long-polls of at most 60 s each)."""
    deadline = time.monotonic() + timeout
    while (current := server.job(job["id"], wait=30))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, current
    return current


def submit(server: ServerProcess, task: str, body: dict, headers: dict | None = None) -> dict:
    response = server.post(task, body, wait=None, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def test_every_task_gives_the_same_bytes_as_the_local_executor(ray_front, live_server):
    server = ray_front[0]
    assert server.session.get(f"{server.url}/readyz").status_code == 200
    assert len(replica_pids()) == 2
    tasks = every_task()  # interleaved: two run at once, one per replica, the rest queue
    jobs = [submit(server, task, body) for task, body in tasks[:2]]
    wait_for(lambda: all(server.job(job["id"])["status"] != "queued" for job in jobs), RAY_WAIT_S)  # MAX_QUEUE=3
    jobs += [submit(server, task, body) for task, body in tasks[2:]]
    results = [ended(server, job) for job in jobs]
    assert [job["status"] for job in results] == ["succeeded"] * len(jobs), results
    for (task, body), job in zip(every_task(), results):
        reference = live_server.run(task, body)  # EXECUTOR=local
        assert [image["seed"] for image in job["images"]] == [image["seed"] for image in reference["images"]]
        ours = [server.file_bytes(image) for image in job["images"]]
        assert ours == [live_server.file_bytes(image) for image in reference["images"]], task


def test_two_replicas_run_two_jobs_at_once_and_a_running_job_can_be_cancelled(ray_front):
    server = ray_front[0]
    first = submit(server, "generate", {"prompt": "slow one", **TINY, "num_inference_steps": 100}, SLOW)
    second = submit(server, "generate", {"prompt": "slow two", **TINY, "num_inference_steps": 100}, SLOW)
    wait_for(lambda: all(server.job(job["id"])["progress"]["step"] >= 1 for job in (first, second)), RAY_WAIT_S)
    assert [server.job(job["id"])["position"] for job in (first, second)] == [0, 0]
    cancelled = server.session.delete(f"{server.url}/v1/jobs/{first['id']}").json()
    assert cancelled["status"] in ("running", "cancelled")
    stopped = ended(server, first)
    assert stopped["status"] == "cancelled" and stopped["error"]["code"] == "cancelled"
    assert stopped["progress"]["step"] < 100 and stopped["images"] == []
    assert server.job(second["id"])["status"] == "running"  # the other replica's job goes on
    server.session.delete(f"{server.url}/v1/jobs/{second['id']}")
    assert ended(server, second)["status"] == "cancelled"
    assert server.run("generate", {"prompt": "after the cancels", **TINY})["status"] == "succeeded"


def test_a_full_queue_answers_429_with_retry_after(ray_front):
    server = ray_front[0]
    running = [submit(server, "generate", {"prompt": f"busy {i}", **TINY, "num_inference_steps": 100}, SLOW)
               for i in range(2)]
    wait_for(lambda: all(server.job(job["id"])["status"] == "running" for job in running), RAY_WAIT_S)
    queued = [submit(server, "generate", {"prompt": f"queued {i}", **TINY}) for i in range(3)]
    assert [server.job(job["id"])["position"] for job in queued] == [1, 2, 3]
    refused = server.post("generate", {"prompt": "one too many", **TINY}, wait=None)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["Retry-After"]) >= 1
    for job in running:
        server.session.delete(f"{server.url}/v1/jobs/{job['id']}")
    assert [ended(server, job)["status"] for job in queued] == ["succeeded"] * 3


def test_a_replica_killed_mid_job_fails_that_job_and_ray_restarts_it(ray_front):
    server = ray_front[0]
    before = replica_pids()
    jobs = [submit(server, "generate", {"prompt": f"victim {i}", **TINY, "num_inference_steps": 40}, SLOW)
            for i in range(2)]
    wait_for(lambda: all(server.job(job["id"])["progress"]["step"] >= 1 for job in jobs), RAY_WAIT_S)
    os.kill(before[0], signal.SIGKILL)  # both replicas are busy: one of the two jobs loses its replica
    results = [ended(server, job) for job in jobs]
    statuses = sorted((job["status"], (job["error"] or {}).get("code")) for job in results)
    assert statuses == [("failed", "worker_lost"), ("succeeded", None)], results
    wait_for(lambda: len(replica_pids()) == 2 and before[0] not in replica_pids(), 120)  # Ray made a new one
    after = [submit(server, "generate", {"prompt": f"after the kill {i}", **TINY}) for i in range(3)]
    assert [ended(server, job)["status"] for job in after] == ["succeeded"] * 3


def test_a_restarted_front_door_reuses_the_replicas_and_runs_the_queued_jobs(ray_front, ray_head, ray_data):
    server = ray_front[0]
    replicas = replica_pids()
    running = [submit(server, "generate", {"prompt": f"cut {i}", **TINY, "num_inference_steps": 40}, SLOW)
               for i in range(2)]
    wait_for(lambda: all(server.job(job["id"])["status"] == "running" for job in running), RAY_WAIT_S)
    queued = [submit(server, "generate", {"prompt": f"waiting {i}", **TINY}) for i in range(2)]
    server.kill()  # kill -9 the front door (gunicorn and its Ray driver), not the cluster
    log_before = len(server.log_tail(10**9))
    again = ray_server(ray_data, ray_head)
    ray_front[0] = again
    started(again)
    assert replica_pids() == replicas
    assert "reusing the running Ray Serve application" in again.log_tail(10**9)[log_before:]  # not deployed again
    assert [ended(again, job)["status"] for job in queued] == ["succeeded"] * 2
    assert {again.job(job["id"])["status"] for job in running} == {"failed"}  # cut while running: not re-run


def test_an_unreachable_cluster_is_named_by_readyz(tmp_path):
    server = ServerProcess(tmp_path, EXECUTOR="ray", RAY_ADDRESS=f"127.0.0.1:{free_port()}").start(wait_ready=False)
    try:
        def ray_named():
            try:
                answer = requests.get(f"{server.url}/readyz", timeout=5)
            except requests.ConnectionError:  # not listening yet
                return None
            return answer.status_code == 503 and "Ray" in answer.json()["error"]["message"] and answer.json()

        answer = wait_for(ray_named, 60)
        assert "Ray is not reachable at 127.0.0.1:" in answer["error"]["message"]
    finally:
        server.stop()


def test_a_local_ray_stays_on_loopback_and_leaves_with_the_server(tmp_path):
    """RAY_ADDRESS empty: the server starts its own Ray; every port of it is on 127.0.0.1, and stopping the
    server stops all of it (a Ray killed outright leaves agents retrying a dead GCS)."""
    server = started(ServerProcess(tmp_path, EXECUTOR="ray", RAY_REPLICAS="1"), timeout=300)
    try:
        assert server.run("generate", {"prompt": "local ray", **TINY})["status"] == "succeeded"
        tree = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
        names = " ".join(" ".join(proc.cmdline()) for proc in tree)
        assert "raylet" in names and "gcs_server" in names and "ServeReplica" in names
        pids = {proc.pid for proc in tree}
        listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
        assert len(listening) > 5 and {c.laddr.ip.removeprefix("::ffff:") for c in listening} == {"127.0.0.1"}, \
            [(c.laddr, psutil.Process(c.pid).name()) for c in listening]
    finally:
        server.stop()
    wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                             for pid in pids), 60)
    shutil.rmtree(ray_temp_dir(tmp_path), ignore_errors=True)  # under /tmp when tmp_path is too long for sockets


def test_the_http_process_does_not_import_ray_or_torch():
    modules = imported_after("import inference_server.front_door, inference_server.executors.ray_serve")
    assert "gevent" in modules and not {"ray", "torch"} & modules
