"""Parse the provider credentials once, with messages that name the credential to fix."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from qwen_client import addresses
from qwen_client.errors import QwenImageError

DEFAULT_BUDGET_S = 540
# The daemon kills a call after PLUGIN_MAX_EXECUTION_TIMEOUT (600 s by default); users
# who raised it may raise the budget too, but an hour is past any sane tool call.
MAX_BUDGET_S = 3600
# Dify's API container in its Docker setup, which serves FILES_URL; the provider YAML declares the same.
DEFAULT_PRIVATE_HOSTS = "api"


@dataclass(frozen=True)
class Settings:
    server_url: str
    api_key: str | None
    budget_s: float
    private_hosts: frozenset[str] = frozenset()  # private hosts input images may come from, besides public ones


def from_credentials(credentials: dict) -> Settings:
    url = str(credentials.get("server_url") or "").strip().rstrip("/")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise QwenImageError(
            f"Server URL '{url}' is not an http(s) URL. "
            "Set it to the inference server's root, e.g. http://gpu-host:8000"
        )
    try:
        addresses.ascii_host(parts.hostname or "")
    except ValueError as exc:
        raise QwenImageError(f"Server URL '{url}': its host is not a valid host name ({exc}).") from None
    key = str(credentials.get("api_key") or "").strip() or None
    raw = str(credentials.get("timeout_seconds") or "").strip() or str(DEFAULT_BUDGET_S)
    try:
        budget = float(raw)
    except ValueError:
        budget = -1.0
    if not 1 <= budget <= MAX_BUDGET_S:
        raise QwenImageError(
            f"Timeout '{raw}' must be a number of seconds between 1 and {MAX_BUDGET_S}; "
            f"keep it under the daemon's PLUGIN_MAX_EXECUTION_TIMEOUT (600 s by default)."
        )
    return Settings(server_url=url, api_key=key, budget_s=budget,
                    private_hosts=_hosts(credentials.get("private_image_hosts") or DEFAULT_PRIVATE_HOSTS))


def _hosts(raw: str) -> frozenset[str]:
    """'api, files.internal:8080, http://10.0.0.5, fd00::5' -> {'api', 'files.internal', '10.0.0.5', 'fd00::5'}."""
    hosts = set()
    for entry in str(raw).replace(",", " ").split():
        if entry.count(":") > 1 and "[" not in entry and "//" not in entry:  # a bare IPv6 address
            entry = f"[{entry}]"
        try:
            host = addresses.ascii_host(urlsplit(entry if "//" in entry else "//" + entry).hostname or "")
        except ValueError:
            host = None
        if not host:
            raise QwenImageError(f"Private image hosts: '{entry}' is not a host name or address.")
        hosts.add(host)
    return frozenset(hosts)
