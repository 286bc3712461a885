"""The edit tool as Dify runs it (stdio subprocess) against real inference servers: one serving the tiny
edit model (EDIT_MODEL_ID=tiny), and one without an edit model, whose 404 task_unavailable must become a
message the Dify user can pass on to the server's operator."""

import io
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.plugin.conftest import png_bytes
from tests.support import ServerProcess

SMALL = {"width": 64, "height": 64, "steps": 2}
LLM = {"provider": "langgenius/openai/openai", "model": "gpt-4o-mini", "model_type": "llm",
       "mode": "chat", "completion_params": {"temperature": 0.2}}


@pytest.fixture(scope="module")
def edit_server(tmp_path_factory):
    # EDIT_INPUT_AREA: the pipeline VAE-encodes each input at about 1 MP by default, seconds per image on a CPU.
    server = ServerProcess(tmp_path_factory.mktemp("edit-server"), EDIT_MODEL_ID="tiny", EDIT_INPUT_AREA="16384",
                           MAX_QUEUE="64")
    server.start(timeout=300)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def edit_creds(edit_server):
    return {"server_url": edit_server.url, "api_key": edit_server.api_key, "timeout_seconds": "280",
            "private_image_hosts": "127.0.0.1"}


@pytest.fixture(scope="module")
def no_edit_server(request, tmp_path_factory):
    """The suite's shared server when it serves no edit model; else one started with EDIT_MODEL_ID=none."""
    shared = request.getfixturevalue("live_server")
    if "edit" not in shared.session.get(f"{shared.url}/v1/info", timeout=10).json()["tasks"]:
        yield shared
        return
    server = ServerProcess(tmp_path_factory.mktemp("no-edit-server"), EDIT_MODEL_ID="none").start()
    yield server
    server.stop()


def picture(size, colour, mark) -> bytes:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=mark)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scene(files):
    return files.add("scene.png", picture((64, 64), (200, 40, 40), (250, 250, 0)))


@pytest.fixture(scope="module")
def product(files):
    return files.add("product.png", picture((48, 48), (40, 160, 60), (0, 0, 0)))


@pytest.fixture(scope="module")
def third(files):
    return files.add("third.png", picture((40, 72), (30, 50, 200), (255, 255, 255)))


def ok(plugin, result):
    assert result.error is None, result.error
    assert plugin.alive() and not plugin.garbage, plugin.garbage[:3]
    return result


def images(result) -> list:
    return [Image.open(io.BytesIO(data)) for _, data in result.blobs]


def test_one_image_as_a_dify_file(plugin, edit_creds, edit_server, files, scene):
    result = ok(plugin, plugin.invoke("edit", edit_creds, {
        "prompt": "make the circle blue", "images": [files.file_param(scene)], "seed": 5, **SMALL}))
    (out,) = images(result)
    assert out.format == "PNG" and out.size == (64, 64)
    summary = result.jsons[-1]
    assert summary["task"] == "edit" and summary["seed"] == 5 == result.variables["seed"]
    assert (summary["width"], summary["height"]) == (64, 64)
    job = edit_server.job(summary["job_id"])
    assert summary["model"] == job["model"] and job["model"]  # the model that ran it, as the server says
    assert result.blobs[0][0]["filename"].startswith(f"qwen_image_edit_{summary['job_id']}_0")


def test_two_images_a_file_then_a_url(plugin, edit_creds, files, scene, product):
    """As product_scene.yml wires it: image 1 a Dify file, image 2 from image_urls."""
    result = ok(plugin, plugin.invoke("edit", edit_creds, {
        "prompt": "put the object from image 2 into image 1", "images": [files.file_param(scene)],
        "image_urls": files.base + product, "seed": 9, **SMALL}))
    assert [img.size for img in images(result)] == [(64, 64)]


def test_three_images_like_an_agent(plugin, edit_creds, files, scene, product, third):
    before = [files.requests.count(path) for path in (scene, product, third)]
    urls = f"{files.base}{scene},\n{files.base}{product}\n{files.base}{third}"
    result = ok(plugin, plugin.invoke("edit", edit_creds, {
        "prompt": "combine image 2 and image 3 into image 1", "image_urls": urls, "num_images": 2, "seed": 20,
        **SMALL}))
    assert [img.size for img in images(result)] == [(64, 64), (64, 64)]
    assert result.variables["seeds"] == [20, 21]
    assert [files.requests.count(path) for path in (scene, product, third)] == [n + 1 for n in before]


def test_same_seed_same_bytes(plugin, edit_creds, files, scene, product):
    """Image 2 of (seed 40, two images) is image 1 of (seed 41): computed twice, not served from a cache."""
    params = {"prompt": "turn it into a watercolour", "images": [files.file_param(scene), files.file_param(product)],
              **SMALL}
    pair = ok(plugin, plugin.invoke("edit", edit_creds, {**params, "seed": 40, "num_images": 2}))
    single = ok(plugin, plugin.invoke("edit", edit_creds, {**params, "seed": 41}))
    assert single.jsons[-1]["cache"] == "miss"
    assert single.blobs[0][1] == pair.blobs[1][1] and pair.blobs[0][1] != pair.blobs[1][1]


def test_a_mask_keeps_every_pixel_outside_it(plugin, edit_creds, files, scene):
    mask = png_bytes(64, 64, "L", draw=lambda d: d.rectangle((16, 16, 47, 47), fill=255))
    result = ok(plugin, plugin.invoke("edit", edit_creds, {
        "prompt": "replace the middle with a window", "images": [files.file_param(scene)],
        "mask": files.file_param(files.add("mask.png", mask)), "mask_blur": 0, "mask_grow": 0, "seed": 3, **SMALL}))
    (out,) = images(result)
    got = np.asarray(out.convert("RGB"), dtype=np.int16)
    sent = np.asarray(Image.open(io.BytesIO(files.files[urlsplit(scene).path])).convert("RGB"), dtype=np.int16)
    outside = np.ones((64, 64), bool)
    outside[16:48, 16:48] = False
    assert np.array_equal(got[outside], sent[outside])
    assert np.abs(got[~outside] - sent[~outside]).max() > 0  # the inside was edited


def test_four_images_are_refused_before_any_download(plugin, edit_creds, files, scene, product, third):
    count = files.requests.count(scene)
    result = plugin.invoke("edit", edit_creds, {
        "prompt": "x", "images": [files.file_param(scene), files.file_param(product)],
        "image_urls": f"{files.base}{third}, {files.base}{third}", **SMALL})
    assert "give 4 images together; this tool takes 1 to 3" in result.error["message"] and not result.blobs
    assert files.requests.count(scene) == count


def test_bytes_that_are_no_image_are_named_by_slot(plugin, edit_creds, files, scene):
    junk = files.add("junk.png", b"this is not an image at all")
    result = plugin.invoke("edit", edit_creds, {
        "prompt": "x", "images": [files.file_param(scene), files.file_param(junk)], **SMALL})
    assert "'images / image_urls, image 2'" in result.error["message"] and not result.blobs


def test_an_unlisted_private_host_is_refused(plugin, edit_creds, files, scene):
    refused = plugin.invoke("edit", dict(edit_creds, private_image_hosts="api"), {
        "prompt": "x", "image_urls": files.base + scene, **SMALL})
    assert "private address (127.0.0.1)" in refused.error["message"] and not refused.blobs


def test_the_enhancer_rewrites_an_edit_instruction(plugin, edit_creds, files, scene):
    plugin.llm_replies.append("Replace the yellow circle in image 1 with a blue square; keep the red background.")
    result = ok(plugin, plugin.invoke("edit", edit_creds, {
        "prompt": "blue square instead", "images": [files.file_param(scene)], "enhance_model": LLM, **SMALL}))
    system = plugin.llm_requests[-1]["request"]["prompt_messages"][0]["content"]
    assert "edit instruction, not a scene description" in system and "image 1" in system
    assert result.variables["prompt"].startswith("Replace the yellow circle")


def test_a_server_without_the_edit_model_says_what_to_set(plugin, no_edit_server, files, scene):
    creds = {"server_url": no_edit_server.url, "api_key": no_edit_server.api_key, "timeout_seconds": "60",
             "private_image_hosts": "127.0.0.1"}
    result = plugin.invoke("edit", creds, {"prompt": "x", "images": [files.file_param(scene)], **SMALL})
    message = result.error["message"]
    assert "does not serve the 'edit' task" in message and "operator must set EDIT_MODEL_ID" in message
    assert not result.blobs and plugin.alive()
    ok(plugin, plugin.invoke("generate", creds, {"prompt": "still here", **SMALL}))  # the other tools still work


def test_edit_and_generate_take_turns_on_one_server(plugin, edit_creds, files, scene):
    """The server holds two models; calls of either kind, one after the other, all succeed."""
    edit = {"prompt": "x", "image_urls": files.base + scene}
    for tool, params in [("generate", {"prompt": "a lantern"}), ("edit", edit), ("generate", {"prompt": "a boat"})]:
        result = ok(plugin, plugin.invoke(tool, edit_creds, {**params, **SMALL}))
        assert [img.size for img in images(result)] == [(64, 64)] and result.jsons[-1]["task"] == tool
