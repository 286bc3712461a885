"""Load the served models by name: each with `from_pretrained`, its sibling pipelines with `from_pipe`."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
)

from inference_server.config import Settings
from inference_server.families import Family, family_for

log = logging.getLogger(__name__)
DEFAULT_MODEL = "Qwen/Qwen-Image"
TINY_MODEL = "tiny"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def pick_device(setting: str) -> str:
    if setting != "auto":
        return setting
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(setting: str, family: Family, device: str) -> torch.dtype:
    """Half precision on CUDA (bf16 for Qwen/FLUX, which overflow in fp16), fp32 on the CPU."""
    if setting != "auto":
        if setting not in DTYPES:
            raise ValueError(f"TORCH_DTYPE must be auto, float16, bfloat16 or float32, not {setting!r}")
        return DTYPES[setting]
    return DTYPES[family.half_dtype] if device.startswith("cuda") else torch.float32


def resolve_model(settings: Settings, device: str) -> tuple[str, str]:
    """(path to load, name to report). With no MODEL_ID a CPU-only machine gets the tiny model, loudly."""
    model_id = settings.model_id
    if not model_id:
        model_id = DEFAULT_MODEL if device.startswith("cuda") else TINY_MODEL
        if model_id == TINY_MODEL:
            log.warning(
                "NO GPU FOUND: serving the TINY RANDOM-WEIGHT test model, whose images are noise. "
                "Set MODEL_ID=Qwen/Qwen-Image (or a local folder) on a CUDA machine to serve the real model."
            )
    if model_id != TINY_MODEL:
        return model_id, model_id
    folder = Path(settings.data_dir) / "tiny-model"
    if not (folder / "model_index.json").exists():
        from inference_server.engine.tiny_model import save_tiny_model

        save_tiny_model(folder)
    return str(folder), TINY_MODEL


@dataclasses.dataclass
class LoadedModel:
    pipelines: dict[str, DiffusionPipeline]
    family: Family
    model_name: str
    device: str
    dtype: torch.dtype
    path: str = ""  # the folder it was loaded from (for sharing identical components)
    placement: object | None = None  # engine.placement.Placement, when transformers share a device by turns
    input_area: int | None = None  # Edit Plus: the area each input image is VAE-encoded at (None: its own)


def load(settings: Settings) -> LoadedModel:
    device = pick_device(settings.device)
    path, name = resolve_model(settings, device)
    config = DiffusionPipeline.load_config(path)
    class_name = config["_class_name"]
    family = family_for(config, "text2image")
    dtype = pick_dtype(settings.torch_dtype, family, device)
    log.info("loading %s (%s) on %s as %s", name, class_name, device, dtype)
    base = AutoPipelineForText2Image.from_pretrained(path, dtype=dtype)
    if settings.lightning_lora:
        family = _enable_fast_mode(base, settings.lightning_lora, family)
    # AutoPipeline*.from_pipe keeps the dtype; the task classes' own from_pipe would cast to fp32 (diffusers #12754).
    pipelines = {
        "text2image": base,
        "image2image": AutoPipelineForImage2Image.from_pipe(base),
        "inpainting": AutoPipelineForInpainting.from_pipe(base),
    }
    _place(base, settings, device)
    for pipe in pipelines.values():
        pipe.set_progress_bar_config(disable=True)
    if settings.compile_transformer:
        _warm_up(base, family)
    return LoadedModel(pipelines, family, name, device, dtype, path)


def wants_offload(setting, base: DiffusionPipeline, device: str) -> bool:
    """`auto`: offload only when the weights (plus working room) do not fit the GPU."""
    value = str(setting).strip().lower()
    if not device.startswith("cuda") or value in ("0", "false", "off", "no", ""):
        return False
    if value != "auto":
        return True
    weights = sum(p.numel() * p.element_size() for m in base.components.values()
                  if isinstance(m, torch.nn.Module) for p in m.parameters())
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    return weights + 8 * 2**30 > total


def _place(base: DiffusionPipeline, settings: Settings, device: str) -> None:
    if wants_offload(settings.enable_cpu_offload, base, device):
        log.info("the weights do not fit %s: enabling model CPU offload", device)
        base.enable_model_cpu_offload()
    else:
        base.to(device)
    if settings.vae_tiling:
        base.vae.enable_tiling()
    denoiser = base.unet if hasattr(base, "unet") else base.transformer  # SDXL has a UNet, Qwen/FLUX a transformer
    if settings.attention_backend:
        denoiser.set_attention_backend(settings.attention_backend)
    if settings.compile_transformer:
        denoiser.compile_repeated_blocks(fullgraph=True)


def _warm_up(base: DiffusionPipeline, family: Family) -> None:
    """Compile at start, for every preset size, so no user request pays for it."""
    for ratio, (width, height) in family.presets.items():
        started = time.perf_counter()
        base(prompt="warm-up", num_inference_steps=2, width=width, height=height,
             **family.guidance_kwargs(family.default_guidance, ""))
        log.info("compiled for %s (%dx%d) in %.1f s", ratio, width, height, time.perf_counter() - started)


def _enable_fast_mode(base: DiffusionPipeline, lora_path: str, family: Family) -> Family:
    """Qwen-Image-Lightning: an 8-step LoRA, fused, with no CFG and its own scheduler shift."""
    base.load_lora_weights(lora_path)
    base.fuse_lora()
    base.unload_lora_weights()
    config = dict(base.scheduler.config)
    config.update(base_shift=math.log(3), max_shift=math.log(3), shift_terminal=None, time_shift_type="exponential",
                  use_dynamic_shifting=True, shift=1.0)
    base.scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
    return dataclasses.replace(family, default_steps=8, default_guidance=1.0)
