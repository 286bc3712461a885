"""Parameter translation, the pure part of the tools (tools/params.py imports no SDK)."""

import pytest

from tools import params


def test_generate_body_renames_and_converts():
    body = params.build_body("generate", {
        "negative_prompt": "blur", "steps": 20.0, "guidance": "3.5", "seed": 7, "num_images": 2,
        "output_format": "webp", "aspect_ratio": "16:9", "width": None, "height": "",
    }, "a red lantern")
    assert body == {"prompt": "a red lantern", "negative_prompt": "blur", "num_inference_steps": 20,
                    "guidance": 3.5, "seed": 7, "num_images": 2, "output_format": "webp", "aspect_ratio": "16:9"}
    assert isinstance(body["num_inference_steps"], int)


def test_explicit_size_wins_over_aspect_preset():
    body = params.build_body("generate", {"aspect_ratio": "1:1", "width": 512, "height": 256}, "x")
    assert body["width"] == 512 and body["height"] == 256 and "aspect_ratio" not in body


def test_outpaint_aspect_unset_is_not_sent():
    body = params.build_body("outpaint", {"aspect_ratio": "none", "left": 0, "right": 128.0}, "")
    assert body == {"left": 0, "right": 128}


def test_fields_of_other_tasks_are_not_sent():
    body = params.build_body("img2img", {"strength": 0.5, "left": 64, "mask_blur": 4}, "x")
    assert body == {"prompt": "x", "strength": 0.5}


@pytest.mark.parametrize("value", ["10,20,30,40", "10 20 30 40", '{"x": 10, "y": 20, "width": 30, "height": 40}',
                                   {"x": 10, "y": 20, "width": 30, "height": 40}])
def test_region_forms(value):
    body = params.build_body("inpaint", {"region": value, "mask_invert": "false"}, "")
    assert body == {"region": {"x": 10, "y": 20, "width": 30, "height": 40}, "mask_invert": False}


@pytest.mark.parametrize("name,value", [("region", "10,20,30"), ("steps", "many"), ("seed", 1.5),
                                        ("mask_invert", "maybe")])
def test_bad_values_name_the_parameter(name, value):
    task = "inpaint"
    with pytest.raises(params.ParameterError, match=f"'{name}'"):
        params.build_body(task, {name: value}, "x")


def test_prompt_required_where_the_server_requires_it():
    with pytest.raises(params.ParameterError, match="'prompt'"):
        params.build_body("generate", {}, "  ")
    assert params.build_body("inpaint", {}, "") == {}


def test_file_wins_over_url_and_missing_image_is_named():
    class File:
        url = "http://dify/files/1"

    assert params.image_sources("inpaint", {"image": File(), "image_url": "http://x/y.png",
                                            "mask_url": "http://x/m.png"}) == {
        "image": "http://dify/files/1", "mask": "http://x/m.png"}
    assert params.image_sources("outpaint", {"image": {"url": "http://d/f"}}) == {"image": "http://d/f"}
    assert params.image_sources("outpaint", {"image": [File(), {"url": "x"}]}) == {"image": "http://dify/files/1"}
    with pytest.raises(params.ParameterError, match="'image'.*image_url"):
        params.image_sources("img2img", {"image_url": " "})
