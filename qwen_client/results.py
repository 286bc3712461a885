"""Fetch a job's result images without trusting the server further than its own origin.

A broken or hostile server must not make the plugin hold gigabytes, hang past the call's
budget, or fetch some internal URL and hand its body to the user as an image. So:
- each image is capped at MAX_PIXELS worth of bytes (from /v1/info), and the call as a whole too;
- every fetch ends by the call's deadline, however slowly the bytes come;
- redirects are followed by hand, only within the server's origin or to an origin the job
  names for that image: its absolute `url` (a presigned storage URL, say) or its
  `storage_origin`; the API key goes to the server's origin only;
- what comes back must start like a PNG, JPEG or WebP file.
"""

import json
import time
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

from qwen_client import transfer
from qwen_client.errors import ServerError

DEFAULT_MAX_PIXELS = 2048 * 2048
BYTES_PER_PIXEL = 4  # a PNG of RGBA pixels, before compression
MARGIN_BYTES = 1024 * 1024  # headers, metadata and compression overhead
# Whatever /v1/info says: Dify keeps a blob under 50 MB anyway.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_CALL_BYTES = 128 * 1024 * 1024
MAX_INFO_BYTES = 256 * 1024
INFO_TIMEOUT_S = 5
MAX_REDIRECTS = 3
READ_TIMEOUT_S = 30
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def image_cap(max_pixels: int) -> int:
    """Bytes one result image may take: MAX_PIXELS of uncompressed RGBA plus a margin."""
    return min(MAX_IMAGE_BYTES, max_pixels * BYTES_PER_PIXEL + MARGIN_BYTES)


class ResultFetcher:
    """One call's result downloads: a byte allowance shared by its images, one deadline."""

    def __init__(self, base: str, api_key: str | None, deadline: float, wanted: int):
        self.base = base
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._deadline = deadline
        self.per_image = image_cap(self._max_pixels())
        self.call_cap = self.call_left = min(MAX_CALL_BYTES, self.per_image * max(1, wanted))

    def _max_pixels(self) -> int:
        """The server's MAX_PIXELS from /v1/info; the default when it does not say."""
        deadline = min(self._deadline, time.monotonic() + INFO_TIMEOUT_S)
        try:
            with transfer.get(self.base + "/v1/info", deadline, headers=self._auth, retries=0) as resp:
                info = json.loads(resp.read(MAX_INFO_BYTES)) if resp.status == 200 else {}
            value = info.get("limits", {}).get("max_pixels")
        except (transfer.TransferError, ValueError, AttributeError):
            value = None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_PIXELS

    def fetch(self, image: Mapping) -> bytes:
        """The bytes of one image entry of a succeeded job."""
        url = urljoin(self.base + "/", str(image.get("url") or ""))
        home = origin(self.base)
        where = f"The inference server at {self.base} returned an image URL"
        if urlsplit(url).scheme not in ("http", "https"):
            raise ServerError(f"{where} that is not http(s): {url!r}.")
        if origin(url) == home and not urlsplit(url).path.startswith("/v1/files/"):
            raise ServerError(f"{where} outside its files: {url!r}.")
        named = {home, origin(url)}  # an absolute url elsewhere is a storage URL the job names
        storage = str(image.get("storage_origin") or "")  # where /v1/files/... may redirect (presigned)
        if urlsplit(storage).scheme in ("http", "https") and urlsplit(storage).hostname:
            named.add(origin(storage))
        data = self._get(url, named, min(self.per_image, self.call_left))
        self.call_left -= len(data)
        if not data.startswith(SIGNATURES) and not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise ServerError(
                f"The inference server at {self.base} returned {transfer.short_url(url)}, which is not a PNG, "
                "JPEG or WebP image; it was not passed on."
            )
        return data

    def _get(self, url: str, named: set, cap: int) -> bytes:
        what = f"image {transfer.short_url(url)} from the inference server at {self.base}"
        try:
            for _ in range(MAX_REDIRECTS + 1):
                headers = self._auth if origin(url) == origin(self.base) else {}
                with transfer.get(url, self._deadline, headers=headers, read_timeout=READ_TIMEOUT_S) as resp:
                    location = resp.redirect_location()
                    if not location and resp.status >= 400:
                        raise ServerError(f"Fetching {what} answered HTTP {resp.status}.", resp.status)
                    if not location:
                        return resp.read(cap)
                target = urljoin(url, location)
                if origin(target) not in named:
                    raise ServerError(
                        f"Fetching {what} redirected to {transfer.short_url(target)}, an origin the job does "
                        "not name; it was not followed. A server that keeps images elsewhere must put their "
                        "absolute URLs in the job."
                    )
                url = target
        except transfer.DeadlineExceeded as exc:
            raise ServerError(
                f"Fetching {what} did not finish within the call's Timeout. Raise the Timeout "
                "credential, or check the network to the server."
            ) from exc
        except transfer.TooLarge as exc:
            raise ServerError(
                f"The {what} is too large ({exc}): the plugin takes at most {self.per_image:,} bytes per "
                f"image (from the server's MAX_PIXELS) and {self.call_cap:,} bytes per call. The download "
                "was stopped."
            ) from exc
        except transfer.TransferError as exc:
            raise ServerError(f"Fetching {what} failed ({exc}).") from exc
        raise ServerError(f"The {what} redirects more than {MAX_REDIRECTS} times.")
