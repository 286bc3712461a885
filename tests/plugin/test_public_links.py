"""An image URL on the server's PUBLIC_BASE_URL (not how the plugin reaches it) is read from the plugin's server."""

import io
import time

import pytest
from PIL import Image

from qwen_client.client import Client
from qwen_client.config import Settings
from qwen_client.errors import ServerError
from tests.plugin.fake_server import FakeServer


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.close()


def test_an_absolute_public_link_is_fetched_from_the_configured_server(fake):
    client = Client(Settings(server_url=fake.url, api_key="k", budget_s=10))
    data = client.fetch("https://images.example.com/v1/files/fake.png?expires=1&sig=ab", time.monotonic() + 10)
    assert Image.open(io.BytesIO(data)).size == (64, 64)
    assert fake.log[-1][1] == "/v1/files/fake.png?expires=1&sig=ab"  # the signed query went along, to our server


def test_a_link_outside_the_files_is_still_refused(fake):
    client = Client(Settings(server_url=fake.url, api_key="k", budget_s=10))
    with pytest.raises(ServerError, match="outside"):
        client.fetch("https://images.example.com/admin", time.monotonic() + 10)
