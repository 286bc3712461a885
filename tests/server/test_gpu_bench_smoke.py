"""The GPU benchmark's code path, run on the CPU with the tiny model, so it works on the day a GPU is there."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_gpu_bench_runs_on_tiny_model(tmp_path):
    out = tmp_path / "gpu_results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--model", "tiny", "--out", str(out), "--commit", "test"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    for name in ("stock", "ours", "fast"):
        assert name in rows, report
        assert "FAILED" not in rows[name], rows[name]
    assert "LoRA fused: yes" in rows["fast"]
    assert "| 4 | 8 |" in rows["stock"]  # 4 steps with CFG: 8 transformer passes


def test_pass_profile_runs_on_tiny_model(tmp_path):
    out = tmp_path / "gpu_profile.md"
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_profile", "--model", "tiny", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    assert report.count("ms per pass") == 2
    assert "| matmul |" in report and "| attention |" in report
