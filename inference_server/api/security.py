"""API keys (constant-time) on every endpoint but the health checks, and a closed-by-default CORS."""

from __future__ import annotations

import hmac

from flask import Flask, g, request

from inference_server.errors import ApiError

OPEN_PATHS = {"/healthz", "/readyz", "/ui", "/openapi.json"}  # /openapi.json: Dify's "Import from URL" sends no key
OPEN_PREFIXES = ("/ui/",)  # the playground's static files; the page sends the key on its API calls


def bearer_token(req) -> str:
    """The key sent as `Authorization: Bearer <key>`; empty when none is."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def key_matches(sent: str, keys: tuple[str, ...]) -> bool:
    """Compare against every key, so the timing says nothing about which one (or how much) matched."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(sent.encode(), key.encode())
    return matched


def register(app: Flask) -> None:
    settings = app.config["SETTINGS"]

    @app.before_request
    def require_key():
        if request.method == "OPTIONS" or request.path in OPEN_PATHS or not settings.api_keys:
            return None
        if request.path.startswith(OPEN_PREFIXES):  # every path under it is routed to the static files
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key_matches(token.strip(), settings.api_keys):
            links = app.config.get("FILE_LINKS")  # a signed /v1/files link opens without the key (api/file_links.py)
            if not token.strip() and links is not None and links.admits(request):
                g.signed_link = True  # the signature is the authorisation: whoever holds the link may read it
                return None
            raise ApiError(401, "unauthorized", "send a valid key as 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="qwen-image"'})
        return None

    @app.after_request
    def cors(response):
        origin = request.headers.get("Origin")
        if origin and origin in settings.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Prefer"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        return response
