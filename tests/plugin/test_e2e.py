"""The plugin as Dify runs it (stdio subprocess) against the real inference server (tiny model)."""

import io
import json
import threading
from urllib.parse import quote

import pytest
import requests
from PIL import Image

SMALL = {"width": 64, "height": 64, "steps": 2}
LLM = {"provider": "langgenius/openai/openai", "model": "gpt-4o-mini", "model_type": "llm",
       "mode": "chat", "completion_params": {"temperature": 0.7}}


def ok(plugin, result):
    assert result.error is None, result.error
    assert plugin.alive() and not plugin.garbage, plugin.garbage[:3]
    return result


def decoded(result):
    return [(meta, Image.open(io.BytesIO(data))) for meta, data in result.blobs]


def assert_no_base64(result):
    text = result.text + json.dumps(result.jsons)
    assert "iVBOR" not in text and "base64" not in text and len(text) < 5000


def test_validate_credentials(plugin, creds):
    assert ok(plugin, plugin.validate(creds)).stream == [{"result": True}]


def test_bad_key(plugin, creds):
    bad = dict(creds, api_key="wrong")
    result = plugin.validate(bad)
    assert result.error["error_type"] == "ToolProviderCredentialValidationError"
    assert "401" in result.error["message"] and "API Key" in result.error["message"]
    result = plugin.invoke("generate", bad, {"prompt": "x", **SMALL})
    assert "401" in result.error["message"] and not result.blobs


def test_generate(plugin, creds):
    result = ok(plugin, plugin.invoke("generate", creds, {
        "prompt": "a red paper lantern", "seed": 11, "num_images": 2, "output_format": "png", **SMALL}))
    images = decoded(result)
    assert len(images) == 2
    for meta, image in images:
        assert meta["mime_type"] == "image/png" and meta["filename"].endswith(".png")
        assert image.format == "PNG" and image.size == (64, 64)
    variables = result.variables
    assert variables["seeds"] == [11, 12] and variables["seed"] == 11
    assert (variables["width"], variables["height"]) == (64, 64)
    summary = result.jsons[-1]
    assert summary["job_id"] == variables["job_id"] and summary["prompt"] == "a red paper lantern"
    assert summary["seeds"] == [11, 12] and "run_s" in summary["timings"]
    assert variables["job_id"] in result.text
    assert_no_base64(result)


def test_same_seed_same_bytes(plugin, creds):
    """Image i of a job uses seed + i: a second job at that seed (no cache hit) must match it."""
    pair = ok(plugin, plugin.invoke("generate", creds, {"prompt": "a lighthouse", "seed": 40, "num_images": 2, **SMALL}))
    single = ok(plugin, plugin.invoke("generate", creds, {"prompt": "a lighthouse", "seed": 41, **SMALL}))
    assert single.jsons[-1]["cache"] == "miss"
    assert single.blobs[0][1] == pair.blobs[1][1]
    assert pair.blobs[0][1] != pair.blobs[1][1]


@pytest.mark.parametrize("fmt,mime,pil", [("webp", "image/webp", "WEBP"), ("jpeg", "image/jpeg", "JPEG")])
def test_output_format(plugin, creds, fmt, mime, pil):
    result = ok(plugin, plugin.invoke("generate", creds, {"prompt": "a cat", "output_format": fmt, **SMALL}))
    (meta, image), = decoded(result)
    assert meta["mime_type"] == mime and image.format == pil and image.size == (64, 64)


def test_img2img_with_dify_file(plugin, creds, files, photo):
    image = files.file_param(files.add("photo.png", photo))
    result = ok(plugin, plugin.invoke("img2img", creds, {"prompt": "as a watercolour", "image": image,
                                                         "strength": 0.5, "steps": 2, "seed": 3}))
    (meta, out), = decoded(result)
    assert out.size == (64, 64) and result.variables["seed"] == 3


def test_inpaint_with_mask_file(plugin, creds, files, photo, mask):
    params = {"prompt": "a blue flower", "image": files.file_param(files.add("p.png", photo)),
              "mask": files.file_param(files.add("m.png", mask)), "steps": 2, "mask_blur": 4}
    result = ok(plugin, plugin.invoke("inpaint", creds, params))
    assert [img.size for _, img in decoded(result)] == [(64, 64)]


def test_inpaint_like_an_agent_with_urls_and_region(plugin, creds, files, photo):
    path = files.add("agent.png", photo)
    params = {"prompt": "a moon", "image_url": files.base + path, "region": "16,16,32,32", "steps": 2}
    refused = plugin.invoke("inpaint", dict(creds, private_image_hosts="api"), params)  # 127.0.0.1 not listed
    assert "private address" in refused.error["message"] and not refused.blobs
    assert files.requests.count(path) == 0  # refused before connecting
    result = ok(plugin, plugin.invoke("inpaint", creds, params))  # creds list 127.0.0.1
    assert [img.size for _, img in decoded(result)] == [(64, 64)]
    assert files.requests.count(path) == 1  # fetched by the plugin, once


def test_a_dify_file_on_an_unlisted_private_host_is_refused(plugin, creds, files, photo):
    """A file uploaded "by URL" carries the end user's URL: it gets the same check as an agent's."""
    path = files.add("remote.png", photo)
    params = {"prompt": "x", "image": files.file_param(path), "steps": 2}
    refused = plugin.invoke("img2img", dict(creds, private_image_hosts="api"), params)
    assert "private address (127.0.0.1)" in refused.error["message"] and not refused.blobs
    assert files.requests.count(path) == 0


def test_a_listed_host_cannot_redirect_to_an_unlisted_one(plugin, creds, files, photo):
    behind = files.add("behind.png", photo)
    target = files.base + behind
    listed = files.base.replace("127.0.0.1", "localhost")
    params = {"prompt": "x", "image_url": f"{listed}/redirect?to={quote(target, safe='')}", "steps": 2}
    refused = plugin.invoke("img2img", dict(creds, private_image_hosts="localhost"), params)
    assert "private address (127.0.0.1)" in refused.error["message"] and not refused.blobs
    assert files.requests.count(behind) == 0  # the second hop was never made
    result = ok(plugin, plugin.invoke("img2img", dict(creds, private_image_hosts="localhost, 127.0.0.1"), params))
    assert len(result.blobs) == 1


def test_outpaint_extends_the_canvas(plugin, creds, files, photo):
    params = {"prompt": "a wide beach", "image": files.file_param(files.add("o.png", photo)),
              "left": 32, "right": 32, "steps": 2, "aspect_ratio": "none"}
    result = ok(plugin, plugin.invoke("outpaint", creds, params))
    (meta, out), = decoded(result)
    assert out.size == (128, 64) == (result.variables["width"], result.variables["height"])


def test_prompt_enhancement_uses_difys_llm(plugin, creds):
    plugin.llm_replies.append("A glowing red paper lantern over a misty river at dusk, cinematic light")
    result = ok(plugin, plugin.invoke("generate", creds, {"prompt": "lantern", "enhance_model": LLM, **SMALL}))
    call = plugin.llm_requests[-1]
    assert call["type"] == "llm" and call["request"]["model"] == "gpt-4o-mini"
    assert call["request"]["prompt_messages"][-1]["content"] == "lantern"
    used = "A glowing red paper lantern over a misty river at dusk, cinematic light"
    assert result.variables["prompt"] == used and result.jsons[-1]["prompt_enhanced"] is True
    assert len(result.blobs) == 1


def test_server_4xx_names_the_parameter(plugin, creds):
    result = plugin.invoke("generate", creds, {"prompt": "x", "width": 64, "height": 64, "steps": 500})
    assert "'steps'" in result.error["message"] and not result.blobs


def test_file_url_without_scheme(plugin, creds, files, photo):
    image = files.file_param(files.add("s.png", photo), base="")
    result = plugin.invoke("img2img", creds, {"prompt": "x", "image": image, "steps": 2})
    assert "FILES_URL" in result.error["message"] and not result.blobs


def test_file_url_that_404s(plugin, creds, files):
    image = files.file_param("/files/missing/file-preview?sign=x")
    result = plugin.invoke("outpaint", creds, {"prompt": "x", "image": image, "left": 16})
    assert "404" in result.error["message"] and "image" in result.error["message"]


def test_budget_exhausted_cancels_the_job(plugin, creds, server):
    """A slow job (the server's INJECT_FAULTS hook) holds the worker, so ours outlives its budget."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {server.api_key}"
    blocker = http.post(f"{server.url}/v1/generate", headers={"X-Inject-Fault": "slow=0.5"},
                        json={"prompt": "blocker", "num_inference_steps": 120, **{k: SMALL[k] for k in ("width", "height")}},
                        timeout=30).json()
    try:
        result = plugin.invoke("generate", dict(creds, timeout_seconds="4"), {"prompt": "late", **SMALL}, timeout=60)
        message = result.error["message"]
        assert "budget" in message and "cancelled" in message and server.url in message
        job_id = message.split("Job ", 1)[1].split(" ", 1)[0]
        assert f"Job {job_id} queued" in result.text  # progress reached the user before the error
        assert http.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()["status"] == "cancelled"
    finally:
        http.delete(f"{server.url}/v1/jobs/{blocker['id']}", timeout=10)
    ok(plugin, plugin.validate(creds))  # still up for the next call


def test_calls_in_parallel(plugin, creds):
    """The daemon multiplexes sessions over one process; each must get its own answer."""
    results = [None, None]

    def call(i):
        results[i] = plugin.invoke("generate", creds, {"prompt": f"parallel {i}", "seed": 100 + i, **SMALL})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert [ok(plugin, r).variables["seed"] for r in results] == [100, 101]
