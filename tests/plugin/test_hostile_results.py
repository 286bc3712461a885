"""A broken or hostile inference server against the plugin's result downloads (issue 15, items 10-12, 15).

The plugin runs over its stdio protocol; a scripted server announces huge files, drips
bytes, redirects elsewhere, or lists far more images than were asked for. Each call must
end with one clear error, or with just the asked-for images, and leave the plugin up.
"""

import pytest

from tests.plugin.fake_server import png
from tests.plugin.hostile_server import MiB, HostileServer, ImageHost, drip, image_entry, redirect, stream_zeros
from tests.plugin.test_resilience import assert_healthy, creds

BOMB = 64 * MiB  # what the server would send in all


@pytest.fixture
def hostile():
    server = HostileServer(max_pixels=64 * 64)  # so each result may take about 1 MiB
    yield server
    server.close()


@pytest.fixture
def elsewhere():
    host = ImageHost()
    yield host
    host.close()


@pytest.mark.parametrize("announced", [10 * 1024 * MiB, None], ids=["announces-10GB", "no-length"])
def test_a_result_over_the_servers_max_pixels_is_cut_off(plugin, hostile, announced):
    path = "/v1/files/bomb.png"
    hostile.images = [image_entry(path)]
    hostile.routes[path] = lambda h: stream_zeros(h, BOMB, announced, hostile.sent, path)
    result = plugin.invoke("generate", creds(hostile.url, budget=30), {"prompt": "x"}, timeout=90)
    assert result.error is not None and not result.blobs
    message = result.error["message"]
    assert "too large" in message and "MAX_PIXELS" in message and "bomb.png" in message
    # The plugin stopped reading near the cap (socket buffers hold a few MB more), not at the end.
    assert hostile.sent[path] < BOMB / 2
    assert_healthy(plugin)


def test_the_whole_call_has_a_byte_cap_too(hostile, monkeypatch):
    from qwen_client import results

    cap = results.image_cap(64 * 64)  # each image's cap, from /v1/info
    monkeypatch.setattr(results, "MAX_CALL_BYTES", cap)  # as if the call could take one image's worth
    hostile.routes["/v1/files/big.png"] = lambda h: h._send(200, png() + bytes(cap * 2 // 3), "image/png")
    fetcher = results.ResultFetcher(hostile.url, "k", deadline=float("inf"), wanted=2)
    assert fetcher.per_image == cap
    assert fetcher.fetch(image_entry("/v1/files/big.png")).startswith(b"\x89PNG")
    with pytest.raises(results.ServerError, match="too large"):
        fetcher.fetch(image_entry("/v1/files/big.png"))


def test_a_result_that_drips_ends_at_the_calls_deadline(plugin, hostile):
    path = "/v1/files/drip.png"
    hostile.images = [image_entry(path)]
    hostile.routes[path] = lambda h: drip(h, 400, 0.25, hostile.sent, path, hostile.release)  # 100 s in all
    result = plugin.invoke("generate", creds(hostile.url, budget=5), {"prompt": "x"}, timeout=45)
    message = result.error["message"]
    assert "did not finish within the call's Timeout" in message and "drip.png" in message
    assert hostile.sent[path] < 400 and not result.blobs
    assert_healthy(plugin)


def test_a_result_redirect_off_the_server_is_not_followed(plugin, hostile, elsewhere):
    hostile.images = [image_entry("/v1/files/moved.png")]
    hostile.routes["/v1/files/moved.png"] = lambda h: redirect(h, elsewhere.url + "/internal/admin")
    result = plugin.invoke("generate", creds(hostile.url), {"prompt": "x"})
    assert "does not name" in result.error["message"] and "not followed" in result.error["message"]
    assert elsewhere.requests == [] and not result.blobs
    assert_healthy(plugin)


def test_a_redirect_within_the_server_is_followed(plugin, hostile):
    hostile.images = [image_entry("/v1/files/moved.png")]
    hostile.routes["/v1/files/moved.png"] = lambda h: redirect(h, "/v1/files/fake.png")
    result = plugin.invoke("generate", creds(hostile.url), {"prompt": "x"})
    assert result.error is None, result.error
    assert [data for _, data in result.blobs] == [png()]


def test_a_storage_url_the_job_names_is_fetched_without_the_key(plugin, hostile, elsewhere):
    hostile.images = [image_entry(elsewhere.url + "/bucket/out.png?X-Amz-Signature=abc")]
    result = plugin.invoke("generate", creds(hostile.url), {"prompt": "x"})
    assert result.error is None, result.error
    assert [data for _, data in result.blobs] == [elsewhere.body]
    [(path, headers)] = elsewhere.requests
    assert path == "/bucket/out.png?X-Amz-Signature=abc" and "authorization" not in headers


def test_a_redirect_to_the_storage_origin_the_job_names_is_followed(plugin, hostile, elsewhere):
    entry = image_entry("/v1/files/stored.png") | {"storage_origin": elsewhere.url}
    hostile.images = [entry]
    hostile.routes["/v1/files/stored.png"] = lambda h: redirect(h, elsewhere.url + "/bucket/stored.png?sig=1")
    result = plugin.invoke("generate", creds(hostile.url), {"prompt": "x"})
    assert result.error is None, result.error
    assert [data for _, data in result.blobs] == [elsewhere.body]
    [(path, headers)] = elsewhere.requests
    assert path == "/bucket/stored.png?sig=1" and "authorization" not in headers


def test_a_named_storage_url_cannot_redirect_to_a_third_origin(plugin, hostile, elsewhere):
    third = ImageHost()
    try:
        hostile.images = [image_entry(hostile.url.replace("127.0.0.1", "localhost") + "/v1/files/hop.png")]
        hostile.routes["/v1/files/hop.png"] = lambda h: redirect(h, third.url + "/secret")
        result = plugin.invoke("generate", creds(hostile.url), {"prompt": "x"})
        assert "does not name" in result.error["message"] and third.requests == []
    finally:
        third.close()


def test_a_result_that_is_not_an_image_is_not_passed_on(plugin, hostile):
    hostile.routes["/v1/files/fake.png"] = lambda h: h._send(200, b"root:x:0:0:root:/root:/bin/bash\n", "image/png")
    result = plugin.invoke("generate", creds(hostile.url), {"prompt": "x"})
    assert "not a PNG, JPEG or WebP" in result.error["message"] and not result.blobs


@pytest.mark.parametrize("asked", [1, 2])
def test_a_job_listing_3000_images_fetches_only_those_asked_for(plugin, hostile, asked):
    hostile.images = [image_entry("/v1/files/fake.png", seed=i) for i in range(3000)]
    result = plugin.invoke("generate", creds(hostile.url, budget=30), {"prompt": "x", "num_images": asked}, timeout=90)
    assert result.error is None, result.error
    assert len(result.blobs) == asked and hostile.get_count("/v1/files/fake.png") == asked
    assert f"The server listed 3000 images for {asked} requested" in result.text
    assert result.jsons[0]["seeds"] == list(range(asked))
    assert_healthy(plugin)
