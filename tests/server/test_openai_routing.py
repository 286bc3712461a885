"""OpenAI's Images API in process (a fake engine): which task an edit runs, and how sizes map.

The official SDK talks to the app through httpx's WSGI transport: the real client, with no server process.
"""

from __future__ import annotations

import base64
import io

import httpx
import openai
from PIL import Image

from tests.server.fake_engine import FakeEngine
from tests.server.test_architecture import build


class BaseOnlyEngine(FakeEngine):
    """A server without an edit model (no EDIT_MODEL_ID)."""

    def model_infos(self) -> dict:
        return {"base": super().model_infos()["base"]}


def png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, "PNG")
    return buffer.getvalue()


def edit(client, count: int):
    files = [(io.BytesIO(png((10 * i, 40, 90))), f"{i}.png", "image/png") for i in range(count)]
    return client.post("/v1/images/edits", data={"prompt": "make it night", "num_inference_steps": "2",
                                                 "image[]": files}, content_type="multipart/form-data")


def test_an_edit_without_a_mask_goes_to_the_served_edit_task_with_every_image(tmp_path):
    app, client = build(tmp_path)  # the fake engine serves an edit model
    answer = edit(client, 3)
    assert answer.status_code == 200, answer.get_json()
    job = client.get(f"/v1/jobs/{answer.get_json()['job_id']}").get_json()
    assert job["task"] == "edit" and job["params"]["images"] == 3  # image 1 edited, two references
    size = Image.open(io.BytesIO(base64.b64decode(answer.get_json()["data"][0]["b64_json"]))).size
    assert size == (job["params"]["width"], job["params"]["height"])
    too_many = edit(client, 4)
    assert too_many.status_code == 400 and too_many.get_json()["error"]["param"] == "image"
    app.config["JOBS"].stop()


def test_an_edit_task_whose_model_is_not_served_falls_back_to_img2img(tmp_path):
    app, client = build(tmp_path, engine_loader=lambda _settings: BaseOnlyEngine())
    answer = edit(client, 1)
    assert answer.status_code == 200, answer.get_json()
    assert client.get(f"/v1/jobs/{answer.get_json()['job_id']}").get_json()["task"] == "img2img"
    several = edit(client, 2)
    assert several.status_code == 400 and several.get_json()["error"]["param"] == "image"
    app.config["JOBS"].stop()


def test_dify_dalle3_arguments_map_to_the_models_recommended_size_with_a_notice(tmp_path):
    app, _client = build(tmp_path)
    client = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", max_retries=0,
                           http_client=httpx.Client(transport=httpx.WSGITransport(app=app)))
    # what Dify's DALL·E 3 tool sends for "horizontal"
    answer = client.images.generate(prompt="a kite", model="dall-e-3", size="1792x1024", n=1, style="vivid",
                                    quality="standard", response_format="b64_json")
    image = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json)))
    assert image.size == (1664, 928) and answer.size == "1664x928"  # Qwen-Image's 16:9
    assert any("1792x1024" in notice and "1664x928" in notice for notice in answer.model_extra["notices"])
    square = client.images.generate(prompt="a kite", size="512x512", extra_body={"num_inference_steps": 1})
    assert square.size == "1328x1328"
    exact = client.images.generate(prompt="a kite", size="200x120", extra_body={"num_inference_steps": 1})
    assert exact.size == "208x128" and any("snapped" in notice for notice in exact.model_extra["notices"])
    app.config["JOBS"].stop()
