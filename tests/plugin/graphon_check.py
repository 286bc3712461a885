"""Runs in the graphon side venv (graphon_env.py): Dify's own classes read each workflow file given.

Prints one JSON object per file: graphon's import plan (load status, dependencies as its DslDependency
reads them), and for every node the node class Dify would build and the error its NodeData model raised,
if any. Only stdlib, yaml and graphon here: the test process reads the JSON.
"""

import json
import sys

import yaml
from graphon.dsl import importer, node_factory  # noqa: F401  (importing node_factory registers every node class)
from graphon.nodes.base.node import Node


def check(path: str) -> dict:
    text = open(path, encoding="utf-8").read()
    plan = importer.inspect(text)
    classes = Node.get_node_type_classes_mapping()
    nodes = {}
    for node in yaml.safe_load(text)["workflow"]["graph"]["nodes"]:
        data = node["data"]
        versions = classes.get(data.get("type")) or {}
        node_class = versions.get(str(data.get("version") or "1"))
        if node_class is None:
            nodes[node["id"]] = {"class": None, "error": f"no node class for type {data.get('type')!r}"}
            continue
        try:
            node_class.validate_node_data(data)
            error = None
        except Exception as exc:  # pydantic's ValidationError, or a node's own check
            error = f"{type(exc).__name__}: {exc}"
        nodes[node["id"]] = {"class": node_class.__name__, "error": error}
    return {"load_status": str(plan.load_status), "load_reason": plan.load_reason,
            "dependencies": [dependency.model_dump(mode="json", exclude={"source"})
                             for dependency in plan.dependencies],
            "nodes": nodes}


if __name__ == "__main__":
    sys.stdout.write(json.dumps({path: check(path) for path in sys.argv[1:]}) + "\n")
