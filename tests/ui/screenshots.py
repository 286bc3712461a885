"""`make screenshots`: each playground tab in English and Chinese, from a live tiny-model server.

The tiny model draws noise; the input photo is drawn here, so the mask and outpaint editors have a subject.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from tests.support import ROOT, ServerProcess

OUT = ROOT / "docs" / "screenshots"
KEY = "screenshot-key"
PROMPTS = {"en": "a red paper lantern over a rainy street at night", "zh": "雨夜街道上的红色灯笼，海报风格"}


def scene(width: int = 320, height: int = 240) -> bytes:
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):  # a sky that fades to the horizon
        shade = int(120 + 100 * y / height)
        draw.line((0, y, width, y), fill=(shade // 2, int(shade / 1.4), shade))
    draw.ellipse((220, 30, 280, 90), fill=(255, 214, 90))
    draw.polygon([(0, 240), (0, 170), (90, 120), (190, 180), (320, 140), (320, 240)], fill=(52, 110, 70))
    draw.rectangle((120, 150, 170, 200), fill=(180, 70, 50))
    draw.polygon([(112, 150), (145, 122), (178, 150)], fill=(90, 40, 30))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def start_a_slow_job(page):
    """A job that shows its progress bar: each step slowed by the server's fault hook (INJECT_FAULTS=1)."""
    page.route("**/v1/generate", lambda route: route.continue_(
        headers={**route.request.headers, "x-inject-fault": "slow=0.4"}))
    for field, value in (("width", 256), ("height", 256), ("num_inference_steps", 30)):
        page.locator(f"#{field}").fill(str(value))
    page.locator("#submit").click()
    job = page.locator("#jobs li").first
    page.wait_for_function("n => Number(document.querySelector('#jobs [role=progressbar]')?.getAttribute("
                           "'aria-valuenow')) >= n", arg=8, timeout=120_000)
    page.unroute("**/v1/generate")
    return job


def shoot(browser, server: ServerProcess, lang: str) -> list[Path]:
    context = browser.new_context(locale="zh-CN" if lang == "zh" else "en-US",
                                  viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    context.add_init_script(f"sessionStorage.setItem('qwenImage.apiKey', {KEY!r})")
    page = context.new_page()
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function("[...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth)")
    saved = []
    photo = {"name": "scene.png", "mimeType": "image/png", "buffer": scene()}
    tasks = [page.get_by_role("tab").nth(i).get_attribute("data-task") for i in range(page.get_by_role("tab").count())]
    for task in sorted(tasks, key=lambda name: name == "generate"):  # generate last, with a job running
        page.locator(f"#tab-{task}").click()
        page.locator("#prompt").fill(PROMPTS[lang])
        if task != "generate":
            page.locator("#image-file").set_input_files(photo)
        if task == "inpaint":
            box = page.locator("#mask-overlay").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.36, box["y"] + box["height"] * 0.62)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.56, box["y"] + box["height"] * 0.86, steps=10)
            page.mouse.up()
        if task == "outpaint":
            page.locator("#target-ratio").select_option("16:9")
        if task == "generate":
            running = start_a_slow_job(page)
        page.mouse.move(0, 0)
        path = OUT / f"{task}-{lang}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    running.get_by_role("button").first.click()  # Cancel: it was only there to show its progress
    page.locator("#gallery button").first.click()
    page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")
    path = OUT / f"detail-{lang}.png"
    page.screenshot(path=str(path))
    saved.append(path)
    context.close()
    return saved


def main() -> int:
    from playwright.sync_api import sync_playwright

    from tests.ui.conftest import launch_chromium

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        server = ServerProcess(Path(data), api_key=KEY, INJECT_FAULTS="1").start()
        try:
            for i, prompt in enumerate([*PROMPTS.values(), "a lighthouse at dawn", "一只纸船"]):
                server.run("generate", {"prompt": prompt, "width": 256, "height": 256, "seed": 40 + i,
                                        "num_inference_steps": 4})
            browser = launch_chromium(playwright)
            for lang in ("en", "zh"):
                for path in shoot(browser, server, lang):
                    print(path.relative_to(ROOT))
            browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
