"""Small corpora whose class is plainly visible at a deep model's input size.

A learnability check needs data on which a model that learns cannot fail: class ``fake``
videos show an object, class ``real`` videos the same kind of background without it. Each
*make* differs in object, size, background, motion and colour, so a recipe tuned on one
make can be checked on another:

- ``square``: a bright grey square moving diagonally over a random texture that rolls
  sideways (the fixture of ``tests/test_train_deep.py``, grown up);
- ``disc``: a saturated disc of a random hue circling over a two-colour gradient with fresh
  noise in every frame;
- ``bar``: a dark horizontal bar sweeping up and down over bright static speckle (grey);
- ``ring``: a coloured ring sliding sideways over a diagonally scrolling checkerboard.

A duplicate group is one background (its videos near-duplicates of each other: same
background, the object's phase and the noise drawn per video); groups alternate between the
classes and are dealt into ``k`` folds stratified by the true label. Everything is drawn from
``seed``: the same arguments give the same frames, tables and folds.

Two ways in:

- :func:`write_corpus` writes tiny H.264 clips (:class:`lib.io.writer.VideoWriter`) and the
  pipeline's tables ``scaled.csv``, ``clips.csv``, ``folds.csv``
  (:func:`lib.schemas.write_table`), what ``train_deep_fold`` and the ``train`` command read;
- :func:`visible_table` writes the same and returns the clip table that
  :func:`lib.train.loop.train_deep_table` takes (the DAG's entry point).

``shuffle_labels=True`` gives every group a random label, drawn independently of its videos
(the shuffled-label control: nothing left to learn; :func:`random_labels` says why not a
permutation); :func:`shuffled` does the same to a clip table already written.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import polars as pl

from lib import schemas
from lib.io.writer import VideoWriter

__all__ = [
    "MAKES",
    "clip_table",
    "make_frames",
    "random_labels",
    "shuffled",
    "visible_table",
    "write_corpus",
]

POSITIVE, NEGATIVE = "fake", "real"
#: Bumped whenever a make draws different frames, so a reused corpus folder is rewritten.
VERSION = 3


def _hue(rng: np.random.Generator, saturation: float = 0.9, value: float = 0.95) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), saturation, value)) * 255


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float32)


def _square(positive, size, n_frames, group, video) -> np.ndarray:
    base = group.integers(20, 210, (size, size, 3)).astype(np.float32)
    side = max(2, round(size * 0.2))
    span = size - side
    phase, step = int(video.integers(0, span)), int(video.choice([-1, 1]))
    out = []
    for t in range(n_frames):
        f = np.roll(base, step * t, axis=1).copy()
        if positive:
            top = (phase + t) % span
            left = (phase // 2 + 2 * t) % span
            f[top : top + side, left : left + side] = 220
        out.append(f)
    return np.stack(out)


def _disc(positive, size, n_frames, group, video) -> np.ndarray:
    yy, xx = _grid(size)
    a, b = group.uniform(60, 180, 3), group.uniform(60, 180, 3)
    ramp = (yy / max(1, size - 1))[..., None]
    base = a * (1 - ramp) + b * ramp
    radius = max(1.5, size * 0.16)
    colour = _hue(video)
    orbit, angle0 = size * 0.25, video.uniform(0, 2 * np.pi)
    out = []
    for t in range(n_frames):
        f = base + video.normal(0, 12, base.shape)
        if positive:
            angle = angle0 + t * 2 * np.pi / max(4, n_frames)
            cy, cx = size / 2 + orbit * np.sin(angle), size / 2 + orbit * np.cos(angle)
            f[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = colour
        out.append(f)
    return np.stack(out)


def _bar(positive, size, n_frames, group, video) -> np.ndarray:
    grey = group.uniform(160, 230, (size, size, 1))
    base = np.repeat(grey, 3, axis=2)
    height, width = max(2, round(size / 7)), max(4, round(size * 0.6))
    left = int(video.integers(0, size - width + 1))
    span = size - height
    phase = int(video.integers(0, 2 * span))
    out = []
    for t in range(n_frames):
        f = base.copy()
        if positive:
            pos = (phase + 3 * t) % (2 * span)
            top = pos if pos < span else 2 * span - pos  # bouncing
            f[top : top + height, left : left + width] = 20
        out.append(f)
    return np.stack(out)


def _ring(positive, size, n_frames, group, video) -> np.ndarray:
    yy, xx = _grid(size)
    cell = int(group.integers(3, 6))
    light, dark = group.uniform(110, 150), group.uniform(60, 100)
    outer, inner = size * 0.25, size * 0.13
    colour = _hue(video, saturation=0.8)
    cy, x0 = video.uniform(outer, size - outer), video.uniform(0, size)
    out = []
    for t in range(n_frames):
        board = (((yy + t) // cell + (xx + t) // cell) % 2).astype(np.float32)
        f = np.repeat((dark + (light - dark) * board)[..., None], 3, axis=2)
        if positive:
            cx = (x0 + 2 * t) % size
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            f[(d2 <= outer**2) & (d2 >= inner**2)] = colour
        out.append(f)
    return np.stack(out)


#: The makes by name: ``(positive, size, n_frames, group_rng, video_rng) -> frames``.
MAKES = {"square": _square, "disc": _disc, "bar": _bar, "ring": _ring}


def make_frames(
    make: str,
    *,
    positive: bool,
    image_size: int,
    n_frames: int,
    group_rng: np.random.Generator,
    video_rng: np.random.Generator,
) -> np.ndarray:
    """``(n_frames, image_size, image_size, 3)`` uint8 frames of one video of ``make``."""
    if make not in MAKES:
        raise ValueError(f"unknown make {make!r}; choose from {sorted(MAKES)}")
    frames = MAKES[make](positive, image_size, n_frames, group_rng, video_rng)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _augmented(frames: np.ndarray, aug: int) -> np.ndarray:
    """The ``aug``-th augmentation of a clip: a flip, then brightness shifts."""
    if aug % 2 == 0:
        return frames[:, :, ::-1].copy()
    shift = 20 * (1 if aug % 4 == 1 else -1)
    return np.clip(frames.astype(np.int16) + shift, 0, 255).astype(np.uint8)


def _group_folds(labels: list[str], k: int, rng: np.random.Generator) -> list[int]:
    """Fold of every group: each class's groups dealt round-robin in a random order."""
    folds = [0] * len(labels)
    offset = 0
    for label in sorted(set(labels)):
        members = [g for g, lab in enumerate(labels) if lab == label]
        for i, g in enumerate(rng.permutation(members)):
            folds[int(g)] = (i + offset) % k
        offset += len(members)
    return folds


def write_corpus(
    root: str | Path,
    make: str = "square",
    *,
    n_groups: int = 40,
    clips_per_group: int = 3,
    image_size: int = 32,
    n_frames: int = 8,
    n_augmentations: int = 0,
    k: int = 3,
    seed: int = 0,
    shuffle_labels: bool = False,
    fps: int = 10,
) -> Path:
    """Write a visible-signal corpus of ``make`` into ``root``; returns ``root``.

    ``n_groups`` duplicate groups (alternating ``real``/``fake``), ``clips_per_group``
    videos each, every video one original clip (``aug_idx`` -1) and ``n_augmentations``
    augmented clips (flip, brightness); frames ``image_size`` px square, ``n_frames`` long.
    ``root`` gets ``videos/*.mp4``, ``scaled.csv``, ``clips.csv``, ``folds.csv`` (``k`` folds
    of whole groups, stratified by the true label) and ``corpus.json`` (the arguments); a ``root``
    already holding a corpus written with the same arguments is reused as it is.
    """
    root = Path(root)
    args = {
        "version": VERSION,
        "make": make,
        "n_groups": n_groups,
        "clips_per_group": clips_per_group,
        "image_size": image_size,
        "n_frames": n_frames,
        "n_augmentations": n_augmentations,
        "k": k,
        "seed": seed,
        "shuffle_labels": shuffle_labels,
        "fps": fps,
    }
    manifest = root / "corpus.json"
    if manifest.exists() and json.loads(manifest.read_text()) == args:
        return root
    if make not in MAKES:
        raise ValueError(f"unknown make {make!r}; choose from {sorted(MAKES)}")
    if n_groups < 2 * k:
        raise ValueError(f"n_groups={n_groups}: need at least 2 * k = {2 * k} groups")
    (root / "videos").mkdir(parents=True, exist_ok=True)
    truth = [POSITIVE if g % 2 else NEGATIVE for g in range(n_groups)]
    rng = np.random.default_rng([seed, 0])
    folds = _group_folds(truth, k, rng)
    if shuffle_labels:
        drawn = random_labels(list(range(n_groups)), folds, seed)
        labels = [drawn[g] for g in range(n_groups)]
    else:
        labels = truth
    clips, scaled, fold_rows = [], [], []
    for g in range(n_groups):
        group = f"grp{g:03d}"
        for v in range(clips_per_group):
            vid = f"{group}v{v}"
            fold_rows.append(
                {"video_id": vid, "dup_group": group, "label": labels[g], "fold": folds[g]}
            )
            frames = make_frames(
                make,
                positive=truth[g] == POSITIVE,
                image_size=image_size,
                n_frames=n_frames,
                group_rng=np.random.default_rng([seed, 1, g]),
                video_rng=np.random.default_rng([seed, 2, g, v]),
            )
            for aug in range(-1, n_augmentations):
                cid = f"{vid}_{'orig' if aug < 0 else f'aug{aug}'}"
                path = root / "videos" / f"{cid}.mp4"
                with VideoWriter(path, fps=fps, threads=1) as w:
                    for f in frames if aug < 0 else _augmented(frames, aug):
                        w.write(f)
                common = {"clip_id": cid, "video_id": vid, "path": str(path)}
                clips.append(
                    {
                        **common,
                        "aug_idx": aug,
                        "augmentation": "none" if aug < 0 else f"visible{aug}",
                        "label": labels[g],
                        "dup_group": group,
                        "status": "ok",
                        "reason": "",
                    }
                )
                scaled.append(
                    {
                        **common,
                        "scale_method": "letterbox",
                        "orig_width": image_size,
                        "orig_height": image_size,
                        "scaled_width": image_size,
                        "scaled_height": image_size,
                        "status": "ok",
                        "reason": "",
                    }
                )
    schemas.write_table(pl.DataFrame(clips), root / "clips.csv", "clips")
    schemas.write_table(pl.DataFrame(scaled), root / "scaled.csv", "scaled")
    schemas.write_table(pl.DataFrame(fold_rows), root / "folds.csv", "folds")
    manifest.write_text(json.dumps(args))
    return root


def clip_table(root: str | Path) -> pl.DataFrame:
    """The clip table of a written corpus, as ``train_deep_table`` takes it."""
    from lib.train.clips import load_clip_table

    root = Path(root)
    return load_clip_table(root / "scaled.csv", root / "clips.csv", root / "folds.csv")


def random_labels(groups: list[str], folds: list[int], seed: int) -> dict[str, str]:
    """A label drawn at random for every group, independently of the videos and of each other.

    Not a permutation of the true labels: with a fixed number of each label, a class that
    drew more groups with the object in the training folds necessarily draws fewer in the
    evaluated fold, so a model that learns to see the object scores below 0.5 there on
    average. Independent draws leave no such link; both classes in every fold.
    """
    rng = np.random.default_rng([seed, 3])
    while True:
        labels = rng.choice([NEGATIVE, POSITIVE], size=len(groups))
        if all(len(set(labels[np.asarray(folds) == f])) == 2 for f in set(folds)):
            return dict(zip(groups, labels.tolist()))


def shuffled(table: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``table`` with a random label per duplicate group (:func:`random_labels`): the
    shuffled-label control without writing new videos."""
    groups = table.unique("dup_group", keep="first").sort("dup_group")
    mapping = random_labels(groups["dup_group"].to_list(), groups["fold"].to_list(), seed)
    return table.with_columns(pl.col("dup_group").replace_strict(mapping).alias("label"))


def visible_table(root: str | Path, make: str = "square", **kwargs) -> pl.DataFrame:
    """:func:`write_corpus` (``kwargs`` its keywords) then :func:`clip_table`."""
    return clip_table(write_corpus(root, make, **kwargs))


if __name__ == "__main__":  # a look at one frame of each make: python tests/visible_corpus.py
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "visible_makes.png")
    from PIL import Image

    rows = []
    for make in MAKES:
        row = [
            make_frames(
                make,
                positive=p,
                image_size=32,
                n_frames=4,
                group_rng=np.random.default_rng([0, 1, g]),
                video_rng=np.random.default_rng([0, 2, g, 0]),
            )[t]
            for p, g in ((False, 0), (True, 1))
            for t in range(4)
        ]
        rows.append(np.concatenate(row, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).resize((32 * 8 * 4, 32 * 4 * 4), 0).save(out)
    print(out)
