"""Failures the real server cannot be made to show on demand, through the stdio protocol.

A scripted fake plays the server here (hanging, 503 first, a job that never ends); the
plugin must give one clear error within its budget and stay up for the next call.
"""

import socket

import pytest

from tests.plugin.fake_server import FakeServer, png


@pytest.fixture
def fake(request):
    server = FakeServer(**getattr(request, "param", {}))
    yield server
    server.close()


def creds(url: str, budget: int = 4) -> dict:
    return {"server_url": url, "api_key": "k", "timeout_seconds": str(budget), "private_image_hosts": "127.0.0.1"}


def assert_healthy(plugin):
    assert plugin.alive(), "the plugin process died"
    assert not plugin.garbage, f"non-protocol lines on stdout: {plugin.garbage[:3]}"


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_dead_server(plugin):
    url = dead_url()
    result = plugin.validate(creds(url))
    assert result.error["error_type"] == "ToolProviderCredentialValidationError"
    assert "Cannot reach" in result.error["message"] and url in result.error["message"]
    result = plugin.invoke("generate", creds(url), {"prompt": "x"})
    assert "Cannot reach" in result.error["message"] and not result.blobs
    assert_healthy(plugin)


@pytest.mark.parametrize("fake", [{"mode": "hang"}], indirect=True)
def test_hanging_server_fails_within_budget(plugin, fake):
    result = plugin.invoke("generate", creds(fake.url, budget=3), {"prompt": "x"}, timeout=60)
    assert "did not answer" in result.error["message"] and fake.url in result.error["message"]
    assert_healthy(plugin)


@pytest.mark.parametrize("fake", [{"fail_first": 2}], indirect=True)
def test_503_then_200_is_retried(plugin, fake):
    assert plugin.validate(creds(fake.url)).error is None
    fake.fail_first = 2
    result = plugin.invoke("generate", creds(fake.url), {"prompt": "x", "seed": 7})
    assert result.error is None, result.error
    assert [data for _, data in result.blobs] == [png()]
    posts = [path for method, path in fake.log if method == "POST"]
    assert posts == ["/v1/generate"] * 3  # two 503s, then accepted
    assert_healthy(plugin)


@pytest.mark.parametrize("fake", [{"mode": "slow_job"}], indirect=True)
def test_job_longer_than_budget_is_cancelled(plugin, fake):
    result = plugin.invoke("generate", creds(fake.url, budget=4), {"prompt": "x"}, timeout=60)
    message = result.error["message"]
    assert "job-fake" in message and "budget" in message and "cancelled" in message
    assert "Job job-fake running: step 1/50." in result.text
    assert ("DELETE", "/v1/jobs/job-fake") in fake.log
    assert_healthy(plugin)


def test_file_url_that_times_out(plugin, fake, files):
    path = files.add("in.png", png())
    image = files.file_param(path, base=files.base + "/slow")
    result = plugin.invoke("img2img", creds(fake.url, budget=3), {"prompt": "x", "image": image}, timeout=60)
    assert "timed out" in result.error["message"] and "image" in result.error["message"]
    assert not [m for m, _ in fake.log if m == "POST"]
    assert_healthy(plugin)


@pytest.mark.parametrize("budget", ["0", "soon"])
def test_bad_timeout_credential_is_named(plugin, fake, budget):
    result = plugin.validate({"server_url": fake.url, "timeout_seconds": budget})
    assert "Timeout" in result.error["message"]


def test_not_our_server(plugin, files):
    result = plugin.validate(creds(files.base + "/v1"))  # answers 404 text/plain everywhere
    assert "has no /v1/info" in result.error["message"] and "root" in result.error["message"]
    assert_healthy(plugin)


@pytest.mark.parametrize("fake", [{"mode": "other"}], indirect=True)
def test_another_service(plugin, fake):
    result = plugin.validate(creds(fake.url))
    assert "'other-service'" in result.error["message"] and "Server URL" in result.error["message"]
