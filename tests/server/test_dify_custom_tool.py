"""Dify's custom-tool importer on our /openapi.json, and calls made the way Dify's custom tools make them.

`dify_tools` restates, in our own words, what Dify's `ApiBasedToolSchemaParser.parse_openapi_to_tool_bundle`
(api/core/tools/utils/parser.py) does with a schema, and `call_like_dify` what its `ApiTool.do_http_request`
(api/core/tools/custom_tool/tool.py) sends. Read from Dify's source; not copied from it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np
import requests
from PIL import Image

from tests.support import far_from, png_b64

DIFY_READ_TIMEOUT_S = 60  # API_TOOL_DEFAULT_READ_TIMEOUT
METHODS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")


@dataclass
class Param:
    kind: str  # string | number | boolean: what Dify's form and its LLM see
    required: bool
    default: object
    description: str
    where: str  # query | path | header | cookie | body


@dataclass
class Tool:
    url: str
    method: str
    operation: dict
    params: dict[str, Param] = field(default_factory=dict)


def _kind(schema: dict) -> str:
    """A plain `type` string decides; anything else (anyOf, $ref, no type) stays a string. A list crashes Dify."""
    declared = schema.get("type", schema.get("schema", {}).get("type"))
    assert not isinstance(declared, list), f"Dify cannot hash a list of types: {schema}"
    return {"integer": "number", "number": "number", "boolean": "boolean"}.get(declared, "string")


def dify_tools(schema: dict) -> dict[str, Tool]:
    assert schema["info"] and schema["servers"], "Dify refuses a schema without info or servers"
    server = schema["servers"][0]["url"]
    tools = {}
    for path, item in schema["paths"].items():
        for method in (m for m in METHODS if m in item):
            operation = item[method]
            tool = Tool(server + path, method, operation)
            for parameter in operation.get("parameters", []):
                tool.params[parameter["name"]] = Param(
                    _kind(parameter), parameter.get("required", False),
                    parameter.get("schema", {}).get("default"), parameter.get("description", ""), parameter["in"])
            content = operation.get("requestBody", {}).get("content", {})
            if content:
                last = list(content.values())[-1]["schema"]  # the schema of the LAST content type is read
                if "$ref" in last:  # one level of $ref, from the document's root
                    target = schema
                    for part in last["$ref"].split("/")[1:]:
                        target = target[part]
                    last = target
                for name, prop in last.get("properties", {}).items():
                    tool.params[name] = Param(_kind(prop), name in last.get("required", []), prop.get("default"),
                                              prop.get("description", ""), "body")
            tools[operation.get("operationId") or path.strip("/") + "_" + method] = tool
    return tools


def call_like_dify(tool: Tool, schema: dict, given: dict, key: str) -> requests.Response:
    """JSON (the FIRST content type) with every absent property as its default or None; query and path filled."""
    url, params, headers = tool.url, {}, {"Authorization": f"Bearer {key}"}
    for parameter in tool.operation.get("parameters", []):
        value = given.get(parameter["name"], parameter.get("schema", {}).get("default", ""))
        if parameter["in"] == "path":
            url = url.replace("{%s}" % parameter["name"], str(value))
        elif parameter["in"] == "query" and value != "":
            params[parameter["name"]] = value
        elif parameter["in"] == "header":
            headers[parameter["name"]] = str(value)
    body = None
    content = tool.operation.get("requestBody", {}).get("content", {})
    if content:
        content_type = next(iter(content))
        assert content_type == "application/json", "Dify would send this body as " + content_type
        ref = content[content_type]["schema"]["$ref"].rsplit("/", 1)[1]
        body_schema = schema["components"]["schemas"][ref]
        body = {}
        for name, prop in body_schema["properties"].items():
            if name in given:
                body[name] = given[name]
            else:
                assert name not in body_schema.get("required", []), f"Dify refuses a call without {name}"
                body[name] = prop.get("default")  # older Dify: None when the property has no default
        headers["Content-Type"] = content_type
    return requests.request(tool.method, url, params=params, headers=headers,
                            data=None if body is None else json.dumps(body), timeout=(10, DIFY_READ_TIMEOUT_S))


def _schema(live_server) -> dict:
    answer = requests.get(f"{live_server.url}/openapi.json", timeout=30)  # Import from URL sends no key
    assert answer.status_code == 200
    return answer.json()


def test_dify_sees_the_tasks_and_the_job_status_typed_and_described(live_server):
    tools = dify_tools(_schema(live_server))
    assert set(tools) == {"generate", "inpaint", "outpaint", "img2img", "getJob"}
    generate = tools["generate"].params
    assert generate["prompt"].required and generate["prompt"].kind == "string"
    assert [name for name, p in generate.items() if p.required] == ["prompt"]
    assert generate["num_images"].kind == "number" and generate["num_images"].default == 1
    assert generate["seed"].kind == "number" and generate["guidance"].kind == "number"
    assert generate["wait"].where == "query" and 0 < generate["wait"].default < DIFY_READ_TIMEOUT_S
    inpaint = tools["inpaint"].params
    assert inpaint["image"].required and not inpaint["mask"].required and inpaint["region"].kind == "string"
    assert "x,y,width,height" in inpaint["region"].description
    assert inpaint["mask_invert"].kind == "boolean"
    assert {name for name, p in tools["img2img"].params.items() if p.required} == {"prompt", "image"}
    job = tools["getJob"]
    assert job.method == "get" and job.params["job_id"].required and job.params["job_id"].where == "path"
    for name, tool in tools.items():
        assert tool.operation.get("summary") or tool.operation.get("description"), name
        for param_name, param in tool.params.items():
            assert param.description.strip(), f"{name}.{param_name} has no description for the LLM"
    full = live_server.session.get(f"{live_server.url}/openapi/full.json", timeout=30).json()
    assert {"jobEvents", "getFile", "healthz", "cancelJob"} <= set(dify_tools(full))  # for humans, all of it


def test_a_call_made_like_dify_answers_images_inside_its_timeout(live_server):
    schema = _schema(live_server)
    tools = dify_tools(schema)
    answer = call_like_dify(tools["generate"], schema, {"prompt": "a paper crane", "width": 32, "height": 32,
                                                         "num_inference_steps": 2, "seed": 8}, live_server.api_key)
    job = answer.json()
    assert answer.status_code == 200 and job["status"] == "succeeded", job
    image = job["images"][0]
    assert image["absolute_url"].startswith(live_server.url + "/v1/files/")
    opened = requests.get(image["absolute_url"], timeout=30)  # as Dify's chat shows it: no key
    assert Image.open(io.BytesIO(opened.content)).size == (32, 32)
    again = call_like_dify(tools["getJob"], schema, {"job_id": job["id"]}, live_server.api_key).json()
    assert again["id"] == job["id"] and again["images"][0]["absolute_url"].split("?")[0] == \
        image["absolute_url"].split("?")[0]


def test_inpaint_like_dify_with_a_region_as_text(live_server):
    schema = _schema(live_server)
    source = Image.new("RGB", (64, 48), (200, 60, 60))
    answer = call_like_dify(dify_tools(schema)["inpaint"], schema,
                            {"prompt": "a green leaf", "image": png_b64(source), "region": "8,8,16,12",
                             "mask_grow": 2, "mask_blur": 2, "num_inference_steps": 2, "seed": 2},
                            live_server.api_key)
    job = answer.json()
    assert answer.status_code == 200 and job["params"]["task"] == "inpaint", job
    result = Image.open(io.BytesIO(requests.get(job["images"][0]["absolute_url"], timeout=30).content))
    outside = far_from((8, 8, 24, 20), 2 + 4, (64, 48))
    assert np.array_equal(np.asarray(result.convert("RGB"))[outside], np.asarray(source)[outside])


def test_the_plugins_way_is_unchanged_202_without_prefer(live_server):
    answer = live_server.session.post(f"{live_server.url}/v1/generate", json={"prompt": "x", "width": 32,
                                                                              "height": 32, "num_inference_steps": 1},
                                      timeout=30)
    assert answer.status_code == 202 and "Preference-Applied" not in answer.headers
    bad = live_server.session.post(f"{live_server.url}/v1/generate?wait=90", json={"prompt": "x"}, timeout=30)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "wait"
