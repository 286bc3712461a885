"""Signed image links: they open without the key until they expire; anything else about them gets 403."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import stat
import time
from urllib.parse import parse_qs, urlsplit

import openai
import pytest
import requests
from PIL import Image

from tests.support import ServerProcess

TINY = {"width": 32, "height": 32, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def public_server(tmp_path_factory):
    """Reached at localhost (PUBLIC_BASE_URL) though it listens on 127.0.0.1: links must name the public host."""
    server = ServerProcess(tmp_path_factory.mktemp("public-server"), INJECT_FAULTS="1", OPENAI_WAIT_S="1",
                           MAX_QUEUE="1")
    server.env["PUBLIC_BASE_URL"] = f"http://localhost:{server.port}/"
    server.start()
    yield server
    server.stop()


def split(url: str) -> tuple[str, dict]:
    parts = urlsplit(url)
    return parts.path, {key: values[0] for key, values in parse_qs(parts.query).items()}


def test_job_urls_are_signed_relative_and_absolute_on_the_request_host(live_server):
    job = live_server.run("generate", {"prompt": "a boat", "seed": 1, **TINY})
    image = job["images"][0]
    path, query = split(image["url"])
    assert image["url"].startswith("/v1/files/") and set(query) == {"expires", "sig"}
    assert image["absolute_url"] == live_server.url + image["url"]
    assert 86400 - 60 < int(query["expires"]) - time.time() <= 86400  # FILE_URL_TTL_S's default
    opened = requests.get(image["absolute_url"], timeout=30)
    assert opened.status_code == 200 and Image.open(io.BytesIO(opened.content)).size == (32, 32)


def test_every_bad_link_is_refused_unless_the_key_is_sent(live_server):
    job = live_server.run("generate", {"prompt": "a cup", "seed": 2, **TINY})
    path, query = split(job["images"][0]["url"])
    secret = (live_server.data_dir / "file_url_secret").read_bytes().strip()
    name = path.rsplit("/", 1)[1]
    past = int(time.time()) - 10
    past_sig = hmac.new(secret, f"{name}\n{past}".encode(), hashlib.sha256).hexdigest()
    other = live_server.run("generate", {"prompt": "a cup", "seed": 3, **TINY})["images"][0]["url"]
    cases = {
        "missing": ({}, "signature_required"),
        "no expiry": ({"sig": query["sig"]}, "signature_required"),
        "tampered sig": ({**query, "sig": "0" * 64}, "invalid_signature"),
        "later expiry": ({**query, "expires": str(int(query["expires"]) + 3600)}, "invalid_signature"),
        "not a number": ({**query, "expires": "soon"}, "invalid_signature"),
        "expired": ({"expires": str(past), "sig": past_sig}, "link_expired"),
    }
    for label, (params, code) in cases.items():
        refused = requests.get(live_server.url + path, params=params, timeout=30)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == code, label
        with_key = live_server.session.get(live_server.url + path, params=params, timeout=30)
        assert with_key.status_code == 200, label
    # another file's signature does not open this one
    other_query = split(other)[1]
    assert requests.get(live_server.url + path, params=other_query, timeout=30).status_code == 403
    # a wrong key is still a wrong key
    assert requests.get(live_server.url + path, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401


def test_the_generated_secret_is_private_to_the_owner(live_server):
    mode = stat.S_IMODE((live_server.data_dir / "file_url_secret").stat().st_mode)
    assert mode == 0o600


def test_links_are_absolute_on_public_base_url_everywhere(public_server):
    base = f"http://localhost:{public_server.port}"
    answer = public_server.post("generate", {"prompt": "a bell", "seed": 4, **TINY})
    job = answer.json()
    assert answer.status_code == 200 and job["images"][0]["url"].startswith(base + "/v1/files/"), job
    assert job["images"][0]["url"] == job["images"][0]["absolute_url"]
    assert requests.get(job["images"][0]["url"], timeout=30).status_code == 200
    assert public_server.job(job["id"])["images"][0]["url"].startswith(base + "/v1/files/")
    events = public_server.session.get(f"{public_server.url}/v1/jobs/{job['id']}/events", timeout=30).text
    last = json.loads(events.strip().split("data: ")[-1])
    assert last["images"][0]["url"].startswith(base + "/v1/files/")
    assert requests.get(f"{public_server.url}/openapi.json", timeout=30).json()["servers"] == [{"url": base}]
    client = openai.OpenAI(base_url=public_server.url + "/v1", api_key=public_server.api_key, max_retries=0)
    url = client.images.generate(prompt="a bell", size="32x32", response_format="url",
                                 extra_body={"seed": 4, "num_inference_steps": 2}).data[0].url
    assert url.startswith(base + "/v1/files/") and requests.get(url, timeout=30).status_code == 200


def test_openai_calls_time_out_naming_the_job_and_a_full_queue_is_429(public_server):
    client = openai.OpenAI(base_url=public_server.url + "/v1", api_key=public_server.api_key, max_retries=0)
    slow = {"X-Inject-Fault": "slow=4"}
    with pytest.raises(openai.InternalServerError) as raised:  # OPENAI_WAIT_S=1
        client.images.generate(prompt="slow", size="32x32", extra_body={"num_inference_steps": 2},
                               extra_headers=slow)
    error = raised.value
    assert error.status_code == 504 and error.code == "job_timeout" and error.response.headers["x-should-retry"]
    job_id = error.message.split("job ", 1)[1].split(" ", 1)[0]
    assert public_server.job(job_id)["status"] in ("queued", "running")
    queued = public_server.post("generate", {"prompt": "waits", **TINY}, wait=None, headers=slow).json()
    with pytest.raises(openai.RateLimitError) as full:  # MAX_QUEUE=1: the job above waits, this one cannot
        client.images.generate(prompt="x", size="32x32", extra_body={"num_inference_steps": 2})
    assert int(full.value.response.headers["Retry-After"]) >= 1 and full.value.code == "queue_full"
    for pending in (queued["id"], job_id):
        public_server.session.delete(f"{public_server.url}/v1/jobs/{pending}")
        assert public_server.job(pending, wait=30)["status"] in ("cancelled", "succeeded")
