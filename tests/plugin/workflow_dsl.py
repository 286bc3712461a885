"""Reading an example workflow (Dify's app DSL) the way its nodes see each other: outputs, upstream, references."""

import re
from pathlib import Path

import yaml

from tests.plugin.harness import ROOT

EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
# {{#node.variable#}} or {{#node.file_variable.attribute#}}, as Dify's VariablePool reads templates.
REFERENCE = re.compile(r"\{\{#([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+))?#\}\}")
FILE_ATTRIBUTES = {"type", "size", "name", "mime_type", "transfer_method", "url", "extension", "related_id"}


def load(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def tool_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / f"tools/{name}.yaml").read_text(encoding="utf-8"))


class Workflow:
    """One DSL file's graph."""

    def __init__(self, path: Path):
        self.dsl = load(path)
        self.graph = self.dsl["workflow"]["graph"]
        self.nodes = {node["id"]: node["data"] for node in self.graph["nodes"]}
        self.tool_nodes = [node_id for node_id, data in self.nodes.items() if data["type"] == "tool"]

    def outputs(self, node_id: str) -> dict:
        """Variable -> its type ('file' for a single file, else None) for what a node outputs."""
        data = self.nodes[node_id]
        if data["type"] == "start":
            return {v["variable"]: v["type"] for v in data["variables"]}
        if data["type"] == "llm":
            return {"text": None}
        if data["type"] == "list-operator":
            return {"result": None, "first_record": "file", "last_record": "file"}
        if data["type"] == "tool":
            declared = tool_yaml(data["tool_name"])["output_schema"]["properties"]
            return dict.fromkeys(("text", "files", "json", *declared))
        return {}

    def upstream(self, node_id: str) -> set:
        parents = {e["source"] for e in self.graph["edges"] if e["target"] == node_id}
        return parents | {a for p in parents for a in self.upstream(p)}

    def chain(self) -> list:
        """Node types from the start node along the single path of edges."""
        chain, node = [], "start"
        while node:
            chain.append(self.nodes[node]["type"])
            nexts = [e for e in self.graph["edges"] if e["source"] == node]
            assert len(nexts) <= 1
            node = nexts[0]["target"] if nexts else None
        return chain


def references(data) -> list:
    """Every (node, variable, attribute or '') a node reads, from selectors and {{#node.var#}} templates."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("variable_selector", "value_selector", "variable") and isinstance(value, list) and value:
                found.append((*value[:2], value[2] if len(value) > 2 else ""))
            elif key == "value" and isinstance(value, list) and data.get("type") == "variable":
                found.append((*value[:2], value[2] if len(value) > 2 else ""))
            else:
                found += references(value)
    elif isinstance(data, list):
        for item in data:
            found += references(item)
    elif isinstance(data, str):
        found += REFERENCE.findall(data)
    return found


MANIFEST = load(ROOT / "manifest.yaml")
PROVIDER = load(ROOT / "provider/qwen_image.yaml")


def check_references(workflow: Workflow, node_id: str) -> None:
    """Each variable a node reads comes from a node upstream of it, and exists there."""
    for source, variable, attribute in references(workflow.nodes[node_id]):
        assert source in workflow.upstream(node_id), (node_id, source)
        outputs = workflow.outputs(source)
        assert variable in outputs, (node_id, source, variable)
        if attribute:  # {{#start.photo.url#}}: only a single file has attributes
            assert outputs[variable] == "file" and attribute in FILE_ATTRIBUTES, (node_id, source, variable, attribute)


def check_tool_node(data: dict) -> None:
    """A plugin tool node names this plugin, and sets only declared parameters in their own form and range."""
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
