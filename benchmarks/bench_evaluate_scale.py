"""What evaluate's headline intervals cost at 10^3 to 10^5 videos.

``evaluate`` is one job over every held-out original of every model; its cost is the group
bootstrap of the headline metrics (``evaluate.bootstrap`` resamples of the duplicate groups,
every metric recomputed on each). This measures that core, the functions evaluate calls
(:func:`lib.evaluate.metrics.group_bootstrap` over :func:`headline_metrics`), on synthetic
scores of one model: ``n`` originals in groups of three, two classes, scores that rank the
positives a little higher. Each size runs in a fresh process (peak RSS of that process);
seconds are CPU seconds of the bootstrap. A run of evaluate costs this once per model and
protocol, plus reading the predictions.

    .venv/bin/python benchmarks/bench_evaluate_scale.py   # a few minutes; writes its section
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_line, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = (1_000, 10_000, 100_000)
GROUP_SIZE = 3


def one_size(n_videos: int, n_boot: int) -> dict:
    """The bootstrap of one model's headline metrics over ``n_videos`` originals."""
    from lib.evaluate.metrics import group_bootstrap, headline_metrics

    rng = np.random.default_rng(0)
    groups = np.arange(n_videos) // GROUP_SIZE
    labels = np.where(rng.random(n_videos // GROUP_SIZE + 1)[groups] < 0.5, "fake", "real")
    positive = (labels == "fake").astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=n_videos) + positive)))
    scores = np.stack([p, 1 - p], axis=1)  # classes in order: fake, real
    classes = ["fake", "real"]

    def metric_fn(rows):
        return headline_metrics(labels[rows], scores[rows], classes, "fake")

    c0 = time.process_time()
    once = metric_fn(np.arange(n_videos))
    once_s = time.process_time() - c0
    c0 = time.process_time()
    intervals = group_bootstrap(groups, metric_fn, n_boot=n_boot, random_state=0)
    boot_s = time.process_time() - c0
    return {
        "videos": n_videos,
        "n_boot": n_boot,
        "metrics": len(once),
        "metrics_s": once_s,
        "bootstrap_s": boot_s,
        "rows": len(intervals),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples (the default)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, in this process
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.bootstrap)))
        return
    load = os.getloadavg()
    rows = []
    for n in SIZES:
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--bootstrap",
                               str(args.bootstrap)], capture_output=True, text=True, check=True)  # fmt: skip
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    first, last = rows[0], rows[-1]
    exponent = np.log(last["bootstrap_s"] / first["bootstrap_s"]) / np.log(
        last["videos"] / first["videos"]
    )
    lines = [
        "## Evaluate at scale: the headline intervals at 10^3 to 10^5 videos",
        "",
        f"`benchmarks/bench_evaluate_scale.py`, {machine_line()}; load average at the start "
        f"{load[0]:.1f} (other jobs on the 2 cores make the seconds upper bounds). One model's "
        f"originals in groups of {GROUP_SIZE}, {args.bootstrap} group-bootstrap resamples of "
        "every headline metric (what `evaluate` computes per model and protocol); each size in "
        "a fresh process.",
        "",
        "| videos | metrics | all metrics once (CPU s) | bootstrap (CPU s) | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['videos']:,} | {r['metrics']} | {r['metrics_s']:.3f} | "
                     f"{r['bootstrap_s']:.2f} | {r['peak_rss_mb']:.0f} |")  # fmt: skip
    lines += [
        "",
        f"Growth of the bootstrap from {first['videos']:,} to {last['videos']:,} videos: "
        f"exponent {exponent:.2f} (1 = linear; the ranking metrics sort the rows of each "
        f"resample). At {last['videos']:,} videos `evaluate` spends about "
        f"{last['bootstrap_s'] / 60:.1f} CPU-min per model and protocol on its intervals.",
    ]
    if not args.no_write:
        write_section("evaluate-scale", "\n".join(lines), REPO / "docs/BENCHMARKS.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
