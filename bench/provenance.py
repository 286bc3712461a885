"""What every generated report names: the machine and the commit it measured (no torch here)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The reports themselves: one run rewriting them must not make the next one read `+dirty`.
REPORTS = ("bench/results.md", "bench/gpu_results.md", "bench/gpu_profile.md", "docs/reliability.md")


def machine() -> str:
    return f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"


def commit() -> str:
    """Short hash, `+dirty` when tracked files other than the reports differ; `unknown` without .git (the GPU machine)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    *(f":(exclude){report}" for report in REPORTS)).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "")
