"""The .difypkg: built by `python -m plugin_packaging.build`, checked the way the daemon reads it."""

import hashlib
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.plugin.harness import ROOT, PluginProcess

FORBIDDEN = re.compile(r"^(inference_server|tests|bench|docs|examples|plugin_packaging|dist|\.venv|\.git|\.ci)/"
                       r"|__pycache__|\.pyc$|^Makefile$|^pytest\.ini$|^requirements-dev\.txt$|^\.env|^\.difyignore$|\.pem$"
                       r"|^keys/|^Dockerfile$|^compose\.yaml$")
REQUIRED = {"manifest.yaml", "main.py", "requirements.txt", "README.md", "PRIVACY.md", "_assets/icon.svg",
            "provider/qwen_image.yaml", "provider/qwen_image.py", "qwen_client/client.py", "tools/invoke.py",
            *(f"tools/{t}.{ext}" for t in ("generate", "inpaint", "outpaint", "img2img", "edit") for ext in ("py", "yaml")),
            *(f"readme/README_{lang}.md" for lang in ("zh_Hans", "ja_JP", "pt_BR"))}


def build(out) -> tuple:
    env = {k: v for k, v in os.environ.items() if k != "PLUGIN_SIGNING_KEY"}  # the unsigned build
    run = subprocess.run([sys.executable, "-m", "plugin_packaging.build", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True, env=env)
    identifier = re.search(r"plugin_unique_identifier: (\S+)", run.stdout).group(1)
    return out / "qwen_image-0.1.0.difypkg", identifier


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def unpacked(package, tmp_path_factory):
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(package[0]) as archive:
        archive.extractall(target)
    return target


def test_file_list(package):
    with zipfile.ZipFile(package[0]) as archive:
        names = archive.namelist()
        size = sum(info.file_size for info in archive.infolist())
    assert names == sorted(names) and not any("\\" in n or n.endswith("/") for n in names)
    assert REQUIRED <= set(names), REQUIRED - set(names)
    assert not [n for n in names if FORBIDDEN.search(n)]
    assert size < 50 * 1024 * 1024


def test_identifier_is_the_daemons_checksum(package, tmp_path):
    path, identifier = package
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            digest.update(hashlib.sha256(name.encode()).digest() + hashlib.sha256(archive.read(name)).digest())
    assert identifier == f"qwen_image_community/qwen_image:0.1.0@{digest.hexdigest()}"
    again, _ = build(tmp_path)
    assert again.read_bytes() == path.read_bytes()  # reproducible


def test_sdk_configuration_models_accept_the_package(unpacked):
    """dify_plugin's own models, in a separate process: importing it here would patch this one."""
    script = textwrap.dedent("""
        import yaml
        from dify_plugin.core.entities.plugin.setup import PluginConfiguration
        from dify_plugin.entities.tool import ToolProviderConfiguration
        manifest = PluginConfiguration(**yaml.safe_load(open("manifest.yaml")))
        provider = ToolProviderConfiguration(**yaml.safe_load(open(manifest.plugins.tools[0])))
        assert [c.name for c in provider.credentials_schema] == ["server_url", "api_key", "timeout_seconds",
                                                                  "private_image_hosts"]
        print(",".join(tool.identity.name for tool in provider.tools))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=unpacked, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "generate,inpaint,outpaint,img2img,edit"


def test_unpacked_plugin_starts_and_answers(unpacked):
    """Self-contained: the package alone loads every tool and speaks the protocol."""
    process = PluginProcess(root=unpacked)
    try:
        process.wait_ready()
        assert process.manifest["name"] == "qwen_image"
        result = process.validate({"server_url": "http://127.0.0.1:9", "api_key": "k"})
        assert "Cannot reach" in result.error["message"]
        assert process.alive() and not process.garbage
    finally:
        process.close()
