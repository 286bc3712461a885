"""GPU benchmark of the edit model beside the base model: seconds per edit, peak VRAM, EDIT_PLACEMENT gpu vs swap.

Why this exists: the claim that an H200 serves Qwen-Image and Qwen-Image-Edit-2509 together (`gpu`), and that
an 80 GB card can with `swap`, rests on memory and copy times nobody can measure on a CPU. So the full-size
architecture is built on the GPU with random bf16 weights (bench/gpu.py's `build_pipeline`), plus a second
20 B transformer and the Qwen2-VL processor (tiny_edit_model's `edit_pipeline_from`), sharing the text
encoder, VAE and tokenizer as the server does. The compute is the real model's; the images are noise.

  gpu   both transformers resident; the edit call timed: two 1024² inputs, 1024² out, 40 steps with true CFG
  swap  the server's `Placement` in swap mode: each repeat runs a 2-step base call (transformer swapped in),
        then the timed edit call (the edit transformer swapped in from pinned host memory); swap seconds are
        reported apart from the edit's own seconds

On an H200 expect about 5 minutes: two placements, each a 2-step warm-up and two timed 40-step edits of
80 transformer passes over ~12,300 image tokens. The swap placement holds both transformers in page-locked
host memory (2 x 38 GiB). `--model tiny` runs the same path on the CPU with the tiny model; `--dry-run`
builds the full-size model on the `meta` device (no memory, no weights) and prints its parameter counts:
tests run that on every CPU.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.gpu import FULL, TINY, PassTimer, build_pipeline, gpu_name
from bench.provenance import commit

PROMPT = "Put the coffee cup from picture 2 on the table in picture 1, keep the morning light."
STEPS = {"full": 40, "tiny": 2}


@dataclass
class Row:
    placement: str
    steps: int
    images_s: list = field(default_factory=list)
    passes: list = field(default_factory=list)
    swap_in_s: list = field(default_factory=list)  # the edit transformer moved in
    swap_out_s: list = field(default_factory=list)  # the base transformer moved back in
    peak_gib: float = 0.0
    note: str = ""


def build(spec, device: str, dtype: torch.dtype):
    """The base pipeline and an edit pipeline sharing its text encoder, VAE and tokenizer."""
    from inference_server.engine.tiny_edit_model import edit_pipeline_from

    base = build_pipeline(spec, device, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            edit = edit_pipeline_from(base)
    finally:
        torch.set_default_dtype(previous)
    edit.set_progress_bar_config(disable=True)
    return base, edit


def inputs(size: int) -> list:
    from PIL import Image, ImageDraw

    scene, product = Image.new("RGB", (size, size), (90, 120, 160)), Image.new("RGB", (size, size), (240, 240, 235))
    ImageDraw.Draw(scene).rectangle((0, size * 2 // 3, size, size), fill=(120, 80, 40))
    ImageDraw.Draw(product).ellipse((size // 3, size // 3, size * 2 // 3, size * 2 // 3), fill=(200, 30, 30))
    return [scene, product]


def run_placement(mode: str, base, edit, images, spec, steps: int, repeats: int, cuda: bool, log) -> Row:
    from inference_server.engine.edit_runner import run_edit
    from inference_server.engine.placement import Placement, parameter_bytes

    device = str(edit.transformer.device) if mode == "gpu" else ("cuda" if cuda else "cpu")
    started = time.perf_counter()
    place = Placement(mode, device, {"base": base.transformer, "edit": edit.transformer}, active="base")
    row = Row(mode, steps, note=f"placement set up in {time.perf_counter() - started:.1f} s; "
                                f"edit transformer {parameter_bytes(edit.transformer) / 2**30:.1f} GiB")
    timer = PassTimer(edit.transformer, cuda)
    for repeat in range(repeats + 1):  # the first is a 2-step warm-up, its figures dropped
        out = place.activate("base")
        base(prompt="a poster", num_inference_steps=2, width=spec.size, height=spec.size,
             generator=torch.Generator("cpu").manual_seed(0))
        swap_in = place.activate("edit")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run_edit(edit, PROMPT, images, width=spec.size, height=spec.size, steps=steps if repeat else 2,
                 true_cfg_scale=4.0, negative_prompt=" ", seed=repeat)
        if cuda:
            torch.cuda.synchronize()
        seconds, passes = time.perf_counter() - start, timer.take()
        log(f"  {mode} repeat {repeat}: edit {seconds:.2f} s, swap in {swap_in:.2f} s, base back {out:.2f} s")
        if repeat:
            row.images_s.append(seconds)
            row.passes += passes
            row.swap_in_s.append(swap_in)
            row.swap_out_s.append(out)
            if cuda:
                row.peak_gib = max(row.peak_gib, torch.cuda.max_memory_allocated() / 2**30)
    return row


def report(rows: list[Row], spec, meta: dict) -> str:
    import diffusers

    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    fmt = lambda v, p: "n/a" if v is None else p.format(v)  # noqa: E731
    lines = [
        "# GPU benchmark: Qwen-Image-Edit beside Qwen-Image (EDIT_PLACEMENT)", "",
        "Generated by `python -m bench.gpu_edit` (see its docstring); do not edit. Random weights of the real",
        "architecture: the compute and memory are the real models', the images are noise.", "",
        f"- machine: {gpu_name()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; commit: {meta.pop('commit')}",
        f"- torch {torch.__version__}, diffusers {diffusers.__version__}, python {sys.version.split()[0]}",
        f"- model: {spec.name}; edit: 2 inputs of {spec.size}², output {spec.size}², true_cfg_scale 4 with negative "
        "prompt ' '",
    ]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "| placement | steps | passes | s/image (median; range) | s/pass | swap in s | swap back s "
              "| peak VRAM GiB (edit call) | note |", "|" + "---|" * 9]
    for r in rows:
        spread = f" ({min(r.images_s):.2f}–{max(r.images_s):.2f})" if len(r.images_s) > 1 else ""
        s_pass = sum(p[0] for p in r.passes) / len(r.passes) if r.passes else None
        lines.append(f"| {r.placement} | {r.steps} | {len(r.passes) // max(len(r.images_s), 1)} "
                     f"| {fmt(med(r.images_s), '{:.2f}')}{spread} | {fmt(s_pass, '{:.3f}')} "
                     f"| {fmt(med(r.swap_in_s), '{:.3f}')} | {fmt(med(r.swap_out_s), '{:.3f}')} "
                     f"| {fmt(r.peak_gib or None, '{:.1f}')} | {r.note} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("full", "tiny"), default="full" if cuda else "tiny")
    ap.add_argument("--placements", default="gpu,swap", help="gpu and/or swap (gpu runs first: swap parks one)")
    ap.add_argument("--steps", type=int, default=None, help="edit steps (default: full 40, tiny 2)")
    ap.add_argument("--repeats", type=int, default=None, help="timed edits per placement (default: full 2, tiny 1)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("gpu_edit_results.md"))
    ap.add_argument("--commit", default=None)
    ap.add_argument("--dry-run", action="store_true", help="build the full-size model on `meta` and print its size")
    args = ap.parse_args(argv)
    asked = {p.strip() for p in args.placements.split(",") if p.strip()}
    placements = [p for p in ("gpu", "swap") if p in asked]
    if not placements or asked - {"gpu", "swap"}:
        ap.error("--placements takes gpu and/or swap")
    spec = FULL if args.model == "full" or args.dry_run else TINY
    steps, repeats = args.steps or STEPS[spec.name], args.repeats or (2 if spec is FULL else 1)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # random weights: NaN-free is not promised
    t0 = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)  # noqa: E731

    device = "meta" if args.dry_run else ("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if device != "cpu" else torch.float32
    base, edit = build(spec, device, dtype)
    params = {"transformer": base.transformer, "edit transformer": edit.transformer,
              "text_encoder (shared)": edit.text_encoder, "vae (shared)": edit.vae}
    sizes = ", ".join(f"{n} {sum(p.numel() for p in m.parameters()) / 1e9:.1f}" for n, m in params.items())
    log(f"built {spec.name} on {device} as {dtype}: params (B) {sizes}")
    if args.dry_run:
        print(f"dry run: {spec.name} model on meta, nothing measured; would run {', '.join(placements)} with "
              f"{steps} steps, {repeats} timed edits each, 2 inputs of {spec.size}²")
        return 0
    meta = {"commit": args.commit or commit(), "dtype": str(dtype).removeprefix("torch."), "params (B)": sizes,
            "build s": f"{time.perf_counter() - t0:.1f}"}
    images = inputs(spec.size)
    rows = []
    for mode in placements:
        log(f"placement {mode}")
        rows.append(run_placement(mode, base, edit, images, spec, steps, repeats, cuda, log))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text := report(rows, spec, dict(meta)))
    log("done\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
