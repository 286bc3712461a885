"""The playground in a real Chromium against the live tiny-model server: what a person clicks, drags and sees."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from tests.server.test_tasks_http import photo
from tests.support import far_from
from tests.ui.conftest import API_KEY

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the `browser` fixture then skips each test, or fails it in CI, and says why
    Page = expect = None


def fill(page: Page, prompt: str, steps: int = 3, **numbers: int) -> None:
    page.get_by_role("textbox", name="Prompt", exact=True).fill(prompt)
    page.get_by_role("spinbutton", name="Steps").fill(str(steps))
    for name, value in numbers.items():
        page.get_by_role("spinbutton", name=name, exact=True).fill(str(value))


def submit(page: Page) -> None:
    """Click Generate and wait for the new job's card (the POST is in flight until then)."""
    cards = page.get_by_role("list", name="Jobs").get_by_role("listitem")
    before = cards.count()
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(cards).to_have_count(before + 1)


def newest_job(page: Page):
    return page.get_by_role("list", name="Jobs").get_by_role("listitem").first


def wait_done(page: Page):
    job = newest_job(page)
    expect(job.get_by_role("status")).to_have_text("Done", timeout=60_000)
    return job


def download_newest(page: Page) -> bytes:
    """Open the newest job's first image in the detail view and download it, as a person would."""
    wait_done(page).get_by_role("button").first.click()
    dialog = page.get_by_role("dialog", name="Image details")
    expect(dialog).to_be_visible()
    with page.expect_download() as download:
        dialog.get_by_role("link", name="Download").click()
    return open(download.value.path(), "rb").read()


def slow_down(page: Page, task: str, seconds: float) -> None:
    """The server's fault hook (INJECT_FAULTS=1) makes each step sleep; the header is added here, not by the UI."""
    def add_fault(route):
        route.continue_(headers={**route.request.headers, "x-inject-fault": f"slow={seconds}"})
    page.route(f"**/v1/{task}", add_fault)


def png_file(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return {"name": "photo.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


def decoded(data_uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))


def test_generate_shows_the_progress_bar_move_then_the_image(page: Page):
    slow_down(page, "generate", 0.3)
    fill(page, "a red lantern", steps=4, Width=64, Height=48)
    submit(page)
    bar = newest_job(page).get_by_role("progressbar", name="Progress")
    expect(bar).to_have_attribute("aria-valuemax", "4")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-3]$"))  # mid-run, from the event stream
    wait_done(page)
    expect(bar).to_have_attribute("aria-valuenow", "4")
    thumb = page.get_by_role("list", name="Gallery").get_by_role("img", name="a red lantern").first
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    # keys are on: the job's url is a signed link (api/file_links.py), which the page shows without the key
    assert thumb.get_attribute("src").startswith("/v1/files/") and "sig=" in thumb.get_attribute("src")


def test_paint_a_mask_and_inpaint_keeps_the_pixels_outside_it(page: Page):
    source = photo(96, 80)
    page.get_by_role("tab", name="Inpaint").click()
    page.get_by_label("Image", exact=True).set_input_files(png_file(source))
    overlay = page.locator("#mask-overlay")
    expect(overlay).to_be_visible()
    box = overlay.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.45)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.60, box["y"] + box["height"] * 0.55, steps=8)
    page.mouse.up()
    fill(page, "a blue door", **{"Mask grow": 4, "Mask blur": 4})
    with page.expect_request("**/v1/inpaint") as sent:
        submit(page)
    mask = np.asarray(decoded(sent.value.post_data_json["mask"]).convert("L"))
    assert mask.shape == (80, 96)
    ys, xs = np.nonzero(mask)
    painted = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert 20 <= painted[0] <= 29 and 57 <= painted[2] <= 66, painted  # where the mouse went, in image pixels
    result = np.asarray(Image.open(io.BytesIO(download_newest(page))).convert("RGB"))
    original = np.asarray(source)
    assert result.shape == original.shape
    outside = far_from(painted, 4 + 8, (96, 80))  # grow 4, then a blur whose support is about 6 px
    assert outside.sum() > 2000
    assert np.array_equal(result[outside], original[outside])
    assert not np.array_equal(result[~outside], original[~outside])  # and the painted area was repainted


def test_drag_an_outpaint_handle_and_get_that_size(page: Page):
    fill(page, "a harbour", Width=64, Height=48)
    submit(page)
    wait_done(page).get_by_role("button").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Send to outpaint").click()
    expect(page.get_by_role("tab", name="Outpaint")).to_have_attribute("aria-selected", "true")
    handle = page.get_by_role("slider", name="Extend right")
    expect(handle).to_be_visible()
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + box["height"] / 2, steps=6)
    page.mouse.up()
    right = int(page.get_by_role("spinbutton", name="Right").input_value())
    assert right > 0 and right % 16 == 0
    assert handle.get_attribute("aria-valuenow") == str(right)
    page.get_by_role("spinbutton", name="Steps").fill("3")
    submit(page)
    result = Image.open(io.BytesIO(download_newest(page)))
    assert result.size == (64 + right, 48)


def test_cancel_a_slow_job_and_only_that_one(page: Page, ui_server):
    slow_down(page, "generate", 0.5)
    fill(page, "a slow sunset", steps=40, Width=32, Height=32)
    submit(page)
    cards = page.get_by_role("list", name="Jobs").get_by_role("listitem")
    running = cards.filter(has_text="a slow sunset")
    expect(running.get_by_role("status")).to_contain_text("Running")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a queued moon")
    submit(page)
    queued = cards.filter(has_text="a queued moon")
    expect(queued.get_by_role("status")).to_have_text("Queued, position 1")
    queued.get_by_role("button", name="Cancel").click()
    expect(queued.get_by_role("status")).to_have_text("Cancelled")
    expect(running.get_by_role("status")).to_contain_text("Running")  # the other job goes on
    running.get_by_role("button", name="Cancel").click()
    expect(running.get_by_role("status")).to_have_text("Cancelled")
    expect(running.get_by_role("button", name="Retry")).to_be_visible()
    expect(running.get_by_role("img")).to_have_count(0)
    listed = ui_server.session.get(f"{ui_server.url}/v1/jobs", params={"limit": 2}).json()["jobs"]
    assert [(job["params"]["prompt"], job["status"], job["images"]) for job in listed] == [
        ("a queued moon", "cancelled", []), ("a slow sunset", "cancelled", [])]
    queued.get_by_role("button", name="Retry").click()  # the same request again, as a new job
    expect(cards).to_have_count(3)
    again = cards.first
    expect(again).to_contain_text("a queued moon")
    expect(again.get_by_role("status")).to_contain_text("Running")
    again.get_by_role("button", name="Cancel").click()
    expect(again.get_by_role("status")).to_have_text("Cancelled")


def test_the_gallery_survives_a_reload_and_a_server_restart(page: Page, ui_server):
    fill(page, "a lighthouse at dawn", Width=32, Height=32)
    submit(page)
    wait_done(page)
    gallery = page.get_by_role("list", name="Gallery")
    page.reload()
    expect(gallery.get_by_role("img", name="a lighthouse at dawn")).to_be_visible()
    ui_server.stop()
    ui_server.start()
    page.reload()
    thumb = gallery.get_by_role("img", name="a lighthouse at dawn")
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 32", arg=thumb.element_handle())
    expect(page.get_by_role("list", name="Jobs").get_by_role("listitem")).to_have_count(0)  # only the gallery


def test_reusing_a_seed_gives_identical_bytes(page: Page, ui_server):
    fill(page, "a teapot", Width=48, Height=48)  # a random seed
    submit(page)
    first = download_newest(page)
    page.get_by_role("dialog").get_by_role("button", name="Reuse parameters").click()
    seed = page.get_by_role("spinbutton", name="Seed").input_value()
    assert seed.isdigit() and page.get_by_role("checkbox", name="Random seed").is_checked() is False
    assert page.get_by_role("spinbutton", name="Steps").input_value() == "3"
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_role("list", name="Jobs").get_by_role("listitem")).to_have_count(2)
    second = download_newest(page)
    assert second == first
    newest = ui_server.session.get(f"{ui_server.url}/v1/jobs", params={"limit": 1}).json()["jobs"][0]
    assert newest["params"]["seed"] == int(seed) and newest["cache"] == "miss"  # really generated again
    page.get_by_role("dialog").get_by_role("button", name="Retry with a new seed").click()
    expect(page.get_by_role("list", name="Jobs").get_by_role("listitem")).to_have_count(3)
    third = download_newest(page)
    newest = ui_server.session.get(f"{ui_server.url}/v1/jobs", params={"limit": 1}).json()["jobs"][0]
    assert newest["params"]["seed"] != int(seed) and third != first


def test_a_bad_value_shows_its_error_beside_the_field(page: Page):
    fill(page, "a kite", steps=500, Width=64, Height=64)
    page.get_by_role("button", name="Generate", exact=True).click()
    steps = page.get_by_role("spinbutton", name="Steps")
    expect(steps).to_have_attribute("aria-invalid", "true")
    expect(steps).to_have_accessible_description(re.compile(r"num_inference_steps: .*150"))
    expect(page.get_by_role("spinbutton", name="Width")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("list", name="Jobs").get_by_role("listitem")).to_have_count(0)
    page.get_by_role("spinbutton", name="Steps").fill("3")
    page.get_by_role("spinbutton", name="Width").fill("5000")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_role("spinbutton", name="Width")).to_have_accessible_description(re.compile("width"))
    expect(steps).not_to_have_attribute("aria-invalid", "true")


def test_a_server_with_keys_asks_for_one_then_works(context, ui_server):
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{ui_server.url}/ui")
    key = page.get_by_label("API key")
    expect(key).to_be_visible()
    expect(page.get_by_role("tab")).to_have_count(0)
    key.fill("not-the-key")
    page.get_by_role("button", name="Use key").click()
    expect(key).to_have_accessible_description(re.compile("refused"))
    key.fill(API_KEY)
    page.get_by_role("button", name="Use key").click()
    tasks = ui_server.session.get(f"{ui_server.url}/v1/info").json()["tasks"]
    expect(page.get_by_role("tab")).to_have_count(len(tasks))  # one per task that /v1/info lists
    expect(page.get_by_role("tab", name="Inpaint")).to_be_visible()
    fill(page, "a paper boat", Width=32, Height=32)
    page.get_by_role("button", name="Generate", exact=True).click()
    thumb = page.get_by_role("list", name="Gallery").get_by_role("img", name="a paper boat").first
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 32", arg=thumb.element_handle())
    assert page.evaluate("sessionStorage.getItem('qwenImage.apiKey')") == API_KEY
    assert urls and not [url for url in urls if API_KEY in url]  # never in a URL


def test_a_lost_event_stream_falls_back_to_polling(page: Page):
    page.route("**/events", lambda route: route.abort())
    slow_down(page, "generate", 0.2)
    fill(page, "a polled moon", Width=32, Height=32)
    submit(page)
    expect(newest_job(page).get_by_role("status")).to_contain_text("polling")
    wait_done(page)
    expect(page.get_by_role("list", name="Gallery").get_by_role("img", name="a polled moon")).to_be_visible()


def test_a_full_queue_says_so_and_retries_once(page: Page):
    calls = []

    def full_once(route):
        calls.append(route.request.url)
        if len(calls) == 1:
            route.fulfill(status=429, headers={"Retry-After": "2", "Content-Type": "application/json"},
                          body='{"error": {"code": "queue_full", "message": "the queue is full", "field": null}}')
        else:
            route.continue_()
    page.route("**/v1/generate", full_once)
    fill(page, "a patient cat", Width=32, Height=32)
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text(re.compile(r"Queue full, retrying in \d s"))).to_be_visible()
    wait_done(page)
    assert len(calls) == 2


def test_chinese_from_the_browser_language_and_switchable(browser, ui_server):
    context = browser.new_context(locale="zh-CN")
    context.add_init_script(f"sessionStorage.setItem('qwenImage.apiKey', {API_KEY!r})")
    page = context.new_page()
    page.goto(f"{ui_server.url}/ui/")
    expect(page.get_by_role("tab", name="文生图")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("textbox", name="提示词", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="生成", exact=True)).to_be_visible()
    page.get_by_label("语言").select_option("en")
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_be_visible()
    expect(page.get_by_role("tab", name="Generate")).to_be_visible()
    context.close()


def test_a_rectangle_mask_is_sent_as_a_region(page: Page):
    source = photo(96, 80)
    page.get_by_role("tab", name="Inpaint").click()
    page.get_by_label("Image", exact=True).set_input_files(png_file(source))
    page.get_by_role("radio", name="Rectangle").check()
    box = page.locator("#mask-overlay").bounding_box()
    scale = box["width"] / 96
    page.mouse.move(box["x"] + 40 * scale, box["y"] + 30 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 60 * scale, box["y"] + 50 * scale, steps=5)
    page.mouse.up()
    fill(page, "a round window", **{"Mask grow": 0, "Mask blur": 0})
    with page.expect_request("**/v1/inpaint") as sent:
        submit(page)
    body = sent.value.post_data_json
    assert "mask" not in body
    region = body["region"]
    assert abs(region["x"] - 40) <= 1 and abs(region["y"] - 30) <= 1
    assert abs(region["width"] - 20) <= 1 and abs(region["height"] - 20) <= 1
    result = np.asarray(Image.open(io.BytesIO(download_newest(page))).convert("RGB"))
    box = (region["x"], region["y"], region["x"] + region["width"], region["y"] + region["height"])
    outside = far_from(box, 1, (96, 80))
    assert np.array_equal(result[outside], np.asarray(source)[outside])


def test_invert_and_clear_change_the_mask_that_is_sent(page: Page):
    page.get_by_role("tab", name="Inpaint").click()
    page.get_by_label("Image", exact=True).set_input_files(png_file(photo(64, 64)))
    box = page.locator("#mask-overlay").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + 20, box["y"] + 20, steps=3)
    page.mouse.up()
    page.get_by_role("button", name="Invert mask").click()
    captured = []

    def refuse(route):  # the UI's request is all this test needs; each answer names its call
        captured.append(route.request.post_data_json)
        route.fulfill(status=422, json={"error": {"code": "invalid_value", "message": f"mask_blur: call {len(captured)}",
                                                  "field": "mask_blur"}})
    page.route("**/v1/inpaint", refuse)
    fill(page, "inverted")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_role("spinbutton", name="Mask blur")).to_have_accessible_description("mask_blur: call 1")
    mask = np.asarray(decoded(captured[0]["mask"]).convert("L"))
    assert mask[0, 0] == 0 and mask[-1, -1] == 255 and mask[32, 32] == 255  # painted corner kept, rest repainted
    page.get_by_role("button", name="Clear mask").click()
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_role("spinbutton", name="Mask blur")).to_have_accessible_description("mask_blur: call 2")
    assert len(captured) == 2 and "mask" not in captured[1] and "region" not in captured[1]


def test_an_edit_tab_appears_when_the_server_lists_edit(page: Page, ui_server):
    def with_edit(route):
        info = route.fetch().json()
        route.fulfill(json={**info, "tasks": [*info["tasks"], "edit"]})
    page.route("**/v1/info", with_edit)
    page.reload()
    page.get_by_role("tab", name="Edit").click()
    captured = []
    page.route("**/v1/edit", lambda route: (captured.append(route.request.post_data_json), route.fulfill(
        status=404, content_type="application/json",
        body='{"error": {"code": "task_unavailable", "message": "set EDIT_MODEL_ID", "field": null}}')))
    page.get_by_label("Images (1 to 3)").set_input_files([png_file(photo(32, 32)), png_file(photo(48, 32))])
    fill(page, "put the lamp on the table")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("set EDIT_MODEL_ID")).to_be_visible()
    assert captured[0]["prompt"] == "put the lamp on the table"
    assert [decoded(uri).size for uri in captured[0]["images"]] == [(32, 32), (48, 32)]
