"""Peak memory and time per written frame of the augment stage on 1080p, before vs after.

Each run is `python -m lib augment` on a one-video table (a 1080p30 H.264 file of 10 s,
300 frames, of which ``max_frames`` = 250 are kept), in its own process; peak RSS comes
from `getrusage(RUSAGE_CHILDREN)` of a fresh wrapper process, so only the stage counts.
*Before* runs the code of the commit named by ``--baseline`` (exported with `git
archive` into benchmarks/.cache), *after* the working tree. Targets (issue 9): under
600 MB at 10 augmentations, and 10 within +25% of 2.

Also measures what x264's settings cost and buy for one 1080p clip (a fresh process per
setting): preset, encoder threads and rc-lookahead against time per frame, peak RSS and
file size.

    .venv/bin/python benchmarks/bench_augment.py [--runs 3] [--counts 2 5 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import polars as pl

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from bench_reader import CACHE, INPUTS, ensure_input  # noqa: E402
from report import machine_line, write_section  # noqa: E402

from lib import schemas  # noqa: E402
from lib.io.probe import probe_video  # noqa: E402

WRAPPER = (
    "import os, resource, subprocess, sys, time\n"
    "l0 = os.getloadavg()[0]\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "dt = time.perf_counter() - t\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(rc, dt, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime, l0, os.getloadavg()[0])\n"
)
DEFAULT_BASELINE = "003ac87"  # the last commit before issue 9's changes


def measure(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh wrapper: wall s, peak RSS MiB, CPU s, load before/after."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, capture_output=True,
                         text=True, check=True, env=env)  # fmt: skip
    rc, wall, rss, cpu, load0, load1 = out.stdout.split()[-6:]
    if rc != "0":
        raise RuntimeError(f"{cmd} failed: {out.stderr[-2000:]}")
    return {"wall_s": float(wall), "peak_rss_mb": float(rss), "cpu_s": float(cpu),
            "load": f"{float(load0):.1f}->{float(load1):.1f}"}  # fmt: skip


def baseline_tree(commit: str) -> Path:
    """The ``lib`` package of ``commit``, exported once into the cache (git archive)."""
    root = CACHE / f"baseline-{commit}"
    if not (root / "lib").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "lib"], cwd=REPO, check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def one_video_table(work: Path, video: Path) -> Path:
    """videos.csv with the one (valid) video, probed like the validate stage does."""
    row = {"video_id": video.stem, "path": str(video), "label": "real", "dup_group": "g",
           "platform": "local", "is_original": True, **probe_video(video)}  # fmt: skip
    path = work / "videos.csv"
    schemas.write_table(pl.DataFrame([row]), path, "videos")
    return path


def augment_cmd(videos: Path, work: Path, n: int, max_frames: int) -> list[str]:
    return [sys.executable, "-m", "lib", "augment", "--videos", str(videos), "--out",
            str(work / f"clips-{n}.csv"), "--clips-dir", str(work / "clips"),
            "--progress-dir", str(work / f"progress-{time.monotonic_ns()}"),
            "--n-augmentations", str(n), "--max-frames", str(max_frames)]  # fmt: skip


ENCODE_SCRIPT = """
import sys, time, json, resource
sys.path.insert(0, {repo!r})
from lib.io.reader import FrameReader
from lib.io.writer import VideoWriter
frames = []
with FrameReader({src!r}) as r:
    for i, f in enumerate(r.iter_frames(0, {n})):
        frames.append(f)
ru0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
with VideoWriter({dst!r}, fps=30, preset={preset!r}, threads={threads}, options={options!r}) as w:
    for f in frames:
        w.write(f)
dt = time.perf_counter() - t
ru1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import os
print(json.dumps({{"s_per_frame": dt / len(frames), "rss_before": ru0, "rss_after": ru1,
                   "bytes": os.path.getsize({dst!r})}}))
"""


def encoder_settings(src: Path, work: Path, n_frames: int, runs: int) -> pd.DataFrame:
    """One 1080p clip through VideoWriter under several x264 settings (fresh process each).

    The frames are decoded first and held (``n_frames`` of them), so the RSS the encoder
    adds is ``rss_after - rss_before``; time is the encode alone.
    """
    settings = [
        ("veryfast", 2, {}),  # the stage's setting
        ("veryfast", 1, {}),
        ("veryfast", 2, {"rc-lookahead": "0"}),
        ("ultrafast", 2, {}),
        ("faster", 2, {}),
        ("medium", 2, {}),
    ]
    rows = []
    for preset, threads, options in settings:
        for run in range(runs):
            dst = work / f"enc-{preset}-{threads}-{len(options)}-{run}.mp4"
            code = ENCODE_SCRIPT.format(repo=str(REPO), src=str(src), n=n_frames, dst=str(dst),
                                        preset=preset, threads=threads, options=options)  # fmt: skip
            load0 = os.getloadavg()[0]
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True)  # fmt: skip
            import json

            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"preset": preset, "threads": threads,
                         "options": ",".join(f"{k}={v}" for k, v in options.items()) or "-",
                         "run": run, "ms_per_frame": 1000 * result["s_per_frame"],
                         "encoder_mb": result["rss_after"] - result["rss_before"],
                         "mbit_per_s": result["bytes"] * 8 / (n_frames / 30) / 1e6,
                         "load": load0})  # fmt: skip
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    return table.groupby(["preset", "threads", "options"], as_index=False, sort=False).agg(
        ms_per_frame=("ms_per_frame", "median"), encoder_mb=("encoder_mb", "median"),
        mbit_per_s=("mbit_per_s", "median"), load=("load", "median"),
        runs=("run", "count"))  # fmt: skip


def describe_encoders(encoders: pd.DataFrame) -> list[str]:
    """One line per setting: its time, memory and size relative to the stage's setting."""
    base = encoders.iloc[0]
    lines = [f"Relative to the stage's setting ({base['preset']}, {base['threads']} threads):", ""]
    for _, row in encoders.iloc[1:].iterrows():
        lines.append(
            f"- {row['preset']}, {row['threads']} thread(s), {row['options']}: time per frame "
            f"{row['ms_per_frame'] / base['ms_per_frame'] - 1:+.0%}, encoder memory "
            f"{row['encoder_mb'] - base['encoder_mb']:+.0f} MB, file size "
            f"{row['mbit_per_s'] / base['mbit_per_s'] - 1:+.0%}."
        )
    return lines


def main(args: argparse.Namespace) -> None:
    video = ensure_input(INPUTS["h264_1080p_10s_gop_default"])
    trees = {"before": baseline_tree(args.baseline), "after": REPO}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidstage-aug-") as tmp:
        work = Path(tmp)
        videos = one_video_table(work, video)
        for version in [] if args.only_encoders else args.versions:
            for n in args.counts:
                for run in range(args.runs):
                    result = measure(augment_cmd(videos, work, n, args.max_frames),
                                     trees[version], env)  # fmt: skip
                    written = n * args.max_frames
                    rows.append({"version": version, "n_augmentations": n, "run": run,
                                 **result, "ms_per_written_frame": 1000 * result["wall_s"] / written,
                                 "cpu_ms_per_written_frame": 1000 * result["cpu_s"] / written})  # fmt: skip
                    print(rows[-1], flush=True)
        encoders = None
        if args.encoders:
            encoders = encoder_settings(
                video, work, args.encoder_frames, args.encoder_runs or args.runs
            )
            encoders.to_csv(CACHE / "bench_augment_encoders.csv", index=False)
    if encoders is None and (CACHE / "bench_augment_encoders.csv").exists():
        encoders = pd.read_csv(CACHE / "bench_augment_encoders.csv")  # the last measurement
    raw = pd.DataFrame(rows).assign(max_frames=args.max_frames)
    saved = CACHE / f"bench_augment_runs_{args.max_frames}.csv"
    if len(raw):  # replace earlier runs of the same (version, count); keep the others
        if saved.exists():
            old = pd.read_csv(saved)
            done = set(zip(raw["version"], raw["n_augmentations"]))
            keep = [(v, n) not in done for v, n in zip(old["version"], old["n_augmentations"])]
            raw = pd.concat([old[keep], raw], ignore_index=True)
        raw.to_csv(saved, index=False)
    # every max_frames measured so far (e.g. medians of 3 at 60 frames + one run at 250)
    saved_runs = sorted(CACHE.glob("bench_augment_runs_*.csv"))
    if not saved_runs:
        raise SystemExit("no augment runs measured yet: run without --only-encoders first")
    raw = pd.concat([pd.read_csv(p) for p in saved_runs])
    med = raw.groupby(["max_frames", "version", "n_augmentations"], as_index=False).agg(
        peak_rss_mb=("peak_rss_mb", "median"), wall_s=("wall_s", "median"),
        ms_per_written_frame=("ms_per_written_frame", "median"),
        cpu_ms_per_written_frame=("cpu_ms_per_written_frame", "median"),
        runs=("run", "count"), loads=("load", lambda s: ", ".join(s)))  # fmt: skip
    lines = [
        "## Augment at 1080p: memory and time per written frame (`benchmarks/bench_augment.py`)",
        "",
        f"Machine: {machine_line()}.  ",
        f"`python benchmarks/bench_augment.py --runs {args.runs}`: `python -m lib augment` on one "
        f"1080p30 H.264 video of 10 s (`{video.name}`, 300 frames, `max_frames` kept), "
        f"crf 18, preset veryfast, in a fresh process per run; *before* = commit "
        f"`{args.baseline}` (one decode feeding every clip's encoder at once), *after* = this "
        "tree (clips encoded one after another, each from its own decode). Peak RSS of the "
        "stage process; time per written frame = wall time / (augmentations x frames); "
        "medians of the runs. Load averages (1 min) before->after each run are listed: the "
        "machine is shared, so times are noisy; memory figures are not.",
        "",
        med.round(1).to_markdown(index=False),
        "",
    ]
    for (frames, version), part in med.groupby(["max_frames", "version"]):
        part = part.set_index("n_augmentations")["peak_rss_mb"]
        if 2 in part.index and 10 in part.index:
            ratio = part[10] / part[2]
            ok = part[10] < 600 and ratio <= 1.25
            lines.append(f"- {version}, {frames} frames: 10 augmentations {part[10]:.0f} MB = "
                         f"{ratio:.2f} x the 2-augmentation figure; target (< 600 MB, <= 1.25 x): "
                         f"{'met' if ok else 'NOT met'}.")  # fmt: skip
    lines += [
        "",
        "Why clips one after another: an open 1080p x264 encoder (veryfast, 2 frame threads) "
        "holds about 160 MB (table below), so one decode feeding 11 encoders held about "
        "1.8 GB of encoders alone. Bounding each encoder (1 thread, no lookahead) saves at "
        "most a third of that and still grows with the count; encoding the clips in turn "
        "keeps one encoder open, and decoding the segment again per clip (at most "
        "`max_frames` frames) costs 10-15 ms of CPU per frame (decode and RGB conversion) "
        "against 100-170 ms to augment and encode it. That cost is paid back by the elastic "
        "warp: a bilinear plan built once per clip and applied to packed RGBA words "
        "(`lib.media.augment.bilinear_remap`, about 100-140 ms per 1080p frame against 380-490 ms "
        "with per-channel `scipy.ndimage.map_coordinates`; equal to it within one grey level, "
        "`tests/test_augment.py`). The 2- and 5-augmentation sets contain no elastic clip, so "
        "their *after* rows measure the re-decode alone. Every clip but the elastic and "
        "combination ones is byte-identical to the shared-decode version's (same frames, "
        "same encoder settings); all are bitwise repeatable.",
        "",
        "Median CPU time per written frame is the figure that survives a shared machine; "
        "wall times rise with the load listed beside them.",
    ]
    if encoders is not None:
        lines += [
            "",
            f"### What x264's settings cost and buy (one 1080p clip, {args.encoder_frames} "
            "frames, crf 18)",
            "",
            "Encode alone (frames decoded beforehand), fresh process per setting, median of "
            f"{int(encoders['runs'].min())} run(s) or more; *ms_per_frame* = wall time of the "
            "encode per frame (noisy under load; the ratios between settings are the point); "
            "*encoder MB* = peak RSS added by the open encoder (exact); *Mbit/s* = size of the "
            "clip at 30 fps.",
            "",
            encoders.round(1).to_markdown(index=False),
            "",
            *describe_encoders(encoders),
        ]
    write_section("augment", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--versions", nargs="+", default=["before", "after"],
                        choices=["before", "after"])  # fmt: skip
    parser.add_argument("--max-frames", type=int, default=250)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit of 'before'")
    parser.add_argument("--no-encoders", dest="encoders", action="store_false",
                        help="skip the x264 settings table")  # fmt: skip
    parser.add_argument("--encoder-frames", type=int, default=60)
    parser.add_argument("--encoder-runs", type=int, default=None, help="default: --runs")
    parser.add_argument("--only-encoders", action="store_true",
                        help="measure only the x264 settings; the augment table is re-rendered "
                             "from benchmarks/.cache/bench_augment_runs_*.csv")  # fmt: skip
    start = time.perf_counter()
    main(parser.parse_args())
    print(f"{time.perf_counter() - start:.0f} s")
