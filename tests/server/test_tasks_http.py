"""Every task end to end over HTTP on the live tiny-model server: sizes, seeds, bytes, preserved pixels."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from tests.support import far_from, png_b64

STEPS = {"num_inference_steps": 3}


def photo(width=96, height=80) -> Image.Image:
    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, width - 20, height - 10), fill=(230, 180, 40))
    draw.line((0, 0, width, height), fill=(255, 255, 255), width=3)
    return image


def test_generate_sizes_seeds_and_png_metadata(live_server):
    job = live_server.run("generate", {"prompt": "红色灯笼 a red lantern, 海报", "width": 64, "height": 48,
                                       "seed": 11, "num_images": 2, **STEPS})
    assert job["params"]["width"] == 64 and job["params"]["height"] == 48
    assert [image["seed"] for image in job["images"]] == [11, 12]
    images = live_server.images(job)
    assert [image.size for image in images] == [(64, 48), (64, 48)]
    assert images[0].format == "PNG"
    parameters = images[0].text["parameters"]
    assert parameters.startswith("红色灯笼 a red lantern, 海报\n")
    assert "Steps: 3" in parameters and "Seed: 11" in parameters and "Size: 64x48" in parameters
    assert np.asarray(images[0]).std() > 0  # a real decoded image, not a blank


def test_same_seed_same_bytes_and_seed_plus_i(live_server):
    body = {"prompt": "a teapot", "width": 48, "height": 48, "seed": 7, "num_images": 2, **STEPS}
    first = live_server.run("generate", body)
    # A different prompt suffix defeats the result cache, so the pipeline really runs again.
    second = live_server.run("generate", {**body, "negative_prompt": "blurry"})
    again = live_server.run("generate", {**body, "negative_prompt": "blurry", "num_images": 1, "seed": 8})
    assert second["cache"] == "miss" and again["cache"] == "miss"
    bytes_second = [live_server.file_bytes(image) for image in second["images"]]
    assert live_server.file_bytes(again["images"][0]) == bytes_second[1]  # image 2 of seed 7 == image 1 of seed 8
    assert live_server.file_bytes(first["images"][0]) != bytes_second[0]  # the negative prompt matters
    repeat = live_server.run("generate", {**body, "negative_prompt": "blurry", "seed": 7, "output_format": "png",
                                          "guidance": 4.0})
    assert [live_server.file_bytes(image) for image in repeat["images"]] == bytes_second


def test_no_seed_gets_a_random_one_that_is_returned(live_server):
    a = live_server.run("generate", {"prompt": "a cat", "width": 32, "height": 32, **STEPS})
    b = live_server.run("generate", {"prompt": "a cat", "width": 32, "height": 32, **STEPS})
    assert isinstance(a["params"]["seed"], int) and a["images"][0]["seed"] == a["params"]["seed"]
    assert a["params"]["seed"] != b["params"]["seed"]
    assert a["cache"] == "miss" and b["cache"] == "miss"


def test_sizes_snap_and_the_job_says_so(live_server):
    job = live_server.run("generate", {"prompt": "x", "width": 70, "height": 50, "seed": 1, **STEPS})
    assert (job["params"]["width"], job["params"]["height"]) == (64, 48)
    assert any("width 70 snapped to 64" in notice for notice in job["notices"])
    assert live_server.images(job)[0].size == (64, 48)


@pytest.mark.parametrize("fmt,mime,pil", [("webp", "image/webp", "WEBP"), ("jpeg", "image/jpeg", "JPEG")])
def test_output_formats(live_server, fmt, mime, pil):
    job = live_server.run("generate", {"prompt": "x", "width": 32, "height": 32, "seed": 3, "output_format": fmt,
                                       **STEPS})
    assert job["images"][0]["mime_type"] == mime
    response = live_server.session.get(live_server.url + job["images"][0]["url"])
    assert response.headers["Content-Type"] == mime
    assert Image.open(io.BytesIO(response.content)).format == pil


def test_img2img_keeps_input_size_snapped(live_server):
    job = live_server.run("img2img", {"prompt": "watercolour", "image": png_b64(photo(100, 80)), "strength": 0.5,
                                      "seed": 2, "num_inference_steps": 4})
    assert live_server.images(job)[0].size == (96, 80)
    assert job["params"]["strength"] == 0.5


@pytest.mark.parametrize("area", ["full", "masked"])
def test_inpaint_region_keeps_pixels_outside_the_blurred_mask(live_server, area):
    source = photo(96, 80)
    region = {"x": 40, "y": 30, "width": 16, "height": 12}
    job = live_server.run("inpaint", {"prompt": "a blue bird", "image": png_b64(source), "region": region,
                                      "mask_grow": 4, "mask_blur": 4, "inpaint_area": area, "masked_padding": 4,
                                      "seed": 5, **STEPS})
    result = np.asarray(live_server.images(job)[0].convert("RGB"))
    original = np.asarray(source)
    assert result.shape == original.shape
    # Grow 4 px, then a Gaussian of sigma 2 whose support Pillow cuts at about 3 sigma.
    outside = far_from((40, 30, 56, 42), 4 + 8, (96, 80))
    assert np.array_equal(result[outside], original[outside])
    inside = ~far_from((40, 30, 56, 42), 1, (96, 80))
    assert not np.array_equal(result[inside], original[inside])
    if area == "masked":
        assert job["params"]["processing_box"] != [0, 0, 96, 80]


def test_inpaint_with_an_rgba_mask_of_another_size(live_server):
    source = photo(96, 80)
    mask = Image.new("RGBA", (48, 40), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((8, 8, 15, 15), fill=(0, 0, 0, 0))  # transparent = repaint
    job = live_server.run("inpaint", {"prompt": "x", "image": png_b64(source), "mask": png_b64(mask),
                                      "mask_grow": 0, "mask_blur": 0, "seed": 9, **STEPS})
    assert any("resized" in notice for notice in job["notices"])
    result = np.asarray(live_server.images(job)[0].convert("RGB"))
    box = (16, 16, 32, 32)  # the mask's square at twice the size
    assert np.array_equal(result[far_from(box, 1, (96, 80))], np.asarray(source)[far_from(box, 1, (96, 80))])
    assert not np.array_equal(result[16:32, 16:32], np.asarray(source)[16:32, 16:32])


def test_inpaint_multipart_upload(live_server):
    source, mask = io.BytesIO(), io.BytesIO()
    photo(64, 64).save(source, "PNG")
    square = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(square).rectangle((20, 20, 40, 40), fill=255)
    square.save(mask, "PNG")
    response = live_server.session.post(
        f"{live_server.url}/v1/inpaint", headers={"Prefer": "wait=60"},
        data={"prompt": "x", "seed": "4", "num_inference_steps": "3", "mask_invert": "false", "mask_blur": "2"},
        files={"image": ("a.png", source.getvalue(), "image/png"), "mask": ("m.png", mask.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["params"]["mask_blur"] == 2
    assert live_server.images(job)[0].size == (64, 64)


def test_outpaint_keeps_the_original_outside_the_band(live_server):
    source = photo(64, 48)
    job = live_server.run("outpaint", {"prompt": "a beach", "image": png_b64(source), "left": 30, "right": 20,
                                       "feather": 16, "seed": 6, **STEPS})
    result = np.asarray(live_server.images(job)[0].convert("RGB"))
    x0, y0 = job["params"]["offset"]
    assert x0 % 16 == 0 and x0 >= 30
    assert result.shape[1] % 16 == 0 and result.shape[1] >= 64 + 50 and result.shape[0] == 48
    kept = result[y0:y0 + 48, x0 + 16:x0 + 64 - 16]
    assert np.array_equal(kept, np.asarray(source)[:, 16:48])
    assert result[:, :x0].std() > 0  # the new area was painted


def test_outpaint_to_an_aspect_ratio(live_server):
    job = live_server.run("outpaint", {"prompt": "banner", "image": png_b64(photo(64, 64)), "aspect_ratio": "16:9",
                                       "seed": 1, **STEPS})
    width, height = live_server.images(job)[0].size
    assert height == 64 and abs(width / height - 16 / 9) < 0.15


def test_repeat_hits_the_cache(live_server):
    body = {"prompt": "cache me", "width": 32, "height": 32, "seed": 99, **STEPS}
    first = live_server.run("generate", body)
    second = live_server.run("generate", body)
    assert first["cache"] == "miss" and second["cache"] == "hit"
    assert second["images"] == first["images"] and second["id"] != first["id"]


def test_async_submit_long_poll_and_events(live_server):
    response = live_server.post("generate", {"prompt": "x", "width": 32, "height": 32, "seed": 123,
                                             "num_inference_steps": 6}, wait=None,
                                headers={"X-Inject-Fault": "slow=0.05"})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] in ("queued", "running") and response.headers["Location"] == f"/v1/jobs/{job['id']}"
    with live_server.session.get(f"{live_server.url}/v1/jobs/{job['id']}/events", stream=True, timeout=60) as sse:
        assert sse.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in sse.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    import json

    states = [json.loads(line[6:]) for line in events]
    assert states[-1]["status"] == "succeeded"
    assert any(state["status"] == "running" for state in states)
    finished = live_server.job(job["id"], wait=5)
    assert finished["progress"] == {"step": 6, "total": 6}


def test_cancel_a_running_job(live_server):
    response = live_server.post("generate", {"prompt": "x", "width": 32, "height": 32, "num_inference_steps": 50},
                                wait=None, headers={"X-Inject-Fault": "slow=0.1"})
    job_id = response.json()["id"]
    for _ in range(100):
        if live_server.job(job_id)["progress"]["step"] >= 1:
            break
    cancelled = live_server.session.delete(f"{live_server.url}/v1/jobs/{job_id}").json()
    assert cancelled["id"] == job_id
    final = live_server.job(job_id, wait=10)
    assert final["status"] == "cancelled" and final["images"] == []
    assert final["progress"]["step"] < 50
    again = live_server.session.delete(f"{live_server.url}/v1/jobs/{job_id}")
    assert again.status_code == 409 and again.json()["error"]["field"] == "id"
    # The pipeline works for the next job.
    live_server.run("generate", {"prompt": "after cancel", "width": 32, "height": 32, **STEPS})


def _encoding_slowly_then_next(live_server, seed: int) -> tuple[str, str]:
    """Job A spends 3 s encoding (`slow_finish`); job B, sent after it, is denoised meanwhile.

    Returns both ids once B's last step is done while A still reads `running`.
    """
    def send(prompt: str, **headers) -> str:
        body = {"prompt": prompt, "width": 32, "height": 32, "seed": seed, **STEPS}
        return live_server.post("generate", body, wait=None, headers=headers).json()["id"]

    slow_id = send("encode slowly", **{"X-Inject-Fault": "slow_finish=3"})
    next_id = send("next")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = live_server.job(next_id)
        if after["progress"]["step"] == after["progress"]["total"]:
            break
        time.sleep(0.02)
    slow = live_server.job(slow_id)
    assert after["progress"]["step"] == after["progress"]["total"], after
    assert slow["status"] == "running" and slow["position"] == 0, slow
    return slow_id, next_id


def test_the_next_job_runs_while_the_last_one_is_encoded(live_server):
    slow_id, next_id = _encoding_slowly_then_next(live_server, 4242)
    for job_id in (slow_id, next_id):
        done = live_server.job(job_id, wait=30)
        assert done["status"] == "succeeded"
        image = live_server.images(done)[0]
        assert image.format == "PNG" and image.size == (32, 32)


def test_a_cancel_while_encoding_stores_nothing(live_server):
    slow_id, next_id = _encoding_slowly_then_next(live_server, 4343)
    live_server.session.delete(f"{live_server.url}/v1/jobs/{slow_id}")
    final = live_server.job(slow_id, wait=30)
    assert final["status"] == "cancelled" and final["images"] == []
    assert live_server.job(next_id, wait=30)["status"] == "succeeded"


def test_injected_oom_fails_only_that_job(live_server):
    response = live_server.post("generate", {"prompt": "x", "width": 32, "height": 32, **STEPS},
                                headers={"X-Inject-Fault": "oom"})
    job = response.json()
    assert job["status"] == "failed" and job["error"]["code"] == "oom"
    assert requests.get(f"{live_server.url}/readyz").status_code == 200
    live_server.run("generate", {"prompt": "after oom", "width": 32, "height": 32, **STEPS})


def test_exif_orientation_is_applied_to_inputs(live_server):
    from tests.server.test_bad_input import encoded_rotated_jpeg

    job = live_server.run("img2img", {"prompt": "x", "image": base64.b64encode(encoded_rotated_jpeg()).decode(),
                                      "strength": 0.3, "seed": 1, **STEPS})
    assert live_server.images(job)[0].size == (32, 48)  # upright: the 48x32 sensor image turned 90°
