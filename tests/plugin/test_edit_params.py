"""The edit tool's parameters (pure: tools/params.py and the client's error wording, no SDK import)."""

import json

import pytest
import requests

from qwen_client import client as qclient
from qwen_client import config
from tools import params


class File:
    """What the SDK hands a tool for a Dify file (dify_plugin.file.file.File has a `url`)."""

    def __init__(self, url: str):
        self.url = url


def test_edit_body_sends_the_common_fields_and_the_mask_settings():
    body = params.build_body("edit", {
        "negative_prompt": "blur", "steps": 8.0, "guidance": "4", "seed": 3, "num_images": 2, "output_format": "webp",
        "width": 512, "height": "384", "mask_invert": "true", "mask_blur": 4, "mask_grow": 0, "mask_url": "http://m/",
        "strength": 0.5, "left": 64, "aspect_ratio": "16:9",  # other tools' fields: not sent
    }, "put the cup from image 2 on the table")
    assert body == {"prompt": "put the cup from image 2 on the table", "negative_prompt": "blur",
                    "num_inference_steps": 8, "guidance": 4.0, "seed": 3, "num_images": 2, "output_format": "webp",
                    "width": 512, "height": 384, "mask_invert": True, "mask_blur": 4, "mask_grow": 0}


def test_mask_settings_go_only_with_a_mask():
    """Dify sends each setting's default (blur 8, grow 8) whether or not a mask was given."""
    settings = {"mask_invert": False, "mask_blur": 8, "mask_grow": 8, "seed": 1}
    assert params.build_body("edit", settings, "x") == {"prompt": "x", "seed": 1}
    with_mask = params.build_body("edit", {**settings, "mask": File("http://d/m")}, "x")
    assert with_mask == {"prompt": "x", "seed": 1, "mask_invert": False, "mask_blur": 8, "mask_grow": 8}


def test_edit_needs_an_instruction_and_a_size_pair():
    with pytest.raises(params.ParameterError, match="'prompt' is required: say how to change"):
        params.build_body("edit", {}, " ")
    with pytest.raises(params.ParameterError, match="'width' and 'height' go together"):
        params.build_body("edit", {"width": 512}, "x")
    assert "width" not in params.build_body("edit", {"width": None, "height": ""}, "x")


def test_files_then_urls_in_order():
    given = {"images": [File("http://dify/files/a"), {"url": "http://dify/files/b"}],
             "image_urls": " https://x.example/c.png \n"}
    assert params.image_list_sources("edit", given) == [
        ("images", "http://dify/files/a"), ("images", "http://dify/files/b"), ("image_urls", "https://x.example/c.png")]


def test_a_single_file_mapped_to_the_files_parameter_counts_as_one():
    assert params.image_list_sources("edit", {"images": File("http://dify/f")}) == [("images", "http://dify/f")]


@pytest.mark.parametrize("text,urls", [
    ("http://a/1.png,http://b/2.png", ["http://a/1.png", "http://b/2.png"]),
    ("http://a/1.png, http://b/2.png,\n\nhttp://c/3.png", ["http://a/1.png", "http://b/2.png", "http://c/3.png"]),
    ("http://a/1.png\r\nhttp://b/2.png\n", ["http://a/1.png", "http://b/2.png"]),
    (" , \n", []),
])
def test_image_urls_split_on_commas_and_new_lines(text, urls):
    assert params.split_urls(text) == urls


def test_one_to_three_images():
    for count in (1, 2, 3):
        urls = ",".join(f"http://h/{i}.png" for i in range(count))
        assert len(params.image_list_sources("edit", {"image_urls": urls})) == count
    with pytest.raises(params.ParameterError, match="'images' is required.*'image_urls'"):
        params.image_list_sources("edit", {"images": [], "image_urls": "  "})
    with pytest.raises(params.ParameterError, match="give 4 images together; this tool takes 1 to 3"):
        params.image_list_sources("edit", {"images": [File("http://d/1"), File("http://d/2")],
                                           "image_urls": "http://h/3.png\nhttp://h/4.png"})


def test_an_item_that_is_not_a_file_is_named():
    with pytest.raises(params.ParameterError, match="'images': every item must be an image file"):
        params.image_list_sources("edit", {"images": [File("http://d/1"), "not a file"]})


def test_mask_is_optional_and_file_wins_over_url():
    assert params.image_sources("edit", {}) == {}
    assert params.image_sources("edit", {"mask": File("http://d/m"), "mask_url": "http://x/m.png"}) == {
        "mask": "http://d/m"}
    assert params.image_sources("edit", {"mask_url": "http://x/m.png"}) == {"mask": "http://x/m.png"}


def test_other_tools_take_no_image_list():
    assert params.image_list_sources("img2img", {"images": [File("http://d/1")], "image_urls": "http://h/1"}) == []


def answer(status: int, error: dict, path: str) -> requests.Response:
    """A server answer as requests hands it over, without a network."""
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps({"error": error}).encode()
    resp.headers["Content-Type"] = "application/json"
    resp.request = requests.Request("POST", "http://gpu:8000" + path).prepare()
    resp.url = resp.request.url
    return resp


def client() -> qclient.Client:
    return qclient.Client(config.from_credentials({"server_url": "http://gpu:8000"}), params.FIELD_LABELS)


def test_an_indexed_field_names_the_image_the_user_gave():
    error = client()._error(answer(422, {"code": "invalid_image", "message": "images[2]: not an image",
                                         "field": "images[2]"}, "/v1/edit"))
    assert str(error) == ("The inference server rejected the parameter 'images / image_urls, image 3': "
                          "images[2]: not an image")


def test_a_server_without_the_edit_model_says_what_the_operator_must_set():
    error = client()._error(answer(404, {"code": "task_unavailable", "field": None,
                                         "message": "this task needs the 'edit' model, which this server does "
                                                    "not serve: set EDIT_MODEL_ID"}, "/v1/edit"))
    assert error.status == 404 and error.code == "task_unavailable"
    assert "does not serve the 'edit' task" in str(error)
    assert "operator must set EDIT_MODEL_ID (for example Qwen/Qwen-Image-Edit-2509) and restart it" in str(error)


def test_a_server_that_predates_the_task_says_to_update_it():
    error = client()._error(answer(404, {"code": "unknown_task", "field": None,
                                         "message": "no task 'edit': use one of generate, img2img"}, "/v1/edit"))
    assert "does not serve the 'edit' task" in str(error) and "update it to a version that has this task" in str(error)
