"""Every README command that runs the workflow or ``python -m lib`` works as written.

Each ``bash`` block of README.md is split into commands; every command is classified below
(a README command that is not is a failure: the README drifted). Commands run from a fresh
copy of the workflow, in a shell whose ``python`` cannot import the project's dependencies
and that has not activated the venv (``.venv`` in the copy is a link to this venv, as after
``make``). Runs of the whole DAG become dry runs (``-n``): the demo itself is run by
tests/test_workflow.py, the cluster by tests/test_slurm.py (with the same PATH).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow, workflow_env

README = (REPO / "README.md").read_text(encoding="utf-8")

#: Commands not run here, and why.
NOT_RUN = {
    "make demo": "the whole demo: tests/test_workflow.py runs it",
    "make test": "this test suite itself",
}
#: Runs of the whole DAG: checked as dry runs (Snakemake builds the same plan).
DRY_RUN = {
    ".venv/bin/snakemake --profile profiles/local --configfile config.yaml my.yaml",
    ".venv/bin/snakemake --profile profiles/local --configfile config.yaml configs/fvc.yaml",
    ".venv/bin/snakemake --profile profiles/local --configfile config.yaml my.yaml --forcerun download",
    ".venv/bin/snakemake --profile profiles/local --rerun-incomplete",
    ".venv/bin/snakemake --profile profiles/slurm",
    ".venv/bin/snakemake results/predictions/demo.csv --profile profiles/local",
    ".venv/bin/snakemake results/predictions/new.csv --profile profiles/local"
    " --config predict='{input: my-videos, model: hist_gbm}'",
}
#: Commands run exactly as written, with what their output must show.
RUN = {
    ".venv/bin/python -m lib --help": "demo-corpus",
    ".venv/bin/python -m lib validate --help": "--downloads",
    ".venv/bin/snakemake results/manifest.csv --cores 1 --configfile config.yaml my.yaml": "",
    ".venv/bin/snakemake --unlock": "Unlocked working directory",
    ".venv/bin/snakemake -n --profile profiles/slurm": "This was a dry-run",
}  # fmt: skip


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def readme_commands() -> list[str]:
    """Every command of the bash blocks, comments and blank lines removed."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_every_readme_command_is_classified():
    commands = readme_commands()
    unknown = [c for c in commands if c not in NOT_RUN and c not in DRY_RUN and c not in RUN]
    assert unknown == [], "README commands this test does not know (add them to a table)"
    stale = (set(NOT_RUN) | DRY_RUN | set(RUN)) - set(commands)
    assert stale == set(), "commands listed here but gone from the README"


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """A fresh copy with ``.venv`` linked, the README's my.yaml and a tiny corpus for it."""
    root = tmp_path_factory.mktemp("readme")
    wf = copy_workflow(root / "checkout")
    (wf / ".venv").symlink_to(Path(sys.prefix))
    my_yaml = next(b for b in readme_blocks("yaml") if "dataset:" in b)
    (wf / "my.yaml").write_text(my_yaml)
    corpus = wf / "my-videos"
    corpus.mkdir()
    rows = [[f"{name}.mp4", label, name] for name, label in
            (("a", "fake"), ("b", "fake"), ("c", "real"), ("d", "real"))]  # fmt: skip
    for name, *_ in rows:
        (corpus / name).write_bytes(b"\x00" * 64)
    with open(corpus / "index.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "group"], *rows])
    # configs/fvc.yaml reads ../shared/data/fvc: a two-row stand-in beside the copy.
    fvc = root / "shared/data/fvc"
    fvc.mkdir(parents=True)
    for name in ("FVC.csv", "FVC_dup.csv"):
        (fvc / name).write_text("cascade_id,video_url,label\nf1,https://youtu.be/Y7MJlmbnLQA,fake\n")
    return wf


def _shell(wf: Path, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=wf, env=workflow_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_the_shell_python_lacks_the_dependencies(fresh_copy):
    proc = _shell(fresh_copy, "python -c 'import pandas, snakemake'")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


@pytest.mark.parametrize("command", sorted(RUN))
def test_readme_command_runs_as_written(fresh_copy, command):
    proc = _shell(fresh_copy, command)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert RUN[command] in proc.stdout + proc.stderr
    if "results/manifest.csv" in command:
        manifest = (fresh_copy / "results/manifest.csv").read_text()
        assert manifest.count("\n") == 5, manifest  # header + the corpus's four videos
        assert "ModuleNotFoundError" not in (fresh_copy / "logs/manifest/manifest.log").read_text()


@pytest.mark.parametrize("command", sorted(DRY_RUN))
def test_readme_workflow_run_plans(fresh_copy, command):
    proc = _shell(fresh_copy, f"{command} -n")
    assert proc.returncode == 0, f"{command} -n\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "This was a dry-run" in proc.stdout + proc.stderr
