"""Clips for the deep models: the clip table, a fold's split, a streaming frame dataset.

:func:`split_fold` sets the evaluated fold aside and splits the training folds into
inner-training and inner-validation clips (:func:`inner_split`, grouped by duplicate group).
Frames come from the scaled clips through the one decode path
(:class:`lib.io.reader.FrameReader`): ``num_frames`` uniformly spaced per clip, resized to
the model's input size, normalised with the checkpoint's mean/std. A dataset item is one
clip, decoded when it is asked for; the loader holds at most a batch, unless a
:class:`ClipCache` with a memory budget keeps decoded clips across epochs (``cache_mb``;
same values either way). Training-time augmentation (flip, crop, brightness) is drawn from
a generator seeded by (seed, epoch, clip): the same on every run, with any number of
workers, and after a resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from lib import schemas
from lib.io.reader import FrameReader
from lib.train.predictions import positive_index
from lib.utils import stable_seed

log = logging.getLogger(__name__)


def clip_table(scaled: pl.DataFrame, clips: pl.DataFrame, folds: pl.DataFrame) -> pl.DataFrame:
    """Scaled clips that are usable, with label, aug_idx, dup_group and fold; sorted by clip_id.

    Clips whose scaling failed or whose video has no fold are left out (counted in the log).
    """
    ok = scaled.filter(pl.col("status") == "ok").select("clip_id", "path")
    meta = clips.select("clip_id", "video_id", "label", "aug_idx")
    table = ok.join(meta, on="clip_id", how="inner")
    table = table.join(folds.select("video_id", "dup_group", "fold"), on="video_id", how="inner")
    dropped = len(scaled) - len(table)
    if dropped:
        log.info(
            "%d of %d scaled clips left out (scaling failed or video without a fold)",
            dropped,
            len(scaled),
        )
    return table.sort("clip_id", maintain_order=True)


def load_clip_table(scaled_path, clips_path, folds_path) -> pl.DataFrame:
    return clip_table(
        schemas.read_table(scaled_path, "scaled", columns=[]),
        schemas.read_table(clips_path, "clips", columns=[]),
        schemas.read_table(folds_path, "folds", columns=[]),
    )


def inner_split(train: pl.DataFrame, *, val_fraction: float, random_state: int):
    """Split the training folds' clips into inner-train and inner-validation.

    Videos, not clips, are split, grouped by ``dup_group`` (a duplicate group and every clip
    of its videos fall on one side) and stratified by label with scikit-learn's
    ``StratifiedGroupKFold`` (``round(1/val_fraction)`` splits, the first taken); when a
    class has too few groups to stratify, ``GroupShuffleSplit``. Only the training folds are
    passed in, so the evaluated fold cannot reach either side.
    Returns (inner_train, inner_val) clip tables.
    """
    videos = train.unique("video_id", keep="first", maintain_order=True).sort("video_id")
    n_splits = max(2, round(1 / val_fraction))
    groups_per_class = videos.group_by("label").agg(pl.col("dup_group").n_unique())["dup_group"]
    if videos["dup_group"].n_unique() < 2:
        raise ValueError(
            "the training folds hold a single duplicate group: no inner "
            "validation split is possible; add videos or lower folds.k"
        )
    if groups_per_class.min() >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        _, val_idx = next(
            splitter.split(
                np.zeros(len(videos)), videos["label"].to_numpy(), videos["dup_group"].to_numpy()
            )
        )
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=random_state)
        _, val_idx = next(
            splitter.split(np.zeros(len(videos)), groups=videos["dup_group"].to_numpy())
        )
    val_videos = set(videos["video_id"].gather(val_idx))
    is_val = train["video_id"].is_in(val_videos)
    return train.filter(~is_val), train.filter(is_val)


@dataclass
class FoldData:
    """The clips of one training run: inner-training, inner-validation and evaluated fold."""

    inner_train: pl.DataFrame
    inner_val: pl.DataFrame
    test: pl.DataFrame
    classes: list[str]
    pos: int  # index of the positive class in ``classes``

    def sizes(self) -> dict:
        """Clip and video counts of the three parts, and the validation's duplicate groups."""
        parts = {"train": self.inner_train, "val": self.inner_val, "test": self.test}
        return {
            **{f"n_{k}_clips": len(part) for k, part in parts.items()},
            **{f"n_{k}_videos": int(part["video_id"].n_unique()) for k, part in parts.items()},
            "val_groups": sorted(self.inner_val["dup_group"].unique().to_list()),
        }


def split_fold(
    table: pl.DataFrame,
    *,
    model_name: str,
    fold: int,
    val_fraction: float,
    train_clips: str,
    positive_label: str,
    random_state: int,
) -> FoldData:
    """Set the evaluated fold aside, then split the rest into inner-training and validation.

    The inner split sees the training folds only (:func:`lib.train.data.inner_split`).
    """
    train_all = table.filter(pl.col("fold") != fold)
    test = table.filter(pl.col("fold") == fold)
    if train_all.is_empty() or (test.is_empty() and fold >= 0) or train_all["label"].n_unique() < 2:
        raise ValueError(
            f"fold {fold}: {len(train_all)} training and {len(test)} test clips "
            f"with {train_all['label'].n_unique()} classes; need both sets and "
            "at least 2 classes (check folds.k and the scaled clips)"
        )
    classes = sorted(str(c) for c in train_all["label"].unique().to_list())
    inner_train, inner_val = inner_split(
        train_all,
        val_fraction=val_fraction,
        random_state=stable_seed(random_state, "inner", fold) % 2**32,
    )
    leaked = set(inner_val["video_id"]) & set(test["video_id"])
    assert not leaked, f"evaluated-fold videos in the inner validation split: {sorted(leaked)[:5]}"
    if train_clips == "originals":
        inner_train = inner_train.filter(pl.col("aug_idx") == -1)
        inner_val = inner_val.filter(pl.col("aug_idx") == -1)
    log.info(
        "%s fold %d: %d training clips (%d videos), %d inner-validation clips (%d videos, "
        "%d groups), %d clips to predict; classes %s",
        model_name,
        fold,
        len(inner_train),
        inner_train["video_id"].n_unique(),
        len(inner_val),
        inner_val["video_id"].n_unique(),
        inner_val["dup_group"].n_unique(),
        len(test),
        classes,
    )
    return FoldData(inner_train, inner_val, test, classes, positive_index(classes, positive_label))


def frame_indices(n_frames: int, num_frames: int) -> list[int]:
    """Exactly ``num_frames`` indices, uniformly spaced (centred in equal bins).

    A clip shorter than ``num_frames`` repeats frames rather than giving fewer: models such
    as VideoMAE take a fixed clip length.
    """
    if n_frames <= 0:
        return []
    return np.floor((np.arange(num_frames) + 0.5) * (n_frames / num_frames)).astype(int).tolist()


def read_clip(path, num_frames: int) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 frames of one clip, ``T == num_frames``."""
    with FrameReader(path) as reader:
        wanted = frame_indices(reader.n_frames, num_frames)
        got = dict(reader.read(wanted))
    if not got:
        raise ValueError(f"{path}: no decodable frame")
    # A frame the decoder could not produce is replaced by the nearest one it did.
    have = np.array(sorted(got))
    frames = [got[int(have[np.abs(have - i).argmin()])] for i in wanted]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class ClipCache:
    """Decoded clips (uint8, as :func:`read_clip` gives them) kept up to ``max_mb`` megabytes.

    Training decodes the same clips every epoch; on a CPU with small models the decode is
    most of the time (the demo's deep jobs). Clips are kept in the order first asked for
    and never evicted, so the memory is bounded by the budget and flat once it is full;
    a clip beyond the budget is decoded each time, as without a cache. ``max_mb`` 0 keeps
    nothing. With data-loader workers each worker holds its own cache for one epoch only:
    the cache pays off with ``workers: 0``.
    """

    def __init__(self, max_mb: float = 0.0):
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = self.hits = self.misses = 0
        self._clips: dict[tuple[str, int], torch.Tensor] = {}

    def read(self, path, num_frames: int) -> torch.Tensor:
        key = (str(path), int(num_frames))
        clip = self._clips.get(key)
        if clip is not None:
            self.hits += 1
            return clip
        self.misses += 1
        clip = read_clip(path, num_frames)
        size = clip.numel() * clip.element_size()
        if self.bytes + size <= self.max_bytes:
            self._clips[key] = clip
            self.bytes += size
        return clip

    def stats(self) -> dict:
        return {
            "max_mb": round(self.max_bytes / 2**20, 1),
            "mb": round(self.bytes / 2**20, 1),
            "clips": len(self._clips),
            "hits": self.hits,
            "misses": self.misses,
        }


class FrameClipDataset(torch.utils.data.Dataset):
    """One item per clip: ``(pixel_values (T, 3, S, S) float32, label index, row index)``."""

    def __init__(
        self,
        table: pl.DataFrame,
        *,
        classes: list[str],
        num_frames: int,
        image_size: int,
        mean,
        std,
        augment: bool = False,
        seed: int = 0,
        cache: ClipCache | None = None,
    ):
        self.paths = table["path"].to_list()
        self.clip_ids = table["clip_id"].to_list()
        self.labels = [classes.index(str(c)) for c in table["label"]]
        self.num_frames, self.image_size = num_frames, image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.cache = cache if cache is not None else ClipCache(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        x = self.cache.read(self.paths[i], self.num_frames).float().div_(255.0)  # a new tensor
        if self.augment:
            g = torch.Generator().manual_seed(stable_seed(self.seed, self.epoch, self.clip_ids[i]))
            x = _augment(x, g)
        x = F.interpolate(
            x,
            size=(self.image_size, self.image_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        x = (x.clamp_(0, 1) - self.mean) / self.std
        return x, self.labels[i], i


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The same random crop (80–100 % side), flip and brightness for every frame of a clip."""
    _, _, h, w = x.shape
    scale = 0.8 + 0.2 * torch.rand(1, generator=g).item()
    ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
    x = x[:, :, top : top + ch, left : left + cw]
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(-1)
    return x * (0.9 + 0.2 * torch.rand(1, generator=g).item())
