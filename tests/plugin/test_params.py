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


def test_private_image_hosts_credential_is_parsed_to_host_names():
    from qwen_client import config

    settings = config.from_credentials({"server_url": "http://gpu:8000",
                                        "private_image_hosts": "api, Files.Intranet:8080 http://10.0.0.5:5001/x"})
    assert settings.private_hosts == {"api", "files.intranet", "10.0.0.5"}
    ipv6 = config.from_credentials({"server_url": "http://gpu:8000", "private_image_hosts": "fd00::5, [fd00::6]:80"})
    assert ipv6.private_hosts == {"fd00::5", "fd00::6"}
    # Saved before the credential existed, or left blank: Dify's API host in its Docker setup, as declared.
    assert config.from_credentials({"server_url": "http://gpu:8000"}).private_hosts == {"api"}


@pytest.mark.parametrize("url", ["http://127.0.0.1:5001/f.png", "http://10.1.2.3/f.png", "http://192.168.0.9/f.png",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]:80/f.png",
                                 "http://[::ffff:127.0.0.1]/f.png", "http://100.64.0.1/f.png", "http://0.0.0.0/f.png",
                                 "http://224.0.0.1/f.png", "http://2130706433/f.png", "http://api@127.0.0.1/f.png"])
def test_an_image_url_may_not_reach_a_private_address(url):
    from qwen_client import errors, files

    with pytest.raises(errors.InputFileError, match="private address.*'Private image hosts'"):
        files.download(url, "image", private_hosts=frozenset({"api"}))


def test_a_url_whose_host_reads_two_ways_is_refused():
    from qwen_client import errors, files

    with pytest.raises(errors.InputFileError, match="ambiguous"):  # urllib3 connects to 127.0.0.1, urlsplit says api
        files.download("http://127.0.0.1\\@api/x.png", "image", private_hosts=frozenset({"api"}))


def test_public_addresses_and_listed_hosts_pass_the_check():
    from qwen_client import files

    files._check_reachable("http://8.8.8.8/f.png", "image", frozenset())  # an IP literal: no DNS needed
    files._check_reachable("http://10.1.2.3/f.png", "image", frozenset({"10.1.2.3"}))
