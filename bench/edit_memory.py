"""P6-cpu: a server holding base and edit models copies none of the components they share.

Peak RSS of the whole server (HTTP process and engine process) with the mid-size base and edit models,
after every task, ÷ (the base-only server's peak after the same base tasks + the edit transformer's
parameter bytes). Near 1.0 means the text encoder, VAE and tokenizer are held once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.ratios import CACHE, SIZE, Row, _photo, mid_model, worker_peak_rss
from tests.support import ROOT, ServerProcess, png_b64


def mid_edit_model() -> Path:
    folder = CACHE / "mid-edit-model"
    if not (folder / "model_index.json").exists():
        code = ("from inference_server.engine.tiny_edit_model import save_tiny_edit_model; "
                "from inference_server.engine.tiny_model import MID; "
                f"save_tiny_edit_model({str(folder)!r}, MID)")
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return folder


def _serve_everything(server: ServerProcess, with_edit: bool) -> int:
    photo = png_b64(_photo(256, 256))
    steps = {"num_inference_steps": 4, "seed": 0}
    server.run("generate", {"prompt": "x", **steps, **SIZE})
    server.run("img2img", {"prompt": "x", "image": photo, **steps})
    server.run("inpaint", {"prompt": "x", "image": photo, "region": {"x": 64, "y": 64, "width": 64, "height": 64},
                           **steps})
    server.run("outpaint", {"prompt": "x", "image": png_b64(_photo(192, 256)), "right": 64, **steps})
    if with_edit:
        server.run("edit", {"prompt": "x", "images": [photo, png_b64(_photo(192, 256))], **steps, **SIZE})
    return worker_peak_rss(server)


def p6_edit_memory() -> Row:
    base_folder, edit_folder = mid_model(), mid_edit_model()
    transformer_bytes = sum(path.stat().st_size for path in (edit_folder / "transformer").glob("*.safetensors"))
    peaks = {}
    for name, env in (("base-only", {"EDIT_MODEL_ID": "none"}),
                      ("base-and-edit", {"EDIT_MODEL_ID": str(edit_folder), "EDIT_INPUT_AREA": str(256 * 256)})):
        folder = CACHE / "servers" / f"p6-{name}"
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        server = ServerProcess(folder, MODEL_ID=str(base_folder), **env).start()
        try:
            peaks[name] = _serve_everything(server, with_edit="EDIT_INPUT_AREA" in env)
        finally:
            server.stop()
    expected = peaks["base-only"] + transformer_bytes
    return Row("P6-cpu", "peak RSS, base + edit models after every task ÷ (base only + edit transformer bytes)",
               peaks["base-and-edit"] / expected, 1.05,
               f"{peaks['base-and-edit'] / 2**20:.0f} MiB ÷ ({peaks['base-only'] / 2**20:.0f} + "
               f"{transformer_bytes / 2**20:.0f} MiB)")


if __name__ == "__main__":
    row = p6_edit_memory()
    print(f"{row.key}: {row.measured:.3f} (target ≤ {row.target}) {row.detail}")
