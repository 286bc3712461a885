"""The architecture's promises, in process: a cheap app factory, one registry that drives everything.

These build apps with `create_app(settings, engine_loader=...)` and a fake engine, as Flask's tutorial
does; the real-process tests elsewhere prove the product works.
"""

from __future__ import annotations

import base64
import io
import threading
import time

import pytest
from PIL import Image, ImageOps

from inference_server.app import create_app
from inference_server.compositing import apply_finish
from inference_server.config import Settings
from inference_server.plans import Plan
from inference_server.schemas import TaskRequest
from inference_server.tasks import DEFAULT_TASKS, ImageInput, TaskSpec
from tests.server.fake_engine import FakeEngine
from tests.support import png_b64


def build(tmp_path, registry=None, engine_loader=None, start=True):
    app = create_app(Settings(data_dir=tmp_path), engine_loader=engine_loader or (lambda _settings: FakeEngine()),
                     tasks_registry=registry)
    client = app.test_client()
    if start:
        app.config["JOBS"].start()
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").get_json()
            time.sleep(0.02)
    return app, client


def test_create_app_starts_nothing_and_loads_nothing(tmp_path):
    def must_not_load(_settings):
        raise AssertionError("create_app loaded the model")

    threads = threading.active_count()
    app, client = build(tmp_path, engine_loader=must_not_load, start=False)
    assert threading.active_count() == threads
    answer = client.get("/readyz")
    assert answer.status_code == 503 and "not been started" in answer.get_json()["error"]["message"]


def test_a_model_that_fails_to_load_is_named_in_readyz(tmp_path):
    def broken(_settings):
        raise RuntimeError("no weights at /models/qwen")

    app, client = build(tmp_path, engine_loader=broken, start=False)
    app.config["JOBS"].start()
    deadline = time.monotonic() + 10
    while "failed to load" not in client.get("/readyz").get_json()["error"]["message"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "no weights at /models/qwen" in client.get("/readyz").get_json()["error"]["message"]


# ---- a throwaway fifth task: one spec and one plan function, nothing else touched ------------
class MirrorRequest(TaskRequest):
    """Mirror an image left to right (the prompt is optional, as for inpaint)."""


def plan_mirror(request: MirrorRequest, images, family, limits) -> Plan:
    source = images["image"].convert("RGB")
    seed = request.seed if request.seed is not None else 0
    params = {"prompt": request.prompt, "num_inference_steps": 2, "seed": seed, "num_images": 1,
              "output_format": request.output_format, "width": source.width, "height": source.height}
    call = {"width": source.width, "height": source.height, "num_inference_steps": 2}
    return Plan("", "", params, [seed], call, finish=MirrorBack(source))


class MirrorBack:
    """The finishing operation: the original, mirrored (a picklable named operation with its parameter)."""

    def __init__(self, original: Image.Image):
        self.original = original

    def apply(self, generated: Image.Image) -> Image.Image:
        return ImageOps.mirror(self.original)


def test_a_fifth_task_is_served_documented_and_listed(tmp_path):
    registry = DEFAULT_TASKS.copy()
    registry.register(TaskSpec("mirror", "Mirror an image", MirrorRequest,
                               (ImageInput("image", True, "The image to mirror"),), plan_mirror, "image2image"))
    app, client = build(tmp_path, registry)
    source = Image.new("RGB", (48, 32), (10, 20, 30))
    source.putpixel((0, 0), (255, 0, 0))

    answer = client.post("/v1/mirror", json={"image": png_b64(source), "seed": 5}, headers={"Prefer": "wait=20"})
    job = answer.get_json()
    assert answer.status_code == 200 and job["status"] == "succeeded", job
    assert job["task"] == "mirror" and job["params"]["task"] == "mirror"
    image = Image.open(io.BytesIO(client.get(job["images"][0]["url"]).data))
    assert image.size == (48, 32) and image.getpixel((47, 0)) == (255, 0, 0)

    missing = client.post("/v1/mirror", json={"seed": 5}).get_json()["error"]
    assert missing["field"] == "image" and missing["code"] == "missing_field"
    operation = client.get("/openapi.json").get_json()["paths"]["/v1/mirror"]["post"]
    schema_name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "image" in client.get("/openapi.json").get_json()["components"]["schemas"][schema_name]["required"]
    info = client.get("/v1/info").get_json()
    assert "mirror" in info["tasks"] and "mirror" in info["models"]["base"]["tasks"]
    assert "mirror" not in DEFAULT_TASKS  # the default registry is untouched
    app.config["JOBS"].stop()


# ---- the schema and the server agree on what is required -----------------------------------
def _minimal_valid_body(spec, image_b64: str) -> dict:
    body = {"prompt": "a red kite"}
    for image in spec.images:
        if image.required:
            body[image.name] = image_b64 if image.max_count == 1 else [image_b64]
    extras = {"inpaint": {"region": {"x": 0, "y": 0, "width": 8, "height": 8}}, "outpaint": {"right": 16}}
    return {**body, **extras.get(spec.name, {})}


@pytest.mark.parametrize("spec", list(DEFAULT_TASKS), ids=lambda spec: spec.name)
def test_every_field_the_schema_requires_is_refused_when_missing(tmp_path, spec):
    app, client = build(tmp_path)
    openapi = client.get("/openapi.json").get_json()
    operation = openapi["paths"][f"/v1/{spec.name}"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    required = openapi["components"]["schemas"][ref].get("required", [])
    body = _minimal_valid_body(spec, png_b64(Image.new("RGB", (32, 32), (90, 90, 90))))
    accepted = client.post(f"/v1/{spec.name}", json={**body, "num_inference_steps": 1})
    assert accepted.status_code == 202, accepted.get_json()
    for field in required:
        refused = client.post(f"/v1/{spec.name}", json={k: v for k, v in body.items() if k != field})
        assert refused.status_code == 422 and refused.get_json()["error"]["field"] == field, refused.get_json()
    # and what the server refuses when missing, the schema marks required
    for name in ("prompt", *spec.image_names):
        answer = client.post(f"/v1/{spec.name}", json={k: v for k, v in body.items() if k != name})
        if answer.status_code == 422 and answer.get_json()["error"]["code"] == "missing_field":
            assert name in required, f"{spec.name}: the server requires {name} but the schema does not say so"
    app.config["JOBS"].stop()


def test_the_finishing_step_is_plain_data(tmp_path):
    import pickle

    spec = DEFAULT_TASKS.get("inpaint")
    app, _client = build(tmp_path)
    image = png_b64(Image.new("RGB", (64, 64), (1, 2, 3)))
    plan = app.config["JOBS"].plan("inpaint", {"prompt": "x", "region": {"x": 8, "y": 8, "width": 16, "height": 16}},
                                   {"image": base64.b64decode(image)})
    copy = pickle.loads(pickle.dumps(plan))
    generated = Image.new("RGB", plan.call["image"].size, (250, 0, 0))
    assert type(copy.finish).__name__ == "PasteBack" and copy.task == spec.name
    assert apply_finish(copy.finish, generated).tobytes() == apply_finish(plan.finish, generated).tobytes()
    app.config["JOBS"].stop()
