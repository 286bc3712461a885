"""Every example workflow: read by Dify's own classes (PyPI graphon, in a side venv), its dependencies name
this plugin, its references resolve, and product_scene.yml wires the edit tool into outpaint."""

import json
import re
import subprocess

import pytest
import yaml

from tests.plugin import graphon_env
from tests.plugin.harness import ROOT
from tests.plugin.workflow_dsl import EXAMPLES, MANIFEST, Workflow, check_references, check_tool_node

CHECK = ROOT / "tests" / "plugin" / "graphon_check.py"
# The plugin daemon's validator for plugin_unique_identifier (author/name:version@checksum).
IDENTIFIER = re.compile(r"^([a-z0-9_-]{1,64})/([a-z0-9_-]{1,255}):([0-9]{1,4}(?:\.[0-9]{1,4}){1,3}(?:-\w{1,16})?)"
                        r"@[a-f0-9]{32,64}$")
NODE_CLASSES = {"start": "StartNode", "llm": "LLMNode", "tool": "ToolNode", "list-operator": "ListOperatorNode",
                "end": "EndNode", "answer": "AnswerNode"}
ALL_NODES = [(path.name, node_id) for path in EXAMPLES for node_id in Workflow(path).nodes]
ALL_TOOL_NODES = [(path.name, node_id) for path in EXAMPLES for node_id in Workflow(path).tool_nodes]


def run_check(*paths) -> dict:
    run = subprocess.run([str(graphon_env.python()), str(CHECK), *map(str, paths)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def graphon_report() -> dict:
    report = run_check(*EXAMPLES)
    return {name.rsplit("/", 1)[-1]: value for name, value in report.items()}


def test_both_examples_are_there():
    assert {path.name for path in EXAMPLES} >= {"poster.yml", "product_scene.yml"}


@pytest.mark.parametrize("example", [path.name for path in EXAMPLES])
def test_every_node_validates_against_difys_node_classes(graphon_report, example):
    report = graphon_report[example]
    assert report["load_status"] == "loadable", report["load_reason"]
    nodes = Workflow(ROOT / "examples/workflows" / example).nodes
    assert set(report["nodes"]) == set(nodes)
    for node_id, result in report["nodes"].items():
        assert result["error"] is None, (node_id, result["error"])
        assert result["class"] == NODE_CLASSES[nodes[node_id]["type"]], node_id


def test_the_check_catches_a_broken_node(tmp_path):
    """The same check on a copy with two broken nodes: a variable input that is no selector, an LLM with no model."""
    dsl = yaml.safe_load((ROOT / "examples/workflows/product_scene.yml").read_text(encoding="utf-8"))
    nodes = {node["id"]: node["data"] for node in dsl["workflow"]["graph"]["nodes"]}
    nodes["widen"]["tool_parameters"]["image"] = {"type": "variable", "value": "first_image.first_record"}
    del nodes["instruction"]["model"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(dsl, allow_unicode=True), encoding="utf-8")
    report = run_check(broken)[str(broken)]["nodes"]
    assert "value must be a list" in report["widen"]["error"]
    assert "model" in report["instruction"]["error"]
    assert report["edit"]["error"] is None and report["start"]["error"] is None


@pytest.mark.parametrize("example", [path.name for path in EXAMPLES])
def test_dependencies_name_this_plugin(graphon_report, example):
    """Without this entry Dify imports the app silently and the tool nodes fail later: with it, Dify asks to
    install the plugin (it matches installed plugins by author/name)."""
    dsl = yaml.safe_load((ROOT / "examples/workflows" / example).read_text(encoding="utf-8"))
    (dependency,) = dsl["dependencies"]
    assert dependency["type"] == "package" and dependency.get("current_identifier") is None
    identifier = dependency["value"]["plugin_unique_identifier"]
    author, name, version = IDENTIFIER.fullmatch(identifier).groups()
    assert (author, name, version) == (MANIFEST["author"], MANIFEST["name"], MANIFEST["version"])
    assert graphon_report[example]["dependencies"] == [
        {"type": "package", "plugin_unique_identifier": identifier, "repo": None, "package": None}]


@pytest.mark.parametrize("example,node_id", ALL_NODES)
def test_references_resolve_upstream(example, node_id):
    check_references(Workflow(ROOT / "examples/workflows" / example), node_id)


@pytest.mark.parametrize("example,node_id", ALL_TOOL_NODES)
def test_tool_settings_match_the_tool_yaml(example, node_id):
    check_tool_node(Workflow(ROOT / "examples/workflows" / example).nodes[node_id])


def test_product_scene_edits_the_scene_with_the_product_then_widens_it():
    flow = Workflow(ROOT / "examples/workflows/product_scene.yml")
    nodes = flow.nodes
    assert flow.chain() == ["start", "llm", "tool", "list-operator", "tool", "end"]
    assert [nodes[n]["tool_name"] for n in flow.tool_nodes] == ["edit", "outpaint"]
    start = {v["variable"]: v for v in nodes["start"]["variables"]}
    assert start["product_photo"]["type"] == start["scene_photo"]["type"] == "file"
    assert start["product_photo"]["required"] and start["scene_photo"]["required"]
    edit = nodes["edit"]["tool_parameters"]
    assert edit["prompt"] == {"type": "mixed", "value": "{{#instruction.text#}}"}
    # Image 1 is the one edited (the scene); image 2 the reference (the product).
    urls = edit["image_urls"]["value"].split("\n")
    assert urls == ["{{#start.scene_photo.url#}}", "{{#start.product_photo.url#}}"]
    assert nodes["instruction"]["vision"]["configs"]["variable_selector"] == ["start", "product_photo"]
    assert "image 1" in nodes["instruction"]["prompt_template"][0]["text"]
    widen = nodes["widen"]
    assert widen["tool_configurations"]["aspect_ratio"]["value"] == "16:9"
    assert widen["tool_parameters"]["image"] == {"type": "variable", "value": ["first_image", "first_record"]}
    assert nodes["first_image"]["variable"] == ["edit", "files"]
    ends = {o["variable"]: o["value_selector"] for o in nodes["end"]["outputs"]}
    assert ends["edited"] == ["edit", "files"] and ends["banner"] == ["widen", "files"]
