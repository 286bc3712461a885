"""Which host names are well formed, and which addresses count as public (pure, no I/O)."""

import ipaddress

import idna

# IPv6 ranges that carry an IPv4 address in their low 32 bits: the IPv4 address is what
# the packets finally reach, so it is checked by the IPv4 rules.
_LOW_32_EMBEDDING = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, RFC 6052
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated, RFC 2765
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (::a.b.c.d), deprecated but routable on some hosts
)
# NAT64 for local use (RFC 8215): the operator's own translator, never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def ascii_host(host: str) -> str:
    """The host as DNS and TLS see it; ValueError(reason) when it is no valid host name.

    IP literals pass as they are. ASCII labels keep underscores (Docker service names have
    them); non-ASCII and xn-- labels must be valid IDNA.
    """
    host = (host or "").lower()
    if not host:
        raise ValueError("the host is empty")
    if ":" in host:  # only an IPv6 literal has colons here
        try:
            return str(ipaddress.IPv6Address(host.strip("[]").split("%")[0]))
        except ValueError:
            raise ValueError("it is not a valid IPv6 address") from None
    return _name(host)  # dotted and bare-number IPv4 forms are labels too; the resolver reads them


def _name(host: str) -> str:
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    out = []
    for label in labels:
        if not label:
            raise ValueError("it has an empty label")
        if not label.isascii():
            try:
                label = idna.encode(label, uts46=True).decode("ascii")
            except idna.IDNAError as exc:
                raise ValueError(f"it is not valid IDNA ({exc})") from None
        elif label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError as exc:
                raise ValueError(f"the label '{label}' is not valid punycode ({exc})") from None
        elif not all(c.isalnum() or c in "-_" for c in label):
            raise ValueError(f"the label '{label}' has characters a host name cannot have")
        if len(label) > 63:
            raise ValueError(f"a label is {len(label)} characters long, over DNS's 63")
        out.append(label)
    name = ".".join(out)
    if len(name) > 253:
        raise ValueError(f"it is {len(name)} characters long, over DNS's 253")
    return name


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, IPv4-compatible), if any."""
    if ip.version == 4:
        return None
    found = ip.ipv4_mapped or ip.sixtofour
    if found is None and any(ip in net for net in _LOW_32_EMBEDDING):
        found = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return found


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when the address is global unicast, after unwrapping any IPv4 address it embeds."""
    if ip.version == 6 and ip in _LOCAL_NAT64:
        return False
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        return is_public(embedded)
    return ip.is_global and not ip.is_multicast
