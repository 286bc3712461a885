"""What happens to an image a checker found unsafe (SAFETY_POLICY): flag it, blur it, or block it.

`screen(checker, image, policy)` is the one call the job flow needs: it checks, applies the policy, and
returns the image to store (None when blocked) with the entry the job's image carries under "safety".
A checker that fails raises SafetyUnavailable; the caller fails the job with `safety_unavailable`.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

from inference_server.safety.checkers import Checker, SafetyUnavailable, Verdict

POLICIES = ("flag", "blur", "block")
UNSAFE_CONTENT = "unsafe_content"  # the job's error code when every image of it was blocked
ACTIONS = {"flag": "flagged", "blur": "blurred", "block": "blocked"}
# The long side a blurred image is reduced to before it is scaled back: nothing finer survives.
BLUR_CELLS = 12

__all__ = ["POLICIES", "UNSAFE_CONTENT", "SafetyUnavailable", "apply", "blur", "screen", "all_blocked",
           "cache_tag"]


def blur(image: Image.Image) -> Image.Image:
    """Pixelate to BLUR_CELLS cells on the long side, scale back, then blur the cell edges away."""
    width, height = image.size
    scale = BLUR_CELLS / max(width, height)
    small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    return small.resize(image.size, Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(radius=max(width, height) / (BLUR_CELLS * 2)))


def apply(image: Image.Image, verdict: Verdict, policy: str) -> tuple[Image.Image | None, dict]:
    """(image to store or None, the image entry's "safety" object)."""
    if policy not in POLICIES:
        raise ValueError(f"SAFETY_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}")
    entry = {"checked": verdict.checker != "none", "checker": verdict.checker, "flagged": verdict.flagged,
             "score": verdict.score, "labels": list(verdict.labels), "action": "none", "blocked": False}
    if not verdict.flagged:
        return image, entry
    entry["action"] = ACTIONS[policy]
    if policy == "block":
        entry["blocked"] = True
        return None, entry
    if policy == "blur":
        return blur(image), entry
    return image, entry


def screen(checker: Checker, image: Image.Image, policy: str) -> tuple[Image.Image | None, dict]:
    """Check then apply. Never returns an unchecked image: a failing checker raises SafetyUnavailable."""
    if policy not in POLICIES:
        raise ValueError(f"SAFETY_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}")
    try:
        verdict = checker.check(image)
    except SafetyUnavailable:
        raise
    except Exception as exc:  # a checker that does not guard itself
        raise SafetyUnavailable(f"safety checker {getattr(checker, 'name', '?')} failed: {exc}") from exc
    return apply(image, verdict, policy)


def all_blocked(entries: list[dict]) -> bool:
    """A job whose every image was blocked fails with UNSAFE_CONTENT."""
    return bool(entries) and all(entry.get("blocked") for entry in entries)


def cache_tag(checker: str, policy: str, labels: tuple[str, ...], threshold: float) -> str:
    """Part of the result-cache key: a result made under other safety settings is never served."""
    return f"{checker}|{policy}|{','.join(sorted(label.lower() for label in labels))}|{threshold:g}"
