"""The side venv that holds Dify's workflow classes (PyPI `graphon`), kept out of the main venv.

graphon's declared dependencies (unstructured, spaCy, pandas, transformers...) are large and unused by its
node classes, so it goes in with --no-deps beside the few packages those modules import; see
requirements-graphon.txt. `python -m tests.plugin.graphon_env` (make graphon-venv) builds it ahead of time;
the workflow tests build it when it is missing or its requirements changed.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("requirements-graphon.txt")
VENV = ROOT / ".cache" / "graphon-venv"
STAMP = VENV / ".requirements.sha256"
NO_DEPS = "graphon"


def python() -> Path:
    """The side venv's interpreter, built first when missing or stale."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    interpreter = VENV / "bin" / "python"
    if interpreter.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return interpreter
    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    lines = [line for line in lines if line]
    plain = [line for line in lines if not line.startswith(NO_DEPS)]
    alone = [line for line in lines if line.startswith(NO_DEPS)]
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    pip = [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + plain, check=True, timeout=600)
    subprocess.run(pip + ["--no-deps"] + alone, check=True, timeout=600)
    STAMP.write_text(wanted)
    return interpreter


if __name__ == "__main__":
    sys.stdout.write(f"{python()}\n")
