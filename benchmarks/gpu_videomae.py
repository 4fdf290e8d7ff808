"""Base-size VideoMAE training on a GPU: clips/s and peak GPU memory; the project's loader on
the CPU at the same clip size beside it.

The GPU part needs only torch and transformers (the GPU machine may not have this project's
environment): a VideoMAE-Base classifier (random init, 16 frames, 224x224, tubelets of 2,
two classes) trains on synthetic clips already on the GPU with AdamW under bf16 autocast,
as a ``train_deep`` job of ``videomae`` from ``configs/fvc.yaml`` would, for ``--steps``
steps after ``--warmup`` steps, at each of ``--batch-sizes``. It prints a markdown table:
seconds per step (median), clips/s, peak GPU memory allocated and reserved. Copy the file
anywhere and run::

    pip install torch transformers          # where they are missing
    python gpu_videomae.py --steps 30 --batch-sizes 4,8,16

On a machine without a CUDA GPU it refuses (exit status 2) rather than print CPU numbers as
if they were a GPU's; ``--smoke`` runs a tiny VideoMAE for two steps on whatever device there
is (the code path, no figures).

Inside the project (its venv, from the repository root), ``--write`` also measures the
project's loader (:class:`lib.train.data.FrameClipDataset` through the training loop's
DataLoader: decode 16 uniformly spaced frames of a scaled clip, augment, resize to 224,
normalise) on the CPU and writes both to docs/BENCHMARKS.md, section "deep-gpu"
(``benchmarks/report.py``). ``--loader-only --write`` does that on a machine without a GPU,
saying the GPU figures were not measured::

    .venv/bin/python benchmarks/gpu_videomae.py --write          # on a GPU machine
    .venv/bin/python benchmarks/gpu_videomae.py --loader-only --write
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

REPO = Path(__file__).resolve().parents[1]
SECTION = "deep-gpu"
HEADING = "## Deep models on a GPU (`benchmarks/gpu_videomae.py`)"
NO_GPU = (
    "gpu_videomae.py measures training on a CUDA GPU, and torch finds none here "
    "(torch.cuda.is_available() is False). Run it on a GPU machine (it needs only torch and "
    "transformers), or pass --smoke for a tiny check of the code on the CPU, or, in the "
    "project, --loader-only --write for the CPU loader figures."
)
#: A tiny VideoMAE for --smoke: the code path only.
SMOKE = {
    "num_frames": 4,
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def train_throughput(
    *,
    batch_size: int,
    steps: int,
    warmup: int,
    device: str,
    config: dict,
    lr: float = 1e-4,
    random_state: int = 0,
) -> dict:
    """Train a VideoMAE classifier (``config``: VideoMAEConfig fields; base size when it
    names none but the clip) on one synthetic batch held on ``device``; time each step."""
    torch.manual_seed(random_state)
    model = VideoMAEForVideoClassification(VideoMAEConfig(num_labels=2, **config)).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    frames, size = config["num_frames"], config["image_size"]
    x = torch.randn(batch_size, frames, 3, size, size, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    cuda = device == "cuda"

    def step() -> float:
        t = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda):
            logits = model(pixel_values=x).logits
        F.cross_entropy(logits.float(), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t

    row = {
        "batch": batch_size,
        "frames x size": f"{frames} x {size}²",
        "params (M)": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "attention": getattr(model.config, "_attn_implementation", "?"),
    }
    try:
        for _ in range(warmup):
            step()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = [step() for _ in range(steps)]
    except torch.cuda.OutOfMemoryError:
        return {**row, "s/step": "out of memory"}
    median = statistics.median(times)
    row.update({"s/step": round(median, 4), "clips/s": round(batch_size / median, 2)})
    if cuda:
        row["peak GiB allocated"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["peak GiB reserved"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    del model, opt, x
    if cuda:
        torch.cuda.empty_cache()
    return row


def markdown(rows: list[dict]) -> str:
    """A list of dicts as a GitHub markdown table (no pandas: the GPU machine may lack it)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def gpu_rows(batch_sizes: list[int], *, steps: int, warmup: int, smoke: bool) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = SMOKE if smoke else {"num_frames": 16, "image_size": 224}
    rows = []
    for b in batch_sizes:
        rows.append(
            train_throughput(batch_size=b, steps=steps, warmup=warmup, device=device, config=config)
        )
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def gpu_description() -> str:
    props = torch.cuda.get_device_properties(0)
    return (
        f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


# -- the project's loader on the CPU (needs the project: imported only here) ---------------


def loader_rows(*, n_clips: int = 48, clip_frames: int = 90, canvas: int = 256, runs: int = 3):
    """clips/s of the training loader over synthetic scaled clips (``canvas`` px H.264,
    ``clip_frames`` frames, one keyframe, as the scale stage writes them) read at 16 frames,
    224 px: in the training process (workers 0), and with 2 loader worker processes (a
    fresh pool per pass, as per epoch in training)."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    import polars as pl

    from lib.io.writer import VideoWriter
    from lib.train.data import FrameClipDataset
    from lib.train.epoch import data_loader

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_videomae_") as tmp:
        rng = np.random.default_rng(0)
        paths = []
        for i in range(n_clips):
            base = rng.integers(0, 255, (canvas // 8, canvas // 8, 3), dtype=np.uint8)
            base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
            paths.append(Path(tmp) / f"clip{i:02d}.mp4")
            with VideoWriter(paths[-1], fps=25, options={"g": "250"}) as w:
                for t in range(clip_frames):
                    w.write(np.roll(base, 2 * t, axis=1))
        table = pl.DataFrame(
            {
                "clip_id": [p.stem for p in paths],
                "path": [str(p) for p in paths],
                "label": ["fake", "real"] * (n_clips // 2),
            }
        )
        micro = 8
        batches = [list(range(i, min(i + micro, n_clips))) for i in range(0, n_clips, micro)]
        for workers, augment in ((0, False), (0, True), (2, True)):
            ds = FrameClipDataset(
                table,
                classes=["fake", "real"],
                num_frames=16,
                image_size=224,
                mean=(0.485, 0.456, 0.406),
                std=(0.229, 0.224, 0.225),
                augment=augment,
            )
            times = []
            for r in range(runs):
                ds.set_epoch(r)
                t = time.perf_counter()
                for _ in data_loader(ds, batches, workers):
                    pass
                times.append(time.perf_counter() - t)
            median = statistics.median(times)
            rows.append(
                {
                    "loader workers": workers,
                    "augment": "yes" if augment else "no",
                    "clips/s": round(n_clips / median, 1),
                    "ms per clip": round(1000 * median / n_clips, 1),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows, {"n_clips": n_clips, "clip_frames": clip_frames, "canvas": canvas, "runs": runs}


def section(gpu: list[dict] | None, gpu_desc: str, loader: list[dict], spec: dict, args) -> str:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import cpu_model

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    if gpu:
        gpu_part = (
            f"Measured {date.today()} on {gpu_desc}: VideoMAE-Base (random init), "
            f"16 frames x 224², bf16 autocast, AdamW, synthetic clips already on the GPU, "
            f"median of {args.steps} steps after {args.warmup}:\n\n{markdown(gpu)}"
        )
    else:
        gpu_part = (
            "**GPU figures: not measured.** No GPU was available to the session that wrote "
            "this section, so there is no GPU figure here. On a machine with a CUDA GPU "
            "(only torch and transformers needed; the script runs outside the project):\n\n"
            "    python benchmarks/gpu_videomae.py --steps 30 --batch-sizes 4,8,16\n\n"
            "prints the table (seconds per step, clips/s, peak GPU memory per batch size); in "
            "the project's venv, `.venv/bin/python benchmarks/gpu_videomae.py --write` "
            "writes it here beside the loader figures below."
        )
    return f"""{HEADING}

What `configs/fvc.yaml`'s `videomae` asks of a GPU (a VideoMAE-Base at 16 frames x 224²)
and of the loader that feeds it.

{gpu_part}

### The project's loader on the CPU at that size

Measured {date.today()} on {os.cpu_count()} cores ({cpu_model()}, Python {platform.python_version()}),
`.venv/bin/python benchmarks/gpu_videomae.py {"--loader-only " if not gpu else ""}--write`:
{spec['n_clips']} synthetic scaled clips ({spec['canvas']}x{spec['canvas']} H.264,
{spec['clip_frames']} frames, one keyframe) read as `train_deep` reads them
(`FrameClipDataset`: 16 uniformly spaced frames decoded, augmented, resized to 224,
normalised; micro-batches of 8 through the training loop's DataLoader), one torch thread
per process, median of {spec['runs']} passes (2 workers: a fresh pool each pass, as each
epoch starts one). Load average (1, 5, 15 min) at the end: {load}; other
jobs may have shared the cores.

{markdown(loader)}

One loader process feeds a GPU step only as fast as this; `train.deep.<model>.workers`
(null: up to 4 on CUDA) runs that many beside the step, so a GPU job wants about as many
cores as a step needs clips divided by one worker's clips/s (profiles/slurm-gpu gives each
deep job 5).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch-sizes", default="4,8,16", help="comma-separated")
    parser.add_argument("--smoke", action="store_true", help="tiny model, any device, 2 steps")
    parser.add_argument("--loader-only", action="store_true", help="no GPU part (project)")
    parser.add_argument("--write", action="store_true", help="docs/BENCHMARKS.md (project)")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    if args.smoke:
        rows = gpu_rows([2], steps=2, warmup=1, smoke=True)
        print(markdown(rows))
        return 0
    gpu, desc = None, ""
    if not args.loader_only:
        if not torch.cuda.is_available():
            print(NO_GPU, file=sys.stderr)
            return 2
        desc = gpu_description()
        gpu = gpu_rows(batch_sizes, steps=args.steps, warmup=args.warmup, smoke=False)
        print(f"{desc}\n\n{markdown(gpu)}")
    if args.write or args.loader_only:
        loader, spec = loader_rows()
        md = section(gpu, desc, loader, spec, args)
        print(md)
        if args.write:
            sys.path.insert(0, str(REPO / "benchmarks"))
            from report import write_section

            print(write_section(SECTION, md, REPO / "docs" / "BENCHMARKS.md"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
