"""Folds: duplicate groups never straddle folds, labels are stratified, clips follow videos."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lib.evaluate.folds import assign_folds, check_folds
from lib.train.feature_models import missing_feature_set, training_table


def _videos(n_groups=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        label = "fake" if g % 2 else "real"
        for k in range(rng.integers(2, 6)):
            rows.append({"video_id": f"g{g}_{k}", "dup_group": f"g{g}", "label": label,
                         "valid": k != 3})  # fmt: skip
    return pl.DataFrame(rows)


def test_groups_never_straddle_folds_and_labels_are_stratified():
    videos = _videos()
    folds = assign_folds(videos, n_folds=5, random_state=3)
    check_folds(folds)
    assert (folds.group_by("dup_group").agg(pl.col("fold").n_unique())["fold"] == 1).all()
    assert set(folds["fold"]) == set(range(5))
    assert len(folds) == videos["valid"].sum(), "invalid videos are not assigned"
    share = folds.group_by("fold").agg((pl.col("label") == "fake").mean())["label"]
    assert share.is_between(0.2, 0.8).all(), share


def test_folds_depend_only_on_data_and_seed():
    videos = _videos()
    a = assign_folds(videos, n_folds=5, random_state=1)
    b = assign_folds(videos.sample(fraction=1, shuffle=True, seed=9), n_folds=5, random_state=1)
    assert_frame_equal(a, b)
    c = assign_folds(videos, n_folds=5, random_state=2)
    assert not a["fold"].equals(c["fold"])


def test_check_folds_catches_a_leak():
    folds = pl.DataFrame({"video_id": ["a", "b"], "dup_group": ["g", "g"], "label": ["x", "x"],
                          "fold": [0, 1]})  # fmt: skip
    with pytest.raises(AssertionError, match="g"):
        check_folds(folds)


def test_too_few_groups_names_the_numbers_and_the_fix():
    with pytest.raises(ValueError, match=r"3 duplicate groups among \d+ valid videos cannot fill 5 "
                       r"folds \(3 groups, \d+ videos; fake: \d+ videos in 1 groups, real: .*\): "
                       r"lower folds.k in the config to at most 3"):  # fmt: skip
        assign_folds(_videos(n_groups=3), n_folds=5, random_state=0)


def test_augmented_clips_follow_their_original():
    videos = _videos()
    folds = assign_folds(videos, n_folds=4, random_state=0)
    clips = pl.DataFrame([{"clip_id": f"{v}__a{k}", "video_id": v, "label": lab, "aug_idx": k,
                           "status": "ok", "augmentation": "original" if k < 0 else f"aug{k}"}
                          for v, lab in zip(videos["video_id"], videos["label"]) for k in (-1, 0, 1)])  # fmt: skip
    features = pl.DataFrame({"clip_id": clips["clip_id"], "hc_x": 1.0})
    table, cols = training_table(features, clips, folds)
    assert cols == ["hc_x"]
    # Every clip of a valid video is there, in its video's fold; invalid videos' clips are not.
    invalid = set(videos.filter(~pl.col("valid"))["video_id"])
    assert invalid and set(table["video_id"]).isdisjoint(invalid)
    for video_id, fold in zip(folds["video_id"], folds["fold"]):
        mine = table.filter(pl.col("video_id") == video_id)
        assert sorted(mine["aug_idx"]) == [-1, 0, 1] and set(mine["fold"]) == {fold}, video_id


def test_clips_missing_a_feature_set_are_left_out_not_imputed():
    table = pl.DataFrame({"hc_a": [1.0, np.nan, np.nan, 2.0], "hc_b": [1.0, np.nan, 3.0, 2.0],
                          "sc_a": [1.0, 1.0, 1.0, np.nan]})  # fmt: skip
    # clip 1 lost its handcrafted set, clip 3 its scaled set; clip 2 lacks one value only
    assert missing_feature_set(table, ["hc_a", "hc_b", "sc_a"]).to_list() == [
        False,
        True,
        False,
        True,
    ]


def _tiny(groups):
    """Videos from (group, label, n_videos) triples."""
    return pl.DataFrame([{"video_id": f"{g}_{i}", "dup_group": g, "label": lab, "valid": True}
                         for g, lab, n in groups for i in range(n)])  # fmt: skip


def test_a_class_in_one_group_cannot_be_trained_on_and_says_so():
    # The case: the only real group's fold trains on fake alone.
    videos = _tiny([("r1", "real", 4), ("f1", "fake", 3), ("f2", "fake", 5)])
    with pytest.raises(ValueError) as info:
        assign_folds(videos, n_folds=2, random_state=0)
    message = str(info.value)
    assert "training set holds one class only" in message
    assert "3 groups, 12 videos; fake: 8 videos in 2 groups, real: 4 videos in 1 groups" in message
    assert "lower folds.k" in message and "add groups of each class" in message


def test_a_dominant_group_is_warned_about(caplog):
    videos = _tiny([("big", "fake", 20), ("f2", "fake", 1), ("r1", "real", 2), ("r2", "real", 2)])
    with caplog.at_level("WARNING", logger="lib.evaluate.folds"):
        assign_folds(videos, n_folds=2, random_state=0)
    assert "duplicate group big holds 20 of 25 videos (more than 1/2)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="lib.evaluate.folds"):
        assign_folds(_videos(), n_folds=5, random_state=0)
    assert "holds" not in caplog.text


def test_completeness_counts_clips_left_out_of_training():
    from lib.evaluate.completeness import _left_out_of_training, left_out_of_training

    clips = pl.DataFrame({"clip_id": ["a", "b", "c", "d"], "status": ["ok", "ok", "ok", "failed"]})
    features = pl.DataFrame({"clip_id": ["a", "b", "c", "d"],
                             "status": ["ok", "failed", "failed", "failed"]})  # fmt: skip
    scaled = pl.DataFrame(
        {"clip_id": ["a", "b", "c", "d"], "status": ["ok", "ok", "failed", "failed"]}
    )
    tables = {"augment": clips, "features": features, "scaled_features": scaled}
    left = left_out_of_training(tables)
    # d failed in augment already (counted there), so only b and c are left out here
    assert dict(zip(left["clip_id"], left["missing"])) == {"b": "features",
                                                           "c": "features+scaled_features"}  # fmt: skip
    text = "\n".join(_left_out_of_training(tables))
    assert "2 clips miss a feature set and are left out of training" in text
    assert "1 missing features, 1 missing features+scaled_features" in text


# ----------------------------------------------------------------------------- the audit's merges
def _audited(tmp_path, n_groups, chain, *, per_group=2):
    """A videos table of ``n_groups`` annotated groups (``per_group`` videos each, labels
    alternating by group) and a near-duplicate pairs table linking the first video of each
    group in ``chain`` to the next, as the leak audit writes them; returns both paths."""
    from lib import schemas
    from low_detail_corpus import videos_table

    rows = [{"video_id": f"g{g}_{i}", "path": "", "group": f"g{g}",
             "label": "fake" if g % 2 else "real"} for g in range(n_groups) for i in range(per_group)]  # fmt: skip
    schemas.write_table(videos_table(pl.DataFrame(rows), label="label", group="group"),
                        tmp_path / "videos.csv", "videos")  # fmt: skip
    links = list(zip(chain[:-1], chain[1:]))
    pairs = pl.DataFrame({
        "video_a": [f"g{a}_0" for a, _ in links], "video_b": [f"g{b}_0" for _, b in links],
        "distance": [2.5 + k for k in range(len(links))], "matched_frames": [9 - k for k in range(len(links))],
        "same_annotated_group": False, "same_fold": False,
    })  # fmt: skip
    schemas.write_table(pairs, tmp_path / "near_duplicates.csv", "near_duplicates")
    return tmp_path / "videos.csv", tmp_path / "near_duplicates.csv"


def test_a_group_the_audit_merged_past_its_share_stops_folds_naming_its_chain(tmp_path):
    from lib.stages.folds import run_folds

    videos, pairs = _audited(tmp_path, 20, chain=[0, 3, 5, 8])  # 8 of 40 videos: 20%
    args = {"videos": videos, "near_duplicates": pairs, "out": tmp_path / "folds.csv", "k": 5,
            "group_by": "both", "seed": 0}  # fmt: skip
    with pytest.raises(ValueError) as info:
        run_folds(**args, max_merged_share=0.1)
    message = str(info.value)
    assert "joined 4 annotated groups into one group of 8 of the 40 valid videos (20%" in message
    assert "folds.max_merged_share 10%" in message
    for a, b, frames, bits in [(0, 3, 9, 2.5), (3, 5, 8, 3.5), (5, 8, 7, 4.5)]:
        assert f"g{a}_0 ~ g{b}_0 ({frames} frames, {bits:.1f} bits)" in message
    assert message.index("g5_0 ~ g8_0") < message.index("g0_0 ~ g3_0")  # weakest first
    for key in ("near_duplicates (verify_share", "folds.group_by: annotated",
                "results/near_duplicates.csv", "results/reports/leaks.md"):  # fmt: skip
        assert key in message
    assert not (tmp_path / "folds.csv").exists()
    run_folds(**args, max_merged_share=0.25)  # allowed: the merged group is kept in one fold
    folds = pl.read_csv(tmp_path / "folds.csv")
    chained = folds.filter(pl.col("video_id").str.contains(r"^g(0|3|5|8)_"))
    assert chained["fold"].n_unique() == 1 and chained["dup_group"].n_unique() == 1
    run_folds(**(args | {"group_by": "annotated"}), max_merged_share=0.1)  # the audit ignored


def test_too_few_groups_after_the_audit_says_how_many_it_merged_and_where(tmp_path):
    from lib.stages.folds import run_folds

    videos, pairs = _audited(tmp_path, 6, chain=[0, 2, 4, 1, 3])  # 6 groups -> 2
    with pytest.raises(ValueError) as info:
        run_folds(videos=videos, near_duplicates=pairs, out=tmp_path / "folds.csv", k=3,
                  group_by="both", max_merged_share=1.0, seed=0)  # fmt: skip
    message = str(info.value)
    assert "2 duplicate groups among 12 valid videos cannot fill 3 folds" in message
    assert "merged 4 of the 6 annotated groups" in message
    assert "results/reports/leaks.md" in message and "folds.group_by: annotated" in message
    with pytest.raises(ValueError) as info:  # without the audit: no word of it
        assign_folds(_videos(n_groups=3), n_folds=5, random_state=0)
    assert "leak audit" not in str(info.value)
