"""The edit engine in-process on the tiny models: the offline Qwen-Image-Edit-Plus build, one copy of the
components it shares with the base model, the swap placement, and edit calls with one to three images.

Edit Plus VAE-encodes every input at about 1 MP whatever the output size: seconds per image on two CPUs even
for the tiny model. So the calls here encode inputs at 128² (`AREA`), but one, which runs the pipeline's own
1 MP path.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import AutoPipelineForText2Image, DiffusionPipeline
from PIL import Image, ImageDraw

from inference_server.engine import placement as placement_module
from inference_server.engine import sharing
from inference_server.engine.edit_runner import edit_call, reference_area, run_edit
from inference_server.engine.placement import Placement, choose_mode
from inference_server.engine.tiny_edit_model import save_tiny_edit_model
from inference_server.engine.tiny_model import EDIT_PROMPT_TEMPLATE_PREFIX, build_pipeline, save_tiny_model
from inference_server.families import QWEN, QWEN_EDIT, QWEN_EDIT_SINGLE, family_for, family_for_pipeline
from tests.support import ROOT

SIZE = dict(width=64, height=48)
AREA = 128 * 128
GENERATE = dict(prompt="a red lantern", num_inference_steps=2, **SIZE, **QWEN.guidance_kwargs(4.0, ""))


def picture(size, colour, mark) -> Image.Image:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=mark)
    return image


INPUTS = [picture((80, 60), (200, 40, 40), (250, 250, 0)), picture((48, 48), (40, 160, 60), (0, 0, 0)),
          picture((40, 72), (30, 50, 200), (255, 255, 255))]


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit-models")
    build_pipeline(seed=5).save_pretrained(root / "other-base")
    return {"base": save_tiny_model(root / "base"), "edit": save_tiny_edit_model(root / "edit"),
            "other": root / "other-base"}


def load_pair(folders, dtype=torch.float32, base_folder="base"):
    base = AutoPipelineForText2Image.from_pretrained(str(folders[base_folder]), dtype=dtype)
    loaded = sharing.load_sharing(str(folders["edit"]), sharing.loaded_components(base, folders[base_folder]), dtype)
    for pipe in (base, loaded.pipeline):
        pipe.set_progress_bar_config(disable=True)
    return base, loaded


@pytest.fixture(scope="module")
def pair(folders):
    return load_pair(folders)


@pytest.fixture(scope="module")
def edits(pair):
    """Seed 3 with one, two and three images, and seed 3 (again) and 4 with one: reused by several tests."""
    edit = pair[1].pipeline
    steps = []
    out = {n: run_edit(edit, "put the ball on the table", INPUTS[:n], **SIZE, steps=2, seed=3, area=AREA,
                       callback_on_step_end=lambda p, i, t, kw: steps.append(i) or {}) for n in (1, 2, 3)}
    out["again"] = run_edit(edit, "put the ball on the table", INPUTS[:1], **SIZE, steps=2, seed=3, area=AREA)
    out["seed4"] = run_edit(edit, "put the ball on the table", INPUTS[:1], **SIZE, steps=2, seed=4, area=AREA)
    out["1mp"] = run_edit(edit, "put the ball on the table", INPUTS[:1], **SIZE, steps=2, seed=3, true_cfg_scale=1.0)
    out["steps"] = steps
    return out


def test_the_tiny_edit_model_is_the_base_model_with_its_own_transformer(folders):
    base, edit = folders["base"], folders["edit"]
    index = json.loads((edit / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImageEditPlusPipeline" and index["processor"] == ["transformers",
                                                                                         "Qwen2VLProcessor"]
    for component in ("text_encoder", "vae", "tokenizer"):
        files = sorted(p.relative_to(base / component) for p in (base / component).rglob("*") if p.is_file())
        assert files, component
        for name in files:
            assert (base / component / name).read_bytes() == (edit / component / name).read_bytes(), name
    weights = "diffusion_pytorch_model.safetensors"
    assert (base / "transformer" / weights).read_bytes() != (edit / "transformer" / weights).read_bytes()
    pipe = DiffusionPipeline.from_pretrained(str(edit))
    assert type(pipe).__name__ == "QwenImageEditPlusPipeline"
    assert type(pipe.processor).__name__ == "Qwen2VLProcessor"


def test_the_tokenizer_keeps_the_64_token_edit_prefix_and_the_vision_tower_sees_the_images(pair):
    edit = pair[1].pipeline
    tokenizer = edit.tokenizer
    assert len(tokenizer(EDIT_PROMPT_TEMPLATE_PREFIX)["input_ids"]) == edit.prompt_template_encode_start_idx == 64
    kept = "Picture 1: <|vision_start|><|image_pad|><|vision_end|>make it blue"
    full = tokenizer(EDIT_PROMPT_TEMPLATE_PREFIX + kept)["input_ids"]
    assert tokenizer.decode(full[64:]) == kept  # what the pipeline keeps starts exactly after the template
    with torch.inference_mode():
        red, _ = edit.encode_prompt("make it blue", image=[INPUTS[0]])
        green, _ = edit.encode_prompt("make it blue", image=[INPUTS[1]])
        both, _ = edit.encode_prompt("make it blue", image=INPUTS[:2])
    # The image tokens are part of the prompt embedding: other pixels, other embedding; two images, more tokens.
    assert red.shape[1] > 20 and not torch.equal(red, green) and both.shape[1] > red.shape[1]


def test_the_edit_model_shares_the_base_models_components(folders, pair):
    base, loaded = pair
    edit = loaded.pipeline
    assert loaded.shared == ["text_encoder", "tokenizer", "vae", "processor.tokenizer"]
    for name in ("text_encoder", "vae"):
        for mine, theirs in zip(getattr(edit, name).parameters(), getattr(base, name).parameters()):
            assert mine.data_ptr() == theirs.data_ptr(), name
    assert edit.tokenizer is base.tokenizer and edit.processor.tokenizer is base.tokenizer
    assert {p.data_ptr() for p in edit.transformer.parameters()}.isdisjoint(
        p.data_ptr() for p in base.transformer.parameters())
    assert edit.scheduler is not base.scheduler  # per-call state: never shared


def test_components_that_differ_are_not_shared(folders):
    other, loaded = load_pair(folders, base_folder="other")  # a base model built with another seed
    assert loaded.shared == ["tokenizer", "processor.tokenizer"]  # the tokenizer does not depend on the seed
    edit = loaded.pipeline
    for name in ("text_encoder", "vae"):
        assert {p.data_ptr() for p in getattr(edit, name).parameters()}.isdisjoint(
            p.data_ptr() for p in getattr(other, name).parameters()), name
    half, half_loaded = load_pair(folders, dtype=torch.bfloat16)
    assert half_loaded.pipeline.text_encoder is half.text_encoder
    assert half_loaded.pipeline.text_encoder.dtype == torch.bfloat16
    mixed = sharing.load_sharing(str(folders["edit"]), sharing.loaded_components(half, folders["base"]), torch.float32)
    assert mixed.shared == ["tokenizer", "processor.tokenizer"]  # a bf16 module is not handed to an fp32 model
    assert half.text_encoder.dtype == torch.bfloat16


def test_fingerprints_use_cache_blob_names_and_see_local_changes(tmp_path):
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc" / "vae"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    name = hashlib.sha256(b"the weights").hexdigest()
    (blobs / name).write_bytes(b"whatever is stored")
    (snapshot / "weights.safetensors").symlink_to(blobs / name)
    first = sharing.fingerprint(snapshot)
    (blobs / name).write_bytes(b"not read: the blob's name is its sha256")
    assert sharing.fingerprint(snapshot) == first
    local = tmp_path / "local"
    local.mkdir()
    big = bytearray(os.urandom(3 * sharing.WHOLE_FILE_LIMIT))
    (local / "weights.safetensors").write_bytes(big)
    (local / "config.json").write_text('{"z_dim": 16}')
    before = sharing.fingerprint(local)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in local.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert sharing.fingerprint(copy) == before  # same content elsewhere: the same component
    big[-1] ^= 0xFF
    (copy / "weights.safetensors").write_bytes(big)
    assert sharing.fingerprint(copy) != before
    (local / "config.json").write_text('{"z_dim": 8}')
    assert sharing.fingerprint(local) != before


def test_one_two_and_three_images_and_seeds_reproduce_bytes(edits):
    for count in (1, 2, 3):
        assert edits[count].size == (64, 48)
        assert np.asarray(edits[count]).std() > 0  # an image, not a blank
    assert edits["steps"] == [0, 1] * 3
    assert png(edits["again"]) == png(edits[1])
    assert png(edits["seed4"]) != png(edits[1])
    assert len({png(edits[n]) for n in (1, 2, 3)}) == 3  # the reference images change the result
    assert edits["1mp"].size == (64, 48) and png(edits["1mp"]) != png(edits[1])  # inputs at the pipeline's 1 MP


def test_the_default_size_is_the_first_images_ratio_at_about_a_megapixel(pair):
    edit = pair[1].pipeline
    assert edit_call("x", INPUTS[:1])["width"] == 1184 and edit_call("x", INPUTS[:1])["height"] == 896
    # The Plus pipeline left alone sizes from the last image (3:4 here); the first image (4:3) is the one edited.
    both = [INPUTS[0], INPUTS[0].resize((60, 80))]
    assert (edit_call("x", both)["width"], edit_call("x", both)["height"]) == (1184, 896)
    assert edit_call("x", INPUTS[:1], width=100, height=70)["width"] == 96  # floored to 16, as the pipeline does
    # Latents, not pixels: decoding 1 MP twice would only cost time.
    with torch.inference_mode(), reference_area(AREA):
        ours = edit(**edit_call("make it blue", INPUTS[:1], steps=2, true_cfg_scale=1.0), output_type="latent",
                    generator=torch.Generator("cpu").manual_seed(1)).images
        stock = edit(image=[INPUTS[0]], prompt="make it blue", num_inference_steps=2, true_cfg_scale=1.0,
                     output_type="latent", generator=torch.Generator("cpu").manual_seed(1)).images
    assert ours.shape == (1, (1184 // 16) * (896 // 16), 64) and torch.equal(ours, stock)


def test_a_smaller_reference_area_is_scoped_to_the_call(edits):
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

    with reference_area(AREA):
        assert plus.VAE_IMAGE_SIZE == AREA
    assert plus.VAE_IMAGE_SIZE == 1024 * 1024
    with reference_area(None):
        assert plus.VAE_IMAGE_SIZE == 1024 * 1024


def test_edit_calls_take_one_to_max_images():
    for family, images in ((QWEN_EDIT, 0), (QWEN_EDIT, 4), (QWEN_EDIT_SINGLE, 2)):
        with pytest.raises(ValueError, match="takes 1 to"):
            edit_call("x", [INPUTS[0]] * images, family=family)
    call = edit_call("x", [INPUTS[0].convert("RGBA")], family=QWEN_EDIT_SINGLE)
    assert call["image"].mode == "RGB" and call["num_inference_steps"] == 50 and call["negative_prompt"] == " "
    assert isinstance(edit_call("x", INPUTS[:2])["image"], list)
    assert edit_call("x", INPUTS[:1])["num_inference_steps"] == 40


def test_edit_families_come_from_the_checkpoints_class(folders):
    edit_index = json.loads((folders["edit"] / "model_index.json").read_text())
    assert family_for(edit_index, "instruction") is QWEN_EDIT and QWEN_EDIT.max_images == 3
    assert family_for(dict(edit_index, _class_name="QwenImageEditPipeline"), "instruction") is QWEN_EDIT_SINGLE
    assert QWEN_EDIT_SINGLE.max_images == 1 and QWEN.max_images == 0
    with pytest.raises(ValueError, match="EDIT_MODEL_ID"):
        family_for(edit_index, "text2image")  # an edit checkpoint is never served as Qwen-Image
    assert family_for_pipeline("QwenImagePipeline") is QWEN
    assert QWEN_EDIT.presets["1:1"] == (1024, 1024) and QWEN_EDIT.presets["16:9"] == (1376, 768)


def test_auto_placement_follows_free_device_memory(monkeypatch):
    assert choose_mode("swap", "cpu", 0) == "swap" and choose_mode("gpu", "cuda", 10**12) == "gpu"
    assert choose_mode("auto", "cpu", 10**15) == "gpu"  # host memory: nothing to park to
    with pytest.raises(ValueError, match="EDIT_PLACEMENT"):
        choose_mode("both", "cpu", 0)
    monkeypatch.setattr(placement_module.torch.cuda, "mem_get_info", lambda device: (80 * 2**30, 141 * 2**30))
    assert choose_mode("auto", "cuda", 40 * 2**30) == "gpu"
    assert choose_mode("auto", "cuda:1", 75 * 2**30) == "swap"


def pixels(png_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_bytes))).astype(int)


@pytest.mark.parametrize("copy_to_host, order", [
    (False, ("base", "edit", "edit", "base", "edit")),  # the CPU's own way: meta and back, nothing copied
    (True, ("edit", "base", "edit")),  # the CUDA way (a host buffer of its own), less the page-locking
])
def test_interleaved_runs_with_swap_forced_match_runs_without(folders, edits, copy_to_host, order):
    base, loaded = load_pair(folders)
    edit = loaded.pipeline
    reference = {"base": png(base(**GENERATE, generator=torch.Generator("cpu").manual_seed(3)).images[0]),
                 "edit": png(edits[1])}
    pointers = {p.data_ptr() for p in edit.transformer.parameters()}
    place = Placement(choose_mode("swap", "cpu", 0), "cpu", {"base": base.transformer, "edit": edit.transformer},
                      copy_to_host=copy_to_host)
    assert place.is_parked("edit") and not place.is_parked("base")
    swaps, outputs = [], []
    for name in order:
        swaps.append(place.activate(name))
        assert place.is_parked("edit" if name == "base" else "base") and not place.is_parked(name)
        if name == "base":
            outputs.append(png(base(**GENERATE, generator=torch.Generator("cpu").manual_seed(3)).images[0]))
        else:
            outputs.append(png(run_edit(edit, "put the ball on the table", INPUTS[:1], **SIZE, steps=2, seed=3,
                                        area=AREA)))
    for index, name in enumerate(order):
        swapped = name != (order[index - 1] if index else "base")
        assert (swaps[index] > 0) if swapped else (swaps[index] == 0.0), (index, swaps)
    moved = {p.data_ptr() for p in edit.transformer.parameters()}
    assert (moved == pointers) != copy_to_host  # on the CPU nothing is copied, unless asked to
    if not copy_to_host:
        assert outputs == [reference[name] for name in order]
        return
    # The same weights, copied into an aligned buffer: loaded safetensors are mmapped at 8-byte alignment, and
    # the CPU's GEMM rounds differently on aligned data. So: the same bytes run to run, within 1 level of before.
    assert outputs[0] == outputs[2]
    for name, output in zip(order, outputs):
        assert np.abs(pixels(output) - pixels(reference[name])).max() <= 1, name


def test_gpu_placement_keeps_everything_resident(pair):
    base, loaded = pair
    resident = Placement("gpu", "cpu", {"base": base.transformer, "edit": loaded.pipeline.transformer})
    assert resident.activate("edit") == 0.0 and resident.activate("base") == 0.0
    assert not resident.is_parked("edit") and not resident.is_parked("base")
    with pytest.raises(KeyError):
        resident.activate("vae")


def test_the_gpu_edit_bench_parses_and_builds_its_configs_without_weights():
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_edit", "--dry-run", "--placements", "gpu,swap"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "dry run" in proc.stdout and "transformer 20.4" in proc.stdout, proc.stdout
