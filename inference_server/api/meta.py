"""Liveness, readiness, what this server runs, and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_server import __version__
from inference_server.errors import ApiError
from inference_server.model_names import BASE

bp = Blueprint("meta", __name__)
SERVICE_NAME = "qwen-image-inference-server"


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    reason = current_app.config["JOBS"].not_ready_reason()
    if reason:
        raise ApiError(503, "not_ready", reason, headers={"Retry-After": "5"})
    return jsonify({"status": "ready"})


@bp.get("/v1/info")
def info():
    settings = current_app.config["SETTINGS"]
    jobs = current_app.config["JOBS"]
    models = jobs.models()
    base = models.get(BASE)
    described = base.describe() if base else {"model": None, "family": None, "device": None, "dtype": None}
    family = base.family if base else None
    return jsonify({
        "service": SERVICE_NAME, "version": __version__, **described, "ready": jobs.not_ready_reason() is None,
        "tasks": [spec.name for spec in jobs.tasks if not models or spec.model in models],
        "models": {name: {**model.describe(), "tasks": [spec.name for spec in jobs.tasks if spec.model == name],
                          "defaults": _defaults(model.family)} for name, model in models.items()},
        "defaults": _defaults(family) if family else None,
        "limits": {"max_pixels": settings.max_pixels, "max_upload_mb": settings.max_upload_mb,
                   "max_queue": settings.max_queue, "job_timeout_s": settings.job_timeout_s,
                   "max_images": 4, "max_wait_s": 60},
    })


def _defaults(family) -> dict:
    return {"num_inference_steps": family.default_steps, "guidance": family.default_guidance,
            "size_multiple": family.size_multiple, "aspect_ratios": family.presets}


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.config["METRICS"].registry), mimetype=CONTENT_TYPE_LATEST)
