"""Operating the server: queue limits, timeouts, a wedged worker, auth, CORS, logs, restarts, expiry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from PIL import Image

from tests.support import ROOT, ServerProcess, png_b64, wait_for

TINY = {"width": 32, "height": 32}
SECRET_PROMPT = "SECRET-PROMPT 玫瑰花园"


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("ops"), api_key="key-one,key-two", MAX_QUEUE="2",
                           INJECT_FAULTS="1", WORKER_STALL_S="1.5", JOB_TIMEOUT_S="6",
                           CORS_ORIGINS="https://dify.example.com")
    server.session.headers["Authorization"] = "Bearer key-one"
    server.start()
    yield server
    server.stop()


def test_full_queue_answers_429_with_retry_after(ops_server):
    slow = {"X-Inject-Fault": "slow=0.3"}
    running = ops_server.post("generate", {"prompt": "a", **TINY, "num_inference_steps": 40}, wait=None,
                              headers=slow).json()
    wait_for(lambda: ops_server.job(running["id"])["status"] == "running")
    queued = [ops_server.post("generate", {"prompt": "b", **TINY, "num_inference_steps": 2}, wait=None).json()
              for _ in range(2)]
    assert [ops_server.job(job["id"])["position"] for job in queued] == [1, 2]
    assert ops_server.job(running["id"])["position"] == 0
    refused = ops_server.post("generate", {"prompt": "c", **TINY}, wait=None)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "queue_full"
    # Cancelling a queued job frees its place at once.
    cancelled = ops_server.session.delete(f"{ops_server.url}/v1/jobs/{queued[1]['id']}").json()
    assert cancelled["status"] == "cancelled"
    # The slow job (12 s) runs past JOB_TIMEOUT_S=6 and fails with `timeout`; the queued one then runs.
    timed_out = ops_server.job(running["id"], wait=30)
    assert timed_out["status"] == "failed" and timed_out["error"]["code"] == "timeout"
    after = ops_server.job(queued[0]["id"], wait=30)
    assert after["status"] == "succeeded", after
    metrics = ops_server.session.get(f"{ops_server.url}/metrics").text
    assert 'qwen_image_job_failures_total{code="timeout"} 1.0' in metrics
    assert "qwen_image_rejected_total 1.0" in metrics
    assert "qwen_image_queue_depth 0.0" in metrics


def test_a_wedged_worker_makes_readyz_fail(ops_server):
    job = ops_server.post("generate", {"prompt": "w", **TINY}, wait=None, headers={"X-Inject-Fault": "wedge"}).json()
    refusal = wait_for(lambda: (r := requests.get(f"{ops_server.url}/readyz")).status_code == 503 and r.json(), 20)
    assert "stalled" in refusal["error"]["message"] and job["id"] in refusal["error"]["message"]
    assert requests.get(f"{ops_server.url}/healthz").status_code == 200  # alive, but not ready
    ops_server.session.delete(f"{ops_server.url}/v1/jobs/{job['id']}")
    assert ops_server.job(job["id"], wait=10)["status"] == "cancelled"
    wait_for(lambda: requests.get(f"{ops_server.url}/readyz").status_code == 200)


PROTECTED = [("GET", "/v1/info"), ("GET", "/metrics"), ("GET", "/openapi/full.json"), ("POST", "/v1/generate"),
             ("POST", "/v1/inpaint"), ("POST", "/v1/outpaint"), ("POST", "/v1/img2img"),
             ("GET", "/v1/jobs/" + "0" * 32), ("DELETE", "/v1/jobs/" + "0" * 32),
             ("GET", "/v1/jobs/" + "0" * 32 + "/events"), ("GET", "/v1/files/" + "0" * 40 + ".png")]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "key-one", "Basic a2V5LW9uZQ==", "Bearer "])
def test_every_endpoint_but_health_needs_the_key(ops_server, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.request(method, ops_server.url + path, headers=headers, json={"prompt": "x"}, timeout=10)
    sends_a_token = bool(authorization and authorization.partition(" ")[2].strip())
    if path.startswith("/v1/files/") and not sends_a_token:  # no key: a file needs a signed link (test_file_links.py)
        assert response.status_code == 403 and response.json()["error"]["code"] == "signature_required"
        return
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_either_key_works_and_health_is_open(ops_server):
    for key in ("key-one", "key-two"):
        assert requests.get(f"{ops_server.url}/v1/info", headers={"Authorization": f"Bearer {key}"}).ok
    assert requests.get(f"{ops_server.url}/healthz").ok and requests.get(f"{ops_server.url}/readyz").ok


def test_cors_is_an_allow_list(ops_server):
    allowed = ops_server.session.get(f"{ops_server.url}/v1/info", headers={"Origin": "https://dify.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://dify.example.com"
    other = ops_server.session.get(f"{ops_server.url}/v1/info", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_info_openapi_and_metrics(ops_server):
    info = ops_server.session.get(f"{ops_server.url}/v1/info").json()
    assert info["service"] == "qwen-image-inference-server" and info["model"] == "tiny"
    assert info["family"] == "qwen-image"
    # Half precision on CUDA (bf16 for Qwen-Image), fp32 on the CPU.
    assert (info["device"], info["dtype"]) in {("cpu", "float32"), ("cuda", "bfloat16")}
    assert set(info["tasks"]) == {"generate", "inpaint", "outpaint", "img2img"}
    assert info["limits"]["max_queue"] == 2
    spec = ops_server.session.get(f"{ops_server.url}/openapi/full.json").json()
    assert spec["openapi"].startswith("3.") and spec["servers"][0]["url"] == ops_server.url
    operations = [op for item in spec["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == 16
    assert {"generate", "inpaint", "outpaint", "img2img", "getJob", "cancelJob", "jobEvents", "getFile",
            "listJobs"} <= set(ids)
    properties = spec["components"]["schemas"]["InpaintRequest"]["properties"]
    assert {"prompt", "image", "mask", "region", "inpaint_area", "mask_blur"} <= set(properties)


def test_logs_hold_neither_the_key_nor_the_prompt(ops_server):
    ops_server.run("generate", {"prompt": SECRET_PROMPT, "negative_prompt": SECRET_PROMPT, **TINY,
                                "num_inference_steps": 1})
    requests.get(f"{ops_server.url}/v1/info", headers={"Authorization": "Bearer key-two"})
    log = ops_server.log_tail(10_000_000)
    assert '"message": "POST /v1/generate 200"' in log  # the log is there, as JSON lines
    assert "SECRET-PROMPT" not in log and "玫瑰" not in log
    assert "key-one" not in log and "key-two" not in log


def test_non_loopback_bind_without_a_key_is_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HOST": "0.0.0.0", "API_KEYS": "", "DATA_DIR": str(tmp_path),
           "MODEL_ID": "tiny"}
    result = subprocess.run([sys.executable, "-m", "inference_server", "serve"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API_KEYS" in result.stderr


def test_kill_9_mid_job_then_restart_keeps_results(tmp_path):
    server = ServerProcess(tmp_path / "data", INJECT_FAULTS="1").start()
    try:
        done = server.run("generate", {"prompt": "keep me", **TINY, "seed": 5, "num_inference_steps": 2})
        before = server.file_bytes(done["images"][0])
        cut = server.post("generate", {"prompt": "cut", **TINY, "num_inference_steps": 50}, wait=None,
                          headers={"X-Inject-Fault": "slow=0.2"}).json()
        wait_for(lambda: server.job(cut["id"])["status"] == "running")
        server.kill()
        server.start()
        kept = server.job(done["id"])
        assert kept["status"] == "succeeded" and server.file_bytes(kept["images"][0]) == before
        interrupted = server.job(cut["id"])
        assert interrupted["status"] == "failed" and interrupted["error"]["code"] == "interrupted"
    finally:
        server.stop()


def test_jobs_waiting_in_the_queue_survive_a_kill_9(tmp_path):
    """The running job is cut (it may be what killed the server); the queued ones run after the restart."""
    server = ServerProcess(tmp_path / "data", INJECT_FAULTS="1", MASKED_MIN_SIZE="64").start()
    try:
        cut = server.post("generate", {"prompt": "cut", **TINY, "num_inference_steps": 50}, wait=None,
                          headers={"X-Inject-Fault": "slow=0.2"}).json()
        wait_for(lambda: server.job(cut["id"])["status"] == "running")
        unseeded = server.post("generate", {"prompt": "no seed", **TINY, "num_inference_steps": 2}, wait=None).json()
        photo = png_b64(Image.new("RGB", (32, 32), (200, 60, 20)))
        edit = server.post("inpaint", {"prompt": "edit", "image": photo, "seed": 9, "num_inference_steps": 2,
                                       "region": {"x": 8, "y": 8, "width": 16, "height": 16}}, wait=None).json()
        cancelled = server.post("generate", {"prompt": "cancel me", **TINY, "seed": 1}, wait=None).json()
        server.session.delete(f"{server.url}/v1/jobs/{cancelled['id']}")
        long = server.post("generate", {"prompt": "cancel after restart", "width": 256, "height": 256,
                                        "num_inference_steps": 100}, wait=None).json()
        server.kill()
        server.start(wait_ready=False)  # while the model loads, the saved jobs can be waited on and cancelled
        wait_for(lambda: _answers(f"{server.url}/healthz"), 60)
        loading = requests.get(f"{server.url}/readyz", timeout=5).status_code == 503
        assert server.session.delete(f"{server.url}/v1/jobs/{long['id']}").status_code == 200
        again = server.job(unseeded["id"], wait=60)  # a long-poll, not an instant "queued"
        print(f"the model was still loading when the saved jobs were polled: {loading}")
        assert server.job(long["id"], wait=60)["status"] == "cancelled"
        assert server.job(cut["id"])["error"]["code"] == "interrupted"
        assert server.job(cancelled["id"])["status"] == "cancelled"
        assert again["status"] == "succeeded" and again["params"]["seed"] == unseeded["params"]["seed"]
        edited = server.job(edit["id"], wait=60)
        assert edited["status"] == "succeeded"
        # The same images as the request would have made without the restart: a repeat now hits the cache.
        repeat = server.run("inpaint", {"prompt": "edit", "image": photo, "seed": 9, "num_inference_steps": 2,
                                        "region": {"x": 8, "y": 8, "width": 16, "height": 16}})
        assert repeat["cache"] == "hit" and repeat["images"] == edited["images"]
        fresh = server.run("generate", {"prompt": "no seed", **TINY, "num_inference_steps": 2,
                                        "seed": unseeded["params"]["seed"]})
        assert server.file_bytes(fresh["images"][0]) == server.file_bytes(again["images"][0])
    finally:
        server.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # no worker accepting yet, or one still booting
        return False


def test_a_killed_worker_is_replaced_and_its_job_reads_interrupted(tmp_path):
    server = ServerProcess(tmp_path / "data", INJECT_FAULTS="1").start()
    try:
        cut = server.post("generate", {"prompt": "cut", **TINY, "num_inference_steps": 50}, wait=None,
                          headers={"X-Inject-Fault": "slow=0.2"}).json()
        wait_for(lambda: server.job(cut["id"])["status"] == "running")
        (worker,) = server.worker_pids()
        os.kill(worker, signal.SIGKILL)  # what the kernel's OOM killer does
        server.wait_ready()
        assert server.worker_pids() != [worker]
        assert server.job(cut["id"])["error"]["code"] == "interrupted"
        server.run("generate", {"prompt": "after the crash", **TINY, "num_inference_steps": 1})
    finally:
        server.stop()


def test_results_older_than_the_ttl_are_removed(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        job = server.run("generate", {"prompt": "old", **TINY, "seed": 3, "num_inference_steps": 1})
        url = server.url + job["images"][0]["url"]
        server.stop()
        time.sleep(1.2)
        server.env["RESULT_TTL_S"] = "1"
        server.start()
        assert server.session.get(f"{server.url}/v1/jobs/{job['id']}").status_code == 404
        assert server.session.get(server.url + job["images"][0]["url"]).status_code == 404
        assert url  # the same file name, now gone
    finally:
        server.stop()


def test_opt_in_prompt_logging_and_opt_out_png_metadata(tmp_path):
    server = ServerProcess(tmp_path / "data", LOG_PROMPTS="1", PNG_METADATA="0").start()
    try:
        job = server.run("generate", {"prompt": SECRET_PROMPT, **TINY, "seed": 1, "num_inference_steps": 1})
        (image,) = server.images(job)
        assert image.format == "PNG" and "parameters" not in image.text
        assert SECRET_PROMPT in server.log_tail(10_000_000)
    finally:
        server.stop()
