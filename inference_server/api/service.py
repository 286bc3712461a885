"""Liveness, readiness, what this server runs, and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_server import __version__
from inference_server.errors import ApiError
from inference_server.schemas import IMAGE_FIELDS

bp = Blueprint("service", __name__)
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
    engine = current_app.config["JOBS"].engine
    described = engine.describe() if engine else {"model": None, "family": None, "device": None, "dtype": None}
    family = engine.family if engine else None
    return jsonify({
        "service": SERVICE_NAME, "version": __version__, **described, "ready": engine is not None,
        "tasks": list(IMAGE_FIELDS),
        "defaults": {"num_inference_steps": family.default_steps, "guidance": family.default_guidance,
                     "size_multiple": family.size_multiple, "aspect_ratios": family.presets} if family else None,
        "limits": {"max_pixels": settings.max_pixels, "max_upload_mb": settings.max_upload_mb,
                   "max_queue": settings.max_queue, "job_timeout_s": settings.job_timeout_s,
                   "max_images": 4, "max_wait_s": 60},
    })


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.config["METRICS"].registry), mimetype=CONTENT_TYPE_LATEST)
