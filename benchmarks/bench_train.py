"""Deep models on the CPU at demo size: loader vs training-step throughput, RSS over epochs.

For every family, at the settings the demo uses (configs/demo.yaml ``train.deep``; vit_gru and
vit_transformer from configs/all_families.yaml), on demo-like scaled clips (256x256 H.264,
90 frames, one keyframe, generated here):

* loader clips/s: the training ``FrameClipDataset`` (decode ``num_frames`` uniformly
  sampled frames through FrameReader, augment, resize, normalise) through the DataLoader
  alone, as the training loop uses it (workers 0, micro-batches);
* training step clips/s: forward + backward + AdamW step on batches already in memory
  (the effective batch, as micro-batches with accumulation), the model's cost alone.
  The smaller of the two bounds an epoch.

Then one training job (`python -m lib train`, naive_cnn at demo size, 8 epochs) in its own
process: RSS at the end of each epoch (history.csv) and the process's peak RSS. Target:
flat, the last epoch within 10 % of the second.

Timings are medians of 3 runs; the machine may be shared: the load averages are recorded.

    .venv/bin/python benchmarks/bench_train.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import peak_rss  # noqa: E402
from report import cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lib import schemas  # noqa: E402
from lib.train.data import FrameClipDataset  # noqa: E402
from lib.train.epoch import data_loader  # noqa: E402
from lib.train.models import create_model  # noqa: E402
from lib.train.runtime import resolve_runtime  # noqa: E402
from lib.train.settings import DEEP_MODELS, settings_for  # noqa: E402
from lib.io.writer import VideoWriter  # noqa: E402

N_CLIPS, N_FRAMES, SIZE = 16, 90, 256


def make_corpus(root: Path) -> Path:
    """16 demo-like scaled clips (8 real, 8 fake), with clips.csv, scaled.csv, folds.csv."""
    clips, scaled, folds = [], [], []
    rng = np.random.default_rng(0)
    for i in range(N_CLIPS):
        label = "fake" if i % 2 else "real"
        vid = f"v{i:02d}"
        path = root / f"{vid}.mp4"
        base = rng.integers(0, 255, (SIZE // 8, SIZE // 8, 3), dtype=np.uint8)
        base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
        if not path.exists():
            with VideoWriter(path, fps=25, options={"g": "250"}) as w:
                for t in range(N_FRAMES):
                    w.write(np.roll(base, 2 * t, axis=1))
        clips.append({"clip_id": vid, "video_id": vid, "path": str(path), "aug_idx": -1,
                      "augmentation": "none", "label": label, "dup_group": f"g{i}", "status": "ok",
                      "reason": ""})  # fmt: skip
        scaled.append({"clip_id": vid, "video_id": vid, "path": str(path), "scale_method": "letterbox",
                       "orig_width": SIZE, "orig_height": SIZE, "scaled_width": SIZE,
                       "scaled_height": SIZE, "status": "ok", "reason": ""})  # fmt: skip
        folds.append({"video_id": vid, "dup_group": f"g{i}", "label": label, "fold": i % 4})
    schemas.write_table(pl.DataFrame(clips), root / "clips.csv", "clips")
    schemas.write_table(pl.DataFrame(scaled), root / "scaled.csv", "scaled")
    schemas.write_table(pl.DataFrame(folds), root / "folds.csv", "folds")
    return root


def demo_settings() -> dict:
    train = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["train"]
    every = yaml.safe_load((REPO / "configs/all_families.yaml").read_text())["train"]
    return {m: settings_for({"deep": {**every["deep"], **train["deep"]}}, m) for m in DEEP_MODELS}


def throughput(name: str, s, table: pd.DataFrame, runs: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name, s, num_classes=2)
    rt = resolve_runtime(s)
    ds = FrameClipDataset(table, classes=["fake", "real"], num_frames=s.num_frames,
                          image_size=s.image_size, mean=model.mean, std=model.std, augment=True)  # fmt: skip
    micro = rt["micro_batch"]
    batches = [list(range(i, min(i + micro, len(ds)))) for i in range(0, len(ds), micro)]
    loader_times, held = [], []
    for r in range(runs):
        ds.set_epoch(r)
        t = time.perf_counter()
        held = [(x, y) for x, y, _ in data_loader(ds, batches, rt["workers"])]
        loader_times.append(time.perf_counter() - t)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr)
    model.train()
    step_times = []
    for _ in range(runs + 1):  # the first pass warms up the allocator and kernels
        t = time.perf_counter()
        for i in range(0, len(held), rt["accumulation"]):
            for x, y in held[i:i + rt["accumulation"]]:  # fmt: skip
                F.cross_entropy(model(x), y, reduction="sum").div(s.batch_size).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - t)
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "frames x size": f"{s.num_frames} x {s.image_size}²",
            "params": params, "micro-batch x accum": f"{micro} x {rt['accumulation']}",
            "loader clips/s": round(len(ds) / float(np.median(loader_times)), 1),
            "train step clips/s": round(len(ds) / float(np.median(step_times[1:])), 1)}  # fmt: skip


def rss_over_epochs(root: Path, s, epochs: int = 8) -> tuple[pd.DataFrame, float, float]:
    settings = {**s.as_dict(), "epochs": epochs, "patience": epochs, "val_fraction": 0.34}
    out = root / "job"
    cmd = [sys.executable, "-m", "lib", "train", "--scaled", str(root / "scaled.csv"),
           "--clips", str(root / "clips.csv"), "--folds", str(root / "folds.csv"),
           "--out-dir", str(out), "--model", "naive_cnn", "--fold", "0",
           "--params", json.dumps(settings), "--checkpoint-dir", str(root / "ck")]  # fmt: skip
    os.environ["OMP_NUM_THREADS"] = "1"
    seconds, peak = peak_rss(cmd, REPO)
    history = pd.read_csv(out / "history.csv")[
        ["epoch", "train_loss", "val_loss", "rss_mb", "seconds"]
    ]
    return history, peak, seconds


def demo_figures(results: Path) -> str:
    """Deep models' demo ROC-AUC beside the feature models', and what each fold's history says."""
    summary = pd.read_csv(results / "summary.csv")
    auc = summary[summary["metric"].isin(["roc_auc", "video_roc_auc"])]
    auc = auc.assign(
        value=auc["mean"].round(3).astype(str) + " ± " + auc["std"].round(3).astype(str)
    )
    table = auc.pivot(index="model", columns="metric", values="value").reset_index()
    rows = []
    for info_path in sorted(results.glob("models/*/fold-*/train_info.json")):
        hist_path = info_path.with_name("history.csv")
        if not hist_path.exists():
            continue
        info, hist = json.loads(info_path.read_text()), pd.read_csv(hist_path)
        best = hist.iloc[info["best_epoch"] - 1]
        rows.append({"model": info["model"], "fold": info["fold"], "epochs": len(hist),
                     "best epoch": info["best_epoch"],
                     "train loss first→last": f"{hist['train_loss'].iloc[0]:.3f}→{hist['train_loss'].iloc[-1]:.3f}",
                     "val AUC (best)": round(float(best["val_auc"]), 3),
                     "val logit std": round(float(best["logit_std"]), 4),
                     "grad norm": round(float(best["grad_norm"]), 3),
                     "warnings": info["warnings"] and "; ".join(info["warnings"]) or "",
                     "s": info["seconds"]})  # fmt: skip
    return (f"Out-of-fold ROC-AUC of a demo run (`{results}`; mean ± std over folds):\n\n"
            f"{table.to_markdown(index=False)}\n\nPer deep model and fold (history.csv, "
            f"train_info.json):\n\n{pd.DataFrame(rows).to_markdown(index=False)}\n")  # fmt: skip


def main(runs: int = 3) -> None:
    torch.set_num_threads(1)  # as a train_deep job runs locally (threads: 1 -> OMP_NUM_THREADS=1)
    started = time.perf_counter()
    load_before = os.getloadavg()
    settings = demo_settings()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = make_corpus(Path(tmp))
        table = schemas.read_table(root / "scaled.csv", "scaled").join(
            schemas.read_table(root / "clips.csv", "clips").select("clip_id", "label"), on="clip_id"
        )
        rows = []
        for name in DEEP_MODELS:
            rows.append(throughput(name, settings[name], table, runs))
            print(rows[-1], flush=True)
        history, peak, job_s = rss_over_epochs(root, settings["naive_cnn"])
    load_after = os.getloadavg()
    table_md = pd.DataFrame(rows).to_markdown(index=False)
    bounds = ", ".join(
        f"{r['model']} {'loader' if r['loader clips/s'] < r['train step clips/s'] else 'step'}"
        for r in rows
    )
    flat = history["rss_mb"].iloc[-1] <= 1.10 * history["rss_mb"].iloc[1]
    md = f"""## Deep models on the CPU (`bench_train`)

Measured {date.today()} on {os.cpu_count()} cores ({cpu_model()}), `python benchmarks/bench_train.py`:
{N_CLIPS} demo-like scaled clips ({SIZE}x{SIZE} H.264, {N_FRAMES} frames, one keyframe), each
family at the demo's settings (configs/demo.yaml `train.deep`; vit_* from configs/all_families.yaml),
fp32, workers 0, one process, one torch thread (as a local `train_deep` job). Medians of {runs} runs. **Load average (1, 5, 15 min): {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}
before, {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f} after**: other jobs shared the cores; timings are noisy, compare them with each other.

Loader alone (decode through FrameReader + augment + resize + normalise) vs one training step
on batches already in memory (forward + backward + AdamW, micro-batches with accumulation to the
effective batch). An epoch runs at roughly the smaller of the two:

{table_md}

Bound by (the slower of the two, from this table): {bounds}. With workers > 0 on a machine
with spare cores (auto on CUDA) the loader runs beside the step, so an epoch costs the slower
of the two rather than their sum.

RSS of one training job (`python -m lib train`, naive_cnn at demo size, {len(history)} epochs,
fold 0 of the {N_CLIPS} clips) at the end of each epoch (history.csv), and the process's peak RSS:
**{peak:.0f} MiB peak**; flat (last epoch within 10 % of the second): **{'yes' if flat else 'no'}**.
Job wall time {job_s:.0f} s.

{history.to_markdown(index=False)}

No GPU machine was lent to this task, so the base-size VideoMAE (16 frames, 224², bf16) figures
are not measured here. Benchmark wall time: {(time.perf_counter() - started) / 60:.1f} min.
"""
    write_section("train", md)
    print(md)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo-results", type=Path, default=None,
                        help="results/ of a finished demo run: add its ROC-AUC per model")  # fmt: skip
    parser.add_argument("--only-demo", action="store_true",
                        help="write only the demo figures (section train_demo)")  # fmt: skip
    args = parser.parse_args()
    if args.demo_results:
        md = ("## Deep models on the demo (`bench_train --demo-results`)\n\n"
              f"Measured {date.today()} on {os.cpu_count()} cores ({cpu_model()}), load average "
              f"now {', '.join(f'{x:.1f}' for x in os.getloadavg())}.\n\n{demo_figures(args.demo_results)}")  # fmt: skip
        write_section("train_demo", md)
        print(md)
    if not args.only_demo:
        main(args.runs)
