"""Image safety checkers: `none`, `nudenet` (optional, AGPL-3.0 files) and `classifier:<hub id or folder>`.

A checker answers a Verdict for one image. Any failure while loading or checking raises SafetyUnavailable,
so an image is never passed on unchecked: the caller fails the job with code `safety_unavailable`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

SAFETY_UNAVAILABLE = "safety_unavailable"
# NudeNet's classes that count as unsafe when SAFETY_LABELS is empty: exposed, not covered.
NUDENET_LABELS = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
                  "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")
# Falconsai/nsfw_image_detection and most NSFW classifiers on the hub name their positive class so.
CLASSIFIER_LABELS = ("nsfw",)
NUDENET_INSTALL = "pip install -r inference_server/requirements-nudenet.txt"


class SafetyUnavailable(RuntimeError):
    """The checker could not load or could not check an image; the job must fail, not pass unchecked."""

    code = SAFETY_UNAVAILABLE


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    score: float  # the highest score among the unsafe labels (0.0 when none was seen)
    labels: list[str] = field(default_factory=list)  # unsafe labels at or over the threshold, highest first
    checker: str = "none"


class Checker(Protocol):
    name: str

    def check(self, image: Image.Image) -> Verdict: ...


def _verdict(scores: dict[str, float], unsafe: tuple[str, ...], threshold: float, checker: str) -> Verdict:
    """Shared by both detectors: flagged when one unsafe label reaches the threshold."""
    wanted = {label.lower() for label in unsafe}
    hits = {label: score for label, score in scores.items() if label.lower() in wanted}
    over = sorted((label for label, score in hits.items() if score >= threshold), key=lambda k: -hits[k])
    return Verdict(bool(over), round(max(hits.values(), default=0.0), 6), over, checker)


class _Guarded:
    """check() turns any exception of the detector into SafetyUnavailable."""

    name = "none"

    def check(self, image: Image.Image) -> Verdict:
        try:
            return self._check(image.convert("RGB"))
        except SafetyUnavailable:
            raise
        except Exception as exc:
            raise SafetyUnavailable(f"safety checker {self.name} failed: {type(exc).__name__}: {exc}") from exc

    def _check(self, image: Image.Image) -> Verdict:
        raise NotImplementedError


class NoChecker(_Guarded):
    name = "none"

    def _check(self, image: Image.Image) -> Verdict:
        return Verdict(False, 0.0, [], self.name)


class NudeNetChecker(_Guarded):
    """NudeNet's 320n detector on onnxruntime (the model file ships inside the `nudenet` wheel)."""

    name = "nudenet"

    def __init__(self, labels: tuple[str, ...], threshold: float) -> None:
        try:
            from nudenet import NudeDetector
        except ImportError as exc:
            raise SafetyUnavailable(f"SAFETY_CHECKER=nudenet needs the nudenet package: {NUDENET_INSTALL} "
                                    "(its wheel carries AGPL-3.0 licence files; see docs/safety.md)") from exc
        import numpy

        self._numpy = numpy
        self.labels, self.threshold = labels or NUDENET_LABELS, threshold
        try:
            self.detector = NudeDetector()
        except Exception as exc:
            raise SafetyUnavailable(f"the NudeNet model did not load: {exc}") from exc

    def _check(self, image: Image.Image) -> Verdict:
        bgr = self._numpy.ascontiguousarray(self._numpy.asarray(image)[:, :, ::-1])
        scores: dict[str, float] = {}
        for found in self.detector.detect(bgr):
            scores[found["class"]] = max(scores.get(found["class"], 0.0), float(found["score"]))
        return _verdict(scores, self.labels, self.threshold, self.name)


class ClassifierChecker(_Guarded):
    """A transformers image-classification model, from a local folder or the hub cache."""

    def __init__(self, model: str, labels: tuple[str, ...], threshold: float, device: str | None = None) -> None:
        self.name = f"classifier:{model}"
        self.labels, self.threshold = labels or CLASSIFIER_LABELS, threshold
        self._lock = threading.Lock()  # one pipeline call at a time: pipelines are not documented thread-safe
        try:
            from transformers import pipeline

            self.pipeline = pipeline("image-classification", model=model, device=device or "cpu")
        except Exception as exc:
            where = "folder" if Path(model).exists() else "hub id (from the local cache unless online)"
            raise SafetyUnavailable(f"the safety classifier {model!r} ({where}) did not load: {exc}") from exc
        known = {str(label).lower() for label in self.pipeline.model.config.id2label.values()}
        missing = [label for label in self.labels if label.lower() not in known]
        if missing:
            raise SafetyUnavailable(f"SAFETY_LABELS {missing} are not labels of {model!r}: it has {sorted(known)}")

    def _check(self, image: Image.Image) -> Verdict:
        with self._lock:
            results = self.pipeline(image, top_k=None)
        return _verdict({r["label"]: float(r["score"]) for r in results}, self.labels, self.threshold, self.name)


def load_checker(spec: str, labels: tuple[str, ...] = (), threshold: float = 0.5,
                 device: str | None = None) -> Checker:
    """SAFETY_CHECKER -> a checker. A spec that is not one of the three is a configuration error."""
    spec = spec.strip()
    if spec in ("", "none"):
        return NoChecker()
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"SAFETY_THRESHOLD must lie in [0, 1], not {threshold}")
    if spec == "nudenet":
        return NudeNetChecker(labels, threshold)
    if spec.startswith("classifier:") and spec.removeprefix("classifier:").strip():
        return ClassifierChecker(spec.removeprefix("classifier:").strip(), labels, threshold, device)
    raise ValueError(f"SAFETY_CHECKER must be none, nudenet or classifier:<hub id or folder>, not {spec!r}")
