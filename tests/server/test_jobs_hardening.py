"""Issue 15, the jobs layer, against real server processes: keys are tenants, cache hits are cheap rows under a
per-key rate limit, corrupt state neither stops the server nor strands jobs, and failing storage fails /readyz.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import pytest
import requests

from inference_server.app import create_app
from inference_server.config import Settings
from tests.server.fake_engine import FakeEngine
from tests.server.test_job_store import OLD_SCHEMA, record
from tests.support import ServerProcess, wait_for

TINY = {"width": 32, "height": 32, "num_inference_steps": 1}
RATE = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("tenants"), api_key="key-a,key-b,key-h,key-r",
                           ADMIN_KEYS="admin", RATE_LIMIT=f"{RATE}/60", INJECT_FAULTS="1")
    server.session.headers["Authorization"] = "Bearer key-a"
    server.start()
    yield server
    server.stop()


def as_key(server: ServerProcess, key: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {key}",
                                                                **kwargs.pop("headers", {})}, timeout=60, **kwargs)


def test_a_key_sees_only_its_own_jobs_and_files(server):
    job = server.run("generate", {"prompt": "a's secret", **TINY, "seed": 11})
    paths = [f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}?wait=1", f"/v1/jobs/{job['id']}/events",
             job["images"][0]["url"]]
    for path in paths:
        other = as_key(server, "key-b", "GET", path)
        assert other.status_code == 404, (path, other.text)
        assert other.json()["error"]["code"] in ("job_not_found", "file_not_found")
    assert as_key(server, "key-b", "DELETE", f"/v1/jobs/{job['id']}").status_code == 404
    unknown = as_key(server, "key-b", "GET", f"/v1/jobs/{'0' * 32}").json()
    assert as_key(server, "key-b", "GET", paths[0]).json()["error"]["message"] == \
        unknown["error"]["message"].replace("0" * 32, job["id"])  # not confirmed to exist
    for key in ("key-a", "admin"):
        assert as_key(server, key, "GET", paths[0]).json()["params"]["prompt"] == "a's secret"
        assert as_key(server, key, "GET", paths[3]).content.startswith(b"\x89PNG")
    listed = {key: [j["id"] for j in as_key(server, key, "GET", "/v1/jobs?limit=100").json()["jobs"]]
              for key in ("key-a", "key-b", "admin")}
    assert job["id"] in listed["key-a"] and job["id"] in listed["admin"] and job["id"] not in listed["key-b"]
    # The cache is per key: b's identical request runs as its own job, and says nothing about a's.
    again = {"prompt": "a's secret", **TINY, "seed": 11}
    assert as_key(server, "key-b", "POST", "/v1/generate", json=again, headers={"Prefer": "wait=60"}).json()[
        "cache"] == "miss"
    assert server.post("generate", again).json()["cache"] == "hit"


def test_another_key_cannot_cancel_a_job(server):
    job = server.post("generate", {"prompt": "long", **TINY, "num_inference_steps": 40}, wait=None,
                      headers={"X-Inject-Fault": "slow=0.1"}).json()
    assert as_key(server, "key-b", "DELETE", f"/v1/jobs/{job['id']}").status_code == 404
    assert server.job(job["id"])["status"] in ("queued", "running")
    assert server.session.delete(f"{server.url}/v1/jobs/{job['id']}").status_code == 200
    assert server.job(job["id"], wait=30)["status"] == "cancelled"


def test_cache_hits_are_small_records_of_the_same_shape(server):
    """A hit used to store a full copy of the job: 8,000-character prompts made each hit a ~16 KB row."""
    body = {"prompt": "p" * 4000, "negative_prompt": "n" * 4000, **TINY, "seed": 3}
    first = as_key(server, "key-h", "POST", "/v1/generate", json=body, headers={"Prefer": "wait=60"}).json()
    assert first["status"] == "succeeded"
    before = store_size(server)
    hits = [as_key(server, "key-h", "POST", "/v1/generate", json=body).json() for _ in range(150)]
    growth = store_size(server) - before
    same = lambda images: [(i["url"].split("?")[0], i["seed"], i["width"], i["height"]) for i in images]  # noqa: E731
    assert all(hit["cache"] == "hit" and same(hit["images"]) == same(first["images"]) for hit in hits)  # links re-signed
    assert len({hit["id"] for hit in hits}) == 150
    read = as_key(server, "key-h", "GET", f"/v1/jobs/{hits[-1]['id']}").json()
    assert read == hits[-1] and set(read) == set(first) and read["params"] == first["params"]
    assert as_key(server, "key-h", "GET", "/v1/jobs?limit=3").json()["jobs"] == hits[:-4:-1]  # listed the same
    print(f"the store grew by {growth} bytes for 150 hits")
    assert growth < 150 * 1000


def test_every_submit_counts_against_the_rate_limit_cache_hits_too(server):
    body = {"prompt": "rate", **TINY, "seed": 5}
    assert as_key(server, "key-r", "POST", "/v1/generate", json=body, headers={"Prefer": "wait=60"}).ok
    answers = []
    while len(answers) < RATE + 100:
        answers.append(as_key(server, "key-r", "POST", "/v1/generate", json=body))
        if answers[-1].status_code == 429:
            break
    refused = answers[-1]
    assert refused.status_code == 429, [a.status_code for a in answers[-3:]]
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
    assert all(a.json()["cache"] == "hit" for a in answers[:-1]) and len(answers) >= RATE
    assert as_key(server, "key-a", "POST", "/v1/generate", json=body).status_code in (200, 202)  # its own bucket


def store_size(server: ServerProcess) -> int:
    """The store file's size once its write-ahead log is folded in."""
    path = server.data_dir / "jobs.sqlite3"
    db = sqlite3.connect(path)
    try:
        busy, *_ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        db.close()
    return path.stat().st_size


def test_corrupt_rows_neither_stop_the_server_nor_strand_the_queue(tmp_path):
    """A `running` row that is not JSON stopped the start-up; broken saved fields left every later job queued."""
    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    running, finished = record(None, [], "running"), record(now - 5, [])
    broken, good = record(None, [], "queued"), record(None, [], "queued")
    good["created_ts"] = broken["created_ts"] + 1  # saved after the broken one
    good["params"] = {"prompt": "after the broken one", **TINY, "seed": 4}
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
        for job in (running, finished, broken, good):
            db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?)", (job["id"], "generate", job["status"],
                                                                 job["created_ts"], job["finished_ts"],
                                                                 json.dumps(job)))
        db.execute("UPDATE jobs SET body = '{\"id\": tru' WHERE id IN (?, ?)", (running["id"], finished["id"]))
        db.execute("INSERT INTO pending VALUES (?, ?, 1)", (broken["id"], '{"prompt": "x", "wid'))
        db.execute("INSERT INTO pending VALUES (?, ?, 1)", (good["id"], json.dumps(good["params"])))
    db.close()
    server = ServerProcess(data, api_key="").start()
    try:
        for job in (running, broken, finished):
            read = server.job(job["id"])
            assert (read["status"], read["error"]["code"]) == ("failed", "corrupt_record"), read
        assert server.job(good["id"], wait=60)["status"] == "succeeded"
        log = server.log_tail(1_000_000)
        assert all(f"job {job['id']}" in log and "corrupt_record" in log for job in (running, broken, finished))
    finally:
        server.stop()


def test_failing_storage_makes_readyz_503_until_a_write_works(tmp_path):
    server = ServerProcess(tmp_path / "data", STORAGE_FAILURES_UNREADY="2").start()
    files, away = server.data_dir / "files", server.data_dir / "files-away"
    try:
        files.rename(away)
        files.write_text("a file where the results folder was")  # every write into it fails, even as root
        for i in range(2):
            job = server.post("generate", {"prompt": f"lost {i}", **TINY}).json()
            assert (job["status"], job["error"]["code"]) == ("failed", "storage"), job
        refusal = wait_for(lambda: (r := requests.get(f"{server.url}/readyz", timeout=5)).status_code == 503
                           and r.json())
        assert "storage is failing" in refusal["error"]["message"]
        assert "Not a directory" in refusal["error"]["message"] and str(server.data_dir) not in str(refusal)
        refused = server.post("generate", {"prompt": "not now", **TINY}, wait=None)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        files.unlink()
        shutil.move(away, files)
        wait_for(lambda: requests.get(f"{server.url}/readyz", timeout=5).status_code == 200)
        server.run("generate", {"prompt": "stored again", **TINY})
    finally:
        server.stop()


@pytest.mark.parametrize("shared", [False, True])
def test_shared_cache_lets_a_hit_cross_keys_and_read_the_files_it_points_at(tmp_path, shared):
    """In process (a fake engine): with SHARED_CACHE=1 a hit crosses keys, and its key may read those files."""
    app = create_app(Settings(data_dir=tmp_path, api_keys=("a", "b", "c"), shared_cache=shared),
                     engine_loader=lambda _settings: FakeEngine())
    app.config["JOBS"].start()
    client = app.test_client()
    wait_for(lambda: client.get("/readyz").status_code == 200)
    body = {"prompt": "shared?", **TINY, "seed": 8}

    def submit(key: str) -> dict:
        return client.post("/v1/generate", json=body, headers={"Authorization": f"Bearer {key}",
                                                                "Prefer": "wait=30"}).get_json()

    first = submit("a")
    second = submit("b")
    assert second["cache"] == ("hit" if shared else "miss")
    url = first["images"][0]["url"]
    assert second["images"][0]["url"] == url  # the fake engine paints the same pixels for the same seed
    assert client.get(url, headers={"Authorization": "Bearer b"}).status_code == 200
    assert client.get(url, headers={"Authorization": "Bearer c"}).status_code == 404
    assert client.get(f"/v1/jobs/{first['id']}", headers={"Authorization": "Bearer b"}).status_code == 404
