"""S3FileStore against a real S3 server (SeaweedFS) that checks SigV4 signatures and expiry."""

from __future__ import annotations

import hashlib
import io
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from PIL import Image

from inference_server.storage.s3 import S3FileStore, S3Settings, StorageError
from tests.s3_server import s3_server  # noqa: F401  (the module-scoped fixture)
from tests.support import free_port


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture()
def store(s3_server):  # noqa: F811
    return S3FileStore.from_env(s3_server.env(s3_server.new_bucket(), prefix="results/"))


def test_save_exists_read_remove(store, s3_server):  # noqa: F811
    data = png((200, 30, 30))
    name = store.save(data, "png")
    assert name == hashlib.sha256(data).hexdigest()[:40] + ".png"  # the disk store's naming rule
    assert store.save(data, "png") == name  # same bytes, same object
    assert store.exists(name)
    assert store.read(name) == data
    head = s3_server.client().head_object(Bucket=store.bucket, Key="results/" + name)
    assert head["ContentType"] == "image/png"

    other = store.save(png((0, 0, 255)), "png")
    store.remove({name, "f" * 40 + ".png", "../../etc/passwd"})  # absent and foreign names are ignored
    assert not store.exists(name) and store.read(name) is None
    assert store.exists(other)


def test_names_a_store_did_not_make_never_reach_the_bucket(store):
    for name in ("../x.png", "results/" + "a" * 40 + ".png", "a" * 40 + ".exe", ""):
        assert not store.exists(name)
        assert store.read(name) is None
        with pytest.raises(ValueError):
            store.presigned_url(name, 60)


def test_presigned_url_works_without_credentials(store):
    data = png((10, 160, 90))
    name = store.save(data, "png")
    url = store.presigned_url(name, 300)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    assert Image.open(io.BytesIO(response.content)).getpixel((3, 3)) == (10, 160, 90)
    # The same object without a signature is refused: the URL's signature is what grants access.
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_tampered_presigned_url_is_refused(store):
    name = store.save(png((1, 2, 3)), "png")
    url = store.presigned_url(name, 300)
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert requests.get(_with_query(url, **{"X-Amz-Signature": flipped}), timeout=10).status_code == 403
    assert requests.get(_with_query(url, **{"X-Amz-Expires": "604800"}), timeout=10).status_code == 403
    other = store.save(png((4, 5, 6)), "png")
    assert requests.get(url.replace(name, other), timeout=10).status_code == 403


def test_expired_presigned_url_is_refused(store):
    name = store.save(png((7, 8, 9)), "png")
    url = store.presigned_url(name, 1)
    time.sleep(2.5)
    assert requests.get(url, timeout=10).status_code == 403


def test_presigned_url_for_a_public_endpoint(s3_server):  # noqa: F811
    """Clients may reach the bucket by another host name than the server does; the URL is signed for theirs."""
    env = s3_server.env(s3_server.new_bucket())
    public = s3_server.endpoint_url.replace("127.0.0.1", "localhost")
    store = S3FileStore.from_env({**env, "S3_PUBLIC_ENDPOINT_URL": public})
    data = png((90, 90, 90))
    url = store.presigned_url(store.save(data, "png"), 60)
    assert url.startswith(public + "/")
    assert requests.get(url, timeout=10).content == data


def test_check_passes_on_a_usable_bucket(store):
    store.check()


def test_missing_bucket_gives_a_clear_error(s3_server):  # noqa: F811
    store = S3FileStore.from_env(s3_server.env("no-such-bucket"))
    with pytest.raises(StorageError, match=r"'no-such-bucket'.*does not exist.*S3_BUCKET"):
        store.check()
    with pytest.raises(StorageError, match="could not write"):
        store.save(png((0, 0, 0)), "png")


def test_wrong_secret_gives_a_clear_error(s3_server):  # noqa: F811
    env = {**s3_server.env(s3_server.new_bucket()), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    with pytest.raises(StorageError, match="refused access.*AWS_SECRET_ACCESS_KEY"):
        S3FileStore.from_env(env).check()


def test_unreachable_endpoint_gives_a_clear_error(s3_server):  # noqa: F811
    env = {**s3_server.env("results"), "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    store = S3FileStore.from_env(env)
    with pytest.raises(StorageError, match="unreachable.*S3_ENDPOINT_URL"):
        store.check()
    # Later failures are StorageError too, never a botocore exception: the caller fails the job with `storage`.
    name = "a" * 40 + ".png"
    for call, doing in ((store.exists, "look up"), (store.read, "read"), (lambda n: store.remove({n}), "remove")):
        with pytest.raises(StorageError, match=f"could not {doing}"):
            call(name)


def test_settings_need_a_bucket():
    with pytest.raises(StorageError, match="S3_BUCKET"):
        S3Settings.from_env({"S3_ENDPOINT_URL": "http://127.0.0.1:1"})
    settings = S3Settings.from_env({"S3_BUCKET": "b", "S3_PREFIX": "/a/b/", "S3_REGION": "eu-west-3"})
    assert (settings.region, S3FileStore(settings).prefix) == ("eu-west-3", "a/b/")
