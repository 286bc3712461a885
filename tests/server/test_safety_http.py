"""The NSFW policy end to end: real servers with a tiny ViT classifier whose threshold forces a positive.

Each policy over HTTP, a blocked job through the plugin's stdio protocol, the prompt blocklist in English
and Chinese, a checker that crashes, the Prometheus counters, and a cache that never serves across policies.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from inference_server.safety import policy
from tests.plugin.harness import PluginProcess
from tests.server.tiny_vit import save_tiny_vit
from tests.support import running_together, ServerProcess

BODY = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 21}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    vit = save_tiny_vit(root / "vit")
    broken = save_tiny_vit(root / "broken-vit", model_size=64)  # loads, then fails on every image
    blocklist = root / "blocklist.txt"
    blocklist.write_text("# words this server refuses\nforbidden-word\n违禁词\nre:bad\\s+idea\n")
    always = {"SAFETY_CHECKER": f"classifier:{vit}", "SAFETY_LABELS": "nsfw", "SAFETY_THRESHOLD": "0"}
    started = {
        "flag": ServerProcess(root / "flag", **always, SAFETY_POLICY="flag"),
        "blur": ServerProcess(root / "blur", **always, SAFETY_POLICY="blur"),
        "block": ServerProcess(root / "block", **always, SAFETY_POLICY="block", PROMPT_BLOCKLIST=str(blocklist)),
        "never": ServerProcess(root / "never", SAFETY_CHECKER=f"classifier:{vit}", SAFETY_THRESHOLD="1"),
        "crash": ServerProcess(root / "crash", SAFETY_CHECKER=f"classifier:{broken}"),
    }
    with running_together(started):
        yield started


def image_of(server, job, index=0) -> Image.Image:
    return Image.open(io.BytesIO(server.file_bytes(job["images"][index])))


def test_flag_returns_the_image_marked(servers):
    server = servers["flag"]
    job = server.run("generate", BODY)
    safety = job["images"][0]["safety"]
    assert safety["checked"] and safety["flagged"] and safety["action"] == "flagged"
    assert safety["labels"] == ["nsfw"] and 0 < safety["score"] <= 1
    assert safety["checker"].startswith("classifier:")
    assert image_of(server, job).size == (64, 64)


def test_blur_stores_a_blurred_copy_only(servers):
    flagged = servers["flag"].run("generate", {**BODY, "seed": 30})
    blurred = servers["blur"].run("generate", {**BODY, "seed": 30})
    assert blurred["images"][0]["safety"]["action"] == "blurred"
    original, stored = image_of(servers["flag"], flagged), image_of(servers["blur"], blurred)
    assert stored.size == original.size and stored.tobytes() != original.tobytes()
    assert stored.convert("RGB").tobytes() == policy.blur(original.convert("RGB")).tobytes()  # that and only that
    assert ImageStat.Stat(stored.convert("L")).stddev[0] < ImageStat.Stat(original.convert("L")).stddev[0]
    files = list((servers["blur"].data_dir / "files").iterdir())
    assert all(path.read_bytes() != servers["flag"].file_bytes(flagged["images"][0]) for path in files)


def test_block_fails_the_job_and_stores_nothing(servers):
    server = servers["block"]
    before = set((server.data_dir / "files").glob("*"))
    response = server.post("generate", {**BODY, "num_images": 2})
    job = server.job(response.json()["id"], wait=60)
    assert job["status"] == "failed" and job["error"]["code"] == "unsafe_content", job
    assert job["images"] == []
    assert set((server.data_dir / "files").glob("*")) == before
    metrics = server.session.get(f"{server.url}/metrics").text
    assert 'qwen_image_safety_actions_total{action="blocked"} 2.0' in metrics
    assert 'qwen_image_job_failures_total{code="unsafe_content"}' in metrics


def test_an_image_under_the_threshold_is_checked_and_passes(servers):
    job = servers["never"].run("generate", BODY)
    safety = job["images"][0]["safety"]
    assert safety["checked"] and not safety["flagged"] and safety["action"] == "none"


def test_a_server_without_a_checker_says_so(live_server):
    job = live_server.run("generate", {**BODY, "seed": 77})
    assert job["images"][0]["safety"]["checked"] is False and job["images"][0]["safety"]["checker"] == "none"


def test_a_crashing_checker_fails_the_job_and_never_returns_the_image(servers):
    server = servers["crash"]
    job = server.job(server.post("generate", BODY).json()["id"], wait=60)
    assert job["status"] == "failed" and job["error"]["code"] == "safety_unavailable", job
    assert not list((server.data_dir / "files").glob("*.png"))


@pytest.mark.parametrize("prompt", ["A poster with the FORBIDDEN-WORD on it", "海报上写着违禁词", "a Bad   Idea"])
def test_the_blocklist_refuses_before_queueing(servers, prompt):
    response = servers["block"].post("generate", {**BODY, "prompt": prompt})
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "prompt_blocked", "field": "prompt",
                                        "message": response.json()["error"]["message"]}


def test_the_blocklist_lets_other_prompts_through(servers):
    response = servers["block"].post("generate", {**BODY, "prompt": "a forbidden city at dawn, 故宫"}, wait=None)
    assert response.status_code == 202


def test_a_cached_result_is_never_served_under_another_policy(servers, tmp_path):
    """Same data dir, same seed: made under `flag`, asked again under `block` after a restart."""
    server = ServerProcess(tmp_path / "policy-change", SAFETY_CHECKER=servers["flag"].env["SAFETY_CHECKER"],
                           SAFETY_LABELS="nsfw", SAFETY_THRESHOLD="0", SAFETY_POLICY="flag").start()
    try:
        assert server.run("generate", BODY)["cache"] == "miss"
        assert server.run("generate", BODY)["cache"] == "hit"
        server.stop()
        server.env["SAFETY_POLICY"] = "block"
        server.start()
        job = server.job(server.post("generate", BODY).json()["id"], wait=60)
        assert job["cache"] == "miss" and job["error"]["code"] == "unsafe_content"
    finally:
        server.stop()


def test_the_plugin_says_the_images_were_blocked(servers):
    server = servers["block"]
    plugin = PluginProcess()
    try:
        plugin.wait_ready()
        creds = {"server_url": server.url, "api_key": server.api_key, "timeout_seconds": "120"}
        result = plugin.invoke("generate", creds, {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2})
        assert result.error is None and not result.blobs
        assert "content policy blocked every image" in result.text
        summary = result.jsons[-1]
        assert summary["blocked"] is True and summary["error"]["code"] == "unsafe_content"
        assert summary["job_id"] == result.variables["job_id"]
    finally:
        plugin.close()
