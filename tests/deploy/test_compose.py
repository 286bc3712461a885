"""compose.yaml agrees with the Dockerfile and the server's settings (no Docker here: the file is read, not run)."""

from __future__ import annotations

import re

import yaml

from inference_server.config import ENV_DEFAULTS
from tests.deploy.containers import ROOT

# Variables the server reads that are not fields of Settings: Hugging Face's, and issue 13's executor and storage.
OTHER_VARIABLES = {
    "HF_HUB_OFFLINE", "EXECUTOR", "RAY_ADDRESS", "RAY_REPLICAS", "STORAGE", "S3_ENDPOINT_URL", "S3_BUCKET",
    "S3_PREFIX", "S3_REGION", "S3_PRESIGN", "S3_PUBLIC_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_service_joins_difys_network_with_a_gpu():
    compose = _compose()
    service = compose["services"]["qwen-image"]
    assert service["networks"] == ["docker_default"]
    assert compose["networks"]["docker_default"] == {"external": True}
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_api_keys_are_required_and_every_variable_is_one_the_server_reads():
    environment = _compose()["services"]["qwen-image"]["environment"]
    # ${VAR:?message} makes compose refuse to start without it, as the server would in the open.
    assert re.fullmatch(r"\$\{QWEN_IMAGE_API_KEY:\?.+\}", environment["API_KEYS"])
    unknown = set(environment) - set(ENV_DEFAULTS) - OTHER_VARIABLES
    assert not unknown, f"not server settings (typos?): {sorted(unknown)}"


def test_compose_matches_the_dockerfile():
    dockerfile, service = _dockerfile(), _compose()["services"]["qwen-image"]
    declared = re.search(r"^VOLUME \[(.+)\]$", dockerfile, re.M).group(1)
    volumes = {volume.strip().strip('"') for volume in declared.split(",")}
    targets = {re.search(r":(/[^:]*)(:ro|:rw)?$", volume).group(1) for volume in service["volumes"]}
    assert targets == volumes
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.M) and service["ports"][0].endswith(":8000")
    base_default = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M).group(1)
    assert service["build"]["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-%s}" % base_default


def test_the_build_context_holds_only_the_server():
    """.dockerignore lets in inference_server/ alone: the plugin's files never reach the image."""
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert [rule for rule in rules if rule.startswith("!")] == ["!inference_server/"]
    copies = re.findall(r"^COPY (?:--\S+ )*(\S+)", _dockerfile(), re.M)
    assert all(source.startswith("inference_server") for source in copies), copies
