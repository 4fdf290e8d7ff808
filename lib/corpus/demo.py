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
  (duplicated or dropped frames). Confounders keep it from being separable by one statistic:
  real sensor noise ranges from faint to strong, some real scenes are soft, reposts of real
  videos are re-encoded at low bitrates too, and a speed change on its own leaves every single
  frame camera-like.
* **No label leak through the format**: the codec/container, bitrate, frame rate, size and
  repost edits of every file come from random streams that never see the label.
* **Reposts are near-duplicates**: each decodes its group's original file and applies one or
  two of rescale, crop, watermark, trim before re-encoding at another bitrate and a codec
  drawn afresh, as sharing platforms do.
* **Broken files for the validate stage**: a truncated .mp4 (a real mp4 cut at half its
  bytes), a zero-byte .mp4 and a text file named .mp4, planted as reposts of three groups.

Everything is encoded with PyAV only, with one encoder thread and libx264's macroblock-tree
and B-frames off (with those, this build's output changes from run to run), so a seed gives
byte-identical files on a given build; files are written through :func:`lib.utils.atomic_path`.
The default 40 groups (about 120 files, 15 MB) take about 12 s of one core.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import polars as pl
from joblib import Parallel, delayed
from PIL import Image, ImageFilter

from lib.utils import atomic_path, stable_seed

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["path", "label", "group", "is_original"]
"""Required columns of ``index.csv``; extra descriptive columns follow them."""

CODECS = {
    # name: (PyAV encoder, container extension, encoder options)
    # mbtree and B-frames off: with them this libx264 build is not reproducible run to run.
    "h264": ("libx264", ".mp4", {"preset": "veryfast", "x264-params": "mbtree=0:bframes=0"}),
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8"}),
    "mpeg4": ("mpeg4", ".avi", {}),
}
# MPEG-4 Part 2 needs about twice the bits of H.264/VP9 for the same quality; uploaders and
# platforms that use it spend them (else its own 8x8 blocking would swamp everything else).
BITRATE_FACTOR = {"h264": 1.0, "vp9": 1.0, "mpeg4": 2.0}
FRAME_RATES = (15, 24, 25)
ORIGINAL_SIZES = ((320, 240), (320, 180), (288, 216), (256, 192))  # (width, height)
REPOST_EDITS = ("trim", "crop", "rescale", "watermark")  # in the order applied
FAKE_MANIPULATIONS = ("splice", "double_compression", "rendered", "speed_change")
BROKEN_KINDS = ("truncated", "empty", "text")
MIN_DURATION_S = 2.1  # every good file lasts at least this long (and at most MAX_DURATION_S)
MAX_DURATION_S = 3.8

_OWN_FILE = re.compile(r"^g\d{3,}-c\d+\.(mp4|webm|avi)$")  # files this module may delete


@dataclass(frozen=True)
class _Format:
    """How one file is encoded: drawn independently of the label."""

    codec: str
    bits_per_pixel: float  # target bitrate / (width * height * fps)
    quantizer: int | None = None  # a fixed quantiser instead (mpeg4: 2 fine .. 31 coarse)


def generate_demo_corpus(
    out_dir: str | os.PathLike,
    *,
    n_groups: int = 40,
    seed: int = 0,
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
    ``edits`` (repost edits joined by ``+``, ``original``, or ``broken:<kind>``),
    ``manipulation`` (fake recipe joined by ``+``; ``none`` for real groups). Only the four
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


def _draw_format(*, seed: int, group: int, copy: int, original: bool) -> _Format:
    """Codec and bitrate of one file, from a stream that never sees the label."""
    rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "format"))
    codec = str(rng.choice(list(CODECS)))
    # Originals: a camera's generous bitrate. Reposts: a platform's re-encode, often meagre.
    bpp = rng.uniform(0.3, 0.8) if original else rng.uniform(0.12, 0.45)
    return _Format(codec=codec, bits_per_pixel=float(bpp))


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
        frames = _camera_capture(scene_rng, n_frames=n_frames, width=width, height=height)
        manipulation = "none"
    else:
        frames, steps = _fake_video(
            scene_rng, n_frames=n_frames, width=width, height=height, fps=fps
        )
        manipulation = "+".join(steps)

    rows = []
    fmt = _draw_format(seed=seed, group=group, copy=0, original=True)
    original_path = out / _file_name(group, 0, fmt.codec)
    _encode_file(original_path, frames, fps=fps, fmt=fmt)
    rows.append(_row(original_path, label, group, True, fmt.codec, "original", manipulation))
    del frames

    decoded = _decode_all(original_path)  # reposts start from the published file
    for copy in range(1, n_good_reposts + 1):
        fmt = _draw_format(seed=seed, group=group, copy=copy, original=False)
        edit_rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "edits"))
        repost, edits = _repost(edit_rng, decoded, fps=fps)
        path = out / _file_name(group, copy, fmt.codec)
        _encode_file(path, repost, fps=fps, fmt=fmt)
        rows.append(_row(path, label, group, False, fmt.codec, "+".join(edits), manipulation))

    for k, kind in enumerate(broken_kinds):
        copy = n_good_reposts + 1 + k
        path = out / f"g{group:03d}-c{copy}.mp4"
        edit_rng = np.random.default_rng(stable_seed("demo", seed, group, copy, "edits"))
        _write_broken(path, kind, edit_rng, decoded, fps=fps, seed=seed)
        codec = "h264" if kind == "truncated" else "none"
        rows.append(_row(path, label, group, False, codec, f"broken:{kind}", manipulation))
    return rows


def _file_name(group: int, copy: int, codec: str) -> str:
    return f"g{group:03d}-c{copy}{CODECS[codec][1]}"


def _row(
    path: Path, label: str, group: int, is_original: bool, codec: str, edits: str, manipulation: str
) -> dict:
    return {
        "path": path.name,
        "label": label,
        "group": group,
        "is_original": is_original,
        "codec": codec,
        "edits": edits,
        "manipulation": manipulation,
    }


# ----------------------------------------------------------------------------- content


def _smooth_field(rng: np.random.Generator, *, width: int, height: int, cell: int) -> np.ndarray:
    """A smooth random RGB field in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = (rng.random((height // cell + 3, width // cell + 3, 3)) * 255).astype(np.uint8)
    big = Image.fromarray(grid).resize((width + 2 * cell, height + 2 * cell), Image.BICUBIC)
    return np.asarray(big, dtype=np.float32)[cell : cell + height, cell : cell + width] / 255.0


def _scene_texture(rng: np.random.Generator, *, width: int, height: int) -> np.ndarray:
    """A camera-like still scene, float32 in [0, 255]: multi-scale texture plus objects.

    Brightness comes from several octaves (coarse light, mid-scale shapes, and fine
    grass/gravel-like detail whose strength varies per scene); colour varies slowly on top of
    it. A few blocky objects give edges; optics blur (random radius) softens everything.
    """
    detail = rng.uniform(0.03, 0.2)
    brightness = (
        1.0 * _smooth_field(rng, width=width, height=height, cell=int(rng.integers(40, 90)))[..., 0]
        + 0.45
        * _smooth_field(rng, width=width, height=height, cell=int(rng.integers(12, 24)))[..., 0]
        + detail
        * _smooth_field(rng, width=width, height=height, cell=int(rng.integers(3, 6)))[..., 0]
        + 0.5 * detail * _smooth_field(rng, width=width, height=height, cell=2)[..., 0]
    )
    brightness = (brightness - brightness.min()) / max(float(np.ptp(brightness)), 1e-6)
    colour = 0.45 + 0.55 * _smooth_field(
        rng, width=width, height=height, cell=int(rng.integers(60, 120))
    )
    tint = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
    img = (0.1 + 0.9 * brightness[..., None]) * colour * tint * 255.0
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(2, 7))):  # objects: textured rectangles with edges
        x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
        w, h = rng.integers(12, max(13, width // 3)), rng.integers(12, max(13, height // 3))
        inside = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
        object_colour = rng.uniform(20, 235, size=3).astype(np.float32)
        img[inside] = 0.55 * object_colour + 0.45 * img[inside]
    blur = float(rng.uniform(0.4, 1.6))
    blurred = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(blur)
    )
    return np.asarray(blurred, dtype=np.float32)


def _sensor_noise(
    rng: np.random.Generator, *, n_fields: int, width: int, height: int, sigma: float
) -> np.ndarray:
    """Gaussian camera noise fields of standard deviation ``sigma``, float32 ``(n, h, w, 3)``.

    As after a camera's demosaicing: mostly shared by the three channels (luma noise), and
    partly grain-like (correlated over about two pixels), so part of it survives re-encoding.
    """
    white = rng.standard_normal((n_fields, height, width, 4), dtype=np.float32)
    grain = (
        white
        + np.roll(white, 1, axis=1)
        + np.roll(white, 1, axis=2)
        + np.roll(white, 1, axis=(1, 2))
    ) / 2.0
    share = rng.uniform(0.3, 0.7)  # fraction of variance in the grain
    mixed = np.sqrt(1.0 - share) * white + np.sqrt(share) * grain
    luma, chroma = mixed[..., :1], mixed[..., 1:]
    return (sigma * (0.85 * luma + 0.53 * chroma)).astype(np.float32)


def _camera_capture(
    rng: np.random.Generator,
    *,
    n_frames: int,
    width: int,
    height: int,
    sigma: float | None = None,
) -> np.ndarray:
    """One continuous capture: a textured scene panning with hand shake, plus sensor noise.

    Sensor noise (see :func:`_sensor_noise`) has a per-capture ``sigma`` (drawn in [2.5, 7]
    when not given) and is fresh in every frame: slices of a few pre-drawn noise fields at
    random offsets, statistically the same for these features and several times faster than
    drawing every frame anew.
    Returns uint8 frames of shape ``(n_frames, height, width, 3)``.
    """
    default_sigma = float(rng.uniform(2.5, 7.0))  # always drawn: the stream stays aligned
    sigma = default_sigma if sigma is None else sigma
    speed = rng.uniform(0.3, 2.5)
    angle = rng.uniform(0, 2 * np.pi)
    shake = rng.normal(0, 0.6, size=(n_frames, 2)).cumsum(axis=0)
    t = np.arange(n_frames)[:, None]
    path = t * speed * np.array([np.cos(angle), np.sin(angle)]) + shake
    path -= path.min(axis=0)
    offsets = np.round(path).astype(int)  # (x, y) per frame
    margin_x, margin_y = offsets.max(axis=0) + 1
    scene = _scene_texture(rng, width=width + int(margin_x), height=height + int(margin_y))

    pad = 16
    n_fields = 3
    noise = _sensor_noise(
        rng, n_fields=n_fields, width=width + pad, height=height + pad, sigma=sigma
    )
    starts = rng.integers(0, pad, size=(n_frames, 2))
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    work = np.empty((height, width, 3), dtype=np.float32)
    for i, ((ox, oy), (ny, nx)) in enumerate(zip(offsets, starts)):
        np.add(
            scene[oy : oy + height, ox : ox + width],
            noise[i % n_fields, ny : ny + height, nx : nx + width],
            out=work,
        )
        np.clip(work, 0.0, 255.0, out=work)
        frames[i] = work + 0.5  # round to nearest on the cast
    return frames


def _rendered_animation(
    rng: np.random.Generator, *, n_frames: int, width: int, height: int
) -> np.ndarray:
    """Noise-free computer-generated content: flat-shaded shapes bouncing over a smooth backdrop.

    Hard, aliased edges and exactly flat regions are what rendering leaves and a camera
    never does. Returns uint8 frames of shape ``(n_frames, height, width, 3)``.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(30, 220, size=(2, 3)).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xx / width + np.sin(direction) * yy / height + 1.0) / 2.0
    backdrop = c0 + (c1 - c0) * ramp[..., None]
    if rng.random() < 0.5:  # a soft, noise-free "material" texture on the backdrop
        backdrop = backdrop + 60.0 * (
            _smooth_field(rng, width=width, height=height, cell=int(rng.integers(20, 50))) - 0.5
        )
    backdrop = np.clip(backdrop + 0.5, 0, 255).astype(np.uint8)

    n_shapes = int(rng.integers(3, 8))
    is_disc = rng.random(n_shapes) < 0.5
    radii = rng.uniform(0.06, 0.22, size=n_shapes) * min(width, height)
    starts = rng.uniform([0, 0], [width, height], size=(n_shapes, 2))
    velocities = rng.uniform(-4, 4, size=(n_shapes, 2))
    colours = rng.integers(0, 256, size=(n_shapes, 3)).astype(np.uint8)
    extent = np.array([width, height], dtype=float)

    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i in range(n_frames):
        frame = frames[i]
        frame[...] = backdrop
        travelled = (starts + velocities * i) % (2 * extent)
        centres = np.where(travelled > extent, 2 * extent - travelled, travelled)  # bounce
        for disc, radius, (cx, cy), colour in zip(is_disc, radii, centres, colours):
            x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 1, width)
            y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 1, height)
            if x0 >= x1 or y0 >= y1:
                continue
            if disc:
                inside = (xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2 <= radius**2
                frame[y0:y1, x0:x1][inside] = colour
            else:
                frame[y0:y1, x0:x1] = colour
    return frames


def _foreign_source(
    rng: np.random.Generator, *, n_frames: int, width: int, height: int
) -> np.ndarray:
    """The inserted part of a splice: another camera and processing chain than the first part.

    Usually a lower-resolution, cleaner capture upscaled to fit (soft, little noise); sometimes
    a much noisier one (a cheap sensor at night). Either way its noise level differs.
    """
    if rng.random() < 0.85:
        factor = rng.uniform(1.5, 2.5)
        small_w, small_h = max(16, int(width / factor)), max(16, int(height / factor))
        small = _camera_capture(
            rng, n_frames=n_frames, width=small_w, height=small_h, sigma=rng.uniform(0.0, 1.5)
        )
        return np.stack(
            [np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in small]
        )
    return _camera_capture(
        rng, n_frames=n_frames, width=width, height=height, sigma=rng.uniform(9.0, 13.0)
    )


def _fake_video(
    rng: np.random.Generator, *, n_frames: int, width: int, height: int, fps: int
) -> tuple[np.ndarray, list[str]]:
    """A manipulated video: one primary manipulation, sometimes a second one on top.

    Returns the uint8 frames and the manipulation names in the order applied.
    """
    primary = str(rng.choice(FAKE_MANIPULATIONS, p=[0.3, 0.3, 0.25, 0.15]))
    steps = {primary}
    if rng.random() < 0.35:
        steps.add(str(rng.choice([m for m in FAKE_MANIPULATIONS if m != primary])))

    # A speed change maps output frames to source frames: repeats (slow motion) or gaps.
    if "speed_change" in steps:
        rate = rng.uniform(0.4, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 2.0)
        source_index = np.floor(np.arange(n_frames) * rate).astype(int)
    else:
        source_index = np.arange(n_frames)
    n_source = int(source_index[-1]) + 1

    if "splice" in steps:
        cut = int(round(n_source * rng.uniform(0.35, 0.65)))
        first = _camera_capture(rng, n_frames=cut, width=width, height=height)
        if "rendered" in steps:
            second = _rendered_animation(rng, n_frames=n_source - cut, width=width, height=height)
        else:
            second = _foreign_source(rng, n_frames=n_source - cut, width=width, height=height)
        frames = np.concatenate([first, second])
    elif "rendered" in steps:
        frames = _rendered_animation(rng, n_frames=n_source, width=width, height=height)
    else:
        frames = _camera_capture(rng, n_frames=n_source, width=width, height=height)
    frames = frames[source_index]

    if "double_compression" in steps:
        # First generation with an 8x8-DCT codec at a coarse fixed quantiser (a low bitrate
        # that rate control cannot lurch away from), decoded, and re-encoded later.
        first_pass = _Format(codec="mpeg4", bits_per_pixel=0.1, quantizer=int(rng.integers(10, 19)))
        frames = _decode_all(io.BytesIO(_encode_bytes(frames, fps=fps, fmt=first_pass)))
    order = [m for m in FAKE_MANIPULATIONS if m in steps]
    return frames, order


# ----------------------------------------------------------------------------- reposts


def _repost(
    rng: np.random.Generator, frames: np.ndarray, *, fps: int
) -> tuple[np.ndarray, list[str]]:
    """A near-duplicate: one or two of trim, crop, rescale, watermark (applied in that order)."""
    n_frames, height, width = frames.shape[:3]
    spare = n_frames - int(np.ceil(MIN_DURATION_S * fps))
    candidates = [e for e in REPOST_EDITS if e != "trim" or spare >= 2]
    chosen = set(rng.choice(candidates, size=int(rng.integers(1, 3)), replace=False).tolist())
    out = frames
    if "trim" in chosen:
        cut = int(rng.integers(1, spare + 1))
        head = int(rng.integers(0, cut + 1))
        out = out[head : n_frames - (cut - head)]
    if "crop" in chosen:
        left, right, top, bottom = rng.uniform(0.03, 0.12, size=4)
        x0, y0 = int(left * width), int(top * height)
        new_w = _even(width - x0 - int(right * width))
        new_h = _even(height - y0 - int(bottom * height))
        out = out[:, y0 : y0 + new_h, x0 : x0 + new_w]
    if "rescale" in chosen:
        factor = rng.uniform(0.45, 0.85)
        size = (_even(out.shape[2] * factor), _even(out.shape[1] * factor))
        method = [Image.BILINEAR, Image.BICUBIC, Image.LANCZOS][int(rng.integers(3))]
        out = np.stack([np.asarray(Image.fromarray(f).resize(size, method)) for f in out])
    if "watermark" in chosen:
        out = _watermark(rng, out)
    return np.ascontiguousarray(out), [e for e in REPOST_EDITS if e in chosen]


def _even(x: float) -> int:
    return max(16, int(x) // 2 * 2)


def _watermark(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """Blend a small logo (a box with bars, like a channel name) into a corner of every frame."""
    height, width = frames.shape[1:3]
    box_w, box_h = max(12, int(width * rng.uniform(0.12, 0.22))), max(
        8, int(height * rng.uniform(0.07, 0.12))
    )
    margin = int(rng.integers(2, 10))
    x0 = margin if rng.random() < 0.5 else width - box_w - margin
    y0 = margin if rng.random() < 0.5 else height - box_h - margin
    logo = np.empty((box_h, box_w, 3), dtype=np.float32)
    logo[...] = rng.uniform(0, 255, size=3)
    bars = (np.arange(box_w) // max(2, box_w // 8)) % 2 == 0
    rows = slice(box_h // 4, box_h - box_h // 4)
    logo[rows, bars] = rng.uniform(0, 255, size=3)
    alpha = rng.uniform(0.5, 0.9)
    out = frames.copy()
    region = out[:, y0 : y0 + box_h, x0 : x0 + box_w].astype(np.float32)
    out[:, y0 : y0 + box_h, x0 : x0 + box_w] = (alpha * logo + (1 - alpha) * region + 0.5).astype(
        np.uint8
    )
    return out


def _write_broken(
    path: Path, kind: str, rng: np.random.Generator, frames: np.ndarray, *, fps: int, seed: int
) -> None:
    """A broken repost the validate stage must reject: truncated, empty, or not a video."""
    with atomic_path(path) as tmp:
        if kind == "truncated":  # a real H.264/mp4 cut at about half its bytes (the moov is lost)
            data = _encode_bytes(
                frames, fps=fps, fmt=_Format("h264", float(rng.uniform(0.1, 0.3))), container="mp4"
            )
            tmp.write_bytes(data[: len(data) // 2])
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


# ----------------------------------------------------------------------------- PyAV I/O


def _encode_file(path: Path, frames: np.ndarray, *, fps: int, fmt: _Format) -> None:
    """Encode ``frames`` to ``path`` atomically (container chosen by the extension)."""
    with atomic_path(path) as tmp:
        _encode(str(tmp), frames, fps=fps, fmt=fmt, container=None)


def _encode_bytes(
    frames: np.ndarray, *, fps: int, fmt: _Format, container: str | None = None
) -> bytes:
    """Encode ``frames`` in memory; the container defaults to the codec's usual one."""
    buffer = io.BytesIO()
    _encode(
        buffer, frames, fps=fps, fmt=fmt, container=container or CODECS[fmt.codec][1].lstrip(".")
    )
    return buffer.getvalue()


def _encode(target, frames: np.ndarray, *, fps: int, fmt: _Format, container: str | None) -> None:
    """Encode uint8 RGB frames with one encoder thread (so the output is reproducible)."""
    encoder, _, options = CODECS[fmt.codec]
    n_frames, height, width = frames.shape[:3]
    with av.open(
        target, "w", format=container, container_options={"fflags": "+bitexact"}
    ) as output:
        stream = output.add_stream(encoder, rate=Fraction(fps), options=dict(options))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(fmt.bits_per_pixel * BITRATE_FACTOR[fmt.codec] * width * height * fps)
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = 2 * fps
        if fmt.quantizer is not None:  # qmin = qmax pins it (mpeg4 ignores "qscale" options)
            stream.codec_context.qmin = stream.codec_context.qmax = fmt.quantizer
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


def _decode_all(source) -> np.ndarray:
    """Every frame of the first video stream as uint8 RGB, shape ``(n, height, width, 3)``."""
    with av.open(source) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
