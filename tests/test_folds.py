"""Folds: duplicate groups never straddle folds, labels are stratified, clips follow videos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.folds import assign_folds, check_folds
from lib.train.feature_models import training_table


def _videos(n_groups=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        label = "fake" if g % 2 else "real"
        for k in range(rng.integers(2, 6)):
            rows.append({"video_id": f"g{g}_{k}", "dup_group": f"g{g}", "label": label,
                         "valid": k != 3})  # fmt: skip
    return pd.DataFrame(rows)


def test_groups_never_straddle_folds_and_labels_are_stratified():
    videos = _videos()
    folds = assign_folds(videos, n_folds=5, random_state=3)
    check_folds(folds)
    assert folds["dup_group"].map(folds.groupby("dup_group")["fold"].nunique()).eq(1).all()
    assert set(folds["fold"]) == set(range(5))
    assert len(folds) == videos["valid"].sum(), "invalid videos are not assigned"
    share = folds.groupby("fold")["label"].apply(lambda s: (s == "fake").mean())
    assert share.between(0.2, 0.8).all(), share


def test_folds_depend_only_on_data_and_seed():
    videos = _videos()
    a = assign_folds(videos, n_folds=5, random_state=1)
    b = assign_folds(videos.sample(frac=1, random_state=9), n_folds=5, random_state=1)
    pd.testing.assert_frame_equal(a, b)
    c = assign_folds(videos, n_folds=5, random_state=2)
    assert not a["fold"].equals(c["fold"])


def test_check_folds_catches_a_leak():
    folds = pd.DataFrame({"video_id": ["a", "b"], "dup_group": ["g", "g"], "label": ["x", "x"],
                          "fold": [0, 1]})  # fmt: skip
    with pytest.raises(AssertionError, match="g"):
        check_folds(folds)


def test_too_few_groups_names_the_fix():
    with pytest.raises(ValueError, match="folds.k"):
        assign_folds(_videos(n_groups=3), n_folds=5)


def test_augmented_clips_follow_their_original():
    videos = _videos()
    folds = assign_folds(videos, n_folds=4, random_state=0)
    clips = pd.DataFrame([{"clip_id": f"{v}__a{k}", "video_id": v, "label": lab, "aug_idx": k,
                           "status": "ok"}
                          for v, lab in zip(videos.video_id, videos.label) for k in (-1, 0, 1)])  # fmt: skip
    features = pd.DataFrame({"clip_id": clips.clip_id, "hc_x": 1.0})
    table, cols = training_table(features, clips, folds)
    assert cols == ["hc_x"]
    assert table.groupby("video_id")["fold"].nunique().eq(1).all()
    assert table.groupby("dup_group" if "dup_group" in table else "video_id")["fold"].nunique().max() == 1
    merged = table.merge(folds, on="video_id", suffixes=("", "_video"))
    assert (merged["fold"] == merged["fold_video"]).all()
