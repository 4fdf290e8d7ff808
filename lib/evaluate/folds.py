"""K-fold assignment over videos: grouped by duplicate group, stratified by label.

A duplicate group (an original and all its reposts) never straddles folds, or a model is
tested on near-copies of its training videos. Augmented clips follow their video through
``video_id``; only the videos are assigned here.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
from sklearn.model_selection import StratifiedGroupKFold

log = logging.getLogger(__name__)


def assign_folds(videos: pl.DataFrame, *, n_folds: int, random_state: int) -> pl.DataFrame:
    """Assign each valid video to a fold; returns ``video_id, dup_group, label, fold``.

    Uses scikit-learn's ``StratifiedGroupKFold`` on videos sorted by id, so the result
    depends only on the data, ``n_folds`` and ``random_state`` (never on shard order).
    Raises ValueError with the numbers and the fix, before anything is written, when the
    folds cannot be trained and evaluated (see :func:`check_feasible`).
    """
    valid = videos.filter(pl.col("valid")).sort("video_id", maintain_order=True)
    n_groups = valid["dup_group"].n_unique()
    note = audit_note(valid)
    if n_groups < n_folds:
        raise ValueError(
            f"{n_groups} duplicate groups among {len(valid)} valid videos cannot fill "
            f"{n_folds} folds ({_census(valid)}): lower folds.k in the config to at most "
            f"{max(n_groups, 1)} or add videos from more groups.{note}"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    fold = np.full(len(valid), -1, dtype=np.int64)
    labels, groups = valid["label"].to_numpy(), valid["dup_group"].to_numpy()
    for k, (_, test_idx) in enumerate(splitter.split(np.zeros(len(valid)), labels, groups)):
        fold[test_idx] = k
    out = valid.select("video_id", "dup_group", "label").with_columns(fold=pl.Series(fold))
    check_feasible(out, n_folds=n_folds, note=note)
    for (k,), part in out.group_by("fold", maintain_order=False):
        counts = dict(part["label"].value_counts(sort=True).iter_rows())
        log.info(
            "fold %d: %d videos, %d groups, labels %s",
            k,
            len(part),
            part["dup_group"].n_unique(),
            counts,
        )
    return out


def audit_note(videos: pl.DataFrame) -> str:
    """For messages about too few groups: how many annotated groups the leak audit merged
    and where to see them, when ``videos`` were regrouped by it (an ``annotated_group``
    column, :func:`lib.audit.groups.regroup`); empty otherwise."""
    if "annotated_group" not in videos.columns:
        return ""
    annotated, groups = videos["annotated_group"].n_unique(), videos["dup_group"].n_unique()
    merged = max(annotated - groups, 0)
    return (
        f" The leak audit's near-duplicate pairs merged {merged} of the {annotated} annotated "
        f"groups (folds.group_by joined them into these {groups}): see which in "
        "results/reports/leaks.md (section 'Largest merged groups') and the pairs in "
        "results/near_duplicates.csv; folds.group_by: annotated uses the annotated groups "
        "alone."
    )


def check_folds(folds: pl.DataFrame) -> None:
    """Raise AssertionError if a duplicate group straddles folds."""
    spread = folds.group_by("dup_group").agg(pl.col("fold").n_unique())
    leaking = spread.filter(pl.col("fold") > 1).sort("dup_group")["dup_group"].to_list()
    if leaking:
        raise AssertionError(f"duplicate groups in several folds: {leaking[:10]}")


def _census(videos: pl.DataFrame) -> str:
    per_class = videos.group_by("label").agg(pl.len(), pl.col("dup_group").n_unique()).sort("label")
    classes = ", ".join(
        f"{label}: {n} videos in {g} groups" for label, n, g in per_class.iter_rows()
    )
    return f"{videos['dup_group'].n_unique()} groups, {len(videos)} videos; {classes or 'none'}"


def check_feasible(folds: pl.DataFrame, *, n_folds: int, note: str = "") -> None:
    """Raise ValueError unless every held-out fold has a video and every training set (all
    folds but one) at least two classes; warn when one duplicate group holds more than
    1/k of the videos (that fold's score then rests on one group). ``note`` ends the
    messages (:func:`audit_note`)."""
    for k in range(n_folds):
        held_out, train = folds.filter(pl.col("fold") == k), folds.filter(pl.col("fold") != k)
        if held_out.is_empty():
            raise ValueError(
                f"fold {k} holds no video ({_census(folds)}): lower folds.k in the "
                f"config or add videos from more groups.{note}"
            )
        if train["label"].n_unique() < 2:
            only = ", ".join(sorted(map(str, train["label"].unique()))) or "none"
            raise ValueError(
                f"fold {k}: its training set holds one class only ({only}) because the other "
                f"class's videos sit in the held-out fold ({_census(folds)}): every class needs "
                f"videos in at least two groups: add groups of each class or lower folds.k.{note}"
            )
    sizes = folds.group_by("dup_group").len().sort(["len", "dup_group"], descending=[True, False])
    if len(folds) and sizes["len"][0] > len(folds) / n_folds:
        log.warning(
            "duplicate group %s holds %d of %d videos (more than 1/%d): the fold holding "
            "it is dominated by one group",
            sizes["dup_group"][0],
            sizes["len"][0],
            len(folds),
            n_folds,
        )
