"""OpenAI's Images API, driven by the official `openai` package against the live tiny-model server."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
import requests
from PIL import Image, ImageDraw

from tests.support import far_from

FAST = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def client(live_server):
    return openai.OpenAI(base_url=live_server.url + "/v1", api_key=live_server.api_key, max_retries=0, timeout=300)


def photo(width=96, height=80) -> Image.Image:
    image = Image.new("RGB", (width, height), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((10, 10, width - 20, height - 10), fill=(230, 180, 40))
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decoded(datum) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(datum.b64_json)))


def test_models_list_names_the_served_model(client):
    assert "tiny" in [model.id for model in client.models.list().data]


def test_generations_as_b64_json(client):
    answer = client.images.generate(model="dall-e-3", prompt="a red lantern", n=2, size="64x48",
                                    extra_body={"seed": 21, **FAST})
    images = [decoded(datum) for datum in answer.data]
    assert [image.size for image in images] == [(64, 48), (64, 48)] and images[0].format == "PNG"
    assert "Seed: 21" in images[0].text["parameters"] and "Seed: 22" in images[1].text["parameters"]
    assert np.asarray(images[0]).std() > 0 and images[0].tobytes() != images[1].tobytes()
    assert answer.created > 0 and answer.data[0].url is None


def test_generations_as_a_signed_url_that_opens_without_the_key(client, live_server):
    answer = client.images.generate(model="gpt-image-1", prompt="a teapot", size="48x48", response_format="url",
                                    output_format="webp", extra_body={"seed": 3, **FAST})
    url = answer.data[0].url
    assert url.startswith(live_server.url + "/v1/files/") and "sig=" in url and "expires=" in url
    fetched = requests.get(url, timeout=30)  # no Authorization header
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(fetched.content)).size == (48, 48)


def test_quality_presets_are_shares_of_the_models_default_steps(client):
    answer = client.images.generate(prompt="a kite", size="32x32", quality="medium", extra_body={"seed": 4})
    assert "Steps: 25," in decoded(answer.data[0]).text["parameters"]  # half of Qwen-Image's 50


def test_edit_without_a_mask_redraws_the_image(client):
    source = photo()
    answer = client.images.edit(image=("photo.png", png(source), "image/png"), prompt="make it autumn",
                                extra_body={"seed": 9, "strength": 0.5, **FAST})
    result = decoded(answer.data[0])
    assert result.size == source.size
    assert not np.array_equal(np.asarray(result.convert("RGB")), np.asarray(source))


def test_masked_edit_changes_only_the_transparent_area(client):
    source = photo()
    box = (40, 30, 56, 42)
    mask = Image.new("RGBA", source.size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), box)  # OpenAI's convention: transparent = the area to change
    answer = client.images.edit(image=("photo.png", png(source), "image/png"),
                                mask=("mask.png", png(mask), "image/png"), prompt="a blue bird",
                                extra_body={"seed": 5, "mask_grow": 4, "mask_blur": 4, **FAST})
    result = np.asarray(decoded(answer.data[0]).convert("RGB"))
    original = np.asarray(source)
    outside = far_from(box, 4 + 8, source.size)  # grown 4 px, then blurred (sigma 2, cut near 3 sigma)
    assert np.array_equal(result[outside], original[outside])
    inside = ~far_from(box, 1, source.size)
    assert not np.array_equal(result[inside], original[inside])


def test_a_bad_size_is_a_bad_request_naming_size(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(prompt="x", size="huge")
    assert raised.value.param == "size" and raised.value.code == "invalid_value"
    assert raised.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("call,param", [
    (lambda c: c.images.generate(prompt="x", n=9, size="32x32"), "n"),
    (lambda c: c.images.generate(prompt="x", size="32x32", quality="ultra"), "quality"),
    (lambda c: c.images.generate(prompt="x", size="32x32", response_format="gif"), "response_format"),
    (lambda c: c.images.generate(prompt="  ", size="32x32"), "prompt"),
    (lambda c: c.images.generate(prompt="x", size="32x32", extra_body={"mask_blur": 3}), "mask_blur"),
    (lambda c: c.images.edit(image=[("a.png", png(photo()), "image/png")] * 2, prompt="x"), "image"),
    (lambda c: c.images.edit(image=("a.png", png(photo()), "image/png"), prompt="x",
                             mask=("m.png", png(Image.new("L", (96, 80), 0)), "image/png")), "mask"),
])
def test_invalid_parameters_are_bad_requests_naming_them(client, call, param):
    with pytest.raises(openai.BadRequestError) as raised:
        call(client)
    assert raised.value.param == param, raised.value.body


def test_a_wrong_key_is_an_authentication_error(live_server):
    wrong = openai.OpenAI(base_url=live_server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.images.generate(prompt="x", size="32x32")
    assert raised.value.body["code"] == "unauthorized"
