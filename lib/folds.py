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
    Raises ValueError naming the fix when there are fewer groups than folds.
    """
    valid = videos[videos["valid"]].sort_values("video_id", kind="stable").reset_index(drop=True)
    n_groups = valid["dup_group"].nunique()
    if n_groups < n_folds:
        raise ValueError(
            f"{n_groups} duplicate groups among {len(valid)} valid videos cannot fill "
            f"{n_folds} folds: lower folds.k in the config or add videos."
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    fold = pd.Series(-1, index=valid.index, dtype="int64")
    for k, (_, test_idx) in enumerate(splitter.split(valid, valid["label"], valid["dup_group"])):
        fold.iloc[test_idx] = k
    out = valid[["video_id", "dup_group", "label"]].assign(fold=fold.values)
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
