"""K-fold assignment over videos: grouped by duplicate group, stratified by label.

A duplicate group (an original and all its reposts) never straddles folds, or a model is
tested on near-copies of its training videos. Augmented clips follow their video through
``video_id``; only the videos are assigned here.
"""

from __future__ import annotations

import logging

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

log = logging.getLogger(__name__)


def assign_folds(videos: pd.DataFrame, *, n_folds: int = 5, random_state: int = 0) -> pd.DataFrame:
    """Assign each valid video to a fold; returns ``video_id, dup_group, label, fold``.

    Uses scikit-learn's ``StratifiedGroupKFold`` on videos sorted by id, so the result
    depends only on the data, ``n_folds`` and ``random_state`` (never on shard order).
    Raises ValueError with the numbers and the fix, before anything is written, when the
    folds cannot be trained and evaluated (see :func:`check_feasible`).
    """
    valid = videos[videos["valid"]].sort_values("video_id", kind="stable").reset_index(drop=True)
    n_groups = valid["dup_group"].nunique()
    if n_groups < n_folds:
        raise ValueError(
            f"{n_groups} duplicate groups among {len(valid)} valid videos cannot fill "
            f"{n_folds} folds ({_census(valid)}): lower folds.k in the config to at most "
            f"{max(n_groups, 1)} or add videos from more groups."
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    fold = pd.Series(-1, index=valid.index, dtype="int64")
    for k, (_, test_idx) in enumerate(splitter.split(valid, valid["label"], valid["dup_group"])):
        fold.iloc[test_idx] = k
    out = valid[["video_id", "dup_group", "label"]].assign(fold=fold.values)
    check_feasible(out, n_folds=n_folds)
    for k, part in out.groupby("fold"):
        log.info("fold %d: %d videos, %d groups, labels %s", k, len(part),
                 part["dup_group"].nunique(), part["label"].value_counts().to_dict())  # fmt: skip
    return out


def check_folds(folds: pd.DataFrame) -> None:
    """Raise AssertionError if a duplicate group straddles folds."""
    spread = folds.groupby("dup_group")["fold"].nunique()
    leaking = spread[spread > 1]
    if len(leaking):
        raise AssertionError(f"duplicate groups in several folds: {list(leaking.index)[:10]}")


def _census(videos: pd.DataFrame) -> str:
    per_class = videos.groupby("label")["dup_group"].agg(["size", "nunique"])
    classes = ", ".join(f"{label}: {n} videos in {g} groups"
                        for label, (n, g) in per_class.iterrows())  # fmt: skip
    return f"{videos['dup_group'].nunique()} groups, {len(videos)} videos; {classes or 'none'}"


def check_feasible(folds: pd.DataFrame, *, n_folds: int) -> None:
    """Raise ValueError unless every held-out fold has a video and every training set (all
    folds but one) at least two classes; warn when one duplicate group holds more than
    1/k of the videos (that fold's score then rests on one group)."""
    for k in range(n_folds):
        held_out, train = folds[folds["fold"] == k], folds[folds["fold"] != k]
        if held_out.empty:
            raise ValueError(f"fold {k} holds no video ({_census(folds)}): lower folds.k in the "
                             "config or add videos from more groups.")  # fmt: skip
        if train["label"].nunique() < 2:
            only = ", ".join(sorted(map(str, train["label"].unique()))) or "none"
            raise ValueError(
                f"fold {k}: its training set holds one class only ({only}) because the other "
                f"class's videos sit in the held-out fold ({_census(folds)}): every class needs "
                f"videos in at least two groups: add groups of each class or lower folds.k."
            )
    sizes = folds.groupby("dup_group").size()
    if len(folds) and sizes.max() > len(folds) / n_folds:
        log.warning("duplicate group %s holds %d of %d videos (more than 1/%d): the fold holding "
                    "it is dominated by one group", sizes.idxmax(), sizes.max(), len(folds),
                    n_folds)  # fmt: skip
