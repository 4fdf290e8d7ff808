"""Peak memory of the features and scale stages on 1 min vs 10 min of 1080p.

Each stage runs as the workflow runs it (`python -m lib <stage>` on a one-clip table), in
its own process; its peak RSS comes from `getrusage(RUSAGE_CHILDREN)` of a fresh wrapper
process, so nothing else is counted. Target: the two lengths within 10% of each other and
every figure under 400 MB (the stages stream; memory must not grow with the video).

    .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reader import INPUTS, ensure_input, ensure_long_input  # noqa: E402
from report import cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lib import schemas  # noqa: E402

WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "dt = time.perf_counter() - t\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(rc, dt, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime)\n"
)


def measure(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh wrapper: wall and CPU seconds, peak RSS (MiB) and stderr of
    ``cmd`` alone, its start-up and exit included."""
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rc, seconds, rss, cpu = out.stdout.splitlines()[-1].split()  # the wrapper prints last
    if rc != "0":
        raise RuntimeError(f"{cmd} failed: {out.stderr[-2000:]}")
    return {
        "seconds": float(seconds),
        "cpu_s": float(cpu),
        "peak_rss_mb": float(rss),
        "stderr": out.stderr,
    }


def peak_rss(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``cmd`` in a fresh wrapper; return (seconds, peak RSS in MiB) of ``cmd`` alone."""
    run = measure(cmd, cwd)
    return run["seconds"], run["peak_rss_mb"]


def startup_rows(cases: dict[str, list[str]], *, runs: int, cwd) -> list[str]:
    """``| label | seconds | peak RSS MiB |`` rows, medians of ``runs`` fresh processes per
    command; ``cwd(cmd)`` is the folder each command runs in."""
    rows = []
    for label, cmd in cases.items():
        measured = [peak_rss(cmd, cwd(cmd)) for _ in range(runs)]
        seconds = statistics.median(r[0] for r in measured)
        rss = statistics.median(r[1] for r in measured)
        rows.append(f"| {label} | {seconds:.2f} | {rss:.0f} |")
        print(rows[-1], flush=True)
    return rows


def one_clip_table(work: Path, video: Path) -> Path:
    row = {"clip_id": video.stem, "video_id": video.stem, "path": str(video), "aug_idx": -1,
           "augmentation": "none", "label": "real", "dup_group": "g", "status": "ok",
           "reason": ""}  # fmt: skip
    path = work / f"{video.stem}.csv"
    schemas.write_table(pl.DataFrame([row]), path, "clips")
    return path


def main(runs: int = 3) -> None:
    one_minute = ensure_input(INPUTS["h264_1080p_60s_gop_default"])
    inputs = {"1 min": one_minute, "10 min": ensure_long_input(one_minute, minutes=10)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidstage-mem-") as tmp:
        work = Path(tmp)
        for length, video in inputs.items():
            clips = one_clip_table(work, video)
            py = [sys.executable, "-m", "lib"]
            for stage, cmd in (
                ("features", py + ["features", "--clips", str(clips), "--out",
                                   str(work / "f.csv"), "--progress-dir", str(work / "p")]),
                ("scale", py + ["scale", "--clips", str(clips), "--out", str(work / "s.csv"),
                                "--scaled-dir", str(work / "scaled"), "--progress-dir",
                                str(work / "p")]),
            ):  # fmt: skip
                for run in range(runs):
                    seconds, rss = peak_rss(cmd, REPO)
                    rows.append({"stage": stage, "video": length, "run": run,
                                 "seconds": seconds, "peak_rss_mb": rss})  # fmt: skip
                    print(rows[-1], flush=True)
    table = pd.DataFrame(rows).groupby(["stage", "video"], as_index=False)[
        ["seconds", "peak_rss_mb"]].median()  # fmt: skip
    wide = table.pivot(index="stage", columns="video", values="peak_rss_mb")
    wide["10 min / 1 min"] = wide["10 min"] / wide["1 min"]
    ok = (wide["10 min / 1 min"].sub(1).abs() <= 0.10) & (wide[["1 min", "10 min"]].max(axis=1) < 400)
    wide["target met"] = ok.map({True: "yes", False: "NO"})
    text = "\n".join([
        "## Memory of the streaming stages",
        "",
        f"Measured {date.today()} on {os.cpu_count()} cores ({cpu_model()}), "
        "`python benchmarks/bench_memory.py`: `python -m lib features` and `python -m lib scale` "
        "(letterbox 256, chunks of 100 frames) on one 1080p H.264 clip of 1 min and of 10 min "
        "(the 1 min file stream-copied ten times). Peak RSS of the stage process alone.",
        "",
        f"Peak RSS (MiB, median of {runs} runs); target: 10 min within 10% of 1 min, all "
        "under 400 MB:",
        "",
        wide.round(3).to_markdown(),
        "",
        f"Time (s, median of {runs} runs):",
        "",
        table.pivot(index="stage", columns="video", values="seconds").round(1).to_markdown(),
        "",
    ])
    print(write_section("memory", text).read_text())


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    start = time.perf_counter()
    main(parser.parse_args().runs)
    print(f"{time.perf_counter() - start:.0f} s")
