"""The deep models' clip table and a fold's split, without torch.

:func:`clip_table` joins the scaled clips with their clips and folds rows; :func:`split_fold`
sets the evaluated fold aside and splits the training folds into inner-training and
inner-validation clips (:func:`inner_split`, grouped by duplicate group). Kept apart from
:mod:`lib.train.data` (the frame dataset, torch) so that a job that only needs the table,
such as a feature model's permutation test, does not import torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from lib import schemas
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
