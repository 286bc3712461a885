"""GET /openapi/full.json: every endpoint in OpenAPI 3.1, built from the task registry and the request models.

`/openapi.json` is the smaller schema that Dify's custom-tool importer reads (`api/tool_schema.py`).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from inference_server.api.file_links import server_url

from inference_server import __version__
from inference_server.jobs.status import JobStatus
from inference_server.tasks import TaskRegistry, TaskSpec

bp = Blueprint("openapi", __name__)
_ERROR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JOB = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
def _image_schema(image, binary: bool) -> dict:
    one = {"type": "string", "format": "binary"} if binary else {"type": "string", "description": image.description}
    if image.max_count == 1:
        return one
    return {"type": "array", "items": one, "minItems": 1, "maxItems": image.max_count,
            "description": image.description}


def _task_operation(spec: TaskSpec, components: dict) -> dict:
    schema = spec.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    for image in spec.images:
        schema["properties"][image.name] = _image_schema(image, binary=False)
        if image.required:
            schema.setdefault("required", []).append(image.name)
    name = f"{spec.name.capitalize()}Request"
    components[name] = schema
    multipart = {"type": "object", "properties": {
        **{k: {"type": "string"} for k in schema["properties"]},
        **{image.name: _image_schema(image, binary=True) for image in spec.images}}}
    return {"post": {
        "operationId": spec.name, "summary": f"{spec.summary} (task {spec.name})", "tags": ["tasks"],
        "parameters": [{"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
                        "description": "wait=N (N ≤ 60): wait up to N s and answer 200 with the finished job"},
                       {"name": "wait", "in": "query", "required": False, "schema": {"type": "number", "maximum": 60},
                        "description": "The same as Prefer: wait=N, for clients that cannot send headers"}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}},
            "multipart/form-data": {"schema": multipart}}},
        "responses": {"200": {"description": "Finished job (with Prefer: wait)", **_JOB},
                      "202": {"description": "Job accepted", **_JOB},
                      **{code: _ERROR for code in ("400", "401", "413", "422", "429", "503")}},
    }}


def build_spec(server_url: str, tasks: TaskRegistry) -> dict:
    components: dict = {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}},
        "Job": {"type": "object", "properties": {
            "id": {"type": "string"}, "task": {"type": "string"},
            "status": {"type": "string", "enum": [status.value for status in JobStatus]},
            "position": {"type": ["integer", "null"]}, "progress": {"type": "object"}, "params": {"type": "object"},
            "notices": {"type": "array", "items": {"type": "string"}},
            "images": {"type": "array", "items": {"type": "object", "properties": {
                "url": {"type": "string", "description": "Signed when the server has keys; absolute with "
                                                         "PUBLIC_BASE_URL"},
                "absolute_url": {"type": "string", "description": "The same link with the scheme and host"},
                "seed": {"type": "integer"}, "width": {"type": "integer"},
                "height": {"type": "integer"}, "mime_type": {"type": "string"}}}},
            "error": {"type": ["object", "null"]}, "cache": {"type": "string"},
            "model": {"type": "string", "description": "The model that ran it"}}},
    }
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths = {f"/v1/{spec.name}": _task_operation(spec, components) for spec in tasks}
    paths.update({
        "/v1/jobs/{job_id}": {
            "get": {"operationId": "getJob", "summary": "Read a job; ?wait=N long-polls until it ends",
                    "parameters": [job_id, {"name": "wait", "in": "query", "schema": {"type": "number",
                                                                                      "maximum": 60}}],
                    "responses": {"200": {"description": "The job", **_JOB}, "404": _ERROR, "422": _ERROR}},
            "delete": {"operationId": "cancelJob", "summary": "Cancel a queued or running job",
                       "parameters": [job_id],
                       "responses": {"200": {"description": "The job", **_JOB}, "404": _ERROR, "409": _ERROR}}},
        "/v1/jobs": {"get": {
            "operationId": "listJobs", "summary": "Recent jobs, newest first; pass next_before as before for more",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                       "maximum": 100, "default": 20}},
                           {"name": "before", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "{jobs: [Job], next_before: string | null}"}, "422": _ERROR}}},
        "/v1/jobs/{job_id}/events": {"get": {
            "operationId": "jobEvents", "summary": "The job's changes as Server-Sent Events",
            "parameters": [job_id], "responses": {"200": {"description": "text/event-stream"}, "404": _ERROR}}},
        "/v1/files/{name}": {"get": {
            "operationId": "getFile", "summary": "An output image",
            "description": "With keys on, the key or a signed link's expires and sig (the job's url has them)",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "expires", "in": "query", "schema": {"type": "integer"}},
                           {"name": "sig", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Image bytes"}, "403": _ERROR, "404": _ERROR}}},
        "/healthz": {"get": {"operationId": "healthz", "security": [], "responses": {"200": {"description": "Alive"}}}},
        "/readyz": {"get": {"operationId": "readyz", "security": [],
                            "responses": {"200": {"description": "Ready"}, "503": _ERROR}}},
        "/v1/info": {"get": {"operationId": "info", "responses": {"200": {"description": "Model, device, limits"}}}},
        "/metrics": {"get": {"operationId": "metrics", "responses": {"200": {"description": "Prometheus text"}}}},
        "/openapi/full.json": {"get": {"operationId": "openapi",
                                       "responses": {"200": {"description": "This spec"}}}},
        "/openapi.json": {"get": {"operationId": "toolSchema", "security": [], "responses": {
            "200": {"description": "The task operations for Dify's custom-tool importer"}}}},
    })
    return {
        "openapi": "3.1.0",
        "info": {"title": "Qwen-Image inference server", "version": __version__},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


@bp.get("/openapi/full.json")
def openapi():
    return jsonify(build_spec(server_url(), current_app.config["JOBS"].tasks))
