"""A real Chromium (Debian's, driven by Playwright) against a live tiny-model server: one of each per module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import ServerProcess

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
API_KEY = "ui-test-key"
INSTALL_HINT = "apt-get install -y chromium fonts-noto-cjk && pip install playwright (never `playwright install`)"


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox", "--disable-gpu"])


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"PyPI playwright is not installed: {INSTALL_HINT}"
    if not CHROMIUM.exists():
        return f"Chromium is not at {CHROMIUM}: {INSTALL_HINT}"
    return None


def require_browser() -> None:
    """In CI a missing browser fails loudly; elsewhere the skip says why (pytest -ra lists it)."""
    reason = _missing()
    if reason and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, browser):
    """Keys on, so every image goes through the authenticated (blob) path; the fault hook for slow jobs."""
    server = ServerProcess(tmp_path_factory.mktemp("ui-server"), api_key=API_KEY, INJECT_FAULTS="1",
                           MAX_QUEUE="64", MASKED_MIN_SIZE="64")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def context(browser):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture
def page(context, ui_server):
    """The playground, the key already given (the key prompt itself has its own test), ready to use."""
    context.add_init_script(f"sessionStorage.setItem('qwenImage.apiKey', {API_KEY!r})")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{ui_server.url}/ui/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"
