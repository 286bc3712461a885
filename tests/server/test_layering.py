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
