"""examples/workflows/poster.yml: importable wiring, and tool settings that match the tool YAMLs."""

import re

import pytest
import yaml

from tests.plugin.harness import ROOT

DSL = yaml.safe_load((ROOT / "examples/workflows/poster.yml").read_text(encoding="utf-8"))
GRAPH = DSL["workflow"]["graph"]
NODES = {node["id"]: node["data"] for node in GRAPH["nodes"]}
MANIFEST = yaml.safe_load((ROOT / "manifest.yaml").read_text())
PROVIDER = yaml.safe_load((ROOT / "provider/qwen_image.yaml").read_text())
TOOL_NODES = [node_id for node_id, data in NODES.items() if data["type"] == "tool"]
REFERENCE = re.compile(r"\{\{#([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)#\}\}")


def tool_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / f"tools/{name}.yaml").read_text(encoding="utf-8"))


def outputs(node_id: str) -> set:
    data = NODES[node_id]
    if data["type"] == "start":
        return {v["variable"] for v in data["variables"]}
    if data["type"] == "llm":
        return {"text"}
    if data["type"] == "list-operator":
        return {"result", "first_record", "last_record"}
    if data["type"] == "tool":
        return {"text", "files", "json"} | set(tool_yaml(data["tool_name"])["output_schema"]["properties"])
    return set()


def upstream(node_id: str) -> set:
    parents = {e["source"] for e in GRAPH["edges"] if e["target"] == node_id}
    return parents | {a for p in parents for a in upstream(p)}


def references(data) -> list:
    """Every [node, variable] a node reads, from selectors and {{#node.var#}} templates."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("variable_selector", "value_selector", "variable") and isinstance(value, list) and value:
                found.append(tuple(value[:2]))
            elif key == "value" and isinstance(value, list) and data.get("type") == "variable":
                found.append(tuple(value[:2]))
            else:
                found += references(value)
    elif isinstance(data, list):
        for item in data:
            found += references(item)
    elif isinstance(data, str):
        found += REFERENCE.findall(data)
    return found


def test_header():
    assert DSL["kind"] == "app" and DSL["version"] == "0.6.0" and DSL["app"]["mode"] == "workflow"


def test_chain_and_edges():
    chain, node = [], "start"
    while node:
        chain.append(NODES[node]["type"])
        nexts = [e for e in GRAPH["edges"] if e["source"] == node]
        assert len(nexts) <= 1
        node = nexts[0]["target"] if nexts else None
    assert chain == ["start", "llm", "tool", "list-operator", "tool", "end"]
    assert [NODES[n]["tool_name"] for n in TOOL_NODES] == ["generate", "outpaint"]
    for edge in GRAPH["edges"]:
        assert edge["data"]["sourceType"] == NODES[edge["source"]]["type"]
        assert edge["data"]["targetType"] == NODES[edge["target"]]["type"]
        assert (edge["sourceHandle"], edge["targetHandle"], edge["type"]) == ("source", "target", "custom")
    start_vars = {v["variable"]: v["type"] for v in NODES["start"]["variables"]}
    assert start_vars == {"idea": "paragraph", "product_photo": "file"}


@pytest.mark.parametrize("node_id", list(NODES))
def test_references_resolve_upstream(node_id):
    for source, variable in references(NODES[node_id]):
        assert source in upstream(node_id), (node_id, source)
        assert variable in outputs(source), (node_id, source, variable)


@pytest.mark.parametrize("node_id", TOOL_NODES)
def test_tool_settings_match_the_tool_yaml(node_id):
    data = NODES[node_id]
    author, name = MANIFEST["author"], MANIFEST["name"]
    assert data["provider_id"] == f"{author}/{name}/{PROVIDER['identity']['name']}"
    assert data["plugin_id"] == f"{author}/{name}" and data["provider_type"] == "builtin"
    params = {p["name"]: p for p in tool_yaml(data["tool_name"])["parameters"]}
    for key, setting in data["tool_configurations"].items():
        assert params[key]["form"] == "form", key
        assert setting["type"] == "constant"
        if params[key]["type"] == "select":
            assert setting["value"] in [o["value"] for o in params[key]["options"]], key
        if params[key]["type"] == "number":
            assert params[key]["min"] <= setting["value"] <= params[key]["max"], key
    for key, setting in data["tool_parameters"].items():
        assert params[key]["form"] == "llm", key
        assert setting["type"] in ("mixed", "variable", "constant")
    required = {n for n, p in params.items() if p.get("required")}
    assert required <= set(data["tool_parameters"]) | set(data["tool_configurations"])


def test_outpaint_gets_a_single_file_and_the_end_returns_both_images():
    image = NODES["banner"]["tool_parameters"]["image"]
    assert image == {"type": "variable", "value": ["first_image", "first_record"]}
    assert NODES["first_image"]["variable"] == ["generate", "files"]
    ends = {o["variable"]: o["value_selector"] for o in NODES["end"]["outputs"]}
    assert ends["poster"] == ["generate", "files"] and ends["banner"] == ["banner", "files"]
