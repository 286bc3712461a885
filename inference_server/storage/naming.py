"""The one naming rule of result files, shared by every store: same bytes, same name, no job ids."""

from __future__ import annotations

import hashlib
import re

_NAME = re.compile(r"^[0-9a-f]{40}\.(png|webp|jpg)$")
MIME_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}


def content_name(data: bytes, extension: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()[:40]}.{extension}"


def is_content_name(name: str) -> bool:
    """Only names a store made pass: no user input ever becomes a path or an object key."""
    return bool(_NAME.match(name))
