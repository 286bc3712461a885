"""examples/workflows/poster.yml: importable wiring, and tool settings that match the tool YAMLs."""

import pytest

from tests.plugin.harness import ROOT
from tests.plugin.workflow_dsl import Workflow, check_references, check_tool_node

POSTER = Workflow(ROOT / "examples/workflows/poster.yml")
DSL, GRAPH, NODES, TOOL_NODES = POSTER.dsl, POSTER.graph, POSTER.nodes, POSTER.tool_nodes


def test_header():
    assert DSL["kind"] == "app" and DSL["version"] == "0.6.0" and DSL["app"]["mode"] == "workflow"


def test_chain_and_edges():
    assert POSTER.chain() == ["start", "llm", "tool", "list-operator", "tool", "end"]
    assert [NODES[n]["tool_name"] for n in TOOL_NODES] == ["generate", "outpaint"]
    for edge in GRAPH["edges"]:
        assert edge["data"]["sourceType"] == NODES[edge["source"]]["type"]
        assert edge["data"]["targetType"] == NODES[edge["target"]]["type"]
        assert (edge["sourceHandle"], edge["targetHandle"], edge["type"]) == ("source", "target", "custom")
    start_vars = {v["variable"]: v["type"] for v in NODES["start"]["variables"]}
    assert start_vars == {"idea": "paragraph", "product_photo": "file"}


@pytest.mark.parametrize("node_id", list(NODES))
def test_references_resolve_upstream(node_id):
    check_references(POSTER, node_id)


@pytest.mark.parametrize("node_id", TOOL_NODES)
def test_tool_settings_match_the_tool_yaml(node_id):
    check_tool_node(NODES[node_id])


def test_outpaint_gets_a_single_file_and_the_end_returns_both_images():
    image = NODES["banner"]["tool_parameters"]["image"]
    assert image == {"type": "variable", "value": ["first_image", "first_record"]}
    assert NODES["first_image"]["variable"] == ["generate", "files"]
    ends = {o["variable"]: o["value_selector"] for o in NODES["end"]["outputs"]}
    assert ends["poster"] == ["generate", "files"] and ends["banner"] == ["banner", "files"]
