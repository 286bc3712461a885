"""The layering rule: HTTP code never imports torch, engine code never imports flask."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            timeout=120)
    return set(result.stdout.split())


def test_the_http_layer_does_not_import_torch():
    modules = imported_after("from inference_server.app import create_app; import inference_server.serve")
    assert "flask" in modules
    assert not {"torch", "diffusers", "transformers"} & modules


def test_the_engine_does_not_import_flask():
    modules = imported_after("import inference_server.engine, inference_server.engine.tiny_model")
    assert "torch" in modules and "diffusers" in modules
    assert not {"flask", "werkzeug", "gunicorn"} & modules


# ---- the shape of the tree -----------------------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402

CHECKED = ("inference_server", "qwen_client", "tools", "provider")


def python_files():
    for folder in CHECKED:
        yield from sorted((ROOT / folder).rglob("*.py"))
    yield ROOT / "main.py"


def module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path) -> set[str]:
    """Every module a file imports, at any depth and under TYPE_CHECKING too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_file_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in python_files() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_no_two_files_import_each_other():
    modules = {module_name(p): p for p in python_files()}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    mutual = {tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ())}
    assert not mutual
    # and no longer cycles either: a depth-first search finds no back edge
    state: dict[str, int] = {}

    def visit(name, trail):
        state[name] = 1
        for target in graph[name]:
            if state.get(target) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*trail, name, target])}")
            if not state.get(target):
                visit(target, [*trail, name])
        state[name] = 2

    for name in graph:
        if not state.get(name):
            visit(name, [])


def test_executors_never_import_the_job_service():
    for path in (ROOT / "inference_server" / "executors").glob("*.py"):
        assert not {m for m in imports_of(path) if m.startswith("inference_server.jobs")}, path.name


def test_no_task_name_is_spelled_outside_the_registry():
    from inference_server.tasks import DEFAULT_TASKS

    pattern = re.compile(r"""["'](%s)["']""" % "|".join(DEFAULT_TASKS.names()))
    offenders = []
    for path in sorted((ROOT / "inference_server").rglob("*.py")):
        if path.name in ("tasks.py", "model_names.py"):  # the task registry, and the models' names (one is `edit`)
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.fullmatch(repr(node.value)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not offenders


def test_the_http_process_holds_no_torch_and_runs_on_gevent():
    modules = imported_after("import inference_server.front_door, inference_server.executors.local")
    assert "gevent" in modules and not {"torch", "diffusers"} & modules


def test_the_client_and_the_server_name_the_same_job_states():
    from inference_server.jobs import status as server
    from qwen_client import job_status as client

    assert [s.value for s in server.JobStatus] == [s.value for s in client.JobStatus]
    assert {s.value for s in server.ENDED} == {s.value for s in client.ENDED}
