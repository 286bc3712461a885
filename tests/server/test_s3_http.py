"""STORAGE=s3 end to end, against a real SeaweedFS that checks SigV4 signatures and expiry.

The engine's process writes the images to the bucket itself; `/v1/files/{name}` redirects to a presigned
URL (or streams the object); expiry removes objects; a bucket that cannot be used stops the server at start
or fails the job with `storage`; the plugin follows the redirect because the job names the storage origin.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time

import requests
from PIL import Image

from tests.plugin.harness import PluginProcess
from tests.s3_server import s3_server  # noqa: F401 (the module's SeaweedFS)
from tests.support import ROOT, ServerProcess

BODY = {"prompt": "a tin robot", "width": 64, "height": 48, "num_inference_steps": 2}


def s3_env(s3, bucket: str, **extra) -> dict:
    return {"STORAGE": "s3", **s3.env(bucket, prefix="results"), **extra}


def objects(s3, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_images_go_to_the_bucket_and_links_redirect_to_presigned_urls(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    server = ServerProcess(tmp_path / "presign", **s3_env(s3_server, bucket)).start()
    try:
        job = server.run("generate", {**BODY, "seed": 4})
        (image,) = job["images"]
        assert objects(s3_server, bucket) == [f"results/{image['url'].split('/')[-1].split('?')[0]}"]
        assert not list((tmp_path / "presign" / "files").glob("*.png"))  # nothing on the server's disk
        assert image["storage_origin"] == s3_server.endpoint_url.rstrip("/")
        first = server.session.get(server.url + image["url"], allow_redirects=False, timeout=30)
        assert first.status_code == 302 and first.headers["Location"].startswith(s3_server.endpoint_url)
        fetched = requests.get(first.headers["Location"], timeout=30)  # no key, no server: the presigned URL
        assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size == (64, 48)
        tampered = first.headers["Location"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert requests.get(tampered, timeout=30).status_code == 403
        # a signed link (no key) still leads to the object
        anonymous = requests.get(server.url + image["url"], timeout=30)
        assert anonymous.status_code == 200 and anonymous.content == fetched.content
        assert server.session.get(f"{server.url}/v1/files/{'0' * 40}.png", timeout=30).status_code == 404
    finally:
        server.stop()


def test_without_presigning_the_server_streams_the_object(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    server = ServerProcess(tmp_path / "stream", **s3_env(s3_server, bucket, S3_PRESIGN="0")).start()
    try:
        job = server.run("generate", {**BODY, "seed": 5})
        answer = server.session.get(server.url + job["images"][0]["url"], allow_redirects=False, timeout=30)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(answer.content)).size == (64, 48)
        assert "storage_origin" not in job["images"][0]
    finally:
        server.stop()


def test_the_plugin_follows_the_redirect_to_the_named_storage(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    server = ServerProcess(tmp_path / "plugin", **s3_env(s3_server, bucket)).start()
    plugin = PluginProcess()
    try:
        plugin.wait_ready()
        creds = {"server_url": server.url, "api_key": server.api_key, "timeout_seconds": "120"}
        result = plugin.invoke("generate", creds, {"prompt": "a tin robot", "width": 64, "height": 48, "steps": 2})
        assert result.error is None, result.error
        (blob,) = result.blobs
        assert Image.open(io.BytesIO(blob[1])).size == (64, 48)
    finally:
        plugin.close()
        server.stop()


def test_expiry_removes_the_objects(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    server = ServerProcess(tmp_path / "ttl", **s3_env(s3_server, bucket)).start()
    try:
        job = server.run("generate", {**BODY, "seed": 6})
        assert len(objects(s3_server, bucket)) == 1
        server.stop()
        time.sleep(1.5)
        server.env["RESULT_TTL_S"] = "1"
        server.start()
        assert objects(s3_server, bucket) == []
        assert server.session.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).status_code == 404
    finally:
        server.stop()


def test_a_missing_bucket_stops_the_server_at_start(s3_server, tmp_path):  # noqa: F811
    env = {**ServerProcess(tmp_path / "x").env, **s3_env(s3_server, "no-such-bucket")}
    done = subprocess.run([sys.executable, "-m", "inference_server", "serve"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "no-such-bucket" in done.stderr and "does not exist" in done.stderr


def test_a_write_that_fails_fails_the_job_with_storage(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    server = ServerProcess(tmp_path / "gone", **s3_env(s3_server, bucket)).start()
    try:
        server.run("generate", {**BODY, "seed": 7})
        client = s3_server.client()
        for key in objects(s3_server, bucket):
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)
        job = server.job(server.post("generate", {**BODY, "seed": 8}, wait=None).json()["id"], wait=60)
        assert job["status"] == "failed" and job["error"]["code"] == "storage", job
        assert "/" not in job["error"]["message"].replace("/v1", "")  # no server paths, no endpoints
        assert server.session.get(f"{server.url}/healthz", timeout=10).ok
    finally:
        server.stop()
