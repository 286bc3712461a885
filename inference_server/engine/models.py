"""Every served model by name: `base` (MODEL_ID), and `edit` (EDIT_MODEL_ID) when it is on."""

from __future__ import annotations

from inference_server.config import Settings
from inference_server.engine.edit_loader import load_edit
from inference_server.engine.loader import LoadedModel, load
from inference_server.model_names import BASE, EDIT


def load_models(settings: Settings) -> dict[str, LoadedModel]:
    base = load(settings)
    models = {BASE: base}
    edit = load_edit(settings, base)
    if edit is not None:
        models[EDIT] = edit
    return models
