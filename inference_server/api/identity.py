"""Who is calling, for the jobs layer: keys are tenants.

A job belongs to the key that submitted it, stored as a fingerprint of the key (never the key). That key,
and the keys in ADMIN_KEYS, see the job, its events and its files and may cancel it; any other key gets 404,
as for a job that does not exist. A server without keys has one tenant: everyone sees everything.
"""

from __future__ import annotations

import hashlib

from flask import Request

from inference_server.api.security import bearer_token, key_matches
from inference_server.config import Settings


def fingerprint(key: str) -> str:
    return hashlib.sha256(f"qwen-image job owner\0{key}".encode()).hexdigest()[:32]


def owner(request: Request, settings: Settings) -> str | None:
    """The fingerprint a new job is stored under; None on a server without keys."""
    return fingerprint(bearer_token(request)) if settings.api_keys else None


def viewer(request: Request, settings: Settings) -> str | None:
    """Whose jobs the caller may see: its own fingerprint, or None for every job (an admin key, or no keys)."""
    if not settings.api_keys:
        return None
    token = bearer_token(request)
    if settings.admin_keys and key_matches(token, settings.admin_keys):
        return None
    return fingerprint(token)
