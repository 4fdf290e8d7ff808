"""The embeddings stage: frames/s at demo size, cost per 1,000 videos of base-size encoders,
and peak RSS over a long video.

1. Demo size: `lib.stages.embeddings.embeddings_shard` (the job's work, decoding included)
   with the demo's tiny random-init CLIP vision model (32 px) on a corpus of demo-like clips
   (tests/visible_corpus.py, 8 frames each, the features section's sampling).
2. Cost per 1,000 videos: the encoder alone (image processor + forward, no decoding) on
   random 480x360 frames, random-init models of the real architectures (no weights can be
   fetched here): CLIP ViT-L/14 (configs/fvc.yaml's `embeddings.model`), CLIP ViT-B/16 and
   DINOv2-Base at 224x224, in batches of 16 on one thread; seconds per frame times the frames
   a video gives at the schema's defaults (up to 50 sampled frames of each of its
   1 + augment.n_augmentations clips).
3. Peak RSS: `python -m lib embeddings` on a one-clip table (a fresh process per run, the
   stage alone measured by bench_memory's wrapper), 1 min vs 10 min of 160x120 video at
   25 fps with a tenth of the frames embedded (no frame cap): memory must stay flat.

    .venv/bin/python benchmarks/bench_embeddings.py            # writes section "embeddings"
    .venv/bin/python benchmarks/bench_embeddings.py --device cuda --no-write   # on a GPU

On a GPU (`--device cuda`), part 2 runs in bf16 with batches of 64 and reports peak GPU
memory as well; this session had no GPU, and the section says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import measure  # noqa: E402
from report import cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from lib import schemas  # noqa: E402
from lib.io.writer import VideoWriter  # noqa: E402
from lib.media.embeddings import build_tiny_encoder, load_encoder  # noqa: E402
from lib.shards import Shard  # noqa: E402
from lib.stages.embeddings import embeddings_shard  # noqa: E402
from visible_corpus import write_corpus  # noqa: E402

SAMPLING = {"fraction": 0.1, "min_frames": 5, "max_frames": 50}  # the schema's defaults
#: Random-init stand-ins of real checkpoints: (kind, config) at 224x224.
BASE_MODELS = {
    "CLIP ViT-L/14 (openai/clip-vit-large-patch14)": (
        "clip",
        dict(hidden_size=1024, intermediate_size=4096, layers=24, heads=16, patch_size=14,
             projection_dim=768),
    ),
    "CLIP ViT-B/16 (openai/clip-vit-base-patch16)": (
        "clip", dict(hidden_size=768, intermediate_size=3072, layers=12, heads=12, patch_size=16)
    ),
    "DINOv2-Base (facebook/dinov2-base)": (
        "dinov2", dict(hidden_size=768, intermediate_size=3072, layers=12, heads=12, patch_size=14)
    ),
}  # fmt: skip
#: Frames a video gives at the schema's defaults: 50 sampled frames (a clip of 500 frames or
#: more) of each of 1 + 10 clips (augment.n_augmentations), or of the original alone.
FRAMES_PER_VIDEO = {"original + 10 augmented clips": 11 * 50, "original only": 50}


def demo_rows(work: Path, runs: int) -> list[dict]:
    corpus = write_corpus(work / "corpus", "disc", n_groups=40, clips_per_group=3)
    encoder = build_tiny_encoder("clip", work / "tiny-clip")
    rows = []
    for run in range(runs):
        out = work / f"demo-{run}.parquet"
        start = time.perf_counter()
        embeddings_shard(corpus / "clips.csv", out, Shard(0, 1), model=str(encoder),
                         num_frames=0, batch_size=0, device="cpu", precision="auto",
                         keep_frames=False, sampling=SAMPLING,
                         progress_dir=work / f"progress-{run}")  # fmt: skip
        seconds = time.perf_counter() - start
        table = schemas.read_table(out, "embeddings")
        frames = len(table) * SAMPLING["min_frames"]  # 8-frame clips: 5 sampled each
        rows.append({"clips": len(table), "frames": frames, "seconds": seconds})
        print(rows[-1], flush=True)
    return rows


def encoder_rows(work: Path, *, device: str, frames: int, batch: int) -> list[dict]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (360, 480, 3), dtype=np.uint8) for _ in range(batch)]
    rows = []
    for name, (kind, config) in BASE_MODELS.items():
        folder = build_tiny_encoder(kind, work / kind / name.split()[1], image_size=224, **config)
        encoder = load_encoder(str(folder), device=device, precision="auto", batch_size=batch)
        encoder.embed(images[:2])  # warm-up
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(max(1, frames // batch)):
            start = time.perf_counter()
            encoder.embed(images)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) / batch)
        per_frame = statistics.median(times)
        row = {"model": name, "s_per_frame": per_frame, "dtype": str(encoder.dtype)}
        if device == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        rows.append(row)
        print(row, flush=True)
        del encoder
    return rows


def write_video(path: Path, n_frames: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with VideoWriter(path, fps=25, threads=1) as writer:
        for i in range(n_frames):
            writer.write(np.roll(base, i, axis=1))
    return path


def rss_rows(work: Path, runs: int) -> list[dict]:
    encoder = build_tiny_encoder("clip", work / "rss-clip")
    rows = []
    for label, n_frames in (("1 min", 1500), ("10 min", 15000)):
        video = write_video(work / f"{n_frames}.mp4", n_frames)
        row = {"clip_id": video.stem, "video_id": video.stem, "path": str(video), "aug_idx": -1,
               "augmentation": "none", "label": "real", "dup_group": "g", "status": "ok",
               "reason": ""}  # fmt: skip
        schemas.write_table(pl.DataFrame([row]), work / f"{video.stem}.csv", "clips")
        settings = {"embeddings": {"model": str(encoder), "device": "cpu"},
                    "features": {"fraction": 0.1, "min_frames": 5, "max_frames": 100000}}  # fmt: skip
        for run in range(runs):
            cmd = [sys.executable, "-m", "lib", "embeddings", "--clips",
                   str(work / f"{video.stem}.csv"), "--out", str(work / f"rss-{run}.parquet"),
                   "--progress-dir", str(work / f"rss-progress-{n_frames}-{run}"),
                   "--config-json", json.dumps(settings)]  # fmt: skip
            result = measure(cmd, REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
            rows.append({"video": label, "frames embedded": n_frames // 10,
                         "seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"]})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def section(demo, encoders, rss, *, device: str, runs: int) -> str:
    demo_fps = statistics.median(r["frames"] / r["seconds"] for r in demo)
    lines = [
        "## Embeddings",
        "",
        f"Measured {date.today()} on {os.cpu_count()} cores ({cpu_model()}), shared with other "
        "engineers' jobs (contended: read the figures as upper bounds), "
        "`python benchmarks/bench_embeddings.py`. No GPU was available to this session: the "
        "GPU figures (`--device cuda`: bf16, batches of 64, peak GPU memory) are not measured.",
        "",
        f"**Demo size.** The stage's job (decoding included) with the demo's tiny random-init "
        f"CLIP vision model (32 px): {demo[0]['clips']} clips of 8 frames, 5 sampled each, "
        f"median of {runs} runs: **{demo_fps:.0f} frames/s** "
        f"({statistics.median(r['seconds'] for r in demo):.1f} s per run, one thread).",
        "",
        "**Cost per 1,000 videos on the CPU.** The encoder alone (image processor and forward "
        "pass, 480x360 frames resized to 224x224, batches of 16, one thread, fp32), random-init "
        "models of the real architectures; core-hours per 1,000 videos at the schema's "
        "sampling (50 frames of a clip of 500 frames or more):",
        "",
        "| encoder | s per frame | frames/s | "
        + " | ".join(f"core-h / 1,000 videos, {k}" for k in FRAMES_PER_VIDEO)
        + " |",
        "|---|---|---|" + "---|" * len(FRAMES_PER_VIDEO),
    ]
    for row in encoders:
        hours = [row["s_per_frame"] * n * 1000 / 3600 for n in FRAMES_PER_VIDEO.values()]
        lines.append(
            f"| {row['model']} | {row['s_per_frame']:.3f} | {1 / row['s_per_frame']:.1f} | "
            + " | ".join(f"{h:,.0f}" for h in hours)
            + " |"
        )
    table = (
        pl.DataFrame(rss)
        .group_by("video", "frames embedded", maintain_order=True)
        .agg(pl.col("seconds").median(), pl.col("peak_rss_mb").median())
    )
    lines += [
        "",
        f"**Peak RSS over a long video.** `python -m lib embeddings` on one 160x120 25 fps "
        f"clip, a tenth of its frames embedded (no frame cap), tiny CLIP encoder, the stage "
        f"process alone, median of {runs} runs:",
        "",
        "| video | frames embedded | seconds | peak RSS MiB |",
        "|---|---|---|---|",
        *(
            f"| {r['video']} | {r['frames embedded']} | {r['seconds']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
            for r in table.iter_rows(named=True)
        ),
        "",
        "The frames are streamed in batches and only the running sum is kept, so ten times "
        "the frames costs time, not memory.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=32, help="frames per base-size encoder")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    batch = 64 if args.device == "cuda" else 16
    with tempfile.TemporaryDirectory(prefix="vidstage-emb-") as tmp:
        work = Path(tmp)
        encoders = encoder_rows(work, device=args.device, frames=args.frames, batch=batch)
        if args.device == "cuda":
            print(json.dumps(encoders, indent=2))
            return 0
        demo = demo_rows(work, args.runs)
        rss = rss_rows(work, args.runs)
    text = section(demo, encoders, rss, device=args.device, runs=args.runs)
    print(text)
    if not args.no_write:
        write_section("embeddings", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
