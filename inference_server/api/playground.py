"""GET /ui: the web playground, static files only (no key needed to load them; the page asks for one)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, redirect, send_from_directory

bp = Blueprint("playground", __name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "playground"
PUBLIC_PREFIX = "/ui/"
# Everything comes from this server: no CDN, no inline script, images from our files or blob: URLs.
_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


@bp.get("/ui")
def playground_root():
    return redirect("/ui/", code=308)


@bp.get("/ui/")
@bp.get("/ui/<path:name>")
def playground_file(name: str = "index.html"):
    """send_from_directory refuses paths that leave STATIC_DIR, with a 404."""
    response = send_from_directory(STATIC_DIR, name, mimetype=_TYPES.get(Path(name).suffix),
                                   max_age=0 if name == "index.html" else 300)
    response.headers["Content-Security-Policy"] = _POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
