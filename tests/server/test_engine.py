"""The engine in-process on the tiny Qwen-Image model: offline build, shared weights, seeds, cancellation."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

from inference_server.config import Settings
from inference_server.engine import Engine, loader
from inference_server.engine.tiny_model import PROMPT_TEMPLATE_PREFIX, build_tokenizer
from inference_server.engine.faults import FaultyEngine
from inference_server.errors import JobFailure
from inference_server.plans import Plan
from inference_server.families import QWEN, SDXL
from tests.support import ROOT

CALL = {"prompt": "a red lantern 红灯笼", "num_inference_steps": 3, "width": 64, "height": 48,
        **QWEN.guidance_kwargs(4.0, "")}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Built by the CLI, exactly as an operator would."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    subprocess.run([sys.executable, "-m", "inference_server", "tiny-model", str(folder)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    return folder


@pytest.fixture(scope="module")
def engine(model_dir):
    return Engine(loader.load(Settings(model_id=str(model_dir))))


def test_the_tokenizer_keeps_the_34_token_template_prefix():
    tokenizer = build_tokenizer()
    prefix = tokenizer(PROMPT_TEMPLATE_PREFIX)["input_ids"]
    assert len(prefix) == 34
    prompt = "a red lantern"
    full = tokenizer(PROMPT_TEMPLATE_PREFIX + prompt)["input_ids"]
    assert tokenizer.decode(full[34:]) == prompt  # what the pipeline keeps is exactly the prompt


def test_the_cli_saves_a_loadable_pipeline(model_dir):
    names = {path.name for path in model_dir.iterdir()}
    assert {"model_index.json", "transformer", "vae", "text_encoder", "tokenizer", "scheduler"} <= names
    scheduler = (model_dir / "scheduler" / "scheduler_config.json").read_text()
    assert '"use_dynamic_shifting": true' in scheduler and '"shift_terminal": 0.02' in scheduler


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_all_tasks_share_one_copy_of_the_weights(model_dir, dtype):
    loaded = loader.load(Settings(model_id=str(model_dir), torch_dtype=dtype))
    base, img2img, inpaint = (loaded.pipelines[k] for k in ("text2image", "image2image", "inpainting"))
    assert type(img2img).__name__ == "QwenImageImg2ImgPipeline"
    assert type(inpaint).__name__ == "QwenImageInpaintPipeline"
    for name in ("transformer", "vae", "text_encoder"):
        storages = {p.data_ptr() for pipe in (base, img2img, inpaint)
                    for p in list(getattr(pipe, name).parameters())[:3]}
        assert len(storages) == 3, name  # three parameters each, the same three storages in every pipeline
        assert {getattr(pipe, name).dtype for pipe in (base, img2img, inpaint)} == {getattr(torch, dtype)}
    assert loaded.dtype == getattr(torch, dtype)


def test_auto_dtype_and_device_choice():
    assert loader.pick_dtype("auto", QWEN, "cuda") == torch.bfloat16
    assert loader.pick_dtype("auto", SDXL, "cuda:1") == torch.float16
    assert loader.pick_dtype("auto", QWEN, "cpu") == torch.float32
    assert loader.pick_dtype("float16", QWEN, "cuda") == torch.float16
    with pytest.raises(ValueError):
        loader.pick_dtype("int8", QWEN, "cuda")


def test_no_model_id_and_no_gpu_serves_the_tiny_model_loudly(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        path, name = loader.resolve_model(Settings(data_dir=tmp_path), "cpu")
    assert name == "tiny" and (tmp_path / "tiny-model" / "model_index.json").exists()
    assert "TINY RANDOM-WEIGHT" in caplog.text and "MODEL_ID=Qwen/Qwen-Image" in caplog.text
    assert loader.resolve_model(Settings(data_dir=tmp_path), "cuda") == ("Qwen/Qwen-Image", "Qwen/Qwen-Image")


def test_same_seed_same_pixels_and_progress(engine):
    steps = []
    first = engine.call_pipeline("text2image", CALL, [7, 8], lambda done, total: steps.append((done, total)))
    second = engine.call_pipeline("text2image", CALL, [7], lambda *_: None)
    assert steps == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    assert first[0].size == (64, 48)
    assert np.array_equal(np.asarray(first[0]), np.asarray(second[0]))
    assert not np.array_equal(np.asarray(first[0]), np.asarray(first[1]))


def test_cancelling_stops_within_a_step_and_returns_nothing(engine):
    seen = []

    def cancel_at_two(done, total):
        seen.append(done)
        if done == 2:
            raise JobFailure("cancelled", "cancelled while running")

    with pytest.raises(JobFailure):
        engine.call_pipeline("text2image", {**CALL, "num_inference_steps": 20}, [1], cancel_at_two)
    assert seen == [1, 2]
    assert engine.call_pipeline("text2image", CALL, [1], lambda *_: None)[0].size == (64, 48)  # still works


def test_an_out_of_memory_error_becomes_an_oom_failure(engine):
    plan = Plan("generate", "text2image", {}, [1], CALL)
    with pytest.raises(JobFailure) as failure:
        FaultyEngine(engine).make_images(plan, lambda *_: None, fault="oom")
    assert failure.value.code == "oom"


def test_cpu_offload_setting():
    assert not loader.wants_offload("1", None, "cpu")  # nothing to offload to on the CPU
    assert loader.wants_offload("1", None, "cuda") and loader.wants_offload(True, None, "cuda")
    assert not loader.wants_offload("0", None, "cuda") and not loader.wants_offload(False, None, "cuda")


def test_skipping_the_unused_masked_image_encode_changes_no_pixel(engine):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 48), (30, 120, 200))
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 40, 32), fill=255)
    call = {**CALL, "image": image, "mask_image": mask, "strength": 0.9}
    ours = engine.call_pipeline("inpainting", call, [4], lambda *_: None)[0]
    pipe = engine.model.pipelines["inpainting"]
    stock = pipe(**call, generator=torch.Generator("cpu").manual_seed(4)).images[0]
    assert np.array_equal(np.asarray(ours), np.asarray(stock))
