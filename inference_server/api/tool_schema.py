"""GET /openapi.json: the schema that Dify's custom-tool importer (Tools > Custom > Import from URL) reads well.

Dify's importer offers every operation as a tool, reads only the top-level properties of a request body (one
`$ref` deep), takes a parameter's type only from a plain `type` string (anything else becomes a string),
reads the *last* content type's schema and sends the *first* one. So this schema lists only the task
operations and the job status, with JSON as the only body type, flat primitive properties with
descriptions, and a `wait` query parameter whose default (50 s) answers inside Dify's 60 s read timeout.
Every endpoint stays documented for humans at /openapi/full.json (`api/openapi.py`).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from inference_server import __version__
from inference_server.api.file_links import server_url
from inference_server.api.openapi import build_spec
from inference_server.tasks import TaskSpec

bp = Blueprint("tool_schema", __name__)
TOOL_WAIT_S = 50  # under Dify's default read timeout for custom tools (60 s), with room for the answer
_WAIT_TEXT = (f"Seconds to wait for the images before answering (default {TOOL_WAIT_S}, at most 60). "
              "If the job is still running, the answer holds its id: call getJob with it.")
FIELD_NOTES = {
    "prompt": "What to draw, in any language (English and Chinese work best); describe text to render in quotes.",
    "negative_prompt": "What to avoid in the image.",
    "num_inference_steps": "Denoising steps; more is slower and finer. Leave empty for the model's default.",
    "guidance": "How strictly to follow the prompt (0-20). Leave empty for the model's default.",
    "seed": "Random seed for a reproducible result; image i uses seed + i. Leave empty for a random one.",
    "num_images": "How many images to make (1-4).",
    "output_format": "Image file format: png, webp or jpeg.",
    "width": "Output width in pixels; give height too, or neither.",
    "height": "Output height in pixels; give width too, or neither.",
    "aspect_ratio": "Aspect ratio of the model's recommended sizes, such as 16:9; instead of width and height.",
    "strength": "How much to change the input (0.01-1); 1 repaints fully.",
    "region": 'The rectangle to repaint as "x,y,width,height" in pixels of the input image, such as "0,0,256,256".',
    "mask_invert": "Repaint the mask's black area instead of the white one.",
    "mask_blur": "Soften the mask's edge by this many pixels.",
    "mask_grow": "Grow the mask by this many pixels before blurring.",
    "inpaint_area": "full: repaint within the whole image; masked: work on a crop around the mask (finer detail).",
    "masked_padding": "Context around the mask's crop, in pixels, with inpaint_area=masked.",
    "left": "Pixels to add on the left.",
    "right": "Pixels to add on the right.",
    "top": "Pixels to add at the top.",
    "bottom": "Pixels to add at the bottom.",
    "feather": "Width in pixels of the blend between the original and the new area.",
}
_KEPT = ("type", "enum", "default", "minimum", "maximum", "maxLength", "minItems", "maxItems", "items")


def _flat(name: str, schema: dict) -> dict:
    """One property as Dify reads it: a plain type string (no anyOf, no type lists, no $ref), with a description."""
    options = [option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"]
    chosen = options[0] if options else {"type": "string"}
    if "$ref" in chosen:  # a nested object (region): its text form
        chosen = {"type": "string"}
    flat = {key: chosen[key] for key in _KEPT if key in chosen}
    if schema.get("default") is not None:
        flat["default"] = schema["default"]
    flat["description"] = FIELD_NOTES.get(name) or schema.get("description") or _describe_limits(name, flat)
    return flat


def _describe_limits(name: str, flat: dict) -> str:
    text = name.replace("_", " ").capitalize()
    if "minimum" in flat and "maximum" in flat:
        text += f" ({flat['minimum']}-{flat['maximum']})"
    if "enum" in flat:
        text += ": one of " + ", ".join(map(str, flat["enum"]))
    return text + "."


def task_operation(spec: TaskSpec, components: dict) -> dict:
    schema = spec.request_model.model_json_schema()
    properties = {name: _flat(name, prop) for name, prop in schema["properties"].items()}
    required = list(schema.get("required", []))
    for image in spec.images:
        text = f"{image.description}. Send the file's bytes as base64, not a URL."
        properties[image.name] = ({"type": "string", "description": text} if image.max_count == 1 else
                                  {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                   "maxItems": image.max_count, "description": f"1 to {image.max_count}: {text}"})
        if image.required:
            required.append(image.name)
    name = f"{spec.name.capitalize()}ToolRequest"
    components[name] = {"type": "object", "properties": properties, "required": required}
    return {"post": {
        "operationId": spec.name, "summary": spec.summary,
        "description": f"{spec.summary}. Answers the job; its images[].absolute_url open in a browser or chat.",
        "parameters": [{"name": "wait", "in": "query", "required": False, "description": _WAIT_TEXT,
                        "schema": {"type": "number", "default": TOOL_WAIT_S, "minimum": 0, "maximum": 60}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}},
        "responses": _answers("The finished job (202: still running, call getJob)"),
    }}


def _answers(what: str) -> dict:
    job = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
    error = {"description": "Error",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {"200": {"description": what, **job}, "202": {"description": "Still queued or running", **job},
            **{code: error for code in ("400", "401", "404", "422", "429", "503")}}


def build_tool_spec(base_url: str, specs: list[TaskSpec]) -> dict:
    full = build_spec(base_url, ())
    components = {name: full["components"]["schemas"][name] for name in ("Job", "Error")}
    paths = {f"/v1/{spec.name}": task_operation(spec, components) for spec in specs}
    paths["/v1/jobs/{job_id}"] = {"get": {
        "operationId": "getJob", "summary": "Read a job by id, waiting for it to end",
        "description": "The job's status and, once it succeeded, its images (absolute_url opens in a browser).",
        "parameters": [
            {"name": "job_id", "in": "path", "required": True, "description": "The job's id, from a task's answer.",
             "schema": {"type": "string"}},
            {"name": "wait", "in": "query", "required": False, "description": _WAIT_TEXT,
             "schema": {"type": "number", "default": TOOL_WAIT_S, "minimum": 0, "maximum": 60}}],
        "responses": _answers("The job"),
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Qwen-Image", "version": __version__,
                 "description": "Make and edit images with a self-hosted Qwen-Image server. Each call answers "
                                "within a minute; a long job answers its id, which getJob reads."},
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": full["components"]["securitySchemes"]},
        "security": [{"bearer": []}],
    }


@bp.get("/openapi.json")
def tool_openapi():
    jobs = current_app.config["JOBS"]
    served = jobs.models()
    specs = [spec for spec in jobs.tasks if not served or spec.model in served]
    return jsonify(build_tool_spec(server_url(), specs))
