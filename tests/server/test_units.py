"""The engine's pure parts: size snapping, masks, compositing, canvases, per-family parameters, settings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inference_server import masks, sizes
from inference_server.config import ENV_DEFAULTS, Settings
from inference_server.errors import ApiError
from inference_server.families import FLUX, QWEN, SDXL, family_for_pipeline
from inference_server.imaging import a1111_parameters, encode_image
from inference_server.compositing import apply_finish
from inference_server.plans import Limits
from inference_server.tasks import DEFAULT_TASKS, ReadRequest
from inference_server.schemas import validate_request

LIMITS = Limits(max_pixels=2048 * 2048, masked_min_size=64)


@pytest.mark.parametrize("value,multiple,expected", [(1000, 16, 1008), (1016, 16, 1024), (1015, 16, 1008), (8, 16, 16), (1, 8, 8),
                                                     (1024, 16, 1024), (1020, 8, 1024), (1019, 8, 1016)])
def test_snap(value, multiple, expected):
    assert sizes.snap(value, multiple) == expected


def test_round_up_and_min_side():
    assert sizes.round_up(17, 16) == 32 and sizes.round_up(0, 16) == 16
    assert sizes.scale_to_min_side(100, 50, 512, 16) == (1024, 512)
    assert sizes.scale_to_min_side(600, 700, 512, 16) == (608, 704)  # big enough already: only rounded


@pytest.mark.parametrize("w,h,ratio", [(64, 64, "16:9"), (1024, 1024, "16:9"), (800, 600, "9:16"), (300, 200, "1:1")])
def test_extents_for_ratio_reach_the_ratio_on_whole_multiples(w, h, ratio):
    left, right, top, bottom = sizes.extents_for_ratio(w, h, ratio, 16)
    canvas_w, canvas_h = w + left + right, h + top + bottom
    assert left % 16 == 0 and top % 16 == 0 and min(left, right, top, bottom) >= 0
    assert abs(canvas_w / canvas_h - sizes.parse_ratio(ratio)) < 16 / min(canvas_w, canvas_h)


def test_dilate_is_an_exact_square_dilation():
    mask = np.zeros((20, 20), bool)
    mask[10, 10] = True
    grown = masks.dilate(mask, 3)
    assert grown.sum() == 49 and grown[7:14, 7:14].all()
    assert masks.dilate(mask, 0) is mask


def test_thin_strokes_are_grown_and_blur_stays_inside_the_hard_mask():
    stroke = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(stroke).line((0, 32, 63, 32), fill=255, width=1)
    hard, soft = masks.prepare_inpaint_mask(stroke, invert=False, grow=4, blur=4)
    assert np.asarray(hard)[28:37, 10].all()  # 1 px became 9 px
    soft_on = np.asarray(soft) > 0
    assert not (soft_on & (np.asarray(hard) == 0)).any()
    assert np.asarray(soft)[0, 0] == 0


def test_rgba_mask_transparent_means_repaint():
    rgba = Image.new("RGBA", (8, 8), (255, 255, 255, 255))
    rgba.putpixel((2, 2), (0, 0, 0, 0))
    mask = masks.mask_from_upload(rgba)
    assert mask.getpixel((2, 2)) == 255 and mask.getpixel((0, 0)) == 0
    opaque = Image.new("RGBA", (8, 8), (255, 255, 255, 255))
    assert masks.mask_from_upload(opaque).getpixel((0, 0)) == 255  # no transparency: the colour is the mask


def test_composite_is_exact_outside_and_inside():
    original = Image.new("RGB", (8, 8), (10, 20, 30))
    generated = Image.new("RGB", (8, 8), (200, 100, 50))
    soft = Image.new("L", (8, 8), 0)
    soft.putpixel((1, 1), 255)
    soft.putpixel((2, 2), 128)
    out = np.asarray(masks.composite(original, generated, soft))
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[1, 1]) == (200, 100, 50)
    assert 10 < out[2, 2, 0] < 200


def test_outpaint_canvas_places_the_original_on_multiples():
    image = Image.new("RGB", (50, 48), (1, 2, 3))
    canvas = masks.outpaint_canvas(image, (10, 5, 0, 0), 16, band=8)
    assert canvas.offset == (16, 0) and canvas.size == (80, 48)
    soft = np.asarray(canvas.soft)
    assert (soft[:, :16] == 255).all() and (soft[:, 66:] == 255).all()  # new area
    assert (soft[:, 16 + 8:66 - 8] == 0).all()  # the original away from the band
    assert (soft[:, 16] > 0).all() and 0 < soft[0, 16 + 7] < soft[0, 16]  # a ramp across the band
    assert np.array_equal(np.asarray(canvas.prefill)[:, 16:66], np.asarray(image))
    rounded = masks.outpaint_canvas(Image.new("RGB", (48, 40)), (16, 0, 0, 0), 16, band=8)
    assert rounded.size == (64, 48) and (np.asarray(rounded.soft)[40:] == 255).all()  # rows added by rounding


def test_family_guidance_mapping():
    assert QWEN.guidance_kwargs(4.0, "") == {"true_cfg_scale": 4.0, "negative_prompt": " "}
    assert QWEN.guidance_kwargs(4.0, "blurry") == {"true_cfg_scale": 4.0, "negative_prompt": "blurry"}
    assert SDXL.guidance_kwargs(6.0, "ugly") == {"guidance_scale": 6.0, "negative_prompt": "ugly"}
    assert FLUX.guidance_kwargs(3.5, "ugly") == {"guidance_scale": 3.5}
    assert family_for_pipeline("QwenImagePipeline") is QWEN
    assert family_for_pipeline("StableDiffusionXLPipeline") is SDXL and SDXL.size_multiple == 8
    assert family_for_pipeline("FluxPipeline") is FLUX
    with pytest.raises(ValueError):
        family_for_pipeline("KandinskyPipeline")


def plan(task, fields, images=None):
    images = images or {}
    spec = DEFAULT_TASKS.get(task)
    read = ReadRequest(validate_request(spec.request_model, fields), images, {k: "digest" for k in images})
    return spec.plan(read, QWEN, LIMITS)


def test_generate_plan_defaults_presets_and_seeds():
    p = plan("generate", {"prompt": "x", "aspect_ratio": "16:9", "seed": 5, "num_images": 3})
    assert (p.call["width"], p.call["height"]) == (1664, 928)
    assert p.seeds == [5, 6, 7] and p.cacheable
    assert p.call["num_inference_steps"] == 50 and p.call["true_cfg_scale"] == 4.0
    assert not plan("generate", {"prompt": "x"}).cacheable  # a random seed is never cached


def test_cache_key_covers_parameters_and_inputs():
    a = plan("generate", {"prompt": "x", "seed": 1, "width": 64, "height": 64})
    b = plan("generate", {"prompt": "x", "seed": 1, "width": 64, "height": 64})
    c = plan("generate", {"prompt": "x", "seed": 1, "width": 64, "height": 80})
    assert a.cache_key("m") == b.cache_key("m") != c.cache_key("m") and a.cache_key("m") != a.cache_key("other")


def test_inpaint_masked_plan_crops_around_the_mask():
    image = Image.new("RGB", (400, 300))
    p = plan("inpaint", {"region": {"x": 100, "y": 100, "width": 20, "height": 20}, "inpaint_area": "masked",
                         "masked_padding": 10, "mask_blur": 0, "mask_grow": 0}, {"image": image})
    assert p.params["processing_box"] == [90, 90, 130, 130]
    assert (p.call["width"], p.call["height"]) == (64, 64)
    assert p.call["mask_image"].size == (64, 64)
    assert apply_finish(p.finish, Image.new("RGB", (64, 64), (255, 0, 0))).size == (400, 300)


def test_region_outside_and_empty_mask_are_refused():
    image = Image.new("RGB", (64, 64))
    with pytest.raises(ApiError) as outside:
        plan("inpaint", {"region": {"x": 64, "y": 0, "width": 8, "height": 8}}, {"image": image})
    assert outside.value.field == "region"
    with pytest.raises(ApiError) as empty:
        plan("inpaint", {}, {"image": image, "mask": Image.new("L", (64, 64), 0)})
    assert empty.value.field == "mask" and empty.value.code == "empty_mask"


def test_encoding_is_deterministic_and_carries_parameters():
    image = Image.effect_noise((32, 32), 40).convert("RGB")
    params = {"prompt": "猫", "negative_prompt": "", "num_inference_steps": 4, "guidance": 4.0,
              "width": 32, "height": 32, "task": "generate"}
    text = a1111_parameters(params, 9, "tiny")
    assert text.splitlines()[0] == "猫" and "Seed: 9" in text.splitlines()[1]
    assert encode_image(image, "png", text) == encode_image(image, "png", text)
    assert encode_image(image, "webp", None) == encode_image(image, "webp", None)


def test_settings_from_env():
    s = Settings.from_env({"API_KEYS": "a, b,", "MAX_QUEUE": "3", "VAE_TILING": "true", "DATA_DIR": "/tmp/x",
                           "COMPILE": "1", "CORS_ORIGINS": "https://a.example"})
    assert s.api_keys == ("a", "b") and s.max_queue == 3 and s.vae_tiling and s.compile_transformer
    assert str(s.data_dir) == "/tmp/x" and s.cors_origins == ("https://a.example",)
    with pytest.raises(SystemExit):
        Settings(host="0.0.0.0").check_bind_safety()
    Settings(host="0.0.0.0", api_keys=("k",)).check_bind_safety()
    Settings(host="::1").check_bind_safety()


def test_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, re.M))
    assert documented == set(ENV_DEFAULTS)


def test_family_presets_are_the_models_recommended_sizes():
    assert QWEN.presets["16:9"] == (1664, 928) and QWEN.unused_masked_latents
    assert SDXL.presets["1:1"] == (1024, 1024) and not SDXL.unused_masked_latents
    assert all(w % f.size_multiple == 0 and h % f.size_multiple == 0
               for f in (QWEN, FLUX, SDXL) for w, h in f.presets.values())


def test_overlap_finishing_is_on_where_the_device_is_not_the_cpu():
    auto = Settings()
    assert auto.overlaps_finishing("cuda:0") and not auto.overlaps_finishing("cpu")
    assert Settings(overlap_finishing="1").overlaps_finishing("cpu")
    assert not Settings(overlap_finishing="0").overlaps_finishing("cuda")
