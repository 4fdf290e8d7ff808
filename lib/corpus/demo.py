"""A small bundled video corpus that behaves like the Fake Video Corpus, for demos and tests.

``generate_demo_corpus`` writes, deterministically from a seed, ``n_groups`` duplicate groups
of 2–4 near-duplicate videos each (one original plus reposts), labelled ``real`` or ``fake``
per group, in mixed codecs and containers (H.264/.mp4, VP9/.webm, MPEG-4 Part 2/.avi), and
an ``index.csv`` listing them. Why each choice:

* **Classes differ the way real manipulations do**, so handcrafted features (noise residual,
  8×8 DCT, Laplacian sharpness, blockiness) can learn them: a *real* video is one continuous
  camera-like capture (a textured scene seen through slightly soft optics, panning with a
  little hand shake, with fresh Gaussian sensor noise in every frame); a *fake* one is made by
  one or more of: splicing two captures with a hard cut and different noise levels,
  double compression (a coarse MPEG-4 pass, decoded and encoded again: 8×8 blocking),
  noise-free rendered content (flat-shaded shapes with hard edges), and a speed change
  (duplicated or dropped frames, over the whole clip or from a point on). Confounders keep it
  from being separable by one statistic: real sensor noise ranges from faint to strong, some
  real scenes are soft, reposts of real videos are re-encoded at low bitrates too, and a speed
  change on its own leaves every single frame camera-like.
* **What survives a thumbnail is what would in real footage**: at the few dozen pixels a
  small deep model reads, noise and 8×8 blocking are gone (double compression is invisible
  there, as in real footage), while a splice still shows as a scene change between frames,
  a render as flat-shaded regions with hard edges, and a speed change as motion whose pace
  changes or jumps. Nothing is drawn for a label but the manipulation itself.
* **No colour cast or exposure of a group's own**: every capture goes through a camera's
  automatic exposure and white balance (its mean is a neutral grey of a level drawn from one
  range for all), and renders are graded the same way. Colour varies inside frames (objects,
  a slowly varying colour field, rendered shapes), but a video's overall colour and
  brightness say nothing about its label: with a random tint per group, the most visible
  thing at a deep model's input size was a group-level colour that the model fitted in the
  training folds and that leaned the other way in the held-out one.
* **No label leak through the format**: the codec/container, bitrate, frame rate, size and
  repost edits of every file come from random streams that never see the label.
* **Reposts are near-duplicates**: each decodes its group's original file and applies one or
  two of rescale, crop, watermark, trim before re-encoding at another bitrate and a codec
  drawn afresh, as sharing platforms do.
* **Platforms**: every file (originals included, as FVC's downloads are) was "uploaded" to
  one of three simulated sharing platforms, each re-encoding its own way (its codec mix and
  bitrate range, :data:`PLATFORMS`): a group's original lands on one, a repost mostly on the
  same one, sometimes elsewhere. Drawn from streams that never see the label, so
  leave-one-platform-out tests a shift of encoding, not of content; the third platform is
  small (as Twitter is in FVC), so that protocol skips it for too few videos.
* **Broken files for the validate stage**: a truncated .mp4 (a real mp4 cut at half its
  bytes), a zero-byte .mp4 and a text file named .mp4, planted as reposts of three groups.

The media (scenes, manipulations, repost edits, encoding) are made by
:mod:`lib.corpus.demo_media`; this module plans the corpus and assembles it. Every file is
encoded through :class:`lib.io.writer.VideoWriter` with one encoder thread, the muxer's
bit-exact mode and libx264's macroblock-tree and B-frames off (with those, this build's output
changes from run to run), so a seed gives byte-identical files on a given build; every file is
written atomically (:func:`lib.utils.atomic_path`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import polars as pl
from joblib import Parallel, delayed

from lib.corpus.demo_media import (
    CODECS,
    MAX_DURATION_S,
    Format,
    camera_capture,
    decode_file,
    encode_file,
    fake_video,
    repost,
)
from lib.utils import atomic_path, stable_seed

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["path", "label", "group", "is_original", "platform"]
"""Required columns of ``index.csv``; extra descriptive columns follow them."""

FRAME_RATES = (15, 24, 25)
ORIGINAL_SIZES = ((320, 240), (320, 180), (288, 216), (256, 192))  # (width, height)
BROKEN_KINDS = ("truncated", "empty", "text")
#: Simulated platforms: name -> (share of the groups' originals, codec mix, bitrate factor).
PLATFORMS = {
    "tube": (0.45, {"h264": 0.6, "vp9": 0.4, "mpeg4": 0.0}, 1.0),
    "book": (0.45, {"h264": 0.3, "vp9": 0.0, "mpeg4": 0.7}, 0.7),
    "chirp": (0.10, {"h264": 1.0, "vp9": 0.0, "mpeg4": 0.0}, 0.5),
}
#: Chance that a repost is on its original's platform (else one drawn by the shares).
SAME_PLATFORM = 0.7

_OWN_FILE = re.compile(r"^g\d{3,}-c\d+\.(mp4|webm|avi)$")  # files this module may delete


def generate_demo_corpus(
    out_dir: str | os.PathLike,
    *,
    n_groups: int,
    seed: int,
    plant_broken: bool = True,
    n_jobs: int = 1,
) -> pl.DataFrame:
    """Write the demo corpus into ``out_dir`` and return its index table.

    Parameters
    ----------
    out_dir : folder to write into (created if missing). Files this function wrote earlier
        (``g<group>-c<copy>.<ext>``) that the new index does not list are removed, so a rerun
        with other parameters leaves a consistent folder; other files are left alone.
    n_groups : number of duplicate groups (at least 2); ``ceil(n/2)`` are real and
        ``floor(n/2)`` fake, in a seeded order.
    seed : everything (scenes, labels, manipulations, formats, edits) follows from it.
    plant_broken : add the three broken reposts (truncated, empty, text-as-mp4).
    n_jobs : groups written at once (joblib processes). Every group draws from its own
        seed, so the files do not depend on it.

    Returns
    -------
    DataFrame with columns ``path`` (file name relative to ``out_dir``), ``label``
    (``real``/``fake``), ``group`` (int), ``is_original`` (bool), then descriptive extras:
    ``codec`` (``h264``/``vp9``/``mpeg4``; ``none`` for the empty and text files),
    ``platform`` (the simulated platform of :data:`PLATFORMS` the file was re-encoded by;
    the demo format reads it), ``edits`` (repost edits joined by ``+``, ``original``, or
    ``broken:<kind>``),
    ``manipulation`` (fake recipe joined by ``+``; ``none`` for real groups). Only the five
    required columns are meant for the pipeline; the extras are for inspection and tests.
    The same table is written to ``out_dir/index.csv``, last: while it exists the corpus
    beside it is complete (a rerun deletes it first, so a crash never leaves an index
    describing half-rewritten files).
    """
    if n_groups < 2:
        raise ValueError(
            f"n_groups must be at least 2 (one real and one fake group), got {n_groups}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.csv").unlink(missing_ok=True)

    labels = _assign_labels(n_groups=n_groups, seed=seed)
    broken_by_group = _assign_broken(n_groups=n_groups, seed=seed) if plant_broken else {}

    write = delayed(_write_group)
    per_group = Parallel(n_jobs=n_jobs)(
        write(
            out,
            group=group,
            label=labels[group],
            broken_kinds=broken_by_group.get(group, []),
            seed=seed,
        )
        for group in range(n_groups)
    )
    rows = [row for group_rows in per_group for row in group_rows]
    columns = INDEX_COLUMNS + ["codec", "edits", "manipulation"]
    types = {"group": pl.Int64, "is_original": pl.Boolean}
    index = pl.DataFrame(
        {c: [r[c] for r in rows] for c in columns},
        schema={c: types.get(c, pl.String) for c in columns},
    )

    listed = set(index["path"])
    for stale in out.iterdir():
        if _OWN_FILE.match(stale.name) and stale.name not in listed:
            stale.unlink()
    with atomic_path(out / "index.csv") as tmp:
        index.write_csv(tmp)
    log.info("demo corpus: %d files in %d groups written to %s", len(index), n_groups, out)
    return index


# ----------------------------------------------------------------------------- corpus plan


def _assign_labels(*, n_groups: int, seed: int) -> list[str]:
    """Balanced labels (``ceil(n/2)`` real) in a seeded order."""
    rng = np.random.default_rng(stable_seed("demo", seed, "labels"))
    labels = np.array(["real", "fake"] * ((n_groups + 1) // 2))[:n_groups]
    return [str(x) for x in rng.permutation(labels)]


def _assign_broken(*, n_groups: int, seed: int) -> dict[int, list[str]]:
    """Which groups get which broken repost: three distinct groups where there are three."""
    rng = np.random.default_rng(stable_seed("demo", seed, "broken"))
    order = rng.permutation(n_groups)
    placement: dict[int, list[str]] = {}
    for i, kind in enumerate(BROKEN_KINDS):
        placement.setdefault(int(order[i % n_groups]), []).append(kind)
    return placement


def _draw_platform(*, seed: int, group: int, copy: int, original_platform: str | None) -> str:
    """The platform of one file (``original_platform``: its group's original's, for a
    repost), from a stream that never sees the label."""
    rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "platform"))
    names = list(PLATFORMS)
    drawn = str(rng.choice(names, p=[PLATFORMS[n][0] for n in names]))
    if original_platform is not None and rng.uniform() < SAME_PLATFORM:
        return original_platform
    return drawn


def _draw_format(*, seed: int, group: int, copy: int, original: bool, platform: str) -> Format:
    """Codec and bitrate of one file as its platform re-encodes it, from a stream that never
    sees the label."""
    rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "format"))
    _, mix, factor = PLATFORMS[platform]
    codec = str(rng.choice(list(mix), p=list(mix.values())))
    # Originals: a generous bitrate. Reposts: a platform's re-encode, often meagre.
    bpp = rng.uniform(0.3, 0.8) if original else rng.uniform(0.12, 0.45)
    return Format(codec=codec, bits_per_pixel=float(bpp * factor))


def _write_group(
    out: Path, *, group: int, label: str, broken_kinds: list[str], seed: int
) -> list[dict]:
    """Render, encode and write one group's original and reposts; return their index rows."""
    scene_rng = np.random.default_rng(stable_seed("demo", seed, group))
    shape_rng = np.random.default_rng(stable_seed("demo", seed, group, "shape"))  # label-blind
    fps = int(shape_rng.choice(FRAME_RATES, p=[0.5, 0.25, 0.25]))
    width, height = ORIGINAL_SIZES[int(shape_rng.integers(len(ORIGINAL_SIZES)))]
    n_frames = int(round(shape_rng.uniform(2.4, MAX_DURATION_S) * fps))
    n_good_reposts = int(shape_rng.integers(1, 4))
    n_good_reposts = max(0, min(n_good_reposts, 3 - len(broken_kinds)))

    if label == "real":
        frames = camera_capture(scene_rng, n_frames=n_frames, width=width, height=height)
        manipulation = "none"
    else:
        frames, steps = fake_video(
            scene_rng, n_frames=n_frames, width=width, height=height, fps=fps
        )
        manipulation = "+".join(steps)

    rows = []
    home = _draw_platform(seed=seed, group=group, copy=0, original_platform=None)
    fmt = _draw_format(seed=seed, group=group, copy=0, original=True, platform=home)
    original_path = out / _file_name(group, 0, fmt.codec)
    encode_file(original_path, frames, fps=fps, fmt=fmt)
    rows.append(_row(original_path, label, group, True, fmt.codec, "original", manipulation, home))
    del frames

    decoded = decode_file(original_path)  # reposts start from the published file
    for copy in range(1, n_good_reposts + 1):
        platform = _draw_platform(seed=seed, group=group, copy=copy, original_platform=home)
        fmt = _draw_format(seed=seed, group=group, copy=copy, original=False, platform=platform)
        edit_rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "edits"))
        edited, edits = repost(edit_rng, decoded, fps=fps)
        path = out / _file_name(group, copy, fmt.codec)
        encode_file(path, edited, fps=fps, fmt=fmt)
        rows.append(
            _row(path, label, group, False, fmt.codec, "+".join(edits), manipulation, platform)
        )

    for k, kind in enumerate(broken_kinds):
        copy = n_good_reposts + 1 + k
        path = out / f"g{group:03d}-c{copy}.mp4"
        edit_rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "edits"))
        _write_broken(path, kind, edit_rng, decoded, fps=fps, seed=seed)
        codec = "h264" if kind == "truncated" else "none"
        platform = _draw_platform(seed=seed, group=group, copy=copy, original_platform=home)
        rows.append(
            _row(path, label, group, False, codec, f"broken:{kind}", manipulation, platform)
        )
    return rows


def _file_name(group: int, copy: int, codec: str) -> str:
    return f"g{group:03d}-c{copy}{CODECS[codec][1]}"


def _row(
    path: Path,
    label: str,
    group: int,
    is_original: bool,
    codec: str,
    edits: str,
    manipulation: str,
    platform: str,
) -> dict:
    return {
        "path": path.name,
        "label": label,
        "group": group,
        "is_original": is_original,
        "platform": platform,
        "codec": codec,
        "edits": edits,
        "manipulation": manipulation,
    }


# ----------------------------------------------------------------------------- broken files


def _write_broken(
    path: Path, kind: str, rng: np.random.Generator, frames: np.ndarray, *, fps: int, seed: int
) -> None:
    """A broken repost the validate stage must reject: truncated, empty, or not a video."""
    with atomic_path(path) as tmp:
        if kind == "truncated":  # a real H.264/mp4 cut at about half its bytes (the moov is lost)
            encode_file(tmp, frames, fps=fps, fmt=Format("h264", float(rng.uniform(0.1, 0.3))))
            os.truncate(tmp, tmp.stat().st_size // 2)
        elif kind == "empty":
            tmp.write_bytes(b"")
        elif kind == "text":  # what a failed download often saves: an HTML error page
            tmp.write_text(
                "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
                f"<body><h1>Not Found</h1><p>The requested video is unavailable (demo seed {seed}).</p>"
                "</body></html>\n",
                encoding="utf-8",
            )
        else:
            raise ValueError(f"unknown broken kind {kind!r}")
