"""Instruction edit (task `edit`) over HTTP on the tiny Qwen-Image-Edit-Plus model, beside the base model.

EDIT_INPUT_AREA keeps the pipeline's per-input VAE encode small on the CPU (it is about 1 MP by default).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from tests.support import running_together, ServerProcess, far_from, png_b64

SMALL = {"width": 64, "height": 48, "num_inference_steps": 2}
EDIT_ENV = {"EDIT_MODEL_ID": "tiny", "EDIT_INPUT_AREA": "16384", "INJECT_FAULTS": "1"}


def picture(size=(96, 64), colour=(200, 40, 40)) -> Image.Image:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((10, 10, 40, 40), fill=(250, 250, 20))
    return image


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit")
    started = {"resident": ServerProcess(root / "resident", **EDIT_ENV, EDIT_PLACEMENT="gpu"),
               "swap": ServerProcess(root / "swap", **EDIT_ENV, EDIT_PLACEMENT="swap")}
    with running_together(started):
        yield started


@pytest.fixture(scope="module")
def server(servers):
    return servers["resident"]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_one_to_three_images(server, count):
    images = [png_b64(picture(colour=(40 * i, 90, 160))) for i in range(count)]
    job = server.run("edit", {"prompt": "put the yellow ball from image 2 on the table", "images": images, **SMALL})
    assert job["task"] == "edit" and job["model"] == "tiny" and job["params"]["images"] == count
    (result,) = server.images(job)
    assert result.size == (64, 48)


def test_multipart_takes_repeated_image_parts(server):
    parts = [("images", (f"{i}.png", io.BytesIO(_png(picture())), "image/png")) for i in range(2)]
    answer = server.session.post(f"{server.url}/v1/edit", data={"prompt": "swap the background", **SMALL},
                                 files=parts, headers={"Prefer": "wait=60"}, timeout=120)
    assert answer.status_code == 200 and answer.json()["params"]["images"] == 2, answer.json()


def test_seeds_reproduce_bytes_and_image_two_is_seed_plus_one(server):
    body = {"prompt": "make it night", "images": [png_b64(picture())], **SMALL}
    pair = server.run("edit", {**body, "seed": 7, "num_images": 2})
    alone = server.run("edit", {**body, "seed": 8})
    assert alone["cache"] == "miss" and server.file_bytes(pair["images"][1]) == server.file_bytes(alone["images"][0])
    assert server.file_bytes(pair["images"][0]) != server.file_bytes(pair["images"][1])


def test_without_a_size_the_output_keeps_image_ones_aspect_at_about_a_megapixel(server):
    job = server.run("edit", {"prompt": "x", "images": [png_b64(picture((300, 200))), png_b64(picture((64, 256)))],
                              "num_inference_steps": 1})
    width, height = job["params"]["width"], job["params"]["height"]
    assert width % 16 == 0 and height % 16 == 0 and abs(width / height - 1.5) < 0.03
    assert 0.9e6 < width * height < 1.1e6 and server.images(job)[0].size == (width, height)


def test_a_mask_keeps_every_pixel_outside_it(server):
    original = picture((96, 64))
    mask = Image.new("L", original.size, 0)
    ImageDraw.Draw(mask).rectangle((30, 20, 60, 44), fill=255)
    job = server.run("edit", {"prompt": "a red hat", "images": [png_b64(original)], "mask": png_b64(mask),
                              "mask_blur": 4, "mask_grow": 4, "num_inference_steps": 2, "width": 64, "height": 48})
    (result,) = server.images(job)
    assert result.size == original.size
    outside = far_from((30, 20, 61, 45), 4 + 4 + 2, original.size)
    assert (np.asarray(result.convert("RGB"))[outside] == np.asarray(original)[outside]).all()
    assert (np.asarray(result.convert("RGB"))[~outside] != np.asarray(original)[~outside]).any()


def test_edit_and_generate_interleaved_both_keep_working(servers):
    for server in servers.values():
        jobs = [server.post("edit" if i % 2 else "generate",
                            {"prompt": f"step {i}", "seed": i, **SMALL,
                             **({"images": [png_b64(picture())]} if i % 2 else {})}, wait=None).json()
                for i in range(6)]
        ended = [server.job(job["id"], wait=60) for job in jobs]
        assert [job["status"] for job in ended] == ["succeeded"] * 6, ended
        assert [job["task"] for job in ended] == ["generate", "edit"] * 3


def test_swap_placement_moves_the_transformers_by_turns_and_says_so(servers):
    swap, resident = servers["swap"], servers["resident"]
    body = {"prompt": "turns", "seed": 5, "images": [png_b64(picture())], **SMALL}
    server_jobs = [swap.run("generate", {"prompt": "a", "seed": 1, **SMALL}), swap.run("edit", body),
                   swap.run("generate", {"prompt": "a", "seed": 2, **SMALL})]
    assert all(job["timings"]["swap_s"] > 0 for job in server_jobs), [job["timings"] for job in server_jobs]
    assert "swap_s" not in resident.run("edit", {**body, "seed": 6})["timings"]
    # the swapped weights are the same weights: the same seed makes the same bytes either way
    assert swap.file_bytes(swap.run("edit", {**body, "seed": 9})["images"][0]) == \
        resident.file_bytes(resident.run("edit", {**body, "seed": 9})["images"][0])


def test_info_lists_the_models_and_their_tasks(server):
    info = server.session.get(f"{server.url}/v1/info").json()
    assert info["models"]["edit"]["tasks"] == ["edit"] and "edit" not in info["models"]["base"]["tasks"]
    assert info["models"]["edit"]["family"] == "qwen-image-edit" and "edit" in info["tasks"]


@pytest.mark.parametrize("body, field, code", [
    ({"prompt": "x", "images": ["A"] * 4}, "images", "invalid_image"),
    ({"prompt": "x"}, "images", "missing_field"),
    ({"prompt": "x", "images": []}, "images", "invalid_image"),
    ({"prompt": "", "images": [png_b64(picture())]}, "prompt", "invalid_value"),
    ({"prompt": "x", "images": "not-a-list"}, "images", "invalid_image"),
    ({"prompt": "x", "images": [png_b64(picture())], "width": 64}, "height", "invalid_value"),
])
def test_bad_requests_name_the_field(server, body, field, code):
    answer = server.post("edit", body)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.json()
    assert answer.json()["error"]["code"] == code


def test_bytes_that_are_not_an_image_name_their_slot(server):
    good = png_b64(picture())
    answer = server.post("edit", {"prompt": "x", "images": [good, good, "aGVsbG8gd29ybGQ="]})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "images[2]"


def test_a_mask_of_another_size_is_resized_with_a_notice(server):
    job = server.run("edit", {"prompt": "x", "images": [png_b64(picture((96, 64)))], **SMALL,
                              "mask": png_b64(Image.new("L", (48, 32), 255))})
    assert any("resized" in notice for notice in job["notices"])


def test_a_server_without_an_edit_model_says_which_setting_turns_it_on(live_server):
    answer = live_server.post("edit", {"prompt": "x", "images": [png_b64(picture())]})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "task_unavailable"
    assert "EDIT_MODEL_ID" in answer.json()["error"]["message"]
    assert "edit" not in requests.get(f"{live_server.url}/v1/info", headers=live_server.session.headers,
                                      timeout=10).json()["tasks"]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
