"""What the edit tool sends, seen by a scripted server: Dify's `files` list arriving over stdio, image_urls,
and the mask, in the order the server reads them (image 1 is the one edited)."""

import base64
import json

import pytest

from tests.plugin.fake_server import FakeServer


@pytest.fixture(scope="module")
def fake():
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def creds(fake):
    return {"server_url": fake.url, "api_key": "k", "timeout_seconds": "30", "private_image_hosts": "127.0.0.1"}


def posted(fake, since: int) -> dict:
    (body,) = [json.loads(data) for path, data in fake.bodies[since:] if path.startswith("/v1/edit")]
    return body


def test_files_then_urls_then_mask_in_one_request(plugin, fake, creds, files):
    one, two, three, mask = b"\x89PNG one", b"\x89PNG two", b"\x89PNG three", b"\x89PNG mask"
    params = {
        "prompt": "  put the cup from image 2 on the table in image 1 ",
        "images": [files.file_param(files.add("1.png", one)), files.file_param(files.add("2.png", two))],
        "image_urls": files.base + files.add("3.png", three),
        "mask": files.file_param(files.add("m.png", mask)),
        "mask_blur": 0, "mask_grow": 4, "mask_invert": False, "steps": 8, "seed": 11, "width": 512, "height": 384,
        "output_format": "png",
    }
    since = len(fake.bodies)
    result = plugin.invoke("edit", creds, params)
    assert result.error is None, result.error
    body = posted(fake, since)
    assert [base64.b64decode(image) for image in body.pop("images")] == [one, two, three]
    assert base64.b64decode(body.pop("mask")) == mask
    assert body == {"prompt": "put the cup from image 2 on the table in image 1", "num_inference_steps": 8,
                    "seed": 11, "width": 512, "height": 384, "output_format": "png",
                    "mask_blur": 0, "mask_grow": 4, "mask_invert": False}
    assert len(result.blobs) == 1 and result.variables["seed"] == 7  # what the scripted job says
    assert result.jsons[-1]["task"] == "edit"


def test_a_single_file_in_the_files_parameter(plugin, fake, creds, files):
    """A workflow that maps one file variable to `images`: Dify may hand it over as a file, not a list."""
    since = len(fake.bodies)
    result = plugin.invoke("edit", creds, {"prompt": "x", "images": files.file_param(files.add("s.png", b"one"))})
    assert result.error is None, result.error
    body = posted(fake, since)
    assert [base64.b64decode(image) for image in body.pop("images")] == [b"one"]
    assert body == {"prompt": "x"}  # no size: the server keeps image 1's aspect ratio (tests/server/test_edit_http.py)


def test_no_images_and_no_instruction_are_named(plugin, fake, creds, files):
    since = len(fake.bodies)
    result = plugin.invoke("edit", creds, {"prompt": "x", "images": [], "image_urls": ""})
    assert "'images' is required" in result.error["message"] and "image_urls" in result.error["message"]
    result = plugin.invoke("edit", creds, {"prompt": " ", "image_urls": files.base + files.add("n.png", b"x")})
    assert "'prompt' is required" in result.error["message"]
    assert not [path for path, _ in fake.bodies[since:] if path.startswith("/v1/edit")]
