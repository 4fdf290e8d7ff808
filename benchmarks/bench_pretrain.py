"""Does self-supervised pretraining (the ``pretrain`` stage) help ``videomae``? Section
"pretraining" of docs/BENCHMARKS.md.

``videomae`` fine-tuned from its fold's pretraining (``pretrained: ssl``) against the same
model from scratch, with the same fine-tuning settings and budget, the same labelled clips
and the same seeds; ROC-AUC on the held-out fold's original clips.

1. **Visible-signal corpora, few labels** (tests/visible_corpus.py; 40 duplicate groups x
   3 videos, 32 px, 8 frames, 3 folds of whole groups): per fold, one pretraining on the
   original clips of every training-fold video (labels unused, the evaluated fold never
   seen); then, per seed, a few labelled duplicate groups of each class drawn from the
   training folds (their clips are all the fine-tuning sees) and both arms fine-tuned on
   them. mean +/- std over folds x seeds, and the paired difference.
2. **The demo corpus** (lib.corpus.demo.generate_demo_corpus in a temporary copy of the
   workflow, run up to its scaled clips and folds with configs/demo.yaml): per fold and
   seed, both arms at the demo's settings (configs/demo.yaml ``train.deep.videomae`` and
   ``pretrain``), every training-fold clip labelled, as ``make demo`` trains them; and the
   pretraining at the visible corpora's longer settings. Then the demo's ``pretrain`` jobs
   as the rule runs them (``python -m lib pretrain``, start-up included): what they add to
   ``make demo``.

Everything runs in this process on one thread (``torch.set_num_threads(1)``), through the
functions the DAG's jobs call (lib.train.pretrain, lib.train.loop.train_deep_table).

    .venv/bin/python benchmarks/bench_pretrain.py [--seeds 5] [--makes square,disc] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(REPO), str(REPO / "tests")]
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench_memory import measure  # noqa: E402
from conftest import copy_workflow, workflow_env  # noqa: E402  (the tests' own helpers)
from report import cpu_model, write_section  # noqa: E402
from visible_corpus import clip_table, write_corpus  # noqa: E402

from lib.config import load_schema, with_defaults  # noqa: E402
from lib.stages.commands import config_fragment  # noqa: E402
from lib.train.check import SSL_SETTINGS  # noqa: E402
from lib.train.clips import load_clip_table  # noqa: E402
from lib.train.loop import train_deep_table  # noqa: E402
from lib.train.pretrain import pretrain_table  # noqa: E402

log = logging.getLogger("bench_pretrain")

#: Fine-tuning on the visible corpora: the demo's videomae settings (frames, size, cache)
#: with a budget a few labelled clips can use; identical for both arms.
VISIBLE_FINE_TUNING = {"epochs": 10, "batch_size": 8, "patience": 10, "train_clips": "originals"}
#: Pretraining on the visible corpora (the pretrain section's keys; the rest its defaults).
VISIBLE_PRETRAINING = {
    "epochs": 300,
    "batch_size": 8,
    "lr": 0.001,
    "decoder_num_hidden_layers": 2,
    "train_clips": "originals",
}
LABELLED_GROUPS = 3  # per class: 6 duplicate groups, 18 labelled clips per fine-tuning


def demo_settings() -> tuple[dict, dict]:
    """configs/demo.yaml's train.deep.videomae (without ``pretrained``) and its pretrain
    section with the schema's defaults filled in."""
    demo = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    videomae = dict(demo["train"]["deep"]["videomae"])
    videomae.pop("pretrained", None)
    pretrain = with_defaults({"pretrain": demo.get("pretrain") or {}}, load_schema())["pretrain"]
    return videomae, pretrain


def recipe(section: dict) -> dict:
    """The pretrain section as pretrain_table's keywords (scope and train_clips choose clips)."""
    return {k: v for k, v in section.items() if k not in ("scope", "train_clips")}


def pretraining_table(table: pl.DataFrame, fold: int, train_clips: str) -> pl.DataFrame:
    """What ``pretraining_clips`` gives for ``fold`` (scope fold), from a clip table."""
    train = table.filter(pl.col("fold") != fold)
    if train_clips == "originals":
        train = train.filter(pl.col("aug_idx") == -1)
    return train.select("clip_id", "video_id", "path", "aug_idx", "fold")


def originals_auc(predictions: pl.DataFrame) -> float:
    o = predictions.filter(pl.col("aug_idx") == -1)
    return float(roc_auc_score(o["label"] == "fake", o["score"]))


def pretrain(table, folder: Path, *, fold, settings, section, seed) -> tuple[float, pl.DataFrame]:
    """One pretraining run into ``folder`` (reused when done with the same settings); its
    seconds and history."""
    key = json.dumps({"settings": settings, "section": section, "seed": seed}, sort_keys=True)
    done = folder / "bench_settings.json"
    if not (folder / "model.safetensors").exists() or done.exists() and done.read_text() != key:
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        pretrain_table(
            pretraining_table(table, fold, section["train_clips"]),
            folder,
            run=f"fold-{fold}",
            settings=settings,
            random_state=seed,
            checkpoint_dir=folder / "ck",
            **recipe(section),
        )
        (folder / "seconds").write_text(f"{time.perf_counter() - start:.1f}")
    done.write_text(key)
    history = pl.read_csv(folder / "history.csv")
    return float((folder / "seconds").read_text()), history


def fine_tune(table, work: Path, *, fold, settings, seed) -> float:
    """ROC-AUC of one fine-tuning, kept in ``work``'s cache (same table, settings, seed)."""
    key = json.dumps(
        {"clips": table["clip_id"].to_list(), "fold": fold, "settings": settings, "seed": seed},
        sort_keys=True,
    )
    cache = work.parent / "fine-tunings" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
    if cache.exists():
        return json.loads(cache.read_text())["auc"]
    shutil.rmtree(work, ignore_errors=True)
    predictions = train_deep_table(
        table,
        work,
        model_name="videomae",
        fold=fold,
        settings=settings,
        positive_label="fake",
        random_state=seed,
        checkpoint_dir=work / "ck",
    )
    auc = originals_auc(predictions)
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps({"auc": auc}))
    return auc


def labelled_subset(table: pl.DataFrame, fold: int, seed: int, per_class: int) -> pl.DataFrame:
    """``per_class`` training-fold duplicate groups of each class (drawn by seed) and the
    evaluated fold: what a fine-tuning with few labels sees."""
    train = table.filter(pl.col("fold") != fold)
    rng = np.random.default_rng([seed, fold])
    groups = []
    for label in sorted(train["label"].unique().to_list()):
        names = sorted(train.filter(pl.col("label") == label)["dup_group"].unique().to_list())
        groups += rng.choice(names, per_class, replace=False).tolist()
    return pl.concat(
        [train.filter(pl.col("dup_group").is_in(groups)), table.filter(pl.col("fold") == fold)]
    )


def compare(table, work, *, folds, seeds, pretrain_seeds, videomae, section, fine_tuning, subset):
    """Both arms per (fold, pretraining seed, seed): rows of AUCs, and the pretraining runs."""
    rows, runs = [], []
    for fold in folds:
        for ps in pretrain_seeds:
            folder = work / f"pre-f{fold}-s{ps}"
            seconds, history = pretrain(
                table, folder, fold=fold, settings=videomae, section=section, seed=ps
            )
            runs.append(
                {
                    "fold": fold,
                    "seed": ps,
                    "clips": int(history["n_clips"][0]),
                    "epochs": len(history),
                    "loss_first": float(history["loss"][0]),
                    "loss_last": float(history["loss"][-1]),
                    "seconds": seconds,
                }
            )
            for seed in seeds:
                part = subset(table, fold, seed) if subset else table
                auc = {}
                for arm, extra in (("scratch", {}), ("ssl", {"pretrained": str(folder)})):
                    if arm == "scratch" and len(pretrain_seeds) > 1 and ps != pretrain_seeds[0]:
                        auc[arm] = next(
                            r["scratch"] for r in rows if (r["fold"], r["seed"]) == (fold, seed)
                        )
                        continue
                    auc[arm] = fine_tune(
                        part,
                        work / "fine-tune",
                        fold=fold,
                        settings={**videomae, **fine_tuning, **extra},
                        seed=seed,
                    )
                rows.append({"fold": fold, "pretrain_seed": ps, "seed": seed, **auc})
                print(f"  fold {fold} pretrain seed {ps} seed {seed}: {auc}", flush=True)
    return pl.DataFrame(rows), pl.DataFrame(runs)


def _mean_std(values: pl.Series, sign: str = "") -> str:
    return f"{values.mean():{sign}.3f} ± {values.std() or 0.0:.3f}"


def summary(name: str, rows: pl.DataFrame) -> dict:
    diff = rows["ssl"] - rows["scratch"]
    return {
        "corpus": name,
        "fine-tunings": len(rows),
        "scratch": _mean_std(rows["scratch"]),
        "ssl": _mean_std(rows["ssl"]),
        "ssl - scratch": _mean_std(diff, "+"),
        "ssl better / worse": f"{int((diff > 0).sum())} / {int((diff < 0).sum())}",
    }


def demo_tables(work: Path) -> Path:
    """A copy of the workflow with the demo corpus run up to its scaled clips and folds."""
    wf = work / "demo-workflow"
    if not (wf / "results/folds.csv").exists():
        shutil.rmtree(wf, ignore_errors=True)
        copy_workflow(wf)
        cmd = [str(Path(sys.executable).parent / "snakemake"), "results/scaled.csv",
               "results/folds.csv", "--profile", "profiles/local",
               "--configfile", "config.yaml", "configs/demo.yaml"]  # fmt: skip
        subprocess.run(cmd, cwd=wf, env=workflow_env(), check=True, capture_output=True)
    return wf


def demo_jobs(wf: Path, folds: list[int]) -> pl.DataFrame:
    """The demo's pretrain jobs as the rule runs them (`python -m lib pretrain`, the demo's
    config sections): wall and CPU seconds and peak RSS of each, start-up included."""
    config = with_defaults(yaml.safe_load((REPO / "configs/demo.yaml").read_text()), load_schema())
    videomae = config["train"]["deep"]["videomae"]
    params = {k: v for k, v in videomae.items() if k in SSL_SETTINGS}
    rows = []
    for fold in folds:
        out = wf / "results/pretrain-bench" / f"fold-{fold}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "lib", "pretrain", "--scaled", "results/scaled.csv",
               "--clips", "results/clips.csv", "--folds", "results/folds.csv",
               "--out-dir", str(out), "--fold", str(fold), "--params", json.dumps(params),
               "--checkpoint-dir", str(out.parent / f"ck-{fold}"),
               "--config-json", json.dumps(config_fragment("pretrain", config))]  # fmt: skip
        shutil.rmtree(out.parent / f"ck-{fold}", ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        run = measure(cmd, wf, env)
        rows.append({"fold": fold, **{k: run[k] for k in ("seconds", "cpu_s", "peak_rss_mb")}})
    return pl.DataFrame(rows)


def markdown(tables: dict, runs: dict, args, jobs: pl.DataFrame, settings: dict) -> str:
    def md(frame: pl.DataFrame) -> str:
        cols = frame.columns
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in frame.iter_rows():
            lines.append(
                "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |"
            )
        return "\n".join(lines)

    load = os.getloadavg()
    out = [
        "## Pretraining (`benchmarks/bench_pretrain.py`)",
        "",
        f"Measured {date.today()} on {os.cpu_count()} cores ({cpu_model()}), one torch thread, "
        f"load average {load[0]:.1f} at the end (the machine is shared); `python "
        f"benchmarks/bench_pretrain.py {' '.join(sys.argv[1:])}`.",
        "",
        "`videomae` fine-tuned from its fold's self-supervised pretraining (`pretrained: "
        "ssl`, tube masking) against the same model from scratch: same fine-tuning "
        "settings, budget, labelled clips and seeds. ROC-AUC on the held-out fold's "
        "original clips, mean ± std over folds x seeds; `ssl - scratch` is the paired "
        "difference.",
        "",
        md(pl.DataFrame([summary(name, rows) for name, rows in tables.items()])),
        "",
        "Setups:",
        "",
        f"- *visible* corpora (`tests/visible_corpus.py`, makes {args.makes}): 40 groups x 3 "
        f"videos, 32 px, 3 folds; **few labels**: {LABELLED_GROUPS} duplicate groups per class "
        f"({2 * LABELLED_GROUPS * 3} clips) drawn per seed from the training folds are all "
        "that fine-tuning sees, while pretraining read every training-fold video's original "
        "clip (no label; the evaluated fold never). Fine-tuning, both arms: configs/demo.yaml's "
        f"`train.deep.videomae` with {json.dumps(VISIBLE_FINE_TUNING)}, i.e. "
        f"{json.dumps(settings['fine-tuning'])}; pretraining: "
        f"{json.dumps(settings['visible'])} (the rest the schema's defaults).",
        "- *demo*: the demo corpus up to its scaled clips and folds (configs/demo.yaml), "
        "every training-fold clip labelled, both arms at configs/demo.yaml's `train.deep."
        f"videomae` ({json.dumps(settings['demo fine-tuning'])}); pretraining at "
        "configs/demo.yaml's `pretrain` section "
        f"({json.dumps(settings['demo'])}), and, as *demo, longer pretraining*, at the visible "
        "corpora's.",
        "",
        "Pretraining runs (per fold and pretraining seed: clips, epochs, reconstruction loss "
        "of the first and last epoch, seconds):",
        "",
    ]
    agg = pl.concat(
        frame.select(
            pl.lit(name).alias("setup"),
            pl.len().alias("runs"),
            pl.col("clips").mean().round(0).cast(pl.Int64).alias("clips (mean)"),
            pl.col("epochs").first(),
            pl.col("loss_first").mean().alias("loss, first epoch"),
            pl.col("loss_last").mean().alias("loss, last epoch"),
            pl.col("seconds").mean().round(1).alias("seconds (mean)"),
        )
        for name, frame in runs.items()
    )
    out += [md(agg), ""]
    out += [
        f"**What the pretrain jobs add to `make demo`** (with `train.deep.videomae.pretrained: "
        f"ssl`): {len(jobs)} jobs, one per fold, each run here as the rule runs it (`python -m "
        "lib pretrain` with the demo's config sections, its start-up included), one after the "
        f"other: {jobs['seconds'].sum():.1f} s wall and {jobs['cpu_s'].sum():.1f} s CPU in all, "
        f"peak RSS {jobs['peak_rss_mb'].max():.0f} MiB per job. They run beside the other "
        'training jobs; the demo\'s wall time with them is section "Demo run".',
        "",
        md(jobs.with_columns(pl.col(c).round(1) for c in ("seconds", "cpu_s", "peak_rss_mb"))),
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds per fold")
    parser.add_argument("--pretrain-seeds", type=int, default=1)
    parser.add_argument("--makes", default="square", help="visible corpora, comma-separated")
    parser.add_argument("--work", default=None, help="keep the corpora and runs here")
    parser.add_argument("--quick", action="store_true", help="one fold, one seed, few epochs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_pretrain_"))
    work.mkdir(parents=True, exist_ok=True)
    folds = [0] if args.quick else [0, 1, 2]
    seeds = list(range(1 if args.quick else args.seeds))
    pretrain_seeds = list(range(args.pretrain_seeds))
    videomae, demo_pretrain = demo_settings()
    schema_pretrain = with_defaults({"pretrain": {}}, load_schema())["pretrain"]
    visible_section = {**schema_pretrain, **VISIBLE_PRETRAINING}
    if args.quick:
        visible_section["epochs"] = 5
    tables, runs = {}, {}
    for make in args.makes.split(","):
        root = write_corpus(work / f"visible-{make}", make, n_groups=40, clips_per_group=3, k=3)
        print(f"visible {make}", flush=True)
        tables[f"visible {make}, few labels"], runs[f"visible {make}"] = compare(
            clip_table(root),
            work / f"runs-{make}",
            folds=folds,
            seeds=seeds,
            pretrain_seeds=pretrain_seeds,
            videomae=videomae,
            section=visible_section,
            fine_tuning=VISIBLE_FINE_TUNING,
            subset=lambda t, fold, seed: labelled_subset(t, fold, seed, LABELLED_GROUPS),
        )
    wf = demo_tables(work)
    cwd = os.getcwd()
    os.chdir(wf)  # the tables hold paths relative to the workflow folder
    try:
        table = load_clip_table("results/scaled.csv", "results/clips.csv", "results/folds.csv")
        for name, section in (
            ("demo", demo_pretrain),
            ("demo, longer pretraining", visible_section),
        ):
            print(name, flush=True)
            tables[name], runs[name] = compare(
                table,
                work / f"runs-{name.replace(' ', '_').replace(',', '')}",
                folds=folds,
                seeds=seeds,
                pretrain_seeds=pretrain_seeds,
                videomae=videomae,
                section=section,
                fine_tuning={},
                subset=None,
            )
    finally:
        os.chdir(cwd)
    jobs = demo_jobs(wf, folds)
    text = markdown(
        tables,
        runs,
        args,
        jobs,
        {
            "visible": VISIBLE_PRETRAINING,
            "demo": {k: demo_pretrain[k] for k in sorted(demo_pretrain)},
            "fine-tuning": {**videomae, **VISIBLE_FINE_TUNING},
            "demo fine-tuning": videomae,
        },
    )
    print(text)
    for name, rows in tables.items():
        rows.write_csv(work / f"{name.replace(' ', '_').replace(',', '')}.csv")
    if not (args.quick or args.no_write):
        write_section("pretraining", text, REPO / "docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
