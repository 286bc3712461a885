"""A table of bad (and odd) inputs: each gets its defined answer, a 4xx names the field, never a 5xx."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import requests
from PIL import Image

from tests.support import png_b64

SMALL = {"width": 32, "height": 32, "num_inference_steps": 1}


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_bomb(side: int = 60000) -> bytes:
    """A tiny file whose header claims side x side pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def encoded_rotated_jpeg() -> bytes:
    """A JPEG whose EXIF says 'rotate 90°', as phone cameras write them."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 200, 10)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


PHOTO = Image.new("RGB", (64, 48), (120, 60, 30))
PNG = encoded(PHOTO, "PNG")
JPEG = encoded(PHOTO, "JPEG")
WEBP = encoded(PHOTO, "WEBP")
GIF = encoded(PHOTO, "GIF")
WHITE_MASK = png_b64(Image.new("L", (64, 48), 255))
BLACK_MASK = png_b64(Image.new("L", (64, 48), 0))
ONE_BIT_MASK = png_b64(Image.new("1", (64, 48), 1))
IMAGE = b64(PNG)
GEN = {"prompt": "x", **SMALL}
IMG = {"prompt": "x", "image": IMAGE, "num_inference_steps": 1}
INP = {"prompt": "x", "image": IMAGE, "num_inference_steps": 1}
OUT = {"prompt": "x", "image": IMAGE, "num_inference_steps": 1}

# (id, task, json body, expected status, expected field)
JSON_CASES = [
    ("prompt-missing", "generate", {**SMALL}, 422, "prompt"),
    ("prompt-empty", "generate", {**GEN, "prompt": ""}, 422, "prompt"),
    ("prompt-blank", "generate", {**GEN, "prompt": "   \n\t"}, 422, "prompt"),
    ("prompt-100k", "generate", {**GEN, "prompt": "a" * 100_000}, 422, "prompt"),
    ("prompt-int", "generate", {**GEN, "prompt": 5}, 422, "prompt"),
    ("prompt-null", "generate", {**GEN, "prompt": None}, 422, "prompt"),
    ("prompt-nul", "generate", {**GEN, "prompt": "a\x00b"}, 422, "prompt"),
    ("prompt-rtl", "generate", {**GEN, "prompt": "\u202eمرحبا بالعالم שלום"}, 200, None),
    ("prompt-combining", "generate", {**GEN, "prompt": "Z\u0351\u0364a\u0300\u0301l\u0363go"}, 200, None),
    ("prompt-emoji-cjk", "generate", {**GEN, "prompt": "🏮 红灯笼 lantern 👩‍👩‍👧"}, 200, None),
    ("negative-list", "generate", {**GEN, "negative_prompt": ["a"]}, 422, "negative_prompt"),
    ("width-zero", "generate", {**GEN, "width": 0}, 422, "width"),
    ("width-negative", "generate", {**GEN, "width": -64}, 422, "width"),
    ("width-huge", "generate", {**GEN, "width": 100_000}, 422, "width"),
    ("width-string", "generate", {**GEN, "width": "abc"}, 422, "width"),
    ("width-fraction", "generate", {**GEN, "width": 512.5}, 422, "width"),
    ("width-bool-list", "generate", {**GEN, "width": [64]}, 422, "width"),
    ("width-only", "generate", {"prompt": "x", "width": 64}, 422, "height"),
    ("height-only", "generate", {"prompt": "x", "height": 64}, 422, "width"),
    ("width-and-aspect", "generate", {**GEN, "aspect_ratio": "1:1"}, 422, "aspect_ratio"),
    ("aspect-unknown", "generate", {"prompt": "x", "aspect_ratio": "5:1"}, 422, "aspect_ratio"),
    ("pixels-over-max", "generate", {"prompt": "x", "width": 4096, "height": 4096}, 422, "width"),
    ("width-not-multiple", "generate", {**GEN, "width": 33, "height": 47}, 200, None),
    ("steps-zero", "generate", {**GEN, "num_inference_steps": 0}, 422, "num_inference_steps"),
    ("steps-huge", "generate", {**GEN, "num_inference_steps": 10_000}, 422, "num_inference_steps"),
    ("steps-string", "generate", {**GEN, "num_inference_steps": "ten"}, 422, "num_inference_steps"),
    ("guidance-negative", "generate", {**GEN, "guidance": -1}, 422, "guidance"),
    ("guidance-huge", "generate", {**GEN, "guidance": 1e9}, 422, "guidance"),
    ("seed-negative", "generate", {**GEN, "seed": -1}, 422, "seed"),
    ("seed-huge", "generate", {**GEN, "seed": 2**40}, 422, "seed"),
    ("seed-float", "generate", {**GEN, "seed": 1.5}, 422, "seed"),
    ("num-images-zero", "generate", {**GEN, "num_images": 0}, 422, "num_images"),
    ("num-images-five", "generate", {**GEN, "num_images": 5}, 422, "num_images"),
    ("format-gif", "generate", {**GEN, "output_format": "gif"}, 422, "output_format"),
    ("unknown-field", "generate", {**GEN, "steps": 4}, 422, "steps"),
    ("image-on-generate", "generate", {**GEN, "image": IMAGE}, 422, "image"),
    ("img2img-no-image", "img2img", {"prompt": "x"}, 422, "image"),
    ("image-null", "img2img", {**IMG, "image": None}, 422, "image"),
    ("image-number", "img2img", {**IMG, "image": 12}, 422, "image"),
    ("image-not-base64", "img2img", {**IMG, "image": "!!!not base64!!!"}, 422, "image"),
    ("image-garbage", "img2img", {**IMG, "image": b64(b"hello, I am not an image")}, 422, "image"),
    ("image-empty", "img2img", {**IMG, "image": ""}, 422, "image"),
    ("png-truncated", "img2img", {**IMG, "image": b64(PNG[: len(PNG) // 2])}, 422, "image"),
    ("jpeg-corrupt", "img2img", {**IMG, "image": b64(JPEG[:20] + b"\x00" * 50 + JPEG[70:100])}, 422, "image"),
    ("webp-truncated", "img2img", {**IMG, "image": b64(WEBP[:30])}, 422, "image"),
    ("gif-unsupported", "img2img", {**IMG, "image": b64(GIF)}, 422, "image"),
    ("decompression-bomb", "img2img", {**IMG, "image": b64(png_bomb())}, 413, "image"),
    ("image-url", "img2img", {**IMG, "image": "http://169.254.169.254/latest/meta-data"}, 422, "image"),
    ("image-path", "img2img", {**IMG, "image": "/etc/passwd"}, 422, "image"),
    ("image-file-uri", "img2img", {**IMG, "image": "file:///etc/passwd"}, 422, "image"),
    ("data-uri-not-base64", "img2img", {**IMG, "image": "data:image/png,abc"}, 422, "image"),
    ("data-uri-ok", "img2img", {**IMG, "image": "data:image/png;base64," + IMAGE}, 200, None),
    ("jpeg-ok", "img2img", {**IMG, "image": b64(JPEG)}, 200, None),
    ("one-pixel-image", "img2img", {**IMG, "image": png_b64(Image.new("RGB", (1, 1)))}, 200, None),
    ("strength-zero", "img2img", {**IMG, "strength": 0}, 422, "strength"),
    ("strength-over-one", "img2img", {**IMG, "strength": 1.5}, 422, "strength"),
    ("inpaint-no-mask", "inpaint", INP, 422, "mask"),
    ("inpaint-mask-and-region", "inpaint",
     {**INP, "mask": WHITE_MASK, "region": {"x": 0, "y": 0, "width": 8, "height": 8}}, 422, "region"),
    ("region-missing-y", "inpaint", {**INP, "region": {"x": 0, "width": 8, "height": 8}}, 422, "region.y"),
    ("region-zero-width", "inpaint", {**INP, "region": {"x": 0, "y": 0, "width": 0, "height": 8}}, 422,
     "region.width"),
    ("region-negative-x", "inpaint", {**INP, "region": {"x": -3, "y": 0, "width": 8, "height": 8}}, 422,
     "region.x"),
    ("region-outside", "inpaint", {**INP, "region": {"x": 500, "y": 500, "width": 8, "height": 8}}, 422, "region"),
    ("region-string", "inpaint", {**INP, "region": "top left"}, 422, "region"),
    ("region-unknown-key", "inpaint", {**INP, "region": {"x": 0, "y": 0, "width": 8, "height": 8, "z": 1}},
     422, "region.z"),
    ("mask-all-black", "inpaint", {**INP, "mask": BLACK_MASK}, 422, "mask"),
    ("mask-all-white-inverted", "inpaint", {**INP, "mask": WHITE_MASK, "mask_invert": True}, 422, "mask"),
    ("mask-all-white", "inpaint", {**INP, "mask": WHITE_MASK}, 200, None),
    ("mask-other-size", "inpaint", {**INP, "mask": png_b64(Image.new("L", (7, 5), 255))}, 200, None),
    ("mask-one-bit-mode", "inpaint", {**INP, "mask": ONE_BIT_MASK}, 200, None),
    ("mask-corrupt", "inpaint", {**INP, "mask": b64(PNG[:40])}, 422, "mask"),
    ("inpaint-area-bad", "inpaint", {**INP, "mask": WHITE_MASK, "inpaint_area": "half"}, 422, "inpaint_area"),
    ("mask-blur-huge", "inpaint", {**INP, "mask": WHITE_MASK, "mask_blur": 1000}, 422, "mask_blur"),
    ("mask-invert-string", "inpaint", {**INP, "mask": WHITE_MASK, "mask_invert": "maybe"}, 422, "mask_invert"),
    ("outpaint-zero", "outpaint", OUT, 422, "left"),
    ("outpaint-negative", "outpaint", {**OUT, "left": -1}, 422, "left"),
    ("outpaint-past-max-pixels", "outpaint", {**OUT, "right": 4000, "bottom": 4000}, 422, "right"),
    ("outpaint-aspect-and-px", "outpaint", {**OUT, "left": 16, "aspect_ratio": "16:9"}, 422, "aspect_ratio"),
    ("outpaint-feather-negative", "outpaint", {**OUT, "left": 16, "feather": -1}, 422, "feather"),
    ("outpaint-aspect-bad", "outpaint", {**OUT, "aspect_ratio": "wide"}, 422, "aspect_ratio"),
    ("outpaint-every-side-maximal", "outpaint", {**OUT, "left": 4096, "right": 4096, "top": 4096, "bottom": 4096},
     422, "right"),
    ("phone-photo-mpo-exif", "img2img", {**IMG, "image": b64(encoded_rotated_jpeg())}, 200, None),
    ("num-images-true", "generate", {**GEN, "num_images": True}, 422, "num_images"),
    ("steps-true", "generate", {**GEN, "num_inference_steps": True}, 422, "num_inference_steps"),
    ("seed-false", "generate", {**GEN, "seed": False}, 422, "seed"),
    ("strength-true", "img2img", {**IMG, "strength": True}, 422, "strength"),
    ("region-x-true", "inpaint", {**INP, "region": {"x": True, "y": 0, "width": 8, "height": 8}}, 422, "region.x"),
]


@pytest.mark.parametrize("task,body,status,field", [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_json_corpus(live_server, task, body, status, field):
    response = live_server.post(task, body, wait=30)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["error"]["field"] == field
        assert response.json()["error"]["message"]
    else:
        assert response.json()["status"] == "succeeded", response.text


class Chunked:
    """A body of `total` bytes sent with Transfer-Encoding: chunked (no Content-Length); iterable again."""

    def __init__(self, total: int, piece: bytes = b" " * (1 << 20)):
        self.total, self.piece = total, piece

    def __iter__(self):
        for start in range(0, self.total, len(self.piece)):
            yield self.piece[: self.total - start]


JSON_TYPE = {"Content-Type": "application/json"}


def raw(live_server, method, path, **kwargs):
    return live_server.session.request(method, live_server.url + path, timeout=30, **kwargs)


RAW_CASES = [
    ("json-invalid", "POST", "/v1/generate", {"data": "{bad", "headers": {"Content-Type": "application/json"}},
     400, None),
    ("json-array", "POST", "/v1/generate", {"json": ["prompt"]}, 400, None),
    ("json-string", "POST", "/v1/generate", {"json": "prompt"}, 400, None),
    ("json-nan", "POST", "/v1/generate", {"data": '{"prompt": "x", "guidance": NaN}',
                                          "headers": {"Content-Type": "application/json"}}, 422, "guidance"),
    ("text-plain", "POST", "/v1/generate", {"data": "prompt=x", "headers": {"Content-Type": "text/plain"}},
     400, None),
    ("no-body", "POST", "/v1/generate", {}, 400, None),
    ("multipart-no-files", "POST", "/v1/img2img", {"files": {"prompt": (None, "x")}}, 422, "image"),
    ("multipart-unknown-file", "POST", "/v1/img2img", {"data": {"prompt": "x"}, "files": {"foo": ("a.png", PNG)}},
     422, "foo"),
    ("multipart-image-as-text", "POST", "/v1/img2img", {"files": {"prompt": (None, "x"), "image": (None, IMAGE)}},
     422, "image"),
    ("multipart-region-bad-json", "POST", "/v1/inpaint",
     {"data": {"region": "{x:"}, "files": {"image": ("a.png", PNG)}}, 422, "region"),
    ("multipart-region-fields", "POST", "/v1/inpaint",
     {"data": {"region.x": "0", "region.y": "0", "region.width": "-1", "region.height": "4"},
      "files": {"image": ("a.png", PNG)}}, 422, "region.width"),
    ("multipart-region-null-and-fields", "POST", "/v1/inpaint",
     {"data": {"region": "null", "region.x": "3"}, "files": {"image": ("a.png", PNG)}}, 422, "region"),
    ("multipart-region-json-and-fields", "POST", "/v1/inpaint",
     {"data": {"region": '{"x": 0, "y": 0, "width": 4, "height": 4}', "region.x": "3"},
      "files": {"image": ("a.png", PNG)}}, 422, "region"),
    ("unknown-task", "POST", "/v1/paint", {"json": GEN}, 404, None),
    ("wrong-method", "GET", "/v1/generate", {}, 405, None),
    ("job-unknown", "GET", "/v1/jobs/does-not-exist", {}, 404, "id"),
    ("job-unknown-hex", "GET", "/v1/jobs/" + "0" * 32, {}, 404, "id"),
    ("job-sql-ish", "GET", "/v1/jobs/1'%20OR%20'1'='1", {}, 404, "id"),
    ("job-wait-text", "GET", "/v1/jobs/" + "0" * 32 + "?wait=abc", {}, 422, "wait"),
    ("job-wait-too-long", "GET", "/v1/jobs/" + "0" * 32 + "?wait=600", {}, 422, "wait"),
    ("cancel-unknown", "DELETE", "/v1/jobs/" + "0" * 32, {}, 404, "id"),
    ("events-unknown", "GET", "/v1/jobs/nope/events", {}, 404, "id"),
    ("file-traversal", "GET", "/v1/files/..%2F..%2Fjobs.sqlite3", {}, 404, None),
    ("file-dotdot-name", "GET", "/v1/files/..", {}, 404, None),
    ("file-unknown", "GET", "/v1/files/" + "a" * 40 + ".png", {}, 404, "name"),
    ("file-db", "GET", "/v1/files/jobs.sqlite3", {}, 404, "name"),
    ("oversize-body", "POST", "/v1/generate", {"data": b"x" * (5 * 1024 * 1024),
                                               "headers": {"Content-Type": "application/json"}}, 413, None),
    ("json-nested-10000-deep", "POST", "/v1/generate",
     {"data": '{"prompt": ' + "[" * 10_000 + "]" * 10_000 + "}", "headers": JSON_TYPE}, 400, None),
    ("json-objects-10000-deep", "POST", "/v1/generate", {"data": '{"a":' * 10_000 + "1" + "}" * 10_000,
                                                         "headers": JSON_TYPE}, 400, None),
    ("json-key-twice", "POST", "/v1/img2img", {"data": f'{{"prompt": "x", "image": "{IMAGE}", "image": "{IMAGE}"}}',
                                               "headers": JSON_TYPE}, 400, "image"),
    ("chunked-40mb", "POST", "/v1/generate", {"data": Chunked(40 << 20), "headers": JSON_TYPE}, 413, None),
    ("chunked-small-ok-but-invalid", "POST", "/v1/generate", {"data": Chunked(13, b'{"prompt": 5}'),
                                                              "headers": JSON_TYPE}, 422, "prompt"),
    ("multipart-second-image", "POST", "/v1/img2img",
     {"data": {"prompt": "x"}, "files": [("image", ("a.png", PNG)), ("image", ("b.png", JPEG))]}, 422, "image"),
    ("multipart-second-mask", "POST", "/v1/inpaint",
     {"files": [("image", ("a.png", PNG)), ("mask", ("m.png", PNG)), ("mask", ("n.png", PNG))]}, 422, "mask"),
    ("multipart-field-twice", "POST", "/v1/img2img",
     {"data": [("prompt", "x"), ("prompt", "y")], "files": {"image": ("a.png", PNG)}}, 422, "prompt"),
    ("multipart-bool", "POST", "/v1/img2img", {"data": {"prompt": "x", "seed": "true"},
                                               "files": {"image": ("a.png", PNG)}}, 422, "seed"),
    ("multipart-field-600kb", "POST", "/v1/img2img",
     {"data": {"prompt": "a" * 600_000}, "files": {"image": ("a.png", PNG)}}, 413, "prompt"),
    ("multipart-1001-parts", "POST", "/v1/img2img", {"files": [(f"f{i}", (None, "1")) for i in range(1001)]},
     413, None),
    ("multipart-no-boundary", "POST", "/v1/img2img", {"data": "x", "headers": {"Content-Type": "multipart/form-data"}},
     400, None),
]


@pytest.mark.parametrize("method,path,kwargs,status,field", [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_raw_corpus(live_server, method, path, kwargs, status, field):
    response = raw(live_server, method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["field"] == field


def test_corpus_is_big_enough():
    assert len(JSON_CASES) + len(RAW_CASES) >= 60


def test_prefer_header_that_is_not_a_number_is_ignored(live_server):
    response = live_server.session.post(f"{live_server.url}/v1/generate", json={**GEN, "seed": 1},
                                        headers={"Prefer": "wait=soon"})
    assert response.status_code == 202


def test_server_still_ready_after_the_corpus(live_server):
    assert requests.get(f"{live_server.url}/readyz", timeout=5).status_code == 200
    metrics = live_server.session.get(f"{live_server.url}/metrics").text
    assert 'qwen_image_job_failures_total{code="internal"}' not in metrics
    log = live_server.log_tail(10_000_000)
    assert '"status": 500' not in log and "Traceback" not in log
