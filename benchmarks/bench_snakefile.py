"""Start-up of a Snakemake run: what the Snakefile's train check imports, and when.

Why ``lib/train/check.py`` defers scikit-learn and transformers: the Snakefile
(``workflow/rules/common.smk``) imports ``lib.train.settings`` and ``lib.train.check`` on
every read, in the process the user started and again in every cluster job; the check
itself runs once, in the first, and needs scikit-learn only for arguments in
``train.params`` and transformers (which imports torch) only for a fixed-clip-length
family with a ``pretrained`` checkpoint. Each row is a fresh process, median of ``--runs``.

    .venv/bin/python benchmarks/bench_snakefile.py [--runs 5] [--out docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_memory import startup_rows
from report import DEFAULT_PATH, machine_line, write_section

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def cases() -> dict[str, list[str]]:
    """Label -> command, each run in a fresh process from the repository root."""
    python = ["env", f"PYTHONPATH={REPO}", sys.executable, "-c"]
    dry_run = [SNAKEMAKE, "-n", "-q", "--profile", "profiles/local"]
    return {
        "`python -c pass`": python + ["pass"],
        "`lib.train.settings` and `lib.train.check` (every Snakefile read)": python
        + ["import lib.train.check, lib.train.settings"],
        "check of `train.params` (scikit-learn)": python
        + [
            "from lib.train.check import check_train_config as c; c({'params': {'logreg': {'C': 1}}})"
        ],
        "`transformers.AutoConfig` (a checkpoint's clip length; imports torch)": python
        + ["from transformers import AutoConfig"],
        "`snakemake -n` (config.yaml: no train.params, no checkpoint)": dry_run,
        "`snakemake -n --configfile config.yaml configs/demo.yaml` (train.params set)": dry_run
        + ["--configfile", "config.yaml", "configs/demo.yaml"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / DEFAULT_PATH))
    args = parser.parse_args()
    os.chdir(REPO)
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="vidstage-snakefile-") as tmp:
        rows = startup_rows(
            cases(), runs=args.runs, cwd=lambda cmd: Path(tmp) if "-c" in cmd else REPO
        )
    load.append(os.getloadavg()[0])
    text = (
        "## Start-up of a Snakemake run (`benchmarks/bench_snakefile.py`)\n\n"
        f"Measured {machine_line()}; `python benchmarks/bench_snakefile.py --runs {args.runs}`: "
        f"median of {args.runs} fresh processes each; load average {load[0]:.1f} → "
        f"{load[1]:.1f}. The Snakefile imports the first two rows' modules on every read (also "
        "in every cluster job); the train check runs once per run and imports scikit-learn or "
        "transformers only when the configuration gives it something to check with them "
        "(`lib/train/check.py`).\n\n"
        "| imported or run | seconds | peak RSS (MiB) |\n| --- | ---: | ---: |\n"
        + "\n".join(rows)
        + "\n"
    )
    print(write_section("snakefile-startup", text, args.out))


if __name__ == "__main__":
    main()
