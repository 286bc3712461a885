"""The YAML interface: what Dify shows users and agents, checked against what the code sends."""

import re

import pytest
import yaml

from tests.plugin.harness import ROOT
from tools import params

LANGS = {"en_US", "zh_Hans", "ja_JP", "pt_BR"}
TOOLS = ("generate", "inpaint", "outpaint", "img2img", "edit")
CREATIVE = {"prompt", "negative_prompt", "image", "image_url", "images", "image_urls", "mask", "mask_url", "region",
            "left", "right", "top", "bottom"}
DAEMON_TAGS = {"search", "image", "videos", "weather", "finance", "design", "travel", "social", "news", "medical",
               "productivity", "education", "business", "entertainment", "utilities", "agent", "rag", "other",
               "trigger"}
DAEMON_README = re.compile(r"^README_([a-z]{2}_[A-Za-z]{2,})\.md$")
INPUTS = {"prompt", "image", "image_url", "images", "image_urls", "mask", "mask_url", "enhance_model"}


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def test_manifest():
    manifest = load("manifest.yaml")
    assert manifest["name"] == "qwen_image" and manifest["author"] == manifest["author"].lower()
    assert "dify" not in manifest["author"] and "langgenius" not in manifest["author"]
    assert set(manifest["label"]) == LANGS and manifest["label"]["en_US"] == "Qwen-Image (self-hosted)"
    assert manifest["meta"]["runner"] == {"language": "python", "version": "3.12", "entrypoint": "main"}
    assert manifest["resource"]["memory"] > 0
    assert manifest["resource"]["permission"]["model"] == {"enabled": True, "llm": True}
    assert manifest["privacy"] == "PRIVACY.md" and (ROOT / "PRIVACY.md").read_text().strip()
    assert manifest["created_at"]
    icon = (ROOT / "_assets" / manifest["icon"]).read_text()
    assert icon.lstrip().startswith("<svg") and "<path" in icon
    assert manifest["tags"] and set(manifest["tags"]) <= DAEMON_TAGS  # manifest_entities/tags.go
    assert manifest["meta"]["minimum_dify_version"] == "1.3.0"  # blob_chunk messages (see manifest.yaml)


def test_readmes_in_every_language():
    """The daemon's AvailableI18nReadme: README.md for en_US, readme/README_<lang>.md for the others."""
    found = {m.group(1) for p in (ROOT / "readme").iterdir() if (m := DAEMON_README.match(p.name))}
    assert found == LANGS - {"en_US"}
    for lang in found:
        text = (ROOT / "readme" / f"README_{lang}.md").read_text(encoding="utf-8")
        assert "make run" in text and "API_KEYS" in text and "FILES_URL" in text  # server, and how to set up
        assert "THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS" in text


def test_provider_credentials():
    provider = load("provider/qwen_image.yaml")
    creds = provider["credentials_for_provider"]
    assert creds["server_url"]["type"] == "text-input" and creds["server_url"]["required"] is True
    assert creds["api_key"]["type"] == "secret-input"
    assert creds["timeout_seconds"]["default"] == "540"
    assert creds["private_image_hosts"]["default"] == "api"  # Dify's own API host in its Docker setup
    assert all(set(creds[name]["label"]) == LANGS and set(creds[name]["help"]) == LANGS for name in creds)
    assert provider["tools"] == [f"tools/{t}.yaml" for t in TOOLS]


@pytest.mark.parametrize("task", TOOLS)
def test_tool_yaml(task):
    tool = load(f"tools/{task}.yaml")
    assert tool["identity"]["name"] == task and tool["extra"]["python"]["source"] == f"tools/{task}.py"
    assert set(tool["identity"]["label"]) == LANGS and set(tool["description"]["human"]) == LANGS
    assert tool["description"]["llm"]
    assert set(tool["output_schema"]["properties"]) >= {"seed", "seeds", "width", "height", "job_id"}
    by_name = {p["name"]: p for p in tool["parameters"]}
    for name, p in by_name.items():
        assert set(p["label"]) == LANGS and set(p["human_description"]) == LANGS, name
        assert p["form"] == ("llm" if name in CREATIVE else "form"), name
        if p["form"] == "llm":
            assert len(p.get("llm_description", "")) > 20, name
        if p["type"] == "select":
            assert p["default"] in [o["value"] for o in p["options"]], name
        if p["type"] == "number" and "default" in p:
            assert p["min"] <= p["default"] <= p["max"], name
    # Every declared parameter is sent (or consumed), and the code sends nothing undeclared.
    assert set(by_name) - INPUTS == set(params.TASK_PARAMS[task])
    for image in params.TASK_IMAGES[task]:
        assert by_name[image]["type"] == "file" and by_name[f"{image}_url"]["type"] == "string"
    if task in params.IMAGE_LISTS:  # Dify's multi-file type, and a URL list for agents, who cannot pass files
        files, urls, _, most = params.IMAGE_LISTS[task]
        assert by_name[files]["type"] == "files" and by_name[urls]["type"] == "string"
        assert str(most) in by_name[urls]["llm_description"].replace("three", "3")
    else:
        assert not {"images", "image_urls"} & set(by_name)
    assert by_name["enhance_model"]["type"] == "model-selector" and by_name["enhance_model"]["scope"] == "llm"
    assert by_name["prompt"]["required"] is (task in params.PROMPT_REQUIRED)


def test_no_print_in_plugin_code():
    sources = [ROOT / "main.py", *ROOT.glob("provider/*.py"), *ROOT.glob("tools/*.py"), *ROOT.glob("qwen_client/*.py")]
    offenders = [str(p) for p in sources if "print(" in p.read_text()]
    assert not offenders
