"""Every served model by name: `base` (MODEL_ID), and `edit` (EDIT_MODEL_ID) when it is on."""

from __future__ import annotations

import logging

from inference_server.config import Settings
from inference_server.engine.edit_loader import load_edit
from inference_server.engine.loader import LoadedModel, load
from inference_server.model_names import BASE, EDIT

log = logging.getLogger(__name__)


def load_models(settings: Settings) -> dict[str, LoadedModel]:
    base = load(settings)
    models = {BASE: base}
    try:
        edit = load_edit(settings, base)
    except Exception:  # the optional model must not take generation down with it
        log.exception("the edit model failed to load (EDIT_MODEL_ID=%r): serving the base model only",
                      settings.edit_model_id)
        edit = None
    if edit is not None:
        models[EDIT] = edit
    return models
