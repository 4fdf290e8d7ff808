"""Every README command that runs the workflow or ``python -m lib`` works as written, and the
README stays short and links only to files that exist.

Each ``bash`` block of README.md is split into commands; every command is classified below
(a README command that is not is a failure: the README drifted). Commands run from a fresh
copy of the workflow, in a shell whose ``python`` cannot import the project's dependencies
and that has not activated the venv (``.venv`` in the copy is a link to this venv, as after
``make``). Runs of the whole DAG become dry runs (``-n``): the demo itself is run by
tests/test_workflow.py, the cluster by tests/test_slurm.py (with the same PATH).

The README is the front page (at most ``README_MAX_LINES`` lines); methods live in docs/.
Every relative link of README.md, and of each docs/*.md page it links, must name a file
that exists (and, with ``#anchor``, a heading of that file).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow, workflow_env

README = (REPO / "README.md").read_text(encoding="utf-8")
#: The README is the front page: what it does, set-up, your corpus, configuration, what to do
#: when something goes wrong, where to read more. Methods belong in docs/.
README_MAX_LINES = 150

#: Commands not run here, and why.
NOT_RUN = {
    "make demo": "the whole demo: tests/test_workflow.py runs it",
    "make test": "this test suite itself",
}
#: Runs of the whole DAG: checked as dry runs (Snakemake builds the same plan).
DRY_RUN = {
    ".venv/bin/snakemake --profile profiles/local --configfile config.yaml my.yaml",
    ".venv/bin/snakemake --profile profiles/local --configfile config.yaml configs/fvc.yaml",
    ".venv/bin/snakemake --profile profiles/slurm --configfile config.yaml my.yaml",
    ".venv/bin/snakemake results/predictions/new.csv --profile profiles/local --configfile config.yaml"
    " my.yaml --config predict='{input: new-videos, model: logreg}'",
}
#: Commands run exactly as written, with what their output must show.
RUN = {
    ".venv/bin/python -m lib --help": "demo-corpus",
    ".venv/bin/python -m lib validate --help": "--downloads",
    ".venv/bin/snakemake results/manifest.csv --cores 1 --configfile config.yaml my.yaml": "",
    ".venv/bin/snakemake --unlock --configfile config.yaml my.yaml": "Unlocked working directory",
    ".venv/bin/snakemake -n --profile profiles/slurm --configfile config.yaml my.yaml": "This was a dry-run",
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
    new_videos = wf / "new-videos"  # what the README's predict command classifies
    new_videos.mkdir()
    (new_videos / "e.mp4").write_bytes(b"\x00" * 64)
    # configs/fvc.yaml reads ../shared/data/fvc: a two-row stand-in beside the copy.
    fvc = root / "shared/data/fvc"
    fvc.mkdir(parents=True)
    for name in ("FVC.csv", "FVC_dup.csv"):
        (fvc / name).write_text(
            "cascade_id,video_url,label\nf1,https://youtu.be/Y7MJlmbnLQA,fake\n"
        )
    # configs/fvc.yaml names hub checkpoints, found at start-up in the Hugging Face cache
    # (this machine has no network): their config.json where `hf download` would put it.
    for repo_id, config in FVC_HUB_CONFIGS.items():
        snapshot = root / "hf/hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots/0"
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps(config))
        (snapshot.parents[1] / "refs").mkdir()
        (snapshot.parents[1] / "refs/main").write_text("0")
    return wf


#: The hub checkpoints configs/fvc.yaml starts from, and what their config.json fixes.
FVC_HUB_CONFIGS = {
    "google/vit-base-patch16-224-in21k": {"model_type": "vit", "image_size": 224},
    "openai/clip-vit-large-patch14": {"model_type": "clip"},  # embeddings.model
    "facebook/timesformer-base-finetuned-k400": {
        "model_type": "timesformer", "image_size": 224, "num_frames": 8},
}  # fmt: skip


def _shell(wf: Path, command: str) -> subprocess.CompletedProcess:
    env = dict(workflow_env(), HF_HOME=str(wf.parent / "hf"), HF_HUB_OFFLINE="1")
    return subprocess.run(["bash", "-c", command], cwd=wf, env=env,
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


# ----------------------------------------------------------------------------- size and links
def test_readme_is_at_most_150_lines():
    lines = len(README.splitlines())
    message = f"README.md has {lines} lines (at most {README_MAX_LINES}): move methods to docs/"
    assert lines <= README_MAX_LINES, message


#: A Markdown link or image: ``[text](target)`` / ``![alt](target)``; the target up to a blank.
MARKDOWN_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def without_code(text: str) -> str:
    """Markdown text without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(page: Path) -> list[str]:
    """Targets of the page's links that point into the repository (no URL scheme, no mailto)."""
    targets = MARKDOWN_LINK.findall(without_code(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", t)]


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings: lower case, punctuation dropped, blanks -> '-'."""
    text = without_code(page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def link_pages() -> list[Path]:
    """README.md and every docs/*.md page it links to (those that exist; a missing one fails
    its own link check)."""
    pages = [REPO / "README.md"]
    for target in relative_links(REPO / "README.md"):
        path = (REPO / target.split("#")[0]).resolve()
        in_docs = path.suffix == ".md" and path.parent == REPO / "docs"
        if in_docs and path.is_file() and path not in pages:
            pages.append(path)
    return pages


#: (page, target) of every relative link, each once.
LINKS = list(dict.fromkeys((p, t) for p in link_pages() for t in relative_links(p)))


@pytest.mark.parametrize(
    "page, target", LINKS, ids=[f"{p.relative_to(REPO)}->{t}" for p, t in LINKS]
)
def test_relative_link_points_to_a_file_that_exists(page, target):
    where = f"{page.relative_to(REPO)} links to {target}"
    file_part, _, anchor = target.partition("#")
    path = (page.parent / file_part).resolve() if file_part else page
    assert path.exists(), f"{where}, which does not exist"
    assert path.is_relative_to(REPO), f"{where}, outside the repository"
    if anchor and path.suffix == ".md":
        assert anchor in heading_anchors(path), f"{where}: {path.name} has no such heading"


def test_readme_links_the_method_pages():
    """The methods moved out of the README stay reachable from it."""
    linked = {t.split("#")[0] for t in relative_links(REPO / "README.md")}
    for page in (
        "docs/EVALUATION.md",
        "docs/LEAKS.md",
        "docs/MODELS.md",
        "docs/FEATURES.md",
        "docs/CONFIGURATION.md",
        "docs/CLUSTER.md",
        "docs/BENCHMARKS.md",
        "docs/DEVELOPING.md",
    ):
        assert page in linked, f"README.md does not link {page}"
