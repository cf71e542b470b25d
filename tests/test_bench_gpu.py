"""bench/gpu.py on a machine without a GPU: it says so and exits 0, and every part of it runs with the CPU
provider standing in for CUDA (the CUDA run itself needs a lent GPU: bench/README.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

SCRIPT = ROOT / "bench" / "gpu.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is here: the real run is not a test")
def test_without_a_gpu_it_skips_cleanly():
    r = run()
    assert r.returncode == 0 and r.stdout.strip() == (
        "bench/gpu.py: no NVIDIA GPU here (nvidia-smi finds none): nothing to measure; skipped"
    )


@pytest.mark.slow
def test_every_part_runs_with_the_cpu_standing_in():
    r = run("--cpu-stand-in", "--max-batch", "16", "--max-streams", "8")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| crnn2d-gtzan | CPUExecutionProvider | 0.00e+00 | ok |" in r.stdout
    assert "| 16 |" in r.stdout and "| 1024 |" not in r.stdout
    assert "streams per core |" in r.stdout
