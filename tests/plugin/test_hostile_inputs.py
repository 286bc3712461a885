"""Hostile input image URLs (issue 15, items 11, 13, 14, 16): slow hosts, DNS rebinding,
IPv6 forms that hide an IPv4 address, and host names that are not valid IDNA.

Most run qwen_client.files in this process, where a fake resolver can stand in for DNS
(socket.getaddrinfo, patched for one test only); the rest go through the plugin's stdio protocol.
"""

import ipaddress
import socket
import threading
import time

import pytest

from tests.plugin.fake_server import png
from tests.plugin.hostile_server import HostileServer, ImageHost, drip, twin_hosts
from tests.plugin.test_resilience import assert_healthy, creds

REAL_GETADDRINFO = socket.getaddrinfo


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> dict[str, int]:
    """Resolve each listed name to its answers in turn (the last one repeats); count the lookups."""
    lookups = dict.fromkeys(answers, 0)

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        address = answers[host][min(lookups[host], len(answers[host]) - 1)]
        lookups[host] += 1
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_a_host_that_rebinds_is_fetched_from_the_address_that_was_checked(monkeypatch):
    from qwen_client import files

    public, internal = twin_hosts(png(color=(0, 0, 255)), b"internal secret")
    try:
        # 127.0.0.2 plays a public address here; 127.0.0.1 is the internal service.
        is_global = ipaddress.IPv4Address.is_global
        monkeypatch.setattr(ipaddress.IPv4Address, "is_global",
                            property(lambda ip: str(ip) == "127.0.0.2" or is_global.fget(ip)))
        lookups = fake_dns(monkeypatch, {"rebind.test": ["127.0.0.2", "127.0.0.1"]})
        data = files.download(f"http://rebind.test:{public.port}/cat.png", "image", frozenset({"api"}))
        assert data == public.body and internal.requests == []
        assert lookups["rebind.test"] == 1  # no second lookup to rebind
        [(path, headers)] = public.requests
        assert headers["host"] == f"rebind.test:{public.port}"
    finally:
        public.close()
        internal.close()


@pytest.fixture
def tls_host(tmp_path, monkeypatch):
    """An https image host whose certificate names images.test, from a CA the plugin is told to trust."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))

    def start(name: str) -> ImageHost:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)
        return ImageHost(ssl_context=context)

    hosts = []
    yield lambda name: hosts.append(start(name)) or hosts[-1]
    for host in hosts:
        host.close()


def test_a_pinned_https_connection_still_checks_the_certificate_against_the_name(monkeypatch, tls_host):
    from qwen_client import errors, files

    fake_dns(monkeypatch, {"images.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]})
    good = tls_host("images.test")
    url = f"https://images.test:{good.port}/cat.png"
    assert files.download(url, "image", frozenset({"images.test"})) == good.body
    assert good.requests[0][1]["host"] == f"images.test:{good.port}"  # SNI and Host name the host, not the IP
    bad = tls_host("other.test")
    with pytest.raises(errors.InputFileError, match="certificate"):
        files.download(f"https://wrong.test:{bad.port}/cat.png", "image", frozenset({"wrong.test"}))


@pytest.mark.parametrize("url,inner", [
    ("http://[64:ff9b::7f00:1]/f.png", "127.0.0.1"),  # NAT64
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "169.254.169.254"),
    ("http://[2002:a00:1::1]/f.png", "10.0.0.1"),  # 6to4
    ("http://[::127.0.0.1]/f.png", "127.0.0.1"),  # IPv4-compatible
    ("http://[::ffff:0:c0a8:1]/f.png", "192.168.0.1"),  # IPv4-translated
])
def test_ipv6_forms_that_embed_a_private_ipv4_address_are_refused(url, inner):
    from qwen_client import errors, files

    with pytest.raises(errors.InputFileError, match=f"private address .*embeds {inner}"):
        files.download(url, "image", private_hosts=frozenset({"api"}))


def test_a_name_resolving_to_nat64_of_a_private_address_is_refused(monkeypatch):
    from qwen_client import errors, files

    fake_dns(monkeypatch, {"nat64.test": ["64:ff9b::a00:5"]})
    with pytest.raises(errors.InputFileError, match="embeds 10.0.0.5"):
        files.download("http://nat64.test/f.png", "image", private_hosts=frozenset())


def test_embedded_public_ipv4_addresses_stay_public():
    from qwen_client import addresses

    for text in ("64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111", "8.8.8.8"):
        assert addresses.is_public(ipaddress.ip_address(text)), text
    for text in ("64:ff9b:1::808:808", "::1", "::", "2002:7f00:1::", "fd00::1", "fe80::1"):
        assert not addresses.is_public(ipaddress.ip_address(text)), text


@pytest.mark.parametrize("url", ["http://xn--a.com/x.png", "http://" + "a" * 64 + ".com/x.png",
                                 "http://\u2029.com/x.png", "http://a..b/x.png"])
def test_an_invalid_host_name_is_named_not_failed_to_parse(url):
    from qwen_client import errors, files

    with pytest.raises(errors.InputFileError, match="Parameter 'image_url'.*not a valid host name") as caught:
        files.download(url, "image", frozenset(), param="image_url")
    assert "Failed to parse" not in str(caught.value)


def test_an_international_host_name_is_not_called_ambiguous(monkeypatch):
    from qwen_client import files

    lookups = fake_dns(monkeypatch, {"xn--exmple-cua.test": ["8.8.8.8"]})
    assert files._check_reachable("http://exämple.test/x.png", "image", frozenset()) == ["8.8.8.8"]
    assert lookups["xn--exmple-cua.test"] == 1


def test_an_input_url_that_drips_ends_at_the_deadline():
    from qwen_client import errors, files

    dripping = HostileServer()
    try:
        dripping.routes["/in.png"] = lambda h: drip(h, 400, 0.25, dripping.sent, "in", dripping.release)  # 100 s
        with pytest.raises(errors.InputFileError, match="did not finish within 3 s"):
            files.download(dripping.url + "/in.png", "image", frozenset({"127.0.0.1"}), time.monotonic() + 3)
        assert dripping.sent["in"] < 400
    finally:
        dripping.close()


def test_an_https_host_that_drips_its_handshake_ends_at_the_deadline():
    from qwen_client import errors, files

    listener = socket.create_server(("127.0.0.1", 0))
    sent = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")  # "a 16 KB handshake record follows", then a byte at a time
            for _ in range(40):  # 12 s at most, then it hangs up
                time.sleep(0.3)
                try:
                    conn.sendall(b"\x00")
                except OSError:
                    return
                sent.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/in.png"
        with pytest.raises(errors.InputFileError, match="did not finish within 2 s"):
            files.download(url, "image", frozenset({"127.0.0.1"}), time.monotonic() + 2)
        thread.join(15)
        assert len(sent) < 40
    finally:
        listener.close()


def test_through_the_plugin_a_dripping_image_url_and_a_bad_host_name(plugin):
    dripping = HostileServer()
    try:
        dripping.routes["/in.png"] = lambda h: drip(h, 400, 0.25, dripping.sent, "in", dripping.release)
        params = {"prompt": "x", "image_url": dripping.url + "/in.png"}
        result = plugin.invoke("img2img", creds(dripping.url, budget=4), params, timeout=45)
        assert "timed out" in result.error["message"] and "did not finish" in result.error["message"]
        assert dripping.sent["in"] < 400 and not [m for m, _ in dripping.log if m == "POST"]

        result = plugin.invoke("img2img", creds(dripping.url), {"prompt": "x", "image_url": "http://\u2029.com/x.png"})
        assert "Parameter 'image_url'" in result.error["message"] and "valid host name" in result.error["message"]
        assert_healthy(plugin)
    finally:
        dripping.close()


def test_a_server_url_that_is_no_valid_host_name_is_named(plugin):
    result = plugin.validate({"server_url": "http://\u2029.example:8000"})
    assert "Server URL" in result.error["message"] and "valid host name" in result.error["message"]
    assert "Failed to parse" not in result.error["message"]
