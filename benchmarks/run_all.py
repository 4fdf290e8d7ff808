"""Every benchmark in one run: reader vs peers, memory of the streaming stages, the demo,
the leak audit (robustness of the signatures, scale of the matcher); table read/write
(pandas vs polars); deep-model training; start-up of a stage process and of a Snakemake run,
the collector's workarounds;
feature math, augment at 1080p, and the per-stage cost model with the FVC projection.

    .venv/bin/python benchmarks/run_all.py      # or: make bench

Each script generates its own inputs and rewrites its own section of docs/BENCHMARKS.md;
every figure is the median of 3 runs or more. On 2 quiet cores the longest are bench_augment
(full 250-frame clips, before and after: about 40 minutes, measured 2026-11-30) and
bench_demo (three demo runs of about 12 minutes each); about 2 hours in all (estimate).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_reader.py",
    "bench_memory.py",
    "bench_features.py",  # feature math per 1080p frame, before/after (issue 9)
    "bench_augment.py",  # augment memory/time at 1080p x 2, 5, 10 augmentations (issue 9)
    "bench_cost.py",  # per-core cost of every stage at 480p/720p/1080p, FVC bill (issue 9)
    "bench_train.py",  # deep models: loader vs step, RSS over epochs (issue 10)
    "bench_leaks.py",  # leak audit: robustness, matcher scale (issue 12)
    "bench_tables.py",  # table read/write, pandas before vs polars after (issue 13; ~1 min)
    "bench_startup.py",  # start-up of a stage process, per command (issue 20)
    "bench_snakefile.py",  # start-up of a Snakemake run: what the train check imports (issue 20)
    "bench_gc.py",  # the cycle collector's workarounds (issue 20)
    "bench_evaluate_scale.py",  # evaluate's bootstrap at 10^3 to 10^5 videos (issue 23; ~2 min)
    "bench_embeddings.py",  # the embeddings stage on CPU, encoders at 224 (issue 25)
    "bench_demo.py",
)


def main() -> int:
    start = time.perf_counter()
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
    print(f"all benchmarks: {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
