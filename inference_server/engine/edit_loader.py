"""The instruction-edit model (EDIT_MODEL_ID), loaded beside the base one and sharing what is identical.

With the same family as the base model, the Qwen2.5-VL text encoder, the VAE and the tokenizer are one
copy in memory (`sharing.py`): memory holds one transformer more and nothing else. On one device the two
transformers are either both resident or take turns (`placement.py`, EDIT_PLACEMENT).
"""

from __future__ import annotations

import logging
from pathlib import Path

from diffusers import DiffusionPipeline

from inference_server.config import Settings
from inference_server.engine.placement import Placement, choose_mode, parameter_bytes
from inference_server.engine.sharing import load_sharing, loaded_components
from inference_server.engine.loader import LoadedModel, pick_device, pick_dtype, wants_offload
from inference_server.families import family_for
from inference_server.model_names import BASE, EDIT

INSTRUCTION = "instruction"  # the pipeline kind an edit task calls

log = logging.getLogger(__name__)
DEFAULT_EDIT_MODEL = "Qwen/Qwen-Image-Edit-2509"
DISABLED = "none"
TINY = "tiny"


def resolve_edit_model(settings: Settings, device: str) -> tuple[str, str] | None:
    """(path to load, name to report), or None when the edit task is off."""
    model_id = settings.edit_model_id.strip() or (DEFAULT_EDIT_MODEL if device.startswith("cuda") else DISABLED)
    if model_id == DISABLED:
        return None
    if model_id != TINY:
        return model_id, model_id
    folder = Path(settings.data_dir) / "tiny-edit-model"
    if not (folder / "model_index.json").exists():
        from inference_server.engine.tiny_edit_model import save_tiny_edit_model

        save_tiny_edit_model(folder)
    return str(folder), TINY


def load_edit(settings: Settings, base: LoadedModel) -> LoadedModel | None:
    device = settings.edit_device or base.device or pick_device(settings.device)
    resolved = resolve_edit_model(settings, device)
    if resolved is None:
        return None
    path, name = resolved
    family = family_for(DiffusionPipeline.load_config(path), INSTRUCTION)
    dtype = pick_dtype(settings.torch_dtype, family, device)
    base_pipe = base.pipelines["text2image"]
    loaded = loaded_components(base_pipe, base.path) if base.path else {}
    shared = load_sharing(path, loaded, dtype)
    pipe = shared.pipeline
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded the edit model %s (%s) on %s, sharing %s", name, type(pipe).__name__, device,
             ", ".join(shared.shared) or "nothing")
    edit = LoadedModel({INSTRUCTION: pipe}, family, name, device, dtype, str(path),
                       input_area=settings.edit_input_area or None)
    if wants_offload(settings.enable_cpu_offload, base_pipe, base.device):
        pipe.enable_model_cpu_offload()  # offload already takes turns on the GPU; no placement on top
        return edit
    if device != base.device:  # its own GPU (EDIT_DEVICE=cuda:1): both stay resident
        pipe.to(device)
        return edit
    for component in ("text_encoder", "vae"):  # shared ones are already there; a copy of its own goes now
        module = getattr(pipe, component, None)
        if module is not None and component not in shared.shared:
            module.to(device)
    mode = choose_mode(settings.edit_placement, device, parameter_bytes(pipe.transformer))
    turns = Placement(mode, device, {BASE: base_pipe.transformer, EDIT: pipe.transformer},
                                active=BASE)
    log.info("edit placement: %s", mode)
    base.placement = edit.placement = turns
    return edit
