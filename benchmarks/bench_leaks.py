"""The leak audit: robustness of the signatures to reposting edits, its precision on varied
synthetic videos, and the matcher's scale.

Robustness: ``N_SOURCES`` unrelated source clips (each three camera-like scenes, or a
rendered animation, cut together: 8 s at 15 fps, 320x240, x264 CRF 18), each reposted by
every transformation of ``TRANSFORMS`` (re-encoded with x264 CRF 23 unless the
transformation is the re-encode). All sources and reposts are signed and matched at once,
as the workflow does; the table gives, per transformation, the share of reposts matched to
their source by the hashes alone (the matcher before its matches were confirmed on
thumbnails) and by the audit, and the false-match rate over every pair of clips from
different sources.

Precision: ``PRECISION_VIDEOS`` varied synthetic videos at ``PRECISION_SIZE``: the seven
low-detail kinds of tests/low_detail_corpus.py (plain and gradient backgrounds with moving
objects, a channel's set and logo, a news ticker, screen recordings, text slides, signers in
their studios; ``PER_GROUP`` videos per channel, application, theme or signer) and the
demo's camera-like captures and rendered animations, in equal numbers; ``REPOST_SHARE`` of
them are reposts of another video (one of tests/low_detail_corpus.py's REPOSTS each). Every
video is signed (``JOBS`` processes) and all are matched at once with the default settings;
a pair is false when its videos share no footage. Reported for the hashes alone and for the
audit: pairs, false pairs, matched-pair precision, reposts found, and the largest group that
joining the pairs (union-find) builds.

Scale: synthetic signatures (uniform random 64-bit hashes, 16 frames x 6 variants per
video, 1% of videos being noisy trimmed copies of another) for 1k, 10k and 100k videos:
matching time and peak memory (tracemalloc, which counts numpy's buffers), each size in a
fresh process, and the time of comparing all n^2/2 pairs, measured at 1k and extrapolated.
These signatures have no thumbnails: this is the hash index and its frame-by-frame check.

    .venv/bin/python benchmarks/bench_leaks.py   # run time: in its section of BENCHMARKS.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_line, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

N_SOURCES = 20
PRECISION_VIDEOS = 10_000
PRECISION_SIZE = (96, 128)  # height, width
PER_GROUP = 10
REPOST_SHARE = 0.05
RICH_KINDS = ("camera", "rendered")
JOBS = max(1, min(2, len(os.sched_getaffinity(0))))
FPS = 15
SCENE_FRAMES = 40  # three scenes: 120 frames, 8 s
SIZE = (240, 320)  # height, width
TRANSFORMS = ("crf23", "crf35", "downscale_half", "downscale_quarter", "crop10", "watermark",
              "trim_middle_third", "hflip")  # fmt: skip
SCALE_SIZES = (1_000, 10_000, 100_000)


# ----------------------------------------------------------------------------- robustness
def source_frames(k: int) -> np.ndarray:
    """Three scenes cut together (camera-like captures; every fourth source is rendered)."""
    from lib.corpus.demo_media import camera_capture as _camera_capture
    from lib.corpus.demo_media import rendered_animation as _rendered_animation
    from lib.utils import stable_seed

    rng = np.random.default_rng(stable_seed("bench_leaks", k))
    height, width = SIZE
    make = _rendered_animation if k % 4 == 3 else _camera_capture
    return np.concatenate([make(rng, n_frames=SCENE_FRAMES, width=width, height=height)
                           for _ in range(3)])  # fmt: skip


def transform(name: str, frames: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Frames of one repost and the CRF to encode it with."""
    from PIL import Image

    from lib.corpus.demo_media import watermark as _watermark
    from lib.utils import stable_seed

    rng = np.random.default_rng(stable_seed("bench_leaks", k, name))
    n, height, width = frames.shape[:3]
    if name in ("crf23", "crf35"):
        return frames, int(name[3:])
    if name.startswith("downscale"):
        factor = 2 if name.endswith("half") else 4
        size = (width // factor, height // factor)
        return (
            np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames]),
            23,
        )
    if name == "crop10":  # 10% of the width and of the height cut, split at random
        left, top = rng.uniform(0, 0.1, size=2)
        x0, y0 = int(left * width), int(top * height)
        return frames[:, y0 : y0 + int(0.9 * height), x0 : x0 + int(0.9 * width)], 23
    if name == "watermark":
        return _watermark(rng, frames), 23
    if name == "trim_middle_third":
        return frames[n // 3 : 2 * n // 3], 23
    if name == "hflip":
        return frames[:, :, ::-1], 23
    raise ValueError(name)


def encode(path: Path, frames: np.ndarray, crf: int) -> None:
    from lib.io.writer import VideoWriter

    with VideoWriter(path, fps=FPS, crf=crf, threads=1) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))


def match_both(signatures: pl.DataFrame) -> tuple[set, pl.DataFrame, dict]:
    """The pairs the hashes alone match (ids) and the audit's pairs, with the seconds of each."""
    from lib.audit.near_duplicates import (
        candidate_pairs,
        find_near_duplicates,
        signature_arrays,
        verify_pairs,
    )
    from lib.config import load_schema, with_defaults

    p = with_defaults({}, load_schema())["near_duplicates"]
    t0 = time.perf_counter()
    ids, hashes, counts = signature_arrays(signatures)
    index = {k: p[k] for k in ("threshold", "band_bits", "n_bands", "max_neighbours")}
    candidates = candidate_pairs(hashes, counts, random_state=0, **index)
    bounds = {k: p[k] for k in ("threshold", "min_matched_frames", "min_matched_fraction")}
    rows = verify_pairs(hashes, counts, candidates, **bounds)
    hashed = {tuple(sorted((ids[a], ids[b]))) for a, b in zip(rows["a"], rows["b"])}
    t1 = time.perf_counter()
    pairs = find_near_duplicates(signatures, **p, random_state=0)
    t2 = time.perf_counter()
    return hashed, pairs, {"hashes_s": t1 - t0, "audit_s": t2 - t1}


def signature_row(video_id: str, path: Path) -> dict:
    """The signatures table's row of one file (the stage's sampling defaults, one thread)."""
    from lib.audit.signatures import video_signature
    from lib.config import load_schema, with_defaults
    from lib.io.reader import FrameReader

    with FrameReader(path, threads="NONE") as reader:  # one core: per-core figure
        sig = video_signature(reader, **with_defaults({}, load_schema())["signatures"])
    return {"video_id": video_id, "status": "ok" if sig.hashes else "failed", "reason": "",
            **sig.columns()}  # fmt: skip


def robustness(work: Path) -> tuple[pd.DataFrame, dict]:
    clips = []  # (video_id, source, transform, path)
    for k in range(N_SOURCES):
        frames = source_frames(k)
        path = work / f"s{k:02d}.mp4"
        encode(path, frames, 18)
        clips.append((path.stem, k, "source", path))
        for name in TRANSFORMS:
            out, crf = transform(name, frames, k)
            path = work / f"s{k:02d}-{name}.mp4"
            encode(path, out, crf)
            clips.append((path.stem, k, name, path))
        print(f"  source {k + 1}/{N_SOURCES} and its reposts encoded", flush=True)
    rows, cpu, wall = [], 0.0, 0.0
    for video_id, _, kind, path in clips:
        c0, w0 = time.process_time(), time.perf_counter()
        rows.append(signature_row(video_id, path))
        if kind == "source":
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
    signatures = pl.DataFrame(rows)  # lib tables are polars
    hashed, pairs, _ = match_both(signatures)
    source_of = {c[0]: c[1] for c in clips}
    found = {(a, b): (d, m, f) for a, b, d, m, f in pairs.select(["video_a", "video_b", "distance",
                                                                "matched_frames", "flipped"]).iter_rows()}  # fmt: skip
    table = []
    for name in TRANSFORMS:
        keys = [tuple(sorted((f"s{k:02d}", f"s{k:02d}-{name}"))) for k in range(N_SOURCES)]
        got = [found[key] for key in keys if key in found]
        by_hashes = sum(key in hashed for key in keys)
        table.append({"transformation": name, "hashes alone": f"{by_hashes}/{N_SOURCES}",
                      "matched": f"{len(got)}/{N_SOURCES}", "match rate": len(got) / N_SOURCES,
                      "mean distance (bits)": np.mean([h[0] for h in got]) if got else float("nan"),
                      "mean matched frames": np.mean([h[1] for h in got]) if got else float("nan")})  # fmt: skip
    ids = [c[0] for c in clips]
    unrelated = sum(source_of[a] != source_of[b] for i, a in enumerate(ids) for b in ids[i + 1 :])
    false = sum(source_of[a] != source_of[b] for a, b in found)
    false_hashed = sum(source_of[a] != source_of[b] for a, b in hashed)
    sizes = [len(t) for t in signatures["thumbnails"]]
    facts = {"clips": len(clips), "unrelated_pairs": unrelated, "false_matches": false,
             "false_hashed": false_hashed, "signature_cpu_s": cpu / N_SOURCES,
             "signature_wall_s": wall / N_SOURCES,
             "thumbnail_chars": sum(sizes) / signatures["frames"].sum(),
             "hash_chars": sum(len(h) for h in signatures["hashes"]) / signatures["frames"].sum()}  # fmt: skip
    return pd.DataFrame(table), facts


# ----------------------------------------------------------------------------- precision
def precision_specs(n_videos: int, seed: int = 0) -> list[dict]:
    """What each video of the precision corpus is: its kind, group, seed, and for reposts
    the original and the edit; deterministic in ``seed``."""
    sys.path.insert(0, str(REPO / "tests"))
    from low_detail_corpus import KINDS, REPOSTS

    kinds = KINDS + RICH_KINDS
    n_reposts = int(n_videos * REPOST_SHARE)
    specs = []
    for k in range(n_videos - n_reposts):
        kind, slot = kinds[k % len(kinds)], k // len(kinds)
        specs.append({"video_id": f"{kind}{slot // PER_GROUP}-{slot % PER_GROUP}", "kind": kind,
                      "group": slot // PER_GROUP, "slot": slot, "repost": "", "of": None})  # fmt: skip
    rng = np.random.default_rng(seed)
    for r, k in enumerate(rng.choice(len(specs), size=n_reposts, replace=False)):
        name = REPOSTS[r % len(REPOSTS)]
        specs.append(specs[k] | {"video_id": f"{specs[k]['video_id']}-{name}", "repost": name,
                                 "of": specs[k]["video_id"], "edit_seed": r})  # fmt: skip
    return specs


def precision_video(spec: dict, folder: str) -> dict:
    """Write one video of the precision corpus (a worker's task) and sign it."""
    sys.path.insert(0, str(REPO / "tests"))
    from lib.corpus.demo_media import camera_capture, rendered_animation
    from lib.utils import stable_seed
    from low_detail_corpus import Group, repost, video_frames, write_video

    height, width = PRECISION_SIZE
    rng = np.random.default_rng(stable_seed("bench_leaks_precision", spec["kind"], spec["slot"]))
    n_frames = int(rng.integers(30, 46))
    if spec["kind"] in RICH_KINDS:
        make = camera_capture if spec["kind"] == "camera" else rendered_animation
        frames = make(rng, n_frames=n_frames, width=width, height=height)
    else:
        group = Group(spec["kind"], stable_seed("bench_leaks_group", spec["group"]))
        frames = video_frames(spec["kind"], group, rng, n_frames=n_frames, height=height,
                              width=width, gloss=spec["slot"] % PER_GROUP)  # fmt: skip
    crf = 23
    if spec["repost"]:
        edit = np.random.default_rng(stable_seed("bench_leaks_edit", spec["edit_seed"]))
        frames, crf = repost(spec["repost"], frames, edit)
    path = Path(folder) / f"{spec['video_id']}.mp4"
    write_video(path, frames, crf)
    return signature_row(spec["video_id"], path)


def precision(work: Path, n_videos: int = PRECISION_VIDEOS) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    specs = precision_specs(n_videos)
    c0, w0 = time.process_time(), time.perf_counter()
    with ProcessPoolExecutor(max_workers=JOBS) as pool:
        rows = list(pool.map(precision_video, specs, [str(work)] * len(specs), chunksize=16))
    made_s = time.perf_counter() - w0
    signatures = pl.DataFrame(rows)
    print(f"  {len(rows)} videos written and signed in {made_s:.0f} s", flush=True)
    m0 = time.process_time()
    hashed, pairs, times = match_both(signatures)
    source = {s["video_id"]: s["of"] or s["video_id"] for s in specs}
    kind = {s["video_id"]: s["kind"] for s in specs}
    reposts = {tuple(sorted((s["video_id"], s["of"]))) for s in specs if s["of"]}
    out = {"videos": len(specs), "reposts": len(reposts), "make_s": made_s, **times,
           "match_cpu_s": time.process_time() - m0, "jobs": JOBS}  # fmt: skip
    for name, found in (
        ("hashes", hashed),
        ("audit", set(zip(pairs["video_a"], pairs["video_b"]))),
    ):
        false = [(a, b) for a, b in found if source[a] != source[b]]
        kinds = {}
        for a, b in false:
            key = " + ".join(sorted({kind[a], kind[b]}))
            kinds[key] = kinds.get(key, 0) + 1
        out[name] = {"pairs": len(found), "false": len(false), "found": len(reposts & found),
                     "largest": largest_group(list(source), found), "false_kinds": kinds}  # fmt: skip
    out["setup_cpu_s"] = time.process_time() - c0
    return out


def largest_group(ids: list[str], pairs) -> int:
    """Videos in the largest group that joining ``pairs`` builds (union-find)."""
    from collections import Counter

    from lib.audit.groups import UnionFind

    union = UnionFind()
    for a, b in pairs:
        union.union(a, b)
    return max(Counter(union.find(v) for v in ids).values())


# ----------------------------------------------------------------------------- scale
def synthetic(n_videos: int, n_frames: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=(n_videos, n_frames, 6), dtype=np.uint64)
    hashes |= rng.integers(0, 2, size=hashes.shape, dtype=np.uint64) << np.uint64(63)
    counts = np.full(n_videos, n_frames)
    planted = []
    for i in range(0, n_videos // 50 * 2, 2):  # 1% of videos: a noisy middle third of another
        seg = hashes[i, n_frames // 3 : 2 * n_frames // 3]
        flips = rng.integers(0, 64, size=(len(seg), 6, 4)).astype(np.uint64)
        hashes[i + 1] = 0
        hashes[i + 1, : len(seg)] = seg ^ np.bitwise_or.reduce(np.uint64(1) << flips, axis=2)
        counts[i + 1] = len(seg)
        planted.append((i, i + 1))
    return hashes, counts, planted


def scale_one(n_videos: int) -> dict:
    """Run in a fresh process: matching time, peak traced memory, recall of planted copies."""
    import tracemalloc

    from lib.audit.near_duplicates import candidate_pairs, verify_pairs
    from lib.config import load_schema, with_defaults

    hashes, counts, planted = synthetic(n_videos)
    p = with_defaults({}, load_schema())["near_duplicates"]  # the schema's matching defaults
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    candidates = candidate_pairs(hashes, counts, threshold=p["threshold"], band_bits=p["band_bits"],
                                 n_bands=p["n_bands"], max_neighbours=p["max_neighbours"], random_state=0)  # fmt: skip
    t1 = time.perf_counter()
    found = verify_pairs(hashes, counts, candidates, threshold=p["threshold"],
                         min_matched_frames=p["min_matched_frames"],
                         min_matched_fraction=p["min_matched_fraction"])  # fmt: skip
    t2 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1] - base
    got = set(zip(found["a"], found["b"]))
    out = {"videos": n_videos, "hashes_mib": hashes.nbytes / 2**20, "index_s": t1 - t0,
           "verify_s": t2 - t1, "total_s": t2 - t0, "peak_mib": peak / 2**20,
           "candidates": len(candidates), "recall": len(got & set(planted)) / len(planted),
           "false": len(got - set(planted))}  # fmt: skip
    if n_videos <= 1_000:  # all n^2/2 pairs, for the quadratic baseline
        every = np.array([(a, b) for a in range(n_videos) for b in range(a + 1, n_videos)])
        t3 = time.perf_counter()
        verify_pairs(
            hashes,
            counts,
            every,
            **{k: p[k] for k in ("threshold", "min_matched_frames", "min_matched_fraction")},
        )
        out["all_pairs_s"] = time.perf_counter() - t3
    return out


def scale() -> list[dict]:
    results = []
    for n in SCALE_SIZES:
        proc = subprocess.run([sys.executable, __file__, "--scale-one", str(n)], check=True,
                              capture_output=True, text=True, cwd=REPO)  # fmt: skip
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  {n} videos: {results[-1]}", flush=True)
    return results


# ----------------------------------------------------------------------------- report
def _loads(*loads) -> str:
    return "; ".join(" / ".join(f"{x:.1f}" for x in load) for load in loads)


def precision_lines(r: dict) -> list[str]:
    height, width = PRECISION_SIZE
    lines = [
        f"### Precision: {r['videos']:,} varied synthetic videos",
        "",
        f"The seven low-detail kinds of `tests/low_detail_corpus.py` (plain and gradient "
        "backgrounds with moving objects, a channel's set and logo, a news ticker, screen "
        "recordings, text slides, signers in their studios) and the demo's camera-like captures "
        f"and rendered animations, in equal numbers, {width}x{height}, 3-4.5 s at 10 fps; "
        f"{PER_GROUP} videos per channel, application, theme or signer (a signer's are "
        f"different signs); {r['reposts']} of them ({REPOST_SHARE:.0%}) are reposts of another "
        "(crf35, crop10, hflip, trim_half or watermark). A pair is false when its videos "
        "share no footage. Written and signed in "
        f"{r['make_s'] / 60:.0f} min ({r['jobs']} processes); matched in one process "
        f"(hashes {r['hashes_s']:.0f} s, audit {r['audit_s'] / 60:.1f} min).",
        "",
        "| matcher | pairs | false pairs | matched-pair precision | reposts found | largest group joined by the pairs (videos) |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, label in (
        ("hashes", "hashes alone (before)"),
        ("audit", "audit (hashes, then thumbnails, motion and time)"),
    ):
        m = r[name]
        precision = 1 - m["false"] / m["pairs"] if m["pairs"] else float("nan")
        lines.append(f"| {label} | {m['pairs']:,} | {m['false']:,} | {precision:.3f} | "
                     f"{m['found']}/{r['reposts']} | {m['largest']:,} |")  # fmt: skip
    kinds = sorted(r["audit"]["false_kinds"].items(), key=lambda kv: (-kv[1], kv[0]))
    lines += [
        "",
        "The audit's false pairs by kind: "
        + (", ".join(f"{k} {v}" for k, v in kinds) or "none")
        + ". Recordings in one studio, one application's window or one slide theme are the "
        "hardest: their differences (hands, text) are a few pixels of a 32x32 thumbnail, "
        "which is why lined-up frames are compared again at 64x64 (docs/LEAKS.md).",
    ]  # fmt: skip
    return lines


def main() -> int:
    start = time.perf_counter()
    load_before = os.getloadavg()
    print("robustness", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_leaks_") as tmp:
        table, facts = robustness(Path(tmp))
    print(table.to_string(index=False), facts, flush=True)
    print("precision", flush=True)
    p0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_leaks_precision_") as tmp:
        prec = precision(Path(tmp))
    prec_minutes = (time.perf_counter() - p0) / 60
    print(json.dumps(prec), flush=True)
    load_mid = os.getloadavg()
    print("scale", flush=True)
    sizes = scale()
    load_after = os.getloadavg()
    base = sizes[0]
    quadratic = base["all_pairs_s"]
    lines = [
        "## Leak audit: robustness of the signatures and scale of the matcher",
        "",
        f"`benchmarks/bench_leaks.py`, {machine_line()}; {(time.perf_counter() - start) / 60:.0f} min "
        f"in all, {prec_minutes:.0f} of them for the precision corpus. Load averages (1/5/15 min) "
        f"before, between and after: {_loads(load_before, load_mid, load_after)} (other jobs "
        "shared the cores: times are upper bounds; memory is unaffected).",
        "",
        f"### Robustness: {N_SOURCES} unrelated sources, each reposted 8 ways",
        "",
        f"Sources: three camera-like scenes (every fourth: rendered animations) cut together, "
        f"{3 * SCENE_FRAMES / FPS:.0f} s at {FPS} fps, {SIZE[1]}x{SIZE[0]}, x264 CRF 18. Reposts "
        "are re-encoded with x264 CRF 23 unless the transformation is the re-encode. Crop 10%: "
        "10% of the width and of the height cut away, split at random between the two sides. "
        "Watermark: a barred logo box (12-22% of the width) blended into a corner. All "
        f"{facts['clips']} clips signed and matched together with the default settings. "
        "\"hashes alone\": the pairs the hash index and its frame-by-frame check find (the "
        "whole matcher before its matches were confirmed on thumbnails); the other columns: "
        "the audit's.",
        "",
        "| transformation | hashes alone | matched to its source | match rate | mean distance (bits of 64) | mean matched frames |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in table.itertuples(index=False):
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.1f} | {r[5]:.1f} |")
    caught = [r[0] for r in table.itertuples(index=False) if r[3] >= 0.95]
    missed = [r[0] for r in table.itertuples(index=False) if r[3] < 0.95]
    lines += [
        "",
        f"Caught (match rate >= 0.95): {', '.join(caught) or 'none'}; "
        f"not reliably caught: {', '.join(missed) or 'none'}.",
        f"False matches: {facts['false_matches']} of {facts['unrelated_pairs']} pairs of clips "
        f"from different sources (rate {facts['false_matches'] / facts['unrelated_pairs']:.2e}; "
        f"hashes alone: {facts['false_hashed']}).",
        f"Signature time: {facts['signature_cpu_s'] * 1000:.0f} ms CPU per 8 s 320x240 source "
        f"on one core (decoder single-threaded; {facts['signature_wall_s'] * 1000:.0f} ms wall), "
        "16 frames x 6 pHashes and a thumbnail. Size per hashed frame in the signatures table: "
        f"{facts['hash_chars']:.0f} characters of hashes, {facts['thumbnail_chars']:.0f} of "
        "thumbnail (compressed; low-detail frames compress better).",
        "",
        *precision_lines(prec),
        "",
        "### Scale: matching synthetic signatures",
        "",
        "Uniform random 64-bit hashes, 16 frames x 6 variants per video; 1% of the videos are a "
        "copy of another's middle third with up to 4 bits flipped per hash. Each size in a fresh "
        "process; memory is tracemalloc's peak during matching (numpy buffers included), on top "
        "of the hashes themselves. These signatures have no thumbnails: the hash index and its "
        "frame-by-frame check only (the precision corpus above gives the confirmation's cost).",
        "",
        "| videos | hashes (MiB) | index (s) | verify (s) | matching total (s) | peak memory (MiB) | candidate pairs | planted copies found | false matches |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for s in sizes:
        lines.append(f"| {s['videos']:,} | {s['hashes_mib']:.1f} | {s['index_s']:.1f} | {s['verify_s']:.2f} | "
                     f"{s['total_s']:.1f} | {s['peak_mib']:.0f} | {s['candidates']:,} | {s['recall']:.3f} | {s['false']} |")  # fmt: skip
    big, mid = sizes[-1], sizes[-2]
    lines += [
        "",
        f"Growth from 10k to 100k videos: x{big['total_s'] / mid['total_s']:.1f} in time, "
        f"x{big['peak_mib'] / max(mid['peak_mib'], 1e-9):.1f} in memory (quadratic would be x100). "
        f"Comparing all n²/2 pairs frame by frame took {quadratic:.1f} s at 1,000 videos: "
        f"about {quadratic * 100 / 3600:.1f} h at 10k and {quadratic * 10_000 / 3600:.0f} h at 100k "
        "by extrapolation. Real pHash bits are correlated (natural images share low-frequency "
        "structure), so real corpora give more candidates per video than uniform hashes; "
        "low-detail content gives many more (the precision corpus above).",
    ]  # fmt: skip
    write_section("leaks", "\n".join(lines), REPO / "docs/BENCHMARKS.md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--scale-one":
        print(json.dumps(scale_one(int(sys.argv[2]))))
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--precision-only":  # a trial run: nothing written
        with tempfile.TemporaryDirectory(prefix="bench_leaks_precision_") as tmp:
            print("\n".join(precision_lines(precision(Path(tmp), int(sys.argv[2])))))
        sys.exit(0)
    sys.exit(main())
