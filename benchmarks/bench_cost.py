"""Per-core cost of every pixel stage at 480p, 720p and 1080p, and the bill for the full FVC.

For each resolution it generates a 10 s, 30 fps H.264 source (ffmpeg ``testsrc2`` + temporal
noise, x264 veryfast crf 23, into benchmarks/.cache) and a 250-frame clip of it encoded as
augment writes clips (crf 18, veryfast). Then each stage's shard function runs on a
one-row table in a fresh process, exactly as `python -m lib <stage>` runs it, and the
child reports its own CPU time (user + system, imports excluded), wall time and peak RSS:

- validate: probe the 10 s source;
- augment: the source with ``--n-augmentations 10 --max-frames M`` (every augmentation type
  once; M frames each, 30 by default to keep the benchmark short: the cost per written
  frame does not depend on M);
- features: the 250-frame clip (10% of its frames sampled, as the config says);
- scale: the 250-frame clip letterboxed onto 256x256 (crf 18);
- scaled_features: the scaled clip.

Throughput is *frames per core-second* = frames / CPU seconds (written frames for augment;
the clip's frames for features, scale, scaled_features; the source's for validate). CPU
time, unlike wall time, hardly depends on what else runs on the machine; the load average
is recorded anyway. Download (network-bound) and train/evaluate (seconds) are left out.

The FVC projection (`--fvc-*` options: videos, augmentations, frame cap, resolution mix,
mean length of the originals) turns these into core-hours per stage, memory per job, disk
for clips and scaled clips, and wall time on an example cluster. It is written to
docs/BENCHMARKS.md (section ``cost``).

    .venv/bin/python benchmarks/bench_cost.py [--runs 3] [--augment-frames 30]
"""

from __future__ import annotations

import argparse
import json
import math
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
from bench_reader import CACHE, ensure_input, run_ffmpeg  # noqa: E402
from report import machine_line, write_section  # noqa: E402

from lib import schemas  # noqa: E402
from lib.utils import atomic_path  # noqa: E402

RESOLUTIONS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
CLIP_FRAMES = 250  # augment.max_frames: every augmented clip has at most this many frames

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from lib.cli import default_parameters  # the schema's defaults, as a rule passes them
from lib.stages.commands import stage_function
from lib.shards import Shard
spec = json.loads({spec!r})
if spec["function"] == "features":
    # numba and the kernel's cache load before the clock starts: a shard job pays that
    # second once for hundreds of clips, not once per clip as this one-clip run would
    import lib.media.feature_kernels
    lib.media.feature_kernels.compile_kernels()
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t = time.perf_counter()
kwargs = {{**default_parameters(spec["function"]), **spec["kwargs"]}}
stage_function(spec["function"])(*spec["args"], Shard(0, 1), **kwargs)
wall = time.perf_counter() - t
ru1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
print(json.dumps({{"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": ru1.ru_maxrss / 1024}}))
"""


def source_spec(name: str, size: tuple[int, int]) -> dict:
    w, h = size
    return dict(
        source=f"testsrc2=size={w}x{h}:rate=30:duration=10,noise=alls=3:allf=t",
        encoder=["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"],
        file=f"cost_{name}_10s.mp4",
    )


def ensure_clip(source: Path) -> Path:
    """The first 250 frames of ``source`` encoded like augment's clips (crf 18, veryfast)."""
    path = CACHE / source.name.replace("_10s", "_clip250")
    if not path.exists():
        with atomic_path(path) as tmp:
            run_ffmpeg(["-i", str(source), "-frames:v", str(CLIP_FRAMES), "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(tmp)])  # fmt: skip
    return path


def run_child(function: str, args: list, kwargs: dict, cwd: Path) -> dict:
    spec = json.dumps({"function": function, "args": args, "kwargs": kwargs})
    load = os.getloadavg()[0]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), spec=spec)],
                         cwd=cwd, capture_output=True, text=True, env=env)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}


def tables(work: Path, source: Path, clip: Path) -> dict[str, Path]:
    """One-row input tables of every stage, written with the project's schemas."""
    from lib.io.probe import probe_video

    base = {"video_id": "v", "label": "real", "dup_group": "g", "platform": "local",
            "is_original": True}  # fmt: skip
    download = {**base, "url": "file://x", "path": str(source), "status": "ok", "reason": "",
                "error": "", "frame_start": 0, "frame_end": -1}  # fmt: skip
    videos = {**base, "path": str(source), **probe_video(source)}
    clip_row = {"clip_id": "v__a0", "video_id": "v", "path": str(clip), "aug_idx": 0,
                "augmentation": "x", "label": "real", "dup_group": "g", "status": "ok",
                "reason": ""}  # fmt: skip
    paths = {}
    for kind, row in (("download", download), ("videos", videos), ("clips", clip_row)):
        paths[kind] = work / f"{kind}.csv"
        schemas.write_table(pl.DataFrame([row]), paths[kind], kind)
    return paths


def measure_resolution(name: str, size, work: Path, runs: int, aug_frames: int) -> list[dict]:
    source = ensure_input(source_spec(name, size))
    clip = ensure_clip(source)
    paths = tables(work, source, clip)
    rows = []
    for run in range(runs):
        progress = str(work / f"progress-{name}-{run}")
        scaled_csv = work / f"scaled-{name}-{run}.csv"
        plan = [
            ("validate", "validate", [str(paths["download"]), str(work / "v.csv")], {},
             300),
            ("augment", "augment", [str(paths["videos"]), str(work / "c.csv")],
             {"clips_dir": str(work / f"clips-{run}"), "n_augmentations": 10,
              "max_frames": aug_frames}, 10 * aug_frames),
            ("features", "features", [str(paths["clips"]), str(work / "f.csv")],
             {"sampling": {"fraction": 0.1, "min_frames": 5, "max_frames": 50}}, CLIP_FRAMES),
            ("scale", "scale", [str(paths["clips"]), str(scaled_csv)],
             {"scaled_dir": str(work / f"scaled-{run}"), "size": 256}, CLIP_FRAMES),
            ("scaled_features", "scaled-features", [str(scaled_csv), str(work / "s.csv")],
             {"sampling": {"fraction": 0.1, "min_frames": 5, "max_frames": 50}}, CLIP_FRAMES),
        ]  # fmt: skip
        for stage, function, args, kwargs, frames in plan:
            result = run_child(function, args, {**kwargs, "progress_dir": progress}, work)
            row = {"resolution": name, "stage": stage, "run": run, "frames": frames, **result}
            if stage == "augment":
                clips = sorted((work / f"clips-{run}").rglob("*.mp4"))
                row["bytes_per_frame"] = sum(p.stat().st_size for p in clips) / frames
            if stage == "scale":
                scaled = sorted((work / f"scaled-{run}").rglob("*.mp4"))
                row["bytes_per_frame"] = sum(p.stat().st_size for p in scaled) / frames
            rows.append(row)
            print(row, flush=True)
    return rows


# ------------------------------------------------------------------------------ projection

STAGES = ("validate", "augment", "features", "scale", "scaled_features")
THREADS = {"augment": 2, "scale": 2}  # profiles/slurm set-threads; every other stage: 1


def unit_costs(med: pd.DataFrame) -> pd.DataFrame:
    """CPU seconds per work unit of every (resolution, stage); missing resolutions are
    extrapolated from the nearest measured one in proportion to the pixel count."""
    rows = []
    measured = med.index.get_level_values("resolution").unique()
    for res, size in RESOLUTIONS.items():
        for stage in STAGES:
            if (res, stage) in med.index:
                source, factor = res, 1.0
            else:
                near = min(measured, key=lambda m: abs(math.log(_pixels(m) / _pixels(res))))
                source, factor = near, _pixels(res) / _pixels(near)
            cost = med.loc[(source, stage)]
            per_unit = cost["cpu_s"] * factor
            if stage in ("augment", "scale"):
                per_unit /= cost["frames"]  # per written / scaled frame
            rows.append({"resolution": res, "stage": stage, "cpu_s_per_unit": per_unit,
                         "peak_rss_mb": cost["peak_rss_mb"],
                         "bytes_per_frame": cost["bytes_per_frame"] * factor
                         if stage == "augment" else cost["bytes_per_frame"],
                         "measured": "measured" if source == res else f"from {source}"})  # fmt: skip
    return pd.DataFrame(rows).set_index(["resolution", "stage"])


def _pixels(res: str) -> int:
    w, h = RESOLUTIONS[res]
    return w * h


def project(costs: pd.DataFrame, args: argparse.Namespace) -> tuple[pd.DataFrame, dict]:
    """Core-hours, memory per job, wall time and disk for the corpus.

    Work units per video (F = frames of an original, ``--fvc-mean-seconds`` x 30; K = the
    frames kept per clip, min(cap, F); n augmentations): validate one probe (measured on
    10 s, scaled by F/300 for its demux pass); augment n*K written frames; features n
    clips of K frames + the original, costed as 2 clips (50 sampled frames, not 25);
    scale n*K + F frames (the original is scaled whole); scaled_features n + 2 clips.
    """
    n, cap, videos = args.fvc_augmentations, args.fvc_cap, args.fvc_videos
    frames = args.fvc_mean_seconds * 30
    kept = min(cap, frames)
    units = {"validate": frames / 300, "augment": n * kept,
             "features": (n + 2) * kept / CLIP_FRAMES, "scale": n * kept + frames,
             "scaled_features": (n + 2) * kept / CLIP_FRAMES}  # fmt: skip
    mix = dict(zip(RESOLUTIONS, args.fvc_mix))
    cores, shards = args.cluster_nodes * args.cluster_cores, args.shards
    rows = []
    for stage in STAGES:
        core_s = sum(share * units[stage] * costs.loc[(res, stage), "cpu_s_per_unit"]
                     for res, share in mix.items()) * videos  # fmt: skip
        rss = costs.xs(stage, level="stage")["peak_rss_mb"].max()
        threads = THREADS.get(stage, 1)
        parallel = min(shards, cores // threads)
        per_job_h = core_s / 3600 / shards  # one job = 1/shards of the work on ~1 core
        rows.append({"stage": stage, "core_hours": core_s / 3600,
                     "per_video_core_s": core_s / videos, "peak_rss_mb": rss,
                     "job_hours": per_job_h,
                     "wall_hours": per_job_h * math.ceil(shards / parallel)})  # fmt: skip
    table = pd.DataFrame(rows)
    disk = {}
    for stage, label, per_video in (("augment", "clips", n * kept),
                                    ("scale", "scaled clips", n * kept + frames)):  # fmt: skip
        disk[label] = sum(share * costs.loc[(res, stage), "bytes_per_frame"] * per_video
                          for res, share in mix.items()) * videos / 1e9  # fmt: skip
    return table, disk


def main(args: argparse.Namespace) -> None:
    if args.report_only:
        write_report(pd.read_csv(CACHE / "bench_cost_runs.csv"), args)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidstage-cost-") as tmp:
        for name in args.resolutions:
            work = Path(tmp) / name
            work.mkdir()
            rows += measure_resolution(
                name, RESOLUTIONS[name], work, args.runs, args.augment_frames
            )
    raw = pd.DataFrame(rows)
    raw.to_csv(CACHE / "bench_cost_runs.csv", index=False)
    write_report(raw, args)


def write_report(raw: pd.DataFrame, args: argparse.Namespace) -> None:
    med = raw.groupby(["resolution", "stage"], sort=False).agg(
        frames=("frames", "first"), cpu_s=("cpu_s", "median"), wall_s=("wall_s", "median"),
        peak_rss_mb=("peak_rss_mb", "median"), bytes_per_frame=("bytes_per_frame", "median"),
        runs=("run", "count"), load=("load", "median"))  # fmt: skip
    med["frames_per_core_s"] = med["frames"] / med["cpu_s"]
    shown = med.reset_index()[["resolution", "stage", "frames", "cpu_s", "frames_per_core_s",
                               "wall_s", "peak_rss_mb", "runs", "load"]]  # fmt: skip
    costs = unit_costs(med)
    table, disk = project(costs, args)
    print(shown.round(2).to_markdown(index=False))
    print(table.round(1).to_markdown(index=False), disk)
    write_section("cost", render(shown, costs, table, disk, args))


def recommended(table: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """SLURM requests from the projection: memory = 1.5 x the peak RSS (at least 1000 MB,
    rounded up to 250 MB); runtime = 1.5 x the job's projected hours (at least 30 min,
    rounded up to 30 min) at ``--shards`` shards (retries double both)."""
    rows = []
    for _, row in table.iterrows():
        mem = max(1000, math.ceil(row["peak_rss_mb"] * 1.5 / 250) * 250)
        minutes = max(30, math.ceil(row["job_hours"] * 60 * 1.5 / 30) * 30)
        rows.append({"stage": row["stage"], "threads": THREADS.get(row["stage"], 1),
                     "mem_mb": mem, "runtime_min": minutes})  # fmt: skip
    return pd.DataFrame(rows)


def render(shown, costs, table, disk, args) -> str:
    mix = ", ".join(f"{res} {share:.0%}" for res, share in zip(RESOLUTIONS, args.fvc_mix))
    cores = args.cluster_nodes * args.cluster_cores
    measured = sorted(set(shown["resolution"]), key=list(RESOLUTIONS).index)
    unit_table = costs.reset_index()
    unit_table["unit"] = unit_table["stage"].map(
        {"validate": "10 s video", "augment": "written frame", "features": "250-frame clip",
         "scale": "frame", "scaled_features": "250-frame clip (256x256)"})  # fmt: skip
    unit_table = unit_table[["resolution", "stage", "unit", "cpu_s_per_unit", "peak_rss_mb",
                             "measured"]]  # fmt: skip
    total = table["core_hours"].sum()
    wall = table["wall_hours"].sum()
    requests = recommended(table, args)
    return "\n".join([
        "## Cost per stage and the FVC bill (`benchmarks/bench_cost.py`)",
        "",
        f"Machine: {machine_line()}.  ",
        f"`python benchmarks/bench_cost.py --runs {args.runs} --augment-frames "
        f"{args.augment_frames}`: each stage's shard function on a one-row table, in a fresh "
        "process (imports excluded), on a 10 s 30 fps H.264 source per resolution (ffmpeg "
        "`testsrc2` + temporal noise, crf 23) and a 250-frame crf-18 clip of it (what "
        "augment writes). augment: 10 augmentations (every type once) of "
        f"{args.augment_frames} frames each; features/scaled_features: 10% of the clip's "
        "frames sampled (25). Throughput = frames / CPU seconds (user + system of the stage "
        "process, BLAS and codec threads included). CPU time depends much less on the "
        "machine's load than wall time, but not at all on nothing: the load average of each "
        "run is in the table (a quiet machine is below 2). Peak RSS is exact.",
        "",
        f"Measured resolutions: {', '.join(measured)}.",
        "",
        shown.round(2).to_markdown(index=False),
        "",
        "### Cost per work unit (what the projection uses)",
        "",
        "*measured* = at that resolution; *from X* = extrapolated from X in proportion to the "
        "pixel count (no measurement at that resolution).",
        "",
        unit_table.round(4).to_markdown(index=False),
        "",
        "### Projection: the full FVC",
        "",
        f"Assumptions: {args.fvc_videos:,} videos; {args.fvc_augmentations} augmentations of "
        f"at most {args.fvc_cap} frames each; resolution mix {mix} (FVC's annotations list "
        "3,375 YouTube, 2,063 Facebook and 141 Twitter URLs; downloads are capped at 1080p; "
        "Facebook serves mostly 480p/720p, YouTube up to 1080p; the mix is an assumption, not "
        f"a measurement); originals of {args.fvc_mean_seconds:.0f} s on average at 30 fps "
        "(assumption: the original is scaled whole and sampled for features, every other "
        "clip is capped). Per video: validate 1 probe; augment "
        f"{args.fvc_augmentations} x {args.fvc_cap} written frames; features "
        f"{args.fvc_augmentations} clips + the original (costed as 2 clips: 50 frames "
        f"sampled); scale {args.fvc_augmentations} x {args.fvc_cap} frames + the whole "
        "original; scaled_features as features, at 256x256. Download, train and evaluate "
        "are left out.",
        "",
        f"Cluster: {args.cluster_nodes} nodes x {args.cluster_cores} cores = {cores} cores, "
        f"`shards: {args.shards}` (one job per shard and stage; augment and scale jobs take "
        "2 cores, the others 1, as in profiles/slurm). *job hours* = one shard's work on "
        "one core (the CPU time spread over a job's threads; the conservative case, when "
        "the 2 threads of augment/scale overlap little); *wall hours* = job hours x the "
        "waves needed when there are more shards than free slots.",
        "",
        table.round(2).to_markdown(index=False),
        "",
        f"**Total: {total:,.0f} core-hours; about {wall:,.1f} h of wall time** on this "
        "cluster, stage after stage (each stage waits for the previous one's gather).",
        "",
        "Disk: " + "; ".join(f"{label} {gb:,.0f} GB" for label, gb in disk.items())
        + " (bytes per frame measured on the synthetic source: noisier than most real "
        "footage at crf 18, so likely an upper bound; the downloaded originals come on top).",
        "",
        f"SLURM requests from these figures (memory 1.5 x peak RSS; runtime 1.5 x the job "
        f"hours at {args.shards} shards; a retry doubles both):",
        "",
        requests.to_markdown(index=False),
    ])  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--resolutions", nargs="+", default=list(RESOLUTIONS),
                        choices=list(RESOLUTIONS))  # fmt: skip
    parser.add_argument("--augment-frames", type=int, default=30,
                        help="frames per augmented clip in the augment measurement")  # fmt: skip
    parser.add_argument("--fvc-videos", type=int, default=5079)
    parser.add_argument("--fvc-augmentations", type=int, default=10)
    parser.add_argument("--fvc-cap", type=int, default=CLIP_FRAMES)
    parser.add_argument("--fvc-mix", type=float, nargs=3, default=[0.25, 0.45, 0.30],
                        metavar=("P480", "P720", "P1080"), help="resolution shares")  # fmt: skip
    parser.add_argument("--fvc-mean-seconds", type=float, default=90.0,
                        help="mean length of an original video (30 fps)")  # fmt: skip
    parser.add_argument("--shards", type=int, default=64, help="shards of the projected run")
    parser.add_argument("--cluster-nodes", type=int, default=4)
    parser.add_argument("--cluster-cores", type=int, default=32, help="cores per node")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the section from benchmarks/.cache/bench_cost_runs.csv")  # fmt: skip
    start = time.perf_counter()
    main(parser.parse_args())
    print(f"{time.perf_counter() - start:.0f} s")
