"""Start-up of a stage process: what importing each command's stage module costs.

Why :func:`lib.stages.commands.stage_function` imports only the stage module of the command a
job runs, and why the Snakefile (``workflow/rules/common.smk``), which every job re-reads,
imports the command table and no stage module. Each figure is a fresh ``python`` (median of
``--runs``): the table alone, each command's stage module through ``stage_function``, every
light stage module at once (what the Snakefile would pay if the table held the functions),
and every stage module at once (what every job would pay with imports at the top).

    .venv/bin/python benchmarks/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_memory import startup_rows
from report import machine_line, write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.stages.commands import COMMANDS, HEAVY_COMMANDS  # noqa: E402


def _code(names: list[str]) -> str:
    calls = "".join(f"stage_function({n!r})\n" for n in names)
    return "from lib.stages.commands import stage_function\n" + calls


def cases() -> dict[str, str]:
    """Label -> Python code, each run in a fresh interpreter."""
    light = [c.name for c in COMMANDS if c.name not in HEAVY_COMMANDS]
    out = {
        "`python -c pass`": "pass",
        "the command table (`lib.stages.commands`, what the Snakefile imports)": (
            "import lib.stages.commands"
        ),
        "the command line (`lib.cli`: parser, schema, shards)": "import lib.cli",
    }
    out.update({f"`{c.name}`": _code([c.name]) for c in COMMANDS})
    out["every light stage module at once"] = _code(light)
    out["every stage module at once"] = _code([c.name for c in COMMANDS])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    commands = {
        label: ["env", f"PYTHONPATH={REPO}", sys.executable, "-c", code]
        for label, code in cases().items()
    }
    with tempfile.TemporaryDirectory(prefix="vidstage-startup-") as tmp:
        rows = startup_rows(commands, runs=args.runs, cwd=lambda cmd: Path(tmp))
    load.append(os.getloadavg()[0])
    text = (
        "## Start-up of a stage process (`benchmarks/bench_startup.py`)\n\n"
        f"Measured {machine_line()}; `python benchmarks/bench_startup.py --runs {args.runs}`: "
        f"median of {args.runs} fresh processes each; load average {load[0]:.1f} → "
        f"{load[1]:.1f}. A row is what one process imports before its stage runs: "
        "`lib.stages.commands.stage_function(<command>)` imports that command's stage module "
        "and nothing else (scikit-learn, torch and transformers only for the commands that "
        "need them).\n\n"
        "| imported | seconds | peak RSS (MiB) |\n| --- | ---: | ---: |\n" + "\n".join(rows) + "\n"
    )
    print(write_section("startup", text))


if __name__ == "__main__":
    main()
