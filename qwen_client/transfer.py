"""One bounded HTTP GET: a deadline for the whole transfer, a byte cap, and optionally a pinned address.

requests bounds each socket read, not the transfer: a server that drips a byte every
couple of seconds keeps a download alive forever, and a body is read whole into memory.
Here every read of the headers and body gets at most the time left before the deadline,
the body is streamed and dropped past a cap, and a caller that checked an address can make
the connection go to that address only (the host name still goes into SNI, the
certificate check and the Host header), so a second DNS lookup cannot rebind it.
Redirects are never followed here: each caller has its own rule for them.
"""

import functools
import http.client
import io
import os
import socket
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import certifi
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError
from urllib3.util import connection as urllib3_connection
from urllib3.util import parse_url

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
CHUNK = 64 * 1024
USER_AGENT = "qwen-image-dify-plugin"


class TransferError(Exception):
    """The transfer failed; the message is a short reason for a user-facing sentence."""


class DeadlineExceeded(TransferError):
    """The whole transfer did not finish by its deadline."""


class ConnectFailed(TransferError):
    """No connection could be made; safe to retry."""


class TooLarge(TransferError):
    """The body is, or announced it would be, over the cap."""


def short_url(url: str) -> str:
    """The URL without its query: a signature there is noise in a message, and may be a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def ca_bundle() -> str:
    """The CA file requests would use: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()


class _DeadlineReader(io.RawIOBase):
    """The socket's own reader, but every read ends by the deadline."""

    def __init__(self, sock, deadline: float, read_timeout: float):
        # makefile() also holds a reference that keeps the socket open when http.client
        # "closes" the connection of a response that ends with the connection.
        self._raw = sock.makefile("rb", buffering=0)
        self._sock, self._deadline, self._read_timeout = sock, deadline, read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the deadline passed")
        self._sock.settimeout(min(self._read_timeout, left))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client.HTTPResponse needs of a socket: a makefile() bound by the deadline."""

    def __init__(self, sock, deadline: float, read_timeout: float):
        self._sock, self._deadline, self._read_timeout = sock, deadline, read_timeout

    def makefile(self, *args, **kwargs):
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline, self._read_timeout))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, deadline: float, read_timeout: float, **kwargs):
        super().__init__(_DeadlineSocket(sock, deadline, read_timeout), *args, **kwargs)


class _BoundedMixin:
    """Connect only to the given addresses (when any), and read through the deadline.

    The connect timeout is at most the time left, and the ssl module (gevent's too) bounds
    the whole TLS handshake by it, so connecting cannot outlast the deadline either.
    """

    def __init__(self, *args, addresses: Sequence[str] = (), deadline: float, read_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = tuple(addresses)
        self.response_class = functools.partial(_DeadlineResponse, deadline=deadline, read_timeout=read_timeout)

    def _new_conn(self) -> socket.socket:
        if not self._addresses:
            return super()._new_conn()
        last: OSError | None = None
        for address in self._addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port), self.timeout, socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} ({address}) timed out.") from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}")


class _PinnedHTTP(_BoundedMixin, HTTPConnection):
    pass


class _PinnedHTTPS(_BoundedMixin, HTTPSConnection):
    pass


class Response:
    """A response whose body has not been read; close it, or use it as a context manager."""

    def __init__(self, url: str, conn: HTTPConnection, raw, deadline: float):
        self.url, self._conn, self._raw, self._deadline = url, conn, raw, deadline
        self.status: int = raw.status
        self.headers: Mapping[str, str] = raw.headers

    def redirect_location(self) -> str | None:
        """The Location of a 301/302/303/307/308, else None."""
        return self._raw.get_redirect_location() or None

    def read(self, max_bytes: int) -> bytes:
        """The whole body, or TooLarge as soon as it passes max_bytes (never more is held)."""
        announced = self.headers.get("Content-Length", "")
        if announced.strip().isdigit() and int(announced) > max_bytes:
            raise TooLarge(f"it announces {int(announced):,} bytes, over the {max_bytes:,}-byte cap")
        data = bytearray()
        try:
            for chunk in self._raw.stream(CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise TooLarge(f"it sent more than the {max_bytes:,}-byte cap")
        except (HTTPError, OSError) as exc:
            raise _reason(exc, self._deadline) from exc
        return bytes(data)

    def close(self) -> None:
        self._raw.close()
        self._conn.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


RETRY_STATUSES = frozenset({502, 503, 504})


def get(url: str, deadline: float, headers: Mapping[str, str] | None = None,
        addresses: Sequence[str] = (), read_timeout: float = READ_TIMEOUT_S, retries: int = 2) -> Response:
    """Send GET url and read the status and headers, all by the deadline.

    `addresses`: connect to these (already checked) addresses instead of resolving the host.
    A failed connection and a 502/503/504 are retried with backoff while time is left.
    """
    for attempt in range(retries + 1):
        pause = 0.5 * 2 ** attempt
        last = attempt == retries or time.monotonic() + pause >= deadline
        try:
            response = _get_once(url, deadline, headers, addresses, read_timeout)
        except ConnectFailed:
            if last:
                raise
        else:
            if last or response.status not in RETRY_STATUSES:
                return response
            response.close()
        time.sleep(pause)
    raise AssertionError("unreachable")


def _get_once(url: str, deadline: float, headers: Mapping[str, str] | None,
              addresses: Sequence[str], read_timeout: float) -> Response:
    parts = parse_url(url)
    if parts.scheme not in ("http", "https") or not parts.host:
        raise TransferError(f"'{url}' is not an http(s) URL")
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("no time was left")
    kwargs = {"addresses": addresses, "deadline": deadline, "read_timeout": read_timeout,
              "timeout": min(CONNECT_TIMEOUT_S, left)}
    host = parts.host.strip("[]")
    if parts.scheme == "https":
        conn = _PinnedHTTPS(host, parts.port, cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle(), **kwargs)
    else:
        conn = _PinnedHTTP(host, parts.port, **kwargs)
    sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
    try:
        # identity only, and nothing decoded: a compressed body cannot inflate past the cap.
        conn.request("GET", parts.request_uri, headers=sent, preload_content=False, decode_content=False)
        raw = conn.getresponse()
    except (TransferError, HTTPError, OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _reason(exc, deadline) from exc
    return Response(url, conn, raw, deadline)


def _reason(exc: BaseException, deadline: float) -> TransferError:
    if isinstance(exc, TransferError):
        return exc
    if time.monotonic() >= deadline - 0.05:
        return DeadlineExceeded("the deadline passed")
    text = str(exc)
    if isinstance(exc, NewConnectionError):  # before timeouts: urllib3 makes it a ConnectTimeoutError too
        return ConnectFailed(f"cannot connect ({text.split(':')[-1].strip()})")
    if isinstance(exc, (TimeoutError, ReadTimeoutError, ConnectTimeoutError)):
        return TransferError("it timed out")
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return TransferError(f"the TLS certificate was refused ({text.split(':')[-1].strip() or 'verify failed'})")
    return TransferError(type(exc).__name__)
