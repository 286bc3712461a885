"""Download input images from Dify's file service (or an agent's URL) with our own timeout.

The SDK's File.blob uses a 5 s timeout and a vague error; a signed Dify URL also
expires after 300 s, so the plugin fetches early and says exactly what went wrong.

Every URL may have been chosen by someone other than the operator: an agent's `image_url` by
anyone who can prompt it, a Dify file uploaded "by URL" by the end user. So each hop may only
reach public addresses, or hosts the operator listed (Dify's own FILES_URL host among them):
the plugin daemon must not become a way into the private network.
"""

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from qwen_client.errors import InputFileError

MAX_BYTES = 50 * 1024 * 1024
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60

_session = requests.Session()
_adapter = HTTPAdapter(max_retries=Retry(
    total=3, connect=3, read=False, status=2, other=0, backoff_factor=0.5,
    status_forcelist=(502, 503, 504), allowed_methods=frozenset({"GET"}), raise_on_status=False,
))
_session.mount("http://", _adapter)
_session.mount("https://", _adapter)


MAX_REDIRECTS = 5


def download(url: str, what: str, private_hosts: frozenset[str], read_timeout: float = READ_TIMEOUT_S) -> bytes:
    """Return the bytes at url; `what` names the parameter in error messages.

    Every hop must be public or one of `private_hosts`: redirects are followed by hand.
    """
    url = (url or "").strip()
    if urlsplit(url).scheme not in ("http", "https"):
        raise InputFileError(
            f"The {what} URL '{url}' has no http(s) scheme. Dify builds file URLs from its "
            "FILES_URL setting: set FILES_URL in Dify's .env (e.g. http://api:5001, an address "
            "the plugin daemon can reach) and restart Dify. Agents must pass a full http(s) URL."
        )
    timeout = max(1.0, min(READ_TIMEOUT_S, read_timeout))
    try:
        with _get_checked(url, what, private_hosts, timeout) as resp:
            if resp.status_code >= 400:
                raise InputFileError(
                    f"Downloading the {what} failed: HTTP {resp.status_code} from {_short(url)}. "
                    "Dify file URLs expire 5 minutes after they are signed; check the URL "
                    "and that the file still exists."
                )
            data = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                data += chunk
                if len(data) > MAX_BYTES:
                    raise InputFileError(f"The {what} is larger than {MAX_BYTES // 2**20} MB.")
    except requests.Timeout as exc:
        raise InputFileError(
            f"Downloading the {what} from {_short(url)} timed out after {timeout:.0f} s. "
            "Check that the plugin daemon can reach that host (for Dify's files: its FILES_URL)."
        ) from exc
    except requests.RequestException as exc:
        raise InputFileError(
            f"Downloading the {what} from {_short(url)} failed ({type(exc).__name__}). "
            "Check that the plugin daemon can reach that host (for Dify's files: its FILES_URL)."
        ) from exc
    if not data:
        raise InputFileError(f"The {what} at {_short(url)} is empty.")
    return bytes(data)


def _get_checked(url: str, what: str, private_hosts: frozenset[str], timeout: float) -> requests.Response:
    """Follow redirects by hand, checking every hop before connecting to it."""
    for _ in range(MAX_REDIRECTS + 1):
        _check_reachable(url, what, private_hosts)
        response = _session.get(url, timeout=(CONNECT_TIMEOUT_S, timeout), stream=True, allow_redirects=False)
        location = response.headers.get("Location")
        if not (response.is_redirect and location):
            return response
        response.close()
        url = urljoin(url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise InputFileError(f"The {what} URL redirects to '{_short(url)}', which is not http(s).")
    raise InputFileError(f"The {what} URL redirects more than {MAX_REDIRECTS} times.")


def _check_reachable(url: str, what: str, private_hosts: frozenset[str]) -> None:
    host = _host(url, what)
    if host in private_hosts:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        raise InputFileError(f"The {what} URL's host '{host}' does not resolve.") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise InputFileError(
                f"The {what} URL '{_short(url)}' points to a private address ({ip}). Images are fetched only "
                f"from public hosts and those listed in 'Private image hosts' in the plugin's authorization: "
                f"add '{host}' there if it is yours (Dify's FILES_URL host, say)."
            )


def _host(url: str, what: str) -> str:
    """The host requests will connect to; a URL that two parsers read differently is refused."""
    connected = (parse_url(url).host or "").lower().strip("[]")
    if connected != (urlsplit(url).hostname or "").lower():
        raise InputFileError(f"The {what} URL '{url}' is ambiguous (its host reads two ways); send a plain URL.")
    return connected


def _short(url: str) -> str:
    """The URL without its query: Dify's signature is noise in a message."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
