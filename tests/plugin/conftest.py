"""Fixtures that play Dify: the plugin as a subprocess over stdio, and Dify's file service."""

import io

import pytest
from PIL import Image, ImageDraw

from tests.plugin.harness import FileService, PluginProcess


@pytest.fixture(scope="module")
def plugin():
    """One plugin process per test module: startup is paid once, and it must survive errors."""
    process = PluginProcess()
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


@pytest.fixture(scope="module")
def files():
    service = FileService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def server(request):
    """The real inference server with the tiny model (tests/conftest.py owns it)."""
    try:
        return request.getfixturevalue("live_server")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no live_server fixture")


@pytest.fixture(scope="module")
def creds(server):
    # The fake Dify file service listens on 127.0.0.1: a private host the operator must list.
    return {"server_url": server.url, "api_key": server.api_key, "timeout_seconds": "240",
            "private_image_hosts": "127.0.0.1"}


def png_bytes(width: int, height: int, mode: str = "RGB", draw=None) -> bytes:
    image = Image.new(mode, (width, height), "black" if mode == "L" else (70, 110, 160))
    if draw:
        draw(ImageDraw.Draw(image))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return png_bytes(64, 64, draw=lambda d: d.ellipse((16, 16, 48, 48), fill=(230, 180, 40)))


@pytest.fixture(scope="module")
def mask() -> bytes:
    return png_bytes(64, 64, "L", draw=lambda d: d.rectangle((16, 16, 47, 47), fill=255))
