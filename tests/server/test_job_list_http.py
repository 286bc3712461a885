"""GET /v1/jobs (newest first, a cursor per page) and the playground's static files at /ui, over HTTP."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

STEPS = {"num_inference_steps": 2, "width": 32, "height": 32}


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_jobs_list_newest_first_and_pages_without_gaps_or_repeats(live_server):
    made = [live_server.run("generate", {"prompt": f"listed {i}", **STEPS})["id"] for i in range(3)]
    first = live_server.session.get(f"{live_server.url}/v1/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in first["jobs"]] == made[::-1][:2]
    assert first["jobs"][0]["status"] == "succeeded" and first["jobs"][0]["images"][0]["url"].startswith("/v1/files/")
    assert "created_ts" not in first["jobs"][0] and first["jobs"][0]["created_at"]
    second = live_server.session.get(f"{live_server.url}/v1/jobs",
                                     params={"limit": 2, "before": first["next_before"]}).json()
    assert second["jobs"][0]["id"] == made[0]
    seen, cursor = [], None
    while True:  # the whole store, page by page: every job once, newest first
        page = live_server.session.get(f"{live_server.url}/v1/jobs",
                                       params={"limit": 7, **({"before": cursor} if cursor else {})}).json()
        seen += page["jobs"]
        cursor = page["next_before"]
        if cursor is None:
            break
    ids = [job["id"] for job in seen]
    assert len(ids) == len(set(ids)) and set(made) <= set(ids)
    stamps = [job["created_at"] for job in seen]
    assert stamps == sorted(stamps, reverse=True)
    default = live_server.session.get(f"{live_server.url}/v1/jobs").json()
    assert len(default["jobs"]) == min(20, len(ids))


def test_jobs_list_shows_a_queued_job_with_its_position(live_server):
    slow = {"X-Inject-Fault": "slow=0.2"}
    running = live_server.post("generate", {"prompt": "runs", **STEPS, "num_inference_steps": 10}, wait=None,
                               headers=slow).json()
    queued = live_server.post("generate", {"prompt": "waits", **STEPS}, wait=None).json()
    listed = {job["id"]: job for job in live_server.session.get(f"{live_server.url}/v1/jobs").json()["jobs"]}
    assert listed[queued["id"]]["status"] == "queued" and listed[queued["id"]]["position"] >= 1
    assert listed[running["id"]]["status"] in ("queued", "running")
    for job in (running, queued):
        live_server.session.delete(f"{live_server.url}/v1/jobs/{job['id']}")


@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "-1"}, "limit"),
    ({"before": "yesterday"}, "before"), ({"before": "nan_abc"}, "before"), ({"before": "1.5_XYZ"}, "before"),
])
def test_jobs_list_names_the_bad_field(live_server, params, field):
    response = live_server.session.get(f"{live_server.url}/v1/jobs", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_jobs_list_needs_the_key(live_server):
    response = requests.get(f"{live_server.url}/v1/jobs", timeout=10)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_the_playground_is_public_static_files_only(live_server):
    page = requests.get(f"{live_server.url}/ui/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text and "https://" not in page.text  # no CDN
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = requests.get(f"{live_server.url}/ui/app.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    redirect = requests.get(f"{live_server.url}/ui", timeout=10, allow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["Location"].endswith("/ui/")
    for path in ("/ui/missing.js", "/ui/../v1/info", "/ui/%2e%2e/v1/info", "/ui/..%2fjobs.sqlite3"):
        status, body = raw_get(live_server.port, path)  # sent as is: requests would resolve the dots first
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found", path
    assert requests.get(f"{live_server.url}/v1/info", timeout=10).status_code == 401  # the API still needs the key
