"""Signed image links: `/v1/files/{name}?expires=&sig=` opens without the API key until it expires.

A chat, a markdown answer or an OpenAI `url` response cannot send a Bearer header, so with `API_KEYS` set
every image URL the server hands out carries an HMAC-SHA256 over the file's name and the expiry, made with
FILE_URL_SECRET. Jobs keep plain `/v1/files/{name}` paths; the links are signed here, when a job is rendered
for an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from flask import Request, request

from inference_server.api.hosts import checked_base_url
from inference_server.config import Settings
from inference_server.errors import ApiError

log = logging.getLogger(__name__)
FILES_PREFIX = "/v1/files/"
SECRET_FILE = "file_url_secret"


def server_url() -> str:
    """Where clients reach the server: PUBLIC_BASE_URL, else this request's host once checked (`api/hosts.py`)."""
    return checked_base_url(request)


def load_secret(settings: Settings) -> bytes:
    """FILE_URL_SECRET, else the one generated into DATA_DIR on the first start (mode 600), so links outlive restarts."""
    if settings.file_url_secret:
        return settings.file_url_secret.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    log.info("generated the file link secret in %s", path)
    return path.read_text().strip().encode()


class FileLinks:
    def __init__(self, settings: Settings):
        self.signed = bool(settings.api_keys)  # without keys every file opens anyway
        self.ttl_s = settings.file_url_ttl_s
        self.public_base = settings.public_base_url.strip().rstrip("/")
        self._secret = load_secret(settings) if self.signed else b""
        # Where /v1/files redirects to with S3 presigning: named in every image, so clients may follow it
        # (set from the store by `name_storage`; on AWS the endpoint is the region's, chosen by boto3).
        self._presigns = settings.storage == "s3" and settings.s3_presign
        self.storage_origin = _origin(settings.s3_public_endpoint_url or settings.s3_endpoint_url) \
            if self._presigns else ""

    def name_storage(self, files) -> None:
        if self.storage_origin == "" and getattr(files, "link_origin", "") and self._presigns:
            self.storage_origin = files.link_origin

    # ---- making links ----------------------------------------------------------------------
    def signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def path(self, name: str, now: float | None = None) -> str:
        """`/v1/files/{name}`, with `?expires=&sig=` when keys are on."""
        path = FILES_PREFIX + quote(name)
        if not self.signed:
            return path
        expires = int((time.time() if now is None else now) + self.ttl_s)
        return f"{path}?expires={expires}&sig={self.signature(name, expires)}"

    def render(self, job: dict) -> dict:
        """The job as answered: each image's `url` signed (absolute with PUBLIC_BASE_URL), plus `absolute_url`."""
        images = []
        for image in job.get("images") or []:
            url = image.get("url", "")
            if not url.startswith(FILES_PREFIX):
                images.append(image)
                continue
            path = self.path(url.removeprefix(FILES_PREFIX))
            absolute = server_url() + path
            extra = {"storage_origin": self.storage_origin} if self.storage_origin else {}
            images.append({**image, "url": absolute if self.public_base else path, "absolute_url": absolute, **extra})
        return {**job, "images": images}

    # ---- opening links ---------------------------------------------------------------------
    def admits(self, req: Request) -> bool:
        """True for a file request with a valid signature; 403 for a file request without one; False otherwise."""
        if not self.signed or not req.path.startswith(FILES_PREFIX):
            return False
        name = req.path.removeprefix(FILES_PREFIX)
        expires_raw, sig = req.args.get("expires", ""), req.args.get("sig", "")
        if not sig or not expires_raw:
            raise ApiError(403, "signature_required", "this file link is not signed: send the API key, "
                                                      "or use the signed url from the job", "sig")
        try:
            expires = int(expires_raw)
        except ValueError:
            raise ApiError(403, "invalid_signature", "expires: not a whole number of seconds", "expires") from None
        if not hmac.compare_digest(sig, self.signature(name, expires)):
            raise ApiError(403, "invalid_signature", "this file link's signature does not match", "sig")
        if expires < time.time():
            raise ApiError(403, "link_expired", "this file link has expired: read the job again for a fresh one",
                           "expires")
        return True


def _origin(url: str) -> str:
    """scheme://host[:port] of an endpoint URL (empty: AWS itself, whose host depends on the region)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
