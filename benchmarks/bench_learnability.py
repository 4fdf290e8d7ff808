"""Do the deep families learn? Held-out ROC-AUC on visible-signal corpora, before and after.

Every family trains through :func:`lib.train.loop.train_deep_table` (the DAG's entry point)
on corpora of ``tests/visible_corpus.py`` (40 duplicate groups x 3 videos, 32 px, 8 frames,
each video with 2 augmented clips; 3 folds of whole groups), one training per evaluated
fold, and is scored on the held-out fold's originals:

* **before**: the settings the project shipped before issue 21 (configs/all_families.yaml's
  ``train.deep``: 4 frames, 32 px (naive_cnn 64), 3 epochs, patience 2, batch 16, lr 1e-3,
  epoch chosen on the inner split's loss, the tiny transformers of hidden size 32 with
  quarter-side patches);
* **after**: the recipe of configs/demo.yaml ``train.deep`` (the one place the tiny CPU
  settings live; ``--epochs`` replaces only the epoch count, as the learnability suite does);
* **train_clips all** against originals (the recipe otherwise), on ``--all-makes``;
* **epoch selection**: after every epoch of an "after" run the held-out fold is scored too
  (a measurement only: the run itself never sees it), so one run tells what each selection
  rule would have chosen (inner-validation loss or AUC, with or without early stopping, or
  the last epoch) and what that epoch scores held out;
* seconds per training (one process, one torch thread, the machine possibly shared: the
  load average is recorded).

Writes section ``learnability`` of docs/BENCHMARKS.md; the raw runs go to a JSON file
(``--raw``) from which ``--render`` rewrites the section without training.

    .venv/bin/python benchmarks/bench_learnability.py            # about an hour on 2 cores
    .venv/bin/python benchmarks/bench_learnability.py --folds 0 --makes square --families naive_cnn
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from lib.train import loop  # noqa: E402
from lib.train.data import FrameClipDataset  # noqa: E402
from lib.train.epoch import predict_logits  # noqa: E402
from lib.train.settings import DEEP_MODELS  # noqa: E402
from visible_corpus import MAKES, visible_table  # noqa: E402

SECTION = "learnability"
CORPUS = {"n_groups": 40, "clips_per_group": 3, "image_size": 32, "n_frames": 8}
N_AUGMENTATIONS = 2
POSITIVE = "fake"

#: Issue 21's starting point: configs/all_families.yaml's train.deep and the registry's tiny
#: transformer of that time (hidden 32, 2 heads, patches of a quarter of the side).
BEFORE_COMMON = {
    "num_frames": 4,
    "image_size": 32,
    "epochs": 3,
    "patience": 2,
    "batch_size": 16,
    "lr": 0.001,
    "warmup_fraction": 0.1,
    "select_on": "val_loss",
    "train_clips": "originals",
    "cache_mb": 256,
}
BEFORE_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 8,
}

#: Selection rules replayed on each run's per-epoch scores: (name, measure, patience).
RULES = [
    ("val_loss, patience 3", "val_loss", 3),
    ("val_loss, no early stop", "val_loss", None),
    ("val_auc, patience 3", "val_auc", 3),
    ("val_auc, no early stop", "val_auc", None),
    ("last epoch", "last", None),
]


def before_settings(family: str) -> dict:
    s = dict(BEFORE_COMMON)
    if family == "naive_cnn":
        s["image_size"] = 64
    else:
        s["model_config"] = dict(BEFORE_TINY)
    return s


def recipe_settings(family: str, epochs: int | None = None, **changes) -> dict:
    """configs/demo.yaml's train.deep entry of ``family``; ``epochs`` and ``changes`` replace."""
    deep = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["train"]["deep"]
    s = copy.deepcopy(deep[family])
    if epochs is not None:
        s["epochs"] = epochs
    return {**s, **changes}


def corpus(make: str, root: Path) -> pl.DataFrame:
    return visible_table(root / make, make, n_augmentations=N_AUGMENTATIONS, **CORPUS)


def held_out_auc(frame: pl.DataFrame) -> float:
    originals = frame.filter(pl.col("aug_idx") == -1)
    return float(roc_auc_score(originals["label"] == POSITIVE, originals["score"]))


def train(table: pl.DataFrame, family: str, settings: dict, *, fold: int, seed: int = 0) -> dict:
    """One training on every fold but ``fold``; held-out AUC of the run and after each epoch.

    The per-epoch held-out score is taken beside the inner validation pass (a wrapper around
    the loop's ``validate``) with the epoch's weights; nothing of it reaches the run.
    """
    curve: list[dict] = []
    test = table.filter((pl.col("fold") == fold) & (pl.col("aug_idx") == -1))
    real_validate = loop.validate

    def validate(model, ds, labels, *, pos, rt, desc):
        row = real_validate(model, ds, labels, pos=pos, rt=rt, desc=desc)
        held = FrameClipDataset(
            test,
            classes=sorted(table["label"].unique().to_list()),
            num_frames=ds.num_frames,
            image_size=ds.image_size,
            mean=model.mean,
            std=model.std,
            cache=ds.cache,
        )
        logits = predict_logits(
            model, held, micro_batch=16, workers=0, device="cpu", precision="fp32", desc=""
        )
        p = torch.softmax(torch.from_numpy(logits).double(), 1).numpy()[:, pos]
        curve.append(
            {
                "val_loss": row["val_loss"],
                "val_auc": row["val_auc"],
                "test_auc": float(roc_auc_score(np.array(held.labels) == pos, p)),
            }
        )
        return row

    loop.validate = validate
    try:
        with tempfile.TemporaryDirectory() as work:
            started = time.perf_counter()
            preds = loop.train_deep_table(
                table,
                Path(work) / "out",
                model_name=family,
                fold=fold,
                settings=settings,
                positive_label=POSITIVE,
                random_state=seed,
                checkpoint_dir=Path(work) / "ck",
            )
            seconds = time.perf_counter() - started
            info = json.loads((Path(work) / "out" / "train_info.json").read_text())
    finally:
        loop.validate = real_validate
    return {
        "auc": held_out_auc(preds),
        "best_epoch": info["best_epoch"],
        "epochs_run": info["epochs_run"],
        "curve": curve,
        "seconds": seconds,
    }


def chosen_epoch(curve: list[dict], measure: str, patience: int | None) -> int:
    """The epoch (0-based) a selection rule picks from per-epoch inner-validation scores,
    replaying lib.train.loop.run_epochs (early stop after ``patience`` epochs without
    improvement; None: every epoch runs)."""
    if measure == "last":
        return len(curve) - 1
    best, best_score = -1, math.inf
    for epoch, row in enumerate(curve):
        score = row["val_loss"] if measure == "val_loss" else -row["val_auc"]
        if not math.isnan(score) and score < best_score:
            best, best_score = epoch, score
        if patience is not None and best >= 0 and epoch - best >= patience:
            break
    return best if best >= 0 else len(curve) - 1


# -- the runs ---------------------------------------------------------------------------------


def measure(args) -> list[dict]:
    root = Path(tempfile.gettempdir()) / "vidstage-learnability"
    runs = []
    plan = [("before", m, None) for m in args.makes]
    plan += [("after", m, "originals") for m in args.makes]
    plan += [("after", m, "all") for m in args.all_makes if not args.skip_all]
    for phase, make, clips in plan:
        table = corpus(make, root)
        for family in args.families:
            for fold in args.folds:
                if phase == "before":
                    settings = before_settings(family)
                else:
                    settings = recipe_settings(family, args.epochs, train_clips=clips)
                r = train(table, family, settings, fold=fold)
                row = {
                    "phase": phase if phase == "before" else f"after ({clips})",
                    "make": make,
                    "family": family,
                    "fold": fold,
                    **r,
                }
                runs.append(row)
                print(
                    f"{row['phase']:18} {make:7} {family:16} fold {fold}: AUC {r['auc']:.3f} "
                    f"(epoch {r['best_epoch']}/{r['epochs_run']}) {r['seconds']:.1f} s",
                    flush=True,
                )
    return runs


# -- the section ------------------------------------------------------------------------------


def _fmt(values) -> str:
    values = list(values)
    return f"{np.mean(values):.2f} ({min(values):.2f})"


def render(runs: list[dict], meta: dict) -> str:
    df = pd.DataFrame(runs)
    fams = [f for f in DEEP_MODELS if f in set(df["family"])]
    makes = [m for m in MAKES if m in set(df["make"])]

    rows = []
    for fam in fams:
        row = {"family": fam}
        for make in makes:
            for phase, label in (("before", "before"), ("after (originals)", "after")):
                sel = df[(df.family == fam) & (df.make == make) & (df.phase == phase)]
                row[f"{make} {label}"] = _fmt(sel.auc) if len(sel) else ""
        rows.append(row)
    auc_table = pd.DataFrame(rows).to_markdown(index=False)

    clip_rows = []
    for fam in fams:
        row = {"family": fam}
        both = df[(df.family == fam) & (df.phase == "after (all)")]
        for make in [m for m in makes if m in set(both.make)]:
            for clips in ("originals", "all"):
                sel = df[(df.family == fam) & (df.make == make) & (df.phase == f"after ({clips})")]
                row[f"{make} {clips}"] = _fmt(sel.auc) if len(sel) else ""
        for clips in ("originals", "all"):
            secs = df[(df.family == fam) & (df.phase == f"after ({clips})")].seconds
            row[f"s/training {clips}"] = round(float(np.median(secs)), 1) if len(secs) else ""
        clip_rows.append(row)
    clip_table = pd.DataFrame(clip_rows).to_markdown(index=False) if len(clip_rows) else ""

    after = df[df.phase == "after (originals)"]
    last = np.array([c[-1]["test_auc"] for c in after.curve])
    sel_rows = []
    for name, measure_, patience in RULES:
        picked = [chosen_epoch(c, measure_, patience) for c in after.curve]
        aucs = np.array([c[e]["test_auc"] for c, e in zip(after.curve, picked)])
        sel_rows.append(
            {
                "rule": name,
                "held-out AUC, mean": round(float(aucs.mean()), 3),
                "min": round(float(aucs.min()), 3),
                "beats last": int((aucs > last + 1e-9).sum()),
                "ties": int((np.abs(aucs - last) <= 1e-9).sum()),
                "below last": int((aucs < last - 1e-9).sum()),
                "mean epoch": round(float(np.mean(picked)) + 1, 1),
            }
        )
    sel_table = pd.DataFrame(sel_rows).to_markdown(index=False)
    per_family = []
    for fam in fams:
        sub = after[after.family == fam]
        row = {"family": fam}
        for name, measure_, patience in (RULES[0], RULES[-1]):
            row[name] = round(
                float(
                    np.mean([c[chosen_epoch(c, measure_, patience)]["test_auc"] for c in sub.curve])
                ),
                3,
            )
        per_family.append(row)
    fam_sel = pd.DataFrame(per_family).to_markdown(index=False)

    time_rows = []
    for fam in fams:
        row = {"family": fam}
        for phase in ("before", "after (originals)", "after (all)"):
            secs = df[(df.family == fam) & (df.phase == phase)].seconds
            row[f"{phase} s"] = round(float(np.median(secs)), 1) if len(secs) else ""
        time_rows.append(row)
    time_table = pd.DataFrame(time_rows).to_markdown(index=False)

    n_after = len(after)
    folds = sorted(set(df.fold))
    return f"""## Learnability of the deep families (`bench_learnability`)

Measured {meta['date']} on {meta['cores']} cores ({meta['cpu']}),
`python benchmarks/bench_learnability.py {meta['argv']}`, {meta['minutes']:.0f} min; load
average before and after: {meta['load_before']}, {meta['load_after']} (the machine was shared:
seconds are contended). Every training is one `train_deep_table` call (the DAG's entry point)
on a visible-signal corpus of `tests/visible_corpus.py` (makes {', '.join(makes)}: 40
duplicate groups x 3 videos of 8 frames at 32 px, each video with {N_AUGMENTATIONS} augmented
clips, 3 folds of whole groups stratified by label), evaluated fold {', '.join(map(str, folds))}
in turn, seed 0; the held-out ROC-AUC is over the evaluated fold's original clips (about 40).

**Before** is the project's tiny deep settings before issue 21 (configs/all_families.yaml:
4 frames, 32 px (naive_cnn 64), 3 epochs, patience 2, batch 16, lr 1e-3, warm-up 0.1, epoch
chosen by inner-validation loss; transformers of hidden size 32, 2 heads, patches of a
quarter side). **After** is the recipe in configs/demo.yaml `train.deep` (batch 8, lr 2e-3,
warm-up 0.3 of the steps, the last epoch kept) with the registry's tiny architecture
(lib/train/models.py: hidden 64, 4 heads, MLP 128, 2 layers, patches of an eighth of the
side), at {meta['epochs']} epochs. The learnability suite (`pytest -s -k learnab`,
tests/test_learnability.py) runs the same recipe on two of these makes, one evaluated fold
each, at the epoch count it names, and prints its figures.

Held-out ROC-AUC per family and corpus: mean over the evaluated folds (lowest fold in
brackets):

{auc_table}

`train_clips: all` (originals and their augmented clips) against `originals` (the recipe
otherwise; the held-out score is on originals either way), and the median seconds of one
training:

{clip_table}

**Epoch selection.** Every "after" run ({n_after} runs: families x corpora x folds) also
scored the held-out fold after each epoch (a measurement beside the run; the run itself
never sees that fold). Replaying each selection rule on the run's inner-validation scores
gives the epoch it would have chosen and that epoch's held-out AUC, against the last
epoch's:

{sel_table}

By family (mean held-out AUC over corpora and folds):

{fam_sel}

Median seconds per training (one process, one torch thread, clips decoded once and kept in
memory):

{time_table}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--makes", nargs="+", default=list(MAKES), choices=list(MAKES))
    ap.add_argument("--all-makes", nargs="+", default=["square", "ring"], choices=list(MAKES))
    ap.add_argument("--skip-all", action="store_true", help="no train_clips: all runs")
    ap.add_argument("--families", nargs="+", default=list(DEEP_MODELS), choices=DEEP_MODELS)
    ap.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=12, help="the recipe's epoch count here")
    ap.add_argument("--raw", default=str(Path(tempfile.gettempdir()) / "bench_learnability.json"))
    ap.add_argument("--render", action="store_true", help="rewrite the section from --raw")
    ap.add_argument("--no-write", action="store_true", help="print the section only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if args.render:
        saved = json.loads(Path(args.raw).read_text())
        runs, meta = saved["runs"], saved["meta"]
    else:
        load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        started = time.perf_counter()
        runs = measure(args)
        meta = {
            "date": date.today().isoformat(),
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "argv": " ".join(sys.argv[1:]),
            "minutes": (time.perf_counter() - started) / 60,
            "load_before": load_before,
            "load_after": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
            "epochs": args.epochs,
        }
        Path(args.raw).write_text(json.dumps({"runs": runs, "meta": meta}))
    text = render(runs, meta)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
