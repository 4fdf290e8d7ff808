"""The cycle collector's workarounds, measured: a 1,000-clip shard and a deep train job.

Issue 20 asked whether the ``gc.freeze()`` calls earn their place. Each workaround is
applied here, in the measured process, so the benchmark compares them whatever ``lib/``
keeps (``lib/__main__.py`` now keeps one: a freeze just before exit):

- shard (``python -m lib scaled-features`` on 1,000 tiny generated clips, one process):
  the freeze at exit only, no workaround, ``gc.collect()`` after each unit, and
  ``gc.collect()`` then ``gc.freeze()`` after each unit (``lib.memory.release`` before
  issue 20), the last two with the freeze at exit;
- deep train job (``python -m lib train`` of videomae on a tiny corpus, one fold): the
  freeze at exit only, no workaround, the heavy imports (the train stage's module, torch,
  transformers, scikit-learn) with the collector off and then frozen (what
  ``lib.utils.imports_without_gc`` did before issue 20), and both.

Every run is a fresh process timed from outside (start-up and exit included); the process
also sums the time its collector ran (exit excluded). The variants run in turn, round by
round (the order rotates), so a change in the machine's speed hits them alike; each ratio
is taken within a round, against the variant that ``lib/`` keeps. Before each round a fixed
single-threaded workload is timed (``reference_seconds``, as in bench_demo.py) and the load
average is read, so rounds on a busy machine show as such.

    .venv/bin/python benchmarks/bench_gc.py [--runs 3] [--train-runs 5] [--clips 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_demo import reference_seconds  # noqa: E402
from bench_memory import REPO, measure  # noqa: E402
from report import DEFAULT_PATH, machine_line, write_section  # noqa: E402

from lib import schemas  # noqa: E402
from lib.io.writer import VideoWriter  # noqa: E402
from lib.utils import markdown_table  # noqa: E402

# The measured process: applies the named workarounds around lib's own command line.
CHILD = """
import gc, sys, time
sys.path.insert(0, {repo!r})
collector = {{"seconds": 0.0, "runs": 0, "start": 0.0}}


def time_the_collector(phase, info):
    if phase == "start":
        collector["start"] = time.perf_counter()
    else:
        collector["seconds"] += time.perf_counter() - collector["start"]
        collector["runs"] += 1


gc.callbacks.append(time_the_collector)
workarounds = set(sys.argv[1].split(",")) - {{""}}
heavy, argv = sys.argv[2], sys.argv[3:]
if "imports" in workarounds:  # as lib.utils.imports_without_gc did around heavy imports
    gc.disable()
    for module in heavy.split(","):
        __import__(module)
    gc.freeze()
    gc.enable()
import lib.shards
from lib.cli import main

if workarounds & {{"collect", "freeze"}}:
    release = lib.shards.release

    def release_with_workarounds(*args, **kwargs):
        gc.collect()
        if "freeze" in workarounds:
            gc.freeze()
        return release(*args, **kwargs)

    lib.shards.release = release_with_workarounds
code = main(argv)
print(f"collector_s={{collector['seconds']}} collections={{collector['runs']}}", file=sys.stderr)
if "exit" in workarounds:  # as lib.memory.skip_the_collection_at_exit does
    gc.freeze()
sys.exit(code)
"""

# Variant name -> workarounds applied; the first of each is what lib/ keeps (the baseline).
SHARD_VARIANTS = {
    "gc.freeze() at exit only (lib now)": "exit",
    "no workaround": "",
    "gc.collect() after each unit, gc.freeze() at exit": "collect,exit",
    "gc.collect() + gc.freeze() after each unit, gc.freeze() at exit (before)": "collect,freeze,exit",
}
TRAIN_VARIANTS = {
    "gc.freeze() at exit only (lib now)": "exit",
    "no workaround": "",
    "imports with gc off, then gc.freeze()": "imports",
    "both (before)": "imports,exit",
}
TRAIN_SETTINGS = {
    "num_frames": 4,
    "image_size": 32,
    "epochs": 3,
    "batch_size": 4,
    "micro_batch": 2,
    "val_fraction": 0.34,
    "warmup_fraction": 0.0,
    "lr": 3e-3,
}
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONPATH": str(REPO),
}
_RSS_LINE = re.compile(r"rss_mb=([\d.]+) clip_id=")
_COLLECTOR_LINE = re.compile(r"collector_s=([\d.e-]+) collections=(\d+)")


def _collector(stderr: str) -> dict:
    """Seconds spent in the collector and its runs, as the measured process counted them."""
    seconds, runs = _COLLECTOR_LINE.findall(stderr)[-1]
    return {"collector_s": float(seconds), "collections": int(runs)}


def _write_clip(path: Path, rng: np.random.Generator, *, size: int, frames: int) -> None:
    with VideoWriter(path, fps=10) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def shard_inputs(work: Path, n_clips: int, n_files: int = 20) -> Path:
    """A scaled table of ``n_clips`` rows over ``n_files`` tiny clips (64 px, 16 frames)."""
    rng = np.random.default_rng(0)
    files = [work / "shard" / f"clip{i:02d}.mp4" for i in range(n_files)]
    files[0].parent.mkdir(parents=True)
    for path in files:
        _write_clip(path, rng, size=64, frames=16)
    rows = [
        {
            "clip_id": f"c{i:05d}",
            "video_id": f"v{i:05d}",
            "path": str(files[i % n_files]),
            "scale_method": "letterbox",
            "orig_width": 64,
            "orig_height": 64,
            "scaled_width": 64,
            "scaled_height": 64,
            "status": "ok",
            "reason": "",
        }
        for i in range(n_clips)
    ]
    path = work / "shard" / "scaled.csv"
    schemas.write_table(pl.DataFrame(rows), path, "scaled")
    return path


def train_inputs(work: Path) -> Path:
    """12 groups (6 real, 6 fake), 18 videos, an original and one augmented clip each
    (32 px, 10 frames), 3 folds: clips.csv, scaled.csv and folds.csv under ``work/train``."""
    root = work / "train"
    (root / "clips").mkdir(parents=True)
    rng = np.random.default_rng(1)
    clips, scaled, folds = [], [], []
    for group in range(12):
        label = "fake" if group % 2 else "real"
        for v in range(1 + group % 2):
            video = f"g{group:02d}v{v}"
            folds.append(
                {
                    "video_id": video,
                    "dup_group": f"grp{group:02d}",
                    "label": label,
                    "fold": group % 3,
                }
            )
            for aug in (-1, 0):
                clip = f"{video}_{'orig' if aug < 0 else 'aug0'}"
                path = root / "clips" / f"{clip}.mp4"
                _write_clip(path, rng, size=32, frames=10)
                common = {"clip_id": clip, "video_id": video, "path": str(path)}
                clips.append(
                    {
                        **common,
                        "aug_idx": aug,
                        "augmentation": "none" if aug < 0 else "flip",
                        "label": label,
                        "dup_group": f"grp{group:02d}",
                        "status": "ok",
                        "reason": "",
                    }
                )
                scaled.append(
                    {
                        **common,
                        "scale_method": "letterbox",
                        "orig_width": 32,
                        "orig_height": 32,
                        "scaled_width": 32,
                        "scaled_height": 32,
                        "status": "ok",
                        "reason": "",
                    }
                )
    for kind, rows in (("clips", clips), ("scaled", scaled), ("folds", folds)):
        schemas.write_table(pl.DataFrame(rows), root / f"{kind}.csv", kind)
    return root


def child(workarounds: str, heavy: str, argv: list[str]) -> list[str]:
    return [sys.executable, "-c", CHILD.format(repo=str(REPO)), workarounds, heavy, *argv]


def shard_run(workarounds: str, scaled: Path, out: Path) -> dict:
    argv = [
        "scaled-features",
        "--scaled",
        str(scaled),
        "--out",
        str(out / "features.csv"),
        "--progress-dir",
        str(out / "progress"),
    ]
    run = measure(child(workarounds, "", argv), out, env=ENV)
    stderr = run.pop("stderr")
    rss = [float(m) for m in _RSS_LINE.findall(stderr)]
    return {**run, **_collector(stderr), "rss_after_10_mb": rss[9], "rss_after_last_mb": rss[-1]}


def train_run(workarounds: str, corpus: Path, out: Path) -> dict:
    argv = [
        "train",
        "--scaled",
        str(corpus / "scaled.csv"),
        "--clips",
        str(corpus / "clips.csv"),
        "--folds",
        str(corpus / "folds.csv"),
        "--out-dir",
        str(out / "model"),
        "--model",
        "videomae",
        "--fold",
        "0",
        "--params",
        json.dumps(TRAIN_SETTINGS),
        "--checkpoint-dir",
        str(out / "checkpoints"),
        "--seed",
        "3",
    ]
    run = measure(child(workarounds, "lib.stages.train,lib.train.loop", argv), out, env=ENV)
    stderr = run.pop("stderr")
    return {**run, **_collector(stderr)}


def interleaved(variants: dict[str, str], run_one, runs: int, work: Path, label: str) -> list:
    """``runs`` rounds of every variant, in an order that rotates from round to round."""
    rows, names = [], list(variants)
    for r in range(runs):
        reference, load = reference_seconds(), os.getloadavg()[0]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
            row = {
                "variant": name,
                "round": r,
                "reference_s": reference,
                "load": load,
                **run_one(variants[name], out),
            }
            rows.append(row)
            print(
                label,
                {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()},
                flush=True,
            )
    return rows


def summary(rows: list[dict], variants: dict[str, str], columns: list[str]) -> pl.DataFrame:
    """Medians per variant, and the medians over rounds of wall and CPU time / the baseline's."""
    table = pl.DataFrame(rows)
    baseline = next(iter(variants))
    base = table.filter(pl.col("variant") == baseline).select(
        "round", base_s="seconds", base_cpu_s="cpu_s"
    )
    table = table.join(base, on="round").with_columns(
        ratio=pl.col("seconds") / pl.col("base_s"), cpu_ratio=pl.col("cpu_s") / pl.col("base_cpu_s")
    )
    medians = table.group_by("variant", maintain_order=True).agg(
        pl.col(["seconds", "cpu_s", "ratio", "cpu_ratio", *columns]).median()
    )
    if "collections" in medians.columns:
        medians = medians.with_columns(pl.col("collections").round(0).cast(pl.Int64))
    order = pl.DataFrame({"variant": list(variants)})
    return order.join(medians, on="variant", how="left")


def import_costs(runs: int) -> pl.DataFrame:
    """Wall and peak RSS of a bare ``import``: polars, polars + pandas, lib.schemas."""
    imports = {
        "polars": "import polars",
        "polars + pandas": "import polars, pandas",
        "lib.schemas (pandera, which imports pandas)": "import lib.schemas",
    }
    rows = []
    for r in range(runs):
        for name, code in imports.items():
            run = measure([sys.executable, "-c", code], REPO, env=ENV)
            rows.append(
                {
                    "import": name,
                    "round": r,
                    "seconds": run["seconds"],
                    "cpu_s": run["cpu_s"],
                    "peak_rss_mb": run["peak_rss_mb"],
                }
            )
    medians = (
        pl.DataFrame(rows)
        .group_by("import", maintain_order=True)
        .agg(pl.col(["seconds", "cpu_s", "peak_rss_mb"]).median())
    )
    return medians


def markdown(table: pl.DataFrame) -> str:
    return markdown_table(table.with_columns(pl.col(pl.Float64).round(2)))


def rounds_line(rows: list[dict]) -> str:
    seen = {r["round"]: (r["reference_s"], r["load"]) for r in rows}
    return "; ".join(
        f"round {k + 1}: reference {ref:.2f} s, load {load:.1f}"
        for k, (ref, load) in sorted(seen.items())
    )


def measure_all(args: argparse.Namespace) -> dict:
    """Every run's figures: the shard's and the train job's rounds, and the import costs."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidstage-gc-") as tmp:
        work = Path(tmp)
        scaled, corpus = shard_inputs(work, args.clips), train_inputs(work)
        shard = interleaved(
            SHARD_VARIANTS, lambda w, out: shard_run(w, scaled, out), args.runs, work, "shard"
        )
        train = interleaved(
            TRAIN_VARIANTS, lambda w, out: train_run(w, corpus, out), args.train_runs, work, "train"
        )
    imports = import_costs(max(args.runs, 5))
    return {
        "shard": shard,
        "train": train,
        "imports": imports.to_dicts(),
        "seconds": time.perf_counter() - start,
        "machine": machine_line(),
        "runs": args.runs,
        "train_runs": args.train_runs,
        "clips": args.clips,
    }


def main(args: argparse.Namespace) -> None:
    if args.rows and Path(args.rows).exists():  # render the saved runs again, measure nothing
        measured = json.loads(Path(args.rows).read_text())
    else:
        measured = measure_all(args)
        if args.rows:
            Path(args.rows).write_text(json.dumps(measured, indent=1))
    shard, train = measured["shard"], measured["train"]
    runs, train_runs, clips = measured["runs"], measured["train_runs"], measured["clips"]
    imports = pl.DataFrame(measured["imports"])
    shard_table = summary(
        shard,
        SHARD_VARIANTS,
        ["collector_s", "collections", "peak_rss_mb", "rss_after_10_mb", "rss_after_last_mb"],
    )
    train_table = summary(train, TRAIN_VARIANTS, ["collector_s", "collections", "peak_rss_mb"])
    names = {
        "seconds": "wall s",
        "cpu_s": "CPU s",
        "ratio": "wall / lib now",
        "cpu_ratio": "CPU / lib now",
        "collector_s": "in the collector s",
        "collections": "collections",
        "peak_rss_mb": "peak RSS MiB",
        "rss_after_10_mb": "RSS after unit 10 MiB",
        "rss_after_last_mb": f"RSS after unit {clips:,} MiB",
    }
    text = "\n".join(
        [
            "## gc: the cycle collector's workarounds",
            "",
            f"Machine: {measured['machine']}.  ",
            f"`python benchmarks/bench_gc.py --runs {runs} --train-runs {train_runs} "
            f"--clips {clips}`, {measured['seconds']:.0f} s in all. Medians of {runs} runs "
            f"(train job: {train_runs}); each run a "
            "fresh process timed from outside (start-up and exit included), the variants in turn "
            "round by round (order rotating), and `wall / lib now` the median over rounds of the "
            "ratio within a round. Before each round a fixed single-threaded workload "
            "(`reference_seconds`, bench_demo.py) was timed and the load average read: "
            "shard: " + rounds_line(shard) + "; train: " + rounds_line(train) + ".",
            "",
            f"**A {clips:,}-clip shard** of `python -m lib scaled-features` (tiny generated "
            "clips, 64 px, 16 frames; RSS as lib.shards logs it after each unit):",
            "",
            markdown(shard_table.rename(names, strict=False)),
            "",
            "**A deep train job**: `python -m lib train`, videomae, one fold of a tiny corpus "
            f"(18 videos, 36 clips of 32 px; settings `{json.dumps(TRAIN_SETTINGS)}`):",
            "",
            markdown(train_table.rename(names, strict=False)),
            "",
            "What `lib/` keeps (issue 20): the freeze at exit, in one place "
            "(`lib.memory.skip_the_collection_at_exit`, called by `lib/__main__.py`). After "
            "each unit of a shard, a full `gc.collect()` scans every object the stage imported "
            "(third row); the per-unit `gc.freeze()` took that cost away again, but left every "
            "object alive at that moment out of the collector's reach for the rest of the "
            "shard. With neither, the collector's own generational runs cost as little and RSS "
            "stays as flat, so `lib.memory.release` no longer collects after a unit (it still "
            "does after an out-of-memory error, where cycles may hold tensors). In the deep "
            "train job the heavy imports with the collector off and then frozen save the most "
            "(the collector otherwise runs through the imports over and over), but they need a "
            "call wherever torch, transformers or scikit-learn is imported (two places in "
            "`lib/stages/`), raise the peak RSS (the imports' own garbage stays frozen for the "
            "whole job) and help only the commands that import those libraries. The freeze at "
            "exit saves less per train job, but it is one call, costs no memory, and shortens "
            "every stage process, the shard's too (first row against the second).",
            "",
            "**pandas in every stage process**: pandera's top-level package imports pandas "
            "(installed anyway: snakemake's SLURM executor plugin requires it). A bare import, "
            f"median of {max(runs, 5)} fresh processes:",
            "",
            markdown(imports.rename(names, strict=False)),
            "",
        ]
    )
    print(write_section("gc", text, args.doc).read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (figures are medians)")
    parser.add_argument("--train-runs", type=int, default=5, help="rounds of the train job")
    parser.add_argument("--clips", type=int, default=1000, help="units in the measured shard")
    parser.add_argument("--doc", default=DEFAULT_PATH, help="markdown file to write the section to")
    parser.add_argument(
        "--rows",
        default=None,
        help="JSON file: every run's figures are saved there; when it exists, "
        "the section is rendered from it and nothing is measured",
    )
    main(parser.parse_args())
