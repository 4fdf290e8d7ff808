"""Evaluation protocols (lib/evaluate/protocols.py), window- and video-level scores, frames
per video and the generalisation section (lib/evaluate/evaluation.py, generalisation.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from conftest import DEMO_CONFIG, copy_workflow, snakemake
from test_evaluate import _synthetic
from lib import schemas
from lib.evaluate.evaluation import evaluate
from lib.evaluate.generalisation import generalisation_markdown, generalisation_table
from lib.evaluate.metrics import aggregate_windows, permutation_p_value, table_metrics
from lib.evaluate.protocols import leave_one_group_out_folds, used_folds
from lib.stages.permutation import run_permutation
from lib.stages.protocols import run_protocol_folds
from lib.train import permutation as permutation_module
from lib.train.feature_models import train_fold


def _corpus(per_class=12, rng_seed=0):
    """Groups of two videos on platforms a and b (plenty), c (two groups per class);
    group g-cross has its original on a and a repost on b; group g-noorig has no original."""
    rng = np.random.default_rng(rng_seed)
    folds, videos = [], []
    for platform, n_groups in (("a", per_class), ("b", per_class), ("c", 2)):
        for label in ("fake", "real"):
            for g in range(n_groups):
                group = f"{platform}-{label}-{g}"
                for v in range(2):
                    vid = f"{group}-v{v}"
                    folds.append({"video_id": vid, "dup_group": group, "label": label,
                                  "fold": int(rng.integers(3))})  # fmt: skip
                    videos.append({"video_id": vid, "is_original": v == 0, "platform": platform})
    for vid, platform, original in (("x-0", "a", True), ("x-1", "b", False)):
        folds.append({"video_id": vid, "dup_group": "g-cross", "label": "fake", "fold": 0})
        videos.append({"video_id": vid, "is_original": original, "platform": platform})
    for vid, platform in (("y-0", "b"), ("y-1", "b"), ("y-2", "a")):  # no original: majority b
        folds.append({"video_id": vid, "dup_group": "g-noorig", "label": "real", "fold": 1})
        videos.append({"video_id": vid, "is_original": False, "platform": platform})
    return pl.DataFrame(folds), pl.DataFrame(videos)


def test_leave_one_platform_out_never_trains_on_the_tested_platform_or_group():
    folds, videos = _corpus()
    table, splits = leave_one_group_out_folds(
        folds, videos, column="platform", min_videos_per_class=10
    )
    by_value = {r["value"]: r for r in splits.iter_rows(named=True)}
    assert by_value["a"]["status"] == by_value["b"]["status"] == "used"
    # c: 4 videos per class, below 10: skipped with the reason, its videos still train
    assert (
        by_value["c"]["status"] == "skipped"
        and "min_videos_per_class=10" in by_value["c"]["reason"]
    )
    assert "fake: 4" in by_value["c"]["reason"] and by_value["c"]["fold"] == -1
    assert used_folds(splits) == [0, 1]
    c_folds = set(table.filter(pl.col("platform") == "c")["fold"])
    assert c_folds and c_folds.isdisjoint(used_folds(splits))
    # the cross-platform group follows its original (a); its repost on b is left out
    assert table.filter(pl.col("video_id") == "x-0")["platform"].item() == "a"
    assert "x-1" not in set(table["video_id"]) and by_value["b"]["n_left_out"] == 1
    # without an original, the group follows its majority (b); its video on a is left out
    assert set(table.filter(pl.col("dup_group") == "g-noorig")["video_id"]) == {"y-0", "y-1"}
    assert by_value["a"]["n_left_out"] == 1
    for k in used_folds(splits):
        test, train = table.filter(pl.col("fold") == k), table.filter(pl.col("fold") != k)
        assert test["platform"].n_unique() == 1
        assert test["platform"].item(0) not in set(train["platform"])
        assert set(test["dup_group"]).isdisjoint(set(train["dup_group"]))
        assert by_value[test["platform"].item(0)]["n_test_videos"] == len(test)


def _write_videos(videos: pl.DataFrame, path):
    """``videos`` (video_id, is_original, platform) as a videos.csv, other columns blank."""
    blank = {"str": "", "int": 1, "float": 1.0, "bool": True}
    full = videos.with_columns(
        pl.lit(blank[kind]).alias(name)
        for name, kind in schemas.TABLES["videos"].items()
        if name not in videos.columns
    )
    schemas.write_table(full, path, "videos")
    return path


def test_protocol_stage_writes_contract_tables_and_names_a_missing_column(tmp_path):
    folds, videos = _corpus(per_class=3)
    schemas.write_table(folds, tmp_path / "folds.csv", "folds")
    _write_videos(videos, tmp_path / "videos.csv")
    run_protocol_folds(folds=tmp_path / "folds.csv", videos=tmp_path / "videos.csv",
                       out=tmp_path / "p/folds.csv", splits=tmp_path / "p/splits.csv",
                       column="platform", min_videos_per_class=5)  # fmt: skip
    splits = schemas.read_table(tmp_path / "p/splits.csv", "protocol_splits")
    assert set(splits["status"]) == {"used", "skipped"}
    schemas.read_table(tmp_path / "p/folds.csv", "folds")
    with pytest.raises(ValueError, match="leave_one_group_out.column='codek'"):
        leave_one_group_out_folds(folds, videos, column="codek", min_videos_per_class=1)


def test_windows_aggregate_to_one_row_per_clip_by_the_named_rule():
    windows = pl.DataFrame({
        "clip_id": ["v1#0", "v1#1", "v1#2", "v2#0", "v2#1"], "video_id": ["v1", "v1", "v1", "v2", "v2"],
        "label": ["fake", "fake", "fake", "real", "real"], "aug_idx": [-1] * 5,
        "window": [0, 1, 2, 0, 1], "score": [0.9, 0.2, 0.3, 0.3, 0.1],
        "pred": ["fake", "real", "real", "real", "real"],
        "score_fake": [0.9, 0.2, 0.3, 0.3, 0.1], "score_real": [0.1, 0.8, 0.7, 0.7, 0.9]})  # fmt: skip
    mean = aggregate_windows(windows, aggregation="mean")
    assert mean["clip_id"].to_list() == ["v1", "v2"] and "window" not in mean.columns
    np.testing.assert_allclose(mean["score_fake"], [1.4 / 3, 0.2])
    assert mean["pred"].to_list() == ["real", "real"]
    top = aggregate_windows(windows, aggregation="max")
    np.testing.assert_allclose(top["score_fake"], [0.9 / 1.7, 0.3 / 1.2])
    np.testing.assert_allclose(top["score_fake"] + top["score_real"], 1.0)
    assert top["pred"].to_list() == ["fake", "real"]
    no_windows = windows.drop("window").filter(pl.col("video_id") == "v2").head(1)
    assert aggregate_windows(no_windows, aggregation="mean").equals(no_windows)
    with pytest.raises(ValueError, match="window_aggregation"):
        aggregate_windows(windows, aggregation="mode")
    assert np.isfinite(table_metrics(mean, "fake")["brier"])


def _fake_predictions(path, videos, rng, *, windows=1, signal=2.0):
    rows = []
    for vid, label in videos:
        for w in range(windows):
            s = 1 / (1 + np.exp(-(signal * (label == "fake") - signal / 2 + rng.normal())))
            rows.append({"clip_id": f"{vid}#{w}" if windows > 1 else vid, "video_id": vid, "label": label, "score": s,
                         "pred": "fake" if s > 0.5 else "real", "aug_idx": -1,
                         "score_fake": s, "score_real": 1 - s, "window": w})  # fmt: skip
    table = pl.DataFrame(rows)
    if windows == 1:
        table = table.drop("window")
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(path)
    return path


def test_evaluate_reports_protocols_side_by_side_with_levels_and_frames(tmp_path):
    rng = np.random.default_rng(0)
    folds, videos = _corpus(per_class=10)
    folds = folds.filter(pl.col("dup_group") != "g-noorig")
    schemas.write_table(folds, tmp_path / "folds.csv", "folds")
    clips = folds.select("video_id", label=pl.col("label")).with_columns(
        clip_id=pl.col("video_id"), path=pl.lit(""), aug_idx=pl.lit(-1), augmentation=pl.lit("none"),
        dup_group=pl.lit(""), status=pl.lit("ok"), reason=pl.lit(""))  # fmt: skip
    schemas.write_table(
        clips.select(list(schemas.TABLES["clips"])), tmp_path / "clips.csv", "clips"
    )
    table, splits = leave_one_group_out_folds(folds, videos, column="platform",
                                              min_videos_per_class=10)  # fmt: skip
    schemas.write_table(splits, tmp_path / "splits.csv", "protocol_splits")
    paths = []
    for model, windows in (("logreg", 1), ("naive_cnn", 3)):
        for k in range(3):
            held = folds.filter(pl.col("fold") == k).select("video_id", "label").rows()
            out = tmp_path / f"models/{model}/fold-{k}/predictions.csv"
            paths.append(_fake_predictions(out, held, rng, windows=windows))
        for k in used_folds(splits):
            held = table.filter(pl.col("fold") == k).select("video_id", "label").rows()
            out = tmp_path / f"models/{model}/leave_one_platform_out/fold-{k}/predictions.csv"
            paths.append(_fake_predictions(out, held, rng, windows=windows))
            info = {"settings": {"num_frames": 8}} if windows > 1 else {"params": {}}
            (out.parent / "train_info.json").write_text(json.dumps(info))
    summary = evaluate(paths, tmp_path / "metrics.csv", tmp_path / "summary.csv",
                       tmp_path / "reports", clips_path=tmp_path / "clips.csv",
                       folds_path=tmp_path / "folds.csv", split_paths=[tmp_path / "splits.csv"],
                       positive_label="fake", n_bootstrap=30, random_state=0,
                       window_aggregation="median")  # fmt: skip
    auc = summary.filter(pl.col("metric") == "roc_auc")
    keys = set(auc.select("model", "protocol", "level").iter_rows())
    assert keys == {(m, p, "video") for m in ("logreg", "naive_cnn")
                    for p in ("kfold", "leave_one_platform_out")} | {
        ("naive_cnn", p, "window") for p in ("kfold", "leave_one_platform_out")}  # fmt: skip
    lopo = auc.filter(pl.col("protocol") == "leave_one_platform_out")
    assert (lopo["n_folds"] == 2).all() and (lopo["ci_low"] <= lopo["ci_high"]).all()
    assert (
        lopo.filter(pl.col("level") == "video")["n_videos"]
        == len(table.filter(pl.col("platform") != "c"))
    ).all()
    windowed = auc.filter(pl.col("model") == "naive_cnn")
    assert set(windowed.filter(pl.col("level") == "video")["aggregation"]) == {"median"}
    assert set(windowed.filter(pl.col("level") == "window")["aggregation"]) == {""}
    assert windowed["frames_per_video"].to_list() == [8.0] * 4
    assert auc.filter(pl.col("model") == "logreg")["frames_per_video"].is_nan().all()
    metrics = schemas.read_table(tmp_path / "metrics.csv", "metrics")
    assert set(metrics["protocol"]) == {"kfold", "leave_one_platform_out"}
    report = (tmp_path / "reports/evaluation.md").read_text()
    assert "## Generalisation" in report and "platform=c not tested" in report
    assert "1 videos left out" in report and "platform=a" in report
    assert (tmp_path / "reports/generalisation.png").stat().st_size > 5000
    table = generalisation_table(summary)
    assert "![Generalisation](other.png)" in generalisation_markdown(table, figure="other.png")


def test_leave_one_group_out_permutation_tests_its_used_splits_and_fills_p_values(
    tmp_path, monkeypatch
):
    """evaluate.permutation.protocols: the permutation stage on the protocol's folds table
    holds out its used splits only (a skipped value's videos still train) and evaluate puts
    the null beside that protocol's rows, as it does kfold's."""
    features, clips, kfolds = _synthetic(tmp_path, n_groups=24, signal=2.0, n_augmentations=0)
    folds = schemas.read_table(kfolds, "folds")
    group = pl.col("dup_group").str.strip_prefix("g").cast(pl.Int64)
    videos = folds.select(
        "video_id",
        is_original=pl.col("video_id").str.ends_with("v0"),
        platform=pl.when(group < 10).then(pl.lit("a")).when(group < 20).then(pl.lit("b"))
        .otherwise(pl.lit("c")),  # c: 2 groups of 3 videos per class, skipped
    )  # fmt: skip
    lopo = tmp_path / "protocols/leave_one_platform_out"
    run_protocol_folds(folds=kfolds, videos=_write_videos(videos, tmp_path / "videos.csv"),
                       out=lopo / "folds.csv", splits=lopo / "splits.csv", column="platform",
                       min_videos_per_class=10)  # fmt: skip
    splits = schemas.read_table(lopo / "splits.csv", "protocol_splits")
    assert set(splits["status"]) == {"used", "skipped"} and used_folds(splits) == [0, 1]
    held_out = []
    fit_predict = permutation_module.feature_fit_predict

    def recording(*args, **kwargs):
        inner = fit_predict(*args, **kwargs)
        return lambda train, test: held_out.append(test["fold"][0]) or inner(train, test)

    monkeypatch.setattr(permutation_module, "feature_fit_predict", recording)
    models, paths, nulls = tmp_path / "models/logreg", [], []
    for protocol, table, split_table, folds_run in (
        ("", kfolds, None, [0, 1, 2]),
        ("leave_one_platform_out/", lopo / "folds.csv", lopo / "splits.csv", [0, 1]),
    ):
        for k in folds_run:
            train_fold(features, clips, table, models / f"{protocol}fold-{k}", model_name="logreg",
                       fold=k, random_state=0)  # fmt: skip
            paths.append(models / f"{protocol}fold-{k}/predictions.csv")
        held_out.clear()
        nulls.append(models / f"{protocol}permutation.csv")
        run_permutation(features=features, scaled=None, clips=clips, folds=table,
                        splits=split_table, model="logreg", output=nulls[-1], params={},
                        checkpoint_dir=None, n_permutations=4, n_permutations_deep=1,
                        positive_label="fake", seed=0)  # fmt: skip
        assert sorted(held_out) == sorted(folds_run * 4)  # never the skipped value's fold
    summary = evaluate(paths, tmp_path / "metrics.csv", tmp_path / "summary.csv",
                       tmp_path / "reports", clips_path=clips, folds_path=kfolds,
                       permutation_paths=nulls, split_paths=[lopo / "splits.csv"],
                       positive_label="fake", n_bootstrap=30, random_state=0,
                       window_aggregation="mean")  # fmt: skip
    auc = {
        r["protocol"]: r
        for r in summary.filter(pl.col("metric") == "roc_auc").iter_rows(named=True)
    }
    for protocol, path in zip(("kfold", "leave_one_platform_out"), nulls):
        null = schemas.read_table(path, "permutation")["value"].to_numpy()
        row = auc[protocol]
        assert row["n_permutations"] == 4 and row["null_mean"] == pytest.approx(null.mean())
        assert row["p_value"] == pytest.approx(permutation_p_value(row["mean"], null))
        assert row["p_value"] == pytest.approx(1 / 5)  # the real model beats every null
    assert summary.filter(pl.col("metric") != "roc_auc")["p_value"].is_nan().all()
    assert (tmp_path / "reports/permutation_null.png").stat().st_size > 5000


def test_the_workflow_plans_a_permutation_job_per_listed_protocol(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "perm.yaml").write_text(
        "evaluate:\n  permutation:\n    protocols: [kfold, leave_one_group_out]\n"
    )
    plan = snakemake(wf, "-n", "-p", "--configfile", *DEMO_CONFIG, "perm.yaml").stdout
    assert re.search(r"^permutation\s+6$", plan, re.M)  # the demo's 3 models, 2 protocols
    lopo = "results/protocols/leave_one_platform_out"
    assert (
        f"--folds {lopo}/folds.csv --out results/models/logreg/leave_one_platform_out/"
        f"permutation.csv" in plan
    )
    assert f"--splits {lopo}/splits.csv" in plan
    assert "--folds results/folds.csv --out results/models/logreg/permutation.csv" in plan
