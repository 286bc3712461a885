"""Issue 15, server items 3, 5, 7 and 8: the HTTP layer under attack, over real sockets.

One server with no keys (the localhost case the cross-site attacks aim at), faults on, a 4 MB body limit and
a 4 MB upload budget; the keyed session server (`live_server`) where keys change the answer.
"""

from __future__ import annotations

import io
import json
import socket
import time

import pytest
import requests
from PIL import Image

from tests.support import ServerProcess

TINY = {"prompt": "x", "width": 32, "height": 32, "num_inference_steps": 1}
DIFY = "https://dify.example.com"


def png(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("no-keys"), api_key="", INJECT_FAULTS="1", CORS_ORIGINS=DIFY,
                           MAX_UPLOAD_MB="4", UPLOAD_BUDGET_MB="4")
    server.session.headers.pop("Authorization")
    server.start()
    yield server
    server.stop()


def post(server, path, **kwargs) -> requests.Response:
    return requests.post(server.url + path, timeout=60, **kwargs)


# ---- 5. cross-site requests and Host ---------------------------------------------------------
def test_a_cross_site_form_post_is_refused_naming_origin(open_server):
    answer = post(open_server, "/v1/generate", data={"prompt": "from a web page"},
                  headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == {"code": "cross_site_request", "field": "Origin",
                                      "message": answer.json()["error"]["message"]}
    assert "evil.example" in answer.json()["error"]["message"]


def test_a_cross_site_multipart_post_without_origin_is_refused_by_sec_fetch_site(open_server):
    answer = post(open_server, "/v1/img2img", data={"prompt": "x"}, files={"image": ("a.png", png())},
                  headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403 and answer.json()["error"]["field"] == "Sec-Fetch-Site"
    same_site = post(open_server, "/v1/generate", data={"prompt": "x"}, headers={"Sec-Fetch-Site": "same-site"})
    assert same_site.status_code == 403  # another port of localhost is another origin


def test_a_cross_site_delete_is_refused(open_server):
    job = post(open_server, "/v1/generate", json=TINY).json()
    answer = requests.delete(f"{open_server.url}/v1/jobs/{job['id']}", headers={"Origin": "null"}, timeout=30)
    assert answer.status_code == 403 and answer.json()["error"]["field"] == "Origin"


def test_same_origin_listed_origins_and_plain_clients_still_post(open_server):
    for headers in ({"Origin": open_server.url, "Sec-Fetch-Site": "same-origin"},
                    {"Origin": DIFY, "Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "none"}, {}):
        answer = post(open_server, "/v1/generate", json=TINY, headers=headers)
        assert answer.status_code == 202, (headers, answer.text)
    reading = requests.get(f"{open_server.url}/v1/info", headers={"Origin": "https://evil.example"}, timeout=30)
    assert reading.status_code == 200 and "Access-Control-Allow-Origin" not in reading.headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "localhost@evil.example", ""])
def test_a_host_that_is_not_allowed_gets_421_naming_host(open_server, host):
    answer = requests.get(f"{open_server.url}/openapi.json", headers={"Host": host.format(port=open_server.port)},
                          timeout=30)
    assert answer.status_code == 421, answer.text
    assert answer.json()["error"]["code"] == "host_not_allowed" and answer.json()["error"]["field"] == "Host"


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_local_hosts_are_served_and_named_in_openapi(open_server, host):
    host = host.format(port=open_server.port)
    answer = requests.get(f"{open_server.url}/openapi.json", headers={"Host": host}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["servers"] == [{"url": f"http://{host.lower()}"}]


def test_with_keys_any_host_is_served_but_openapi_names_the_bound_address(live_server):
    answer = live_server.session.get(f"{live_server.url}/openapi.json", headers={"Host": "evil.example"},
                                     timeout=30)
    assert answer.status_code == 200
    assert answer.json()["servers"] == [{"url": live_server.url}]


# ---- 7. booleans, nesting, gunicorn's own errors, multipart limits, chunked bodies --------------
@pytest.mark.parametrize("field", ["num_images", "num_inference_steps", "seed", "guidance", "width"])
def test_a_boolean_is_not_a_number_in_json(open_server, field):
    answer = post(open_server, "/v1/generate", json={**TINY, field: True})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.text


def test_a_boolean_is_not_a_number_in_multipart_nor_in_a_region(open_server):
    answer = post(open_server, "/v1/img2img", data={"prompt": "x", "num_images": "true"},
                  files={"image": ("a.png", png())})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "num_images"
    region = post(open_server, "/v1/inpaint", files={"image": ("a.png", png())},
                  data={"region": json.dumps({"x": True, "y": 0, "width": 8, "height": 8})})
    assert region.status_code == 422 and region.json()["error"]["field"] == "region.x"


def raw_exchange(server, request: bytes) -> tuple[str, dict]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    return head, json.loads(body)


def test_gunicorns_400_and_431_are_json(open_server):
    head, body = raw_exchange(open_server, b"BLAH\x00 / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert head.startswith("HTTP/1.1 400") and "application/json" in head and body["error"]["code"]
    huge = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    head, body = raw_exchange(open_server, huge)
    assert head.startswith("HTTP/1.1 431") and "application/json" in head
    assert body["error"]["code"] == "request_header_fields_too_large"


def test_multipart_limits_say_which_limit_and_which_field(open_server):
    big_field = post(open_server, "/v1/img2img", data={"prompt": "a" * 600_000}, files={"image": ("a.png", png())})
    assert big_field.status_code == 413
    assert big_field.json()["error"]["code"] == "field_too_large" and big_field.json()["error"]["field"] == "prompt"
    many = post(open_server, "/v1/img2img", files=[(f"f{i}", (None, "1")) for i in range(1001)])
    assert many.status_code == 413 and many.json()["error"]["code"] == "too_many_parts"
    assert "MAX_UPLOAD_MB" not in big_field.text + many.text


def test_the_openai_edits_route_reads_multipart_under_the_same_part_limits(open_server):
    big_field = post(open_server, "/v1/images/edits", data={"prompt": "a" * 600_000},
                     files={"image": ("a.png", png())})
    assert big_field.status_code == 413, big_field.text
    assert big_field.json()["error"]["code"] == "field_too_large" and big_field.json()["error"]["param"] == "prompt"
    stray = post(open_server, "/v1/images/edits", data={"prompt": "x"},
                 files=[("image", ("a.png", png())), ("extra", ("b.png", png()))])
    assert stray.status_code == 400 and stray.json()["error"]["param"] == "extra", stray.text


def test_a_second_file_for_a_one_image_field_is_refused_naming_it(open_server):
    answer = post(open_server, "/v1/img2img", data={"prompt": "x"},
                  files=[("image", ("a.png", png())), ("image", ("b.png", png((8, 8))))])
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "image", answer.text


def chunks(total: int, size: int = 1 << 20):
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_a_40_mb_chunked_body_gets_413(open_server):
    answer = post(open_server, "/v1/generate", data=chunks(40 << 20), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large", answer.text


# ---- 3. the upload budget -----------------------------------------------------------------------
def test_uploads_past_the_budget_get_503_with_retry_after_until_it_frees(open_server):
    held = socket.create_connection(("127.0.0.1", open_server.port), timeout=30)
    held.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 3500000\r\n\r\n{\"prompt\": \"")  # 3.5 of the 4 MB budget, and no more sent
    body = json.dumps({**TINY, "negative_prompt": "", "seed": 1}).encode() + b" " * 1_000_000  # 1 MB
    refused = None
    for _ in range(100):  # until the held request has reserved its share
        answer = post(open_server, "/v1/generate", data=body, headers={"Content-Type": "application/json"})
        if answer.status_code == 503:
            refused = answer
            break
        time.sleep(0.1)
    held.close()
    assert refused is not None, "the budget never filled"
    assert refused.json()["error"]["code"] == "busy_uploads" and int(refused.headers["Retry-After"]) >= 1
    for _ in range(100):  # the closed upload gives its share back
        answer = post(open_server, "/v1/generate", data=body, headers={"Content-Type": "application/json"})
        if answer.status_code != 503:
            break
        time.sleep(0.1)
    assert answer.status_code == 202, answer.text


def test_the_openai_image_routes_share_the_upload_budget(open_server):
    """/v1/images/edits decodes uploads as /v1/<task> does, so it reserves from the same budget."""
    held = socket.create_connection(("127.0.0.1", open_server.port), timeout=30)
    held.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 3500000\r\n\r\n{\"prompt\": \"")  # 3.5 of the 4 MB budget
    padding = b"\0" * 1_000_000  # a 1 MB image file: bytes after a PNG's end are ignored by decoders
    refused = None
    try:
        for _ in range(100):  # until the held request has reserved its share
            answer = post(open_server, "/v1/images/edits", data={"prompt": "make it blue", "size": "64x48"},
                          files=[("image", ("a.png", png() + padding, "image/png"))])
            if answer.status_code == 503:
                refused = answer
                break
            time.sleep(0.1)
    finally:
        held.close()
    assert refused is not None, "the budget never filled"
    error = refused.json()["error"]  # in OpenAI's shape, as every error on these routes
    assert error["code"] == "busy_uploads" and error["type"] and int(refused.headers["Retry-After"]) >= 1, error
    for _ in range(5):  # the closed upload gave its share back, and each edit gives its own back once queued
        for _ in range(100):
            answer = post(open_server, "/v1/images/edits", data={"prompt": "make it blue", "size": "64x48"},
                          files=[("image", ("a.png", png() + padding, "image/png"))])
            if answer.status_code != 503:
                break
            time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["data"], answer.text


# ---- 8. no server paths in job errors -------------------------------------------------------------
def test_an_internal_job_error_gives_a_code_and_plain_words_and_the_path_goes_to_the_log(open_server):
    job = post(open_server, "/v1/generate", json=TINY, headers={"X-Inject-Fault": "os_error"}).json()
    job = requests.get(f"{open_server.url}/v1/jobs/{job['id']}", params={"wait": 30}, timeout=60).json()
    assert job["status"] == "failed" and job["error"]["code"] == "internal", job
    assert "/" not in job["error"]["message"] and "Errno" not in job["error"]["message"], job["error"]
    log = open_server.log_tail(200_000)
    assert "injected.tmp" in log and job["id"] in log


def test_allowed_hosts_rules():
    from inference_server.api.hosts import allowed_hosts, host_allowed
    from inference_server.config import Settings

    assert allowed_hosts(Settings(api_keys=("k",))) == ("*",)
    no_keys = allowed_hosts(Settings(host="::1"))
    assert host_allowed("[::1]:8000", no_keys) and host_allowed("localhost", no_keys)
    assert not host_allowed("evil.example:8000", no_keys) and not host_allowed("localhost:8000/x", no_keys)
    listed = allowed_hosts(Settings(api_keys=("k",), allowed_hosts=("Images.Example.com", "gpu:8000")))
    assert host_allowed("images.example.com:443", listed) and host_allowed("gpu:8000", listed)
    assert not host_allowed("gpu:8001", listed) and not host_allowed("evil.example", listed)


def test_openai_generations_refuse_deep_json_and_long_chunked_bodies_without_a_500(open_server):
    logged = len(open_server.log_tail(100_000_000))
    deep = post(open_server, "/v1/images/generations", data='{"prompt": ' + "[" * 10_000 + "]" * 10_000 + "}",
                headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json", deep.text
    chunked = post(open_server, "/v1/images/generations", data=chunks(40 << 20),
                   headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413, chunked.text
    assert "Traceback" not in open_server.log_tail(100_000_000)[logged:]
