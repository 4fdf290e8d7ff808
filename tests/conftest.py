"""Shared fixtures: a private copy of the workflow to run Snakemake in, its runner, and the
configuration a run resolves to.

Workflow runs get a new user's PATH: system directories plus a ``python`` that is the
system's interpreter, which cannot import the project's dependencies. A rule that ran the
first ``python`` on PATH instead of the one running Snakemake fails every test that runs
the workflow (``make test`` itself puts .venv/bin first on PATH, which would hide it).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What a workflow run needs from the repository (never results/, data/, .venv/).
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "lib", "profiles", "envs", "configs")

#: The config files `make demo` layers (the Makefile's demo recipe), in order. A test that
#: runs a small demo layers its own file after these and sets every size it relies on.
DEMO_CONFIG = ("config.yaml", "configs/demo.yaml")


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
    proc = subprocess.run(
        cmd, cwd=workdir, env=workflow_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
        )
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-5000:]}\n"
            f"{proc.stderr[-5000:]}\n{logs[-20000:]}"
        )
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


def merge_config(base: dict, override: dict) -> dict:
    """``override`` layered on a copy of ``base`` as Snakemake layers config files: nested
    mappings merge key by key, any other value (a list too) replaces the earlier one."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def layered_config(root: Path, *files: str, overlay: dict | None = None) -> dict:
    """The config files under ``root`` layered in order, then ``overlay`` (defaults not filled)."""
    config: dict = {}
    for name in files:
        config = merge_config(config, yaml.safe_load((root / name).read_text()) or {})
    return merge_config(config, overlay or {})


def resolved_config(workdir: Path, *args: str) -> dict:
    """The configuration a run with these Snakemake arguments resolves to: every config file
    layered, ``--config`` read as the schema types it, the schema's defaults filled in.

    It is what the evaluate job receives and writes to ``results/reports/resolved_config.json``,
    read from a dry run's shell command (a dry run writes nothing).
    """
    dry = ("-n", "--printshellcmds", "--forcerun", "evaluate", "results/metrics.csv")
    proc = snakemake(workdir, *dry, *args)
    for line in (proc.stdout + proc.stderr).splitlines():
        if " -m lib evaluate " in line:
            words = shlex.split(line.split("Shell command:", 1)[-1])
            return json.loads(words[words.index("--config") + 1])
    pytest.fail(f"no evaluate job in the dry run:\n{proc.stdout[-3000:]}")
