"""Which `Host` values and which browser origins may reach the server.

A server with no keys on localhost is open to any web page the user visits: a plain HTML form can POST to it
(no CORS preflight for form encodings), and DNS rebinding lets a page reach it under the page's own host
name. So:
- `Host` must be one of ALLOWED_HOSTS. Default with no keys: the bound address and localhost, 127.0.0.1 and
  [::1] (on any port: DNS rebinding needs the attacker's own name). With keys: any host, since a rebound
  page has no key to send.
- a state-changing request (POST, PUT, PATCH, DELETE) from a browser page of another origin (`Origin`, or
  `Sec-Fetch-Site: cross-site | same-site` when no Origin is sent) is refused unless its origin is in
  CORS_ORIGINS, keys or not.
- `/openapi.json` names the server from `checked_base_url`: PUBLIC_BASE_URL, or a host that was checked.
"""

from __future__ import annotations

import re

from flask import Flask, Request, current_app, request

from inference_server.errors import ApiError

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WELL_FORMED_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:\d{1,5})?$")


def split_host(value: str) -> tuple[str, str]:
    """(name, port) of a Host header or an ALLOWED_HOSTS entry; port is "" when absent."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name + "]", rest.removeprefix(":")
    name, colon, port = value.rpartition(":")
    return (name, port) if colon and port.isdigit() else (value, "")


def _bound_host(settings) -> str:
    """HOST as it goes in a URL or a Host header: an IPv6 address in brackets."""
    return f"[{settings.host}]" if ":" in settings.host else settings.host


def allowed_hosts(settings) -> tuple[str, ...]:
    """ALLOWED_HOSTS, or its default: `("*",)` with keys; the bound address and loopback names without."""
    if settings.allowed_hosts:
        return tuple(entry.strip().lower() for entry in settings.allowed_hosts)
    if settings.api_keys:
        return ("*",)
    # on any port: a rebound page brings its own name
    return tuple(dict.fromkeys([_bound_host(settings).lower(), *LOCAL_NAMES]))


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """An entry without a port allows that name on any port; `*` allows every host."""
    if "*" in allowed:
        return True
    if not _WELL_FORMED_HOST.match(host.strip().lower()):
        return False
    name, port = split_host(host)
    return any(entry == f"{name}:{port}" or entry == name for entry in allowed)


def same_origin(origin: str, req: Request, public_base_url: str = "") -> bool:
    """The page came from this server: its origin's host[:port] is the request's Host, or PUBLIC_BASE_URL's.

    The scheme is not compared: a proxy that ends TLS forwards an https page's request over http.
    """
    authority = origin.strip().lower().partition("://")[2]
    public = public_base_url.strip().lower().partition("://")[2].partition("/")[0]
    return bool(authority) and authority in (req.headers.get("Host", "").strip().lower(), public)


def checked_base_url(req: Request) -> str:
    """The server's URL for /openapi.json: PUBLIC_BASE_URL, else the request's host once it is checked.

    When any host is allowed (keys set, no ALLOWED_HOSTS), the bound address stands in; on a wildcard bind,
    the caller's own Host (it sent a key), and only when well formed.
    """
    settings = current_app.config["SETTINGS"]
    public = settings.public_base_url
    if public:
        return public.rstrip("/")
    host = req.headers.get("Host", "").strip().lower()
    if "*" in allowed_hosts(settings):
        wildcard = settings.host in ("0.0.0.0", "::", "")
        host = host if wildcard and _WELL_FORMED_HOST.match(host) else f"{_bound_host(settings)}:{settings.port}"
    return f"{req.scheme}://{host}"


def register(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    allowed = allowed_hosts(settings)

    @app.before_request
    def check_host_and_origin():
        host = request.headers.get("Host", "")
        if not host_allowed(host, allowed):
            raise ApiError(421, "host_not_allowed", f"Host: {host[:100]!r} is not one of ALLOWED_HOSTS", "Host")
        if request.method not in STATE_CHANGING:
            return None
        origin = request.headers.get("Origin")
        if origin is not None and origin in settings.cors_origins:
            return None
        if origin is not None and not same_origin(origin, request, settings.public_base_url):
            raise ApiError(403, "cross_site_request", f"Origin: {origin[:100]} may not change anything here "
                                                      "(not this server's origin, nor in CORS_ORIGINS)", "Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
        if origin is None and fetch_site in ("cross-site", "same-site"):
            raise ApiError(403, "cross_site_request", f"Sec-Fetch-Site: {fetch_site}: a page of another site "
                                                      "may not change anything here", "Sec-Fetch-Site")
        return None
