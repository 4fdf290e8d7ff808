"""benchmarks/gpu_videomae.py runs outside the project: --smoke trains a tiny VideoMAE on the
CPU, and without a GPU the real measurement refuses instead of printing CPU figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_videomae.py"


def _run(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    # From a folder outside the checkout, isolated (-I: neither the script's folder's parent
    # nor PYTHONPATH on sys.path): an import of the project would fail.
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_smoke_mode_trains_a_tiny_videomae_outside_the_project(tmp_path):
    proc = _run(tmp_path, "--smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    header, rule, row = proc.stdout.strip().splitlines()
    assert header.startswith("| batch | frames x size |") and "clips/s" in header
    assert row.startswith("| 2 | 4 x 32² |")


def test_without_a_gpu_the_measurement_refuses(tmp_path):
    torch = pytest.importorskip("torch")
    proc = _run(tmp_path, "--steps", "1")
    if torch.cuda.is_available():  # a GPU machine measures instead
        assert proc.returncode == 0 and "clips/s" in proc.stdout
    else:
        assert proc.returncode == 2 and proc.stdout == ""
        assert "torch finds none here" in proc.stderr and "--smoke" in proc.stderr
