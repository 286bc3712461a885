"""The NSFW policy modules: real detectors (NudeNet's ONNX model, a tiny random ViT), policies, blocklist."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageStat

from inference_server.safety import checkers, policy
from inference_server.safety.blocklist import Blocklist
from inference_server.safety.checkers import SafetyUnavailable, Verdict, load_checker
from tests.server.tiny_vit import save_tiny_vit
from tests.support import ROOT


def generated_images() -> dict[str, Image.Image]:
    """Plain, safe pictures of the kinds a generator returns, in the modes and shapes Pillow may hand over."""
    gradient = Image.linear_gradient("L").resize((512, 384)).convert("RGB")
    scene = Image.new("RGB", (640, 480), (110, 170, 230))
    draw = ImageDraw.Draw(scene)
    draw.rectangle((0, 330, 640, 480), fill=(60, 140, 60))
    draw.ellipse((470, 40, 570, 140), fill=(250, 220, 80))
    draw.polygon([(80, 330), (200, 160), (320, 330)], fill=(120, 110, 100))
    noise = Image.fromarray(np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    return {"flat": Image.new("RGB", (320, 320), (200, 30, 30)), "gradient": gradient, "scene": scene,
            "noise": noise, "rgba": scene.convert("RGBA"), "grey": gradient.convert("L"),
            "wide": scene.resize((1024, 128)), "tiny": Image.new("RGB", (8, 8), "white")}


def checkerboard(size=(256, 192), cell=4) -> Image.Image:
    pixels = (np.indices((size[1], size[0])) // cell).sum(axis=0) % 2 * 255
    return Image.fromarray(pixels.astype(np.uint8)).convert("RGB")


# ---- NudeNet: the real 320n model from the wheel --------------------------------------------------------

@pytest.fixture(scope="module")
def nudenet():
    return load_checker("nudenet", (), 0.5)


def test_nudenet_runs_its_model_and_passes_safe_images(nudenet):
    session = nudenet.detector.onnx_session
    runs = []

    class Counting:  # counts real inferences; every call goes through to onnxruntime
        def __getattr__(self, name):
            return getattr(session, name)

        def run(self, *args, **kwargs):
            outputs = session.run(*args, **kwargs)
            runs.append(outputs[0].shape)
            return outputs

    nudenet.detector.onnx_session = Counting()
    try:
        for name, image in generated_images().items():
            verdict = nudenet.check(image)
            assert verdict == Verdict(False, verdict.score, [], "nudenet"), name
            assert 0.0 <= verdict.score < 0.5, name
    finally:
        nudenet.detector.onnx_session = session
    assert len(runs) == len(generated_images())
    assert all(shape[-1] > 0 for shape in runs)  # the detector produced its candidate boxes for each image


def test_nudenet_labels_and_threshold_reach_the_verdict(nudenet):
    strict = load_checker("nudenet", ("FACE_FEMALE", "FACE_MALE", "FEET_EXPOSED"), 0.0)
    assert strict.labels == ("FACE_FEMALE", "FACE_MALE", "FEET_EXPOSED") and strict.threshold == 0.0
    assert nudenet.labels == checkers.NUDENET_LABELS


# ---- a tiny random ViT classifier, built offline -------------------------------------------------------

@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory):
    return save_tiny_vit(tmp_path_factory.mktemp("tiny_vit"))


@pytest.fixture(scope="module")
def always_unsafe(vit_folder):
    """Threshold 0: any score for `nsfw` is enough, so every image is flagged."""
    return load_checker(f"classifier:{vit_folder}", ("nsfw",), 0.0)


def test_classifier_scores_every_image(always_unsafe, vit_folder):
    image = generated_images()["scene"]
    verdict = always_unsafe.check(image)
    assert verdict.flagged and verdict.labels == ["nsfw"] and verdict.checker == f"classifier:{vit_folder}"
    assert 0.0 < verdict.score < 1.0
    never = load_checker(f"classifier:{vit_folder}", (), 1.0)  # default labels: ("nsfw",)
    other = never.check(image)
    assert not other.flagged and other.labels == [] and other.score == verdict.score  # same model, same score


def test_flag_keeps_the_image_and_says_so(always_unsafe):
    image = generated_images()["scene"]
    stored, entry = policy.screen(always_unsafe, image, "flag")
    assert stored is image
    assert entry["checked"] is True and entry["flagged"] is True and entry["action"] == "flagged"
    assert entry["labels"] == ["nsfw"] and entry["checker"] == always_unsafe.name and not entry["blocked"]


def test_blur_stores_no_detail_of_the_original(always_unsafe):
    original = checkerboard()
    stored, entry = policy.screen(always_unsafe, original, "blur")
    assert entry["action"] == "blurred" and entry["flagged"]
    assert stored.size == original.size and stored.mode == original.mode
    edges = ImageStat.Stat(stored.convert("L").filter(ImageFilter.FIND_EDGES).crop((4, 4, 252, 188))).mean[0]
    original_edges = ImageStat.Stat(original.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]
    assert original_edges > 50 and edges < 2  # the 4-pixel squares are gone, not merely softened
    assert abs(ImageStat.Stat(stored.convert("L")).mean[0] - 127.5) < 8  # what is left is the average


def test_block_stores_nothing(always_unsafe):
    stored, entry = policy.screen(always_unsafe, generated_images()["noise"], "block")
    assert stored is None and entry["blocked"] is True and entry["action"] == "blocked"
    assert policy.all_blocked([entry, entry]) and not policy.all_blocked([entry, {"blocked": False}])
    assert not policy.all_blocked([])


def test_an_image_under_the_threshold_passes_every_policy(vit_folder):
    lenient = load_checker(f"classifier:{vit_folder}", ("nsfw",), 1.0)
    image = generated_images()["scene"]
    for name in policy.POLICIES:
        stored, entry = policy.screen(lenient, image, name)
        assert stored is image and entry["action"] == "none" and entry["checked"] and not entry["flagged"]


def test_no_checker_says_it_did_not_check():
    stored, entry = policy.screen(load_checker("none"), generated_images()["flat"], "block")
    assert stored is not None and entry["checked"] is False and entry["checker"] == "none"


# ---- failures never pass an image unchecked ------------------------------------------------------------

def test_a_crashing_checker_raises_safety_unavailable(always_unsafe):
    broken = load_checker(f"classifier:{always_unsafe.pipeline.model.name_or_path}", ("nsfw",), 0.5)
    broken.pipeline.model.vit = None  # the model breaks after loading, as a lost GPU would
    with pytest.raises(SafetyUnavailable) as caught:
        policy.screen(broken, generated_images()["scene"], "flag")
    assert caught.value.code == "safety_unavailable" and broken.name in str(caught.value)

    class Unguarded:  # a checker that does not turn its own errors into SafetyUnavailable
        name = "unguarded"

        def check(self, image):
            raise MemoryError("out of memory")

    with pytest.raises(SafetyUnavailable):
        policy.screen(Unguarded(), generated_images()["scene"], "blur")


def test_loading_failures_and_bad_settings(tmp_path, vit_folder):
    with pytest.raises(SafetyUnavailable):
        load_checker(f"classifier:{tmp_path / 'missing'}")
    with pytest.raises(SafetyUnavailable, match="not labels"):
        load_checker(f"classifier:{vit_folder}", ("porn",), 0.5)
    for spec in ("nsfw", "classifier:", "nudenet2"):
        with pytest.raises(ValueError):
            load_checker(spec)
    with pytest.raises(ValueError):
        load_checker("nudenet", (), 1.5)
    with pytest.raises(ValueError):
        policy.apply(Image.new("RGB", (4, 4)), Verdict(True, 0.9, ["nsfw"], "x"), "hide")


def test_cache_tag_changes_with_any_setting():
    base = policy.cache_tag("nudenet", "blur", ("A", "B"), 0.5)
    assert base == policy.cache_tag("nudenet", "blur", ("b", "a"), 0.5)
    assert len({base, policy.cache_tag("nudenet", "flag", ("A", "B"), 0.5),
                policy.cache_tag("none", "blur", ("A", "B"), 0.5),
                policy.cache_tag("nudenet", "blur", ("A",), 0.5),
                policy.cache_tag("nudenet", "blur", ("A", "B"), 0.6)}) == 5


# ---- the prompt blocklist ------------------------------------------------------------------------------

BLOCKLIST = """\
# words, phrases and patterns
nude
naked child
裸体
色情
ヌード
re:\\bkill\\s+(him|her)\\b
re:血腥.{0,4}场面
"""


@pytest.fixture
def blocklist(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text(BLOCKLIST, encoding="utf-8")
    return Blocklist.from_file(path)


@pytest.mark.parametrize("prompt, entry", [
    ("a NUDE figure", "nude"), ("Nude.", "nude"), ("ＮＵＤＥ poster", "nude"),  # case and full width
    ("a  Naked\tChild", "naked child"),
    ("一张裸体照片", "裸体"), ("色情海报", "色情"), ("ヌードの写真", "ヌード"),  # Chinese and Japanese: anywhere
    ("nude写真", "nude"),  # a Latin word right before CJK text is still a whole word
    ("then KILL HIM", r"re:\bkill\s+(him|her)\b"), ("一个血腥的场面", "re:血腥.{0,4}场面"),
])
def test_blocklist_matches(blocklist, prompt, entry):
    assert blocklist.match(prompt) == entry


@pytest.mark.parametrize("prompt", ["a denude landscape", "nudes", "a naked tree beside a child",
                                    "裸 体", "色彩海报", "skill him", "", "一杯咖啡 on a wooden table"])
def test_blocklist_passes(blocklist, prompt):
    assert blocklist.match(prompt) is None


def test_blocklist_rejects_a_bad_pattern_with_its_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("ok\nre:(unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:2"):
        Blocklist.from_file(path)


# ---- layering ------------------------------------------------------------------------------------------

def test_the_safety_modules_import_no_framework():
    code = ("import sys; import inference_server.safety.checkers, inference_server.safety.policy, "
            "inference_server.safety.blocklist; print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            timeout=120)
    assert not {"torch", "transformers", "nudenet", "cv2", "onnxruntime", "flask"} & set(result.stdout.split())
