"""Shared fixtures: a private copy of the workflow to run Snakemake in, and its runner.

Workflow runs get a new user's PATH: system directories plus a ``python`` that is the
system's interpreter, which cannot import the project's dependencies. A rule that ran the
first ``python`` on PATH instead of the one running Snakemake fails every test that runs
the workflow (``make test`` itself puts .venv/bin first on PATH, which would hide it).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What a workflow run needs from the repository (never results/, data/, .venv/).
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "lib", "profiles", "envs", "configs")


#: The system directories of a new user's PATH (no venv, no pyenv).
SYSTEM_PATH = os.pathsep.join(("/usr/sbin", "/usr/bin", "/sbin", "/bin"))


def bare_python_dir() -> Path:
    """A folder whose ``python`` is the system python3 (none of the project's dependencies),
    or, where there is none, a ``python`` that always fails."""
    folder = Path(tempfile.gettempdir()) / f"vidstage-bare-python-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    shim = folder / "python"
    if not shim.exists():
        system = shutil.which("python3", path=SYSTEM_PATH)
        tmp = folder / f".python-{os.getpid()}"
        if system:
            tmp.symlink_to(system)
        else:
            tmp.write_text("#!/bin/sh\necho 'python: not the project interpreter' >&2\nexit 1\n")
            tmp.chmod(0o755)
        os.replace(tmp, shim)
    return folder


def user_path() -> str:
    """PATH of a shell that has not activated the venv: bare ``python`` first, then the system."""
    return f"{bare_python_dir()}{os.pathsep}{SYSTEM_PATH}"


def workflow_env() -> dict:
    """Environment for Snakemake runs: a new user's PATH (see the module docstring)."""
    env = dict(os.environ)
    env["PATH"] = user_path()
    env.pop("VIRTUAL_ENV", None)
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def _bytecode(directory: str, names: list[str]) -> list[str]:
    """Python bytecode to leave out of a copy; numba's cache (``*.nbi``, ``*.nbc``) is kept."""
    return [name for name in names if name.endswith(".pyc")]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow into ``dest`` so a test run writes nothing into the checkout.

    The feature kernel is compiled in the checkout first and its numba cache travels with
    the copy (valid there: same source, same mtime), so that no run compiles it again.
    """
    subprocess.run([str(BIN / "python"), "-m", "lib.media.feature_kernels"], cwd=REPO, check=True)
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=_bytecode)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: float = 900, check: bool = True):
    """Run Snakemake in ``workdir``; on failure, show its output and the job logs."""
    cmd = [str(BIN / "snakemake"), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=workflow_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    if check and proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}"
                         for p in sorted((workdir / "logs").rglob("*.log")))  # fmt: skip
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-5000:]}\n"
                    f"{proc.stderr[-5000:]}\n{logs[-20000:]}")  # fmt: skip
    return proc


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """The default demo corpus (40 groups, seed 0), generated once per test session.

    Returns ``(folder, index)``; ``index`` is the generator's table with its ground truth
    (``group``, ``is_original``, ``edits``). Tests must not modify the files.
    """
    from lib.corpus.demo import generate_demo_corpus

    out = tmp_path_factory.mktemp("demo_corpus")
    return out, generate_demo_corpus(out, n_groups=40, seed=0)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A small CSV corpus/table for a test (parent folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
