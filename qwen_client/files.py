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
import time
from urllib.parse import urljoin, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from qwen_client import addresses, transfer
from qwen_client.errors import InputFileError

MAX_BYTES = 50 * 1024 * 1024
READ_TIMEOUT_S = 60
MAX_REDIRECTS = 5


def download(url: str, what: str, private_hosts: frozenset[str], deadline: float | None = None,
             param: str | None = None) -> bytes:
    """Return the bytes at url; `what` names the input and `param` the tool parameter in errors.

    Every hop must be public or one of `private_hosts`, and is connected to at the address
    that was checked: redirects are followed by hand. The whole download ends by `deadline`
    (a time.monotonic() value; by default READ_TIMEOUT_S from now).
    """
    url = (url or "").strip()
    param = param or what
    if _scheme(url) not in ("http", "https"):
        raise InputFileError(
            f"The {what} URL '{url}' has no http(s) scheme. Dify builds file URLs from its "
            "FILES_URL setting: set FILES_URL in Dify's .env (e.g. http://api:5001, an address "
            "the plugin daemon can reach) and restart Dify. Agents must pass a full http(s) URL."
        )
    start = time.monotonic()
    deadline = start + READ_TIMEOUT_S if deadline is None else deadline
    try:
        with _get_checked(url, what, param, private_hosts, deadline) as resp:
            if resp.status >= 400:
                raise InputFileError(
                    f"Downloading the {what} failed: HTTP {resp.status} from {transfer.short_url(url)}. "
                    "Dify file URLs expire 5 minutes after they are signed; check the URL "
                    "and that the file still exists."
                )
            data = resp.read(MAX_BYTES)
    except transfer.DeadlineExceeded as exc:
        raise InputFileError(
            f"Downloading the {what} from {transfer.short_url(url)} timed out: it did not finish within "
            f"{max(0.0, deadline - start):.0f} s, the time the call's Timeout left. Check that the "
            "plugin daemon can reach that host (for Dify's files: its FILES_URL) and that it is not slow."
        ) from exc
    except transfer.TooLarge as exc:
        raise InputFileError(f"The {what} is larger than {MAX_BYTES // 2**20} MB ({exc}).") from exc
    except transfer.TransferError as exc:
        raise InputFileError(
            f"Downloading the {what} from {transfer.short_url(url)} failed ({exc}). "
            "Check that the plugin daemon can reach that host (for Dify's files: its FILES_URL)."
        ) from exc
    if not data:
        raise InputFileError(f"The {what} at {transfer.short_url(url)} is empty.")
    return data


def _get_checked(url: str, what: str, param: str, private_hosts: frozenset[str], deadline: float):
    """Follow redirects by hand, checking every hop and connecting to the checked address."""
    for _ in range(MAX_REDIRECTS + 1):
        pinned = _check_reachable(url, what, private_hosts, param)
        response = transfer.get(url, deadline, headers={"Accept": "image/*"}, addresses=pinned,
                                read_timeout=READ_TIMEOUT_S)
        location = response.redirect_location()
        if not location:
            return response
        response.close()
        url = urljoin(url, location)
        if _scheme(url) not in ("http", "https"):
            raise InputFileError(f"The {what} URL redirects to '{transfer.short_url(url)}', which is not http(s).")
    raise InputFileError(f"The {what} URL redirects more than {MAX_REDIRECTS} times.")


def _check_reachable(url: str, what: str, private_hosts: frozenset[str], param: str | None = None) -> list[str]:
    """Resolve the host once; every address must be public unless the host is listed. The
    connection then goes to these addresses only, so a second lookup cannot rebind it."""
    host = _host(url, what, param or what)
    listed = host in private_hosts or (urlsplit(url).hostname or "") in private_hosts
    try:
        found = [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputFileError(f"The {what} URL's host '{host}' does not resolve.") from exc
    for address in dict.fromkeys(found):
        ip = ipaddress.ip_address(address.split("%")[0])
        if not listed and not addresses.is_public(ip):
            inner = addresses.embedded_ipv4(ip)
            shown = f"{ip}, which embeds {inner}" if inner else str(ip)
            raise InputFileError(
                f"The {what} URL '{transfer.short_url(url)}' points to a private address ({shown}). "
                "Images are fetched only from public hosts and those listed in 'Private image hosts' in the "
                f"plugin's authorization: add '{host}' there if it is yours (Dify's FILES_URL host, say)."
            )
    return list(dict.fromkeys(found))


def _host(url: str, what: str, param: str) -> str:
    """The host to connect to; a URL whose host is no valid name, or reads two ways, is refused."""
    raw = urlsplit(url).hostname or ""
    try:
        host = addresses.ascii_host(raw)
        connected = addresses.ascii_host(parse_url(url).host or "")
    except (ValueError, LocationParseError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "it cannot be parsed"
        raise InputFileError(
            f"Parameter '{param}': the {what} URL's host {raw!r} is not a valid host name: {reason}. "
            "Send a plain http(s) URL."
        ) from None
    if connected != host:
        raise InputFileError(f"The {what} URL '{url}' is ambiguous (its host reads two ways); send a plain URL.")
    return host


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # e.g. an unclosed '[': no URL at all
        return ""
