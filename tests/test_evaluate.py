"""Metrics with known answers; training fits on the training folds only; the control learns nothing."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest

from lib import schemas
from lib.evaluate import classification_metrics, evaluate, video_level
from lib.train.feature_models import train_fold


def test_binary_metrics_known_answers():
    labels = ["fake", "fake", "real", "real"]
    perfect = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    m = classification_metrics(labels, perfect, ["fake", "real"], "fake")
    assert m == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "roc_auc": 1.0}
    inverted = classification_metrics(labels, perfect[:, ::-1], ["fake", "real"], "fake")
    assert inverted["accuracy"] == 0.0 and inverted["roc_auc"] == 0.0
    # one fake missed: precision 1, recall 0.5
    half = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])
    m = classification_metrics(labels, half, ["fake", "real"], "fake")
    assert (m["precision"], m["recall"], m["accuracy"]) == (1.0, 0.5, 0.75)


def test_multiclass_metrics_and_single_class_auc_is_nan():
    classes = ["a", "b", "c"]
    scores = np.eye(3)[[0, 1, 2, 0]] * 0.7 + 0.1  # rows sum to 1
    m = classification_metrics(["a", "b", "c", "a"], scores, classes, "fake")
    assert m["accuracy"] == 1.0 and m["roc_auc"] == 1.0 and m["f1"] == 1.0
    m = classification_metrics(["fake", "fake"], np.array([[0.6, 0.4], [0.7, 0.3]]),
                               ["fake", "real"], "fake")  # fmt: skip
    assert np.isnan(m["roc_auc"])


def test_video_level_averages_clip_scores_per_video():
    preds = pd.DataFrame({"clip_id": ["a1", "a2", "b1"], "video_id": ["a", "a", "b"],
                          "label": ["fake", "fake", "real"], "score_fake": [0.2, 0.8, 0.1],
                          "score_real": [0.8, 0.2, 0.9]})  # fmt: skip
    videos = video_level(preds).set_index("video_id")
    assert videos.loc["a", "score_fake"] == pytest.approx(0.5)
    assert videos.loc["b", "label"] == "real"


def _synthetic(tmp_path, n_videos=60, clips_per_video=3, seed=0):
    """Features where hc_signal separates the classes and hc_noise does not."""
    rng = np.random.default_rng(seed)
    rows, feats, folds = [], [], []
    for v in range(n_videos):
        label = "fake" if v % 2 else "real"
        folds.append({"video_id": f"v{v}", "dup_group": f"g{v // 2}", "label": label,
                      "fold": (v // 2) % 3})  # fmt: skip
        for k in range(-1, clips_per_video - 1):
            cid = f"v{v}__{k}"
            rows.append({"clip_id": cid, "video_id": f"v{v}", "path": "", "aug_idx": k,
                         "augmentation": "", "label": label, "dup_group": f"g{v // 2}",
                         "status": "ok", "reason": ""})  # fmt: skip
            feats.append({"clip_id": cid, "hc_signal": (label == "fake") + rng.normal(0, 0.5),
                          "hc_noise": rng.normal(0, 1) + 100.0})  # fmt: skip
    feats[0]["hc_signal"] = feats[0]["hc_noise"] = float("nan")  # a clip whose features failed
    schemas.write_table(pd.DataFrame(rows), tmp_path / "clips.csv", "clips")
    schemas.write_table(pd.DataFrame(feats), tmp_path / "features.parquet", "features")
    schemas.write_table(pd.DataFrame(folds), tmp_path / "folds.csv", "folds")


def test_train_fits_on_training_folds_only_and_control_learns_nothing(tmp_path):
    _synthetic(tmp_path)
    paths = []
    for model in ("logreg", "shuffled_control"):
        for fold in range(3):
            out = tmp_path / "models" / model / f"fold-{fold}"
            preds = train_fold(tmp_path / "features.parquet", tmp_path / "clips.csv",
                               tmp_path / "folds.csv", out, model_name=model, fold=fold,
                               random_state=1)  # fmt: skip
            folds = schemas.read_table(tmp_path / "folds.csv", "folds")
            held_out = set(folds.loc[folds["fold"] == fold, "video_id"])
            assert set(preds["video_id"]) <= held_out
            info = json.loads((out / "train_info.json").read_text())
            assert info["skipped_clips_without_features"] == 1
            # the scaler saw only the training folds' features
            pipe = joblib.load(out / "model.joblib")
            feats = pd.read_parquet(tmp_path / "features.parquet").dropna()
            clips = schemas.read_table(tmp_path / "clips.csv", "clips")
            train_ids = clips.loc[~clips["video_id"].isin(held_out), "clip_id"]
            train = feats[feats["clip_id"].isin(train_ids)]
            np.testing.assert_allclose(pipe.named_steps["scale"].mean_,
                                       train[["hc_signal", "hc_noise"]].mean().values, rtol=1e-9)  # fmt: skip
            paths.append(out / "predictions.csv")
    summary = evaluate(paths, tmp_path / "metrics.csv", tmp_path / "summary.csv",
                       tmp_path / "reports", config={"seed": 1})  # fmt: skip
    auc = summary.set_index(["model", "metric"])["mean"]
    assert auc[("logreg", "roc_auc")] > 0.85  # two normals 1 apart, sd 0.5: AUC ≈ 0.92
    assert auc[("shuffled_control", "roc_auc")] < 0.75
    assert set(schemas.read_table(tmp_path / "metrics.csv", "metrics")["metric"]) >= {
        "accuracy", "roc_auc", "video_roc_auc", "video_f1"}
    assert (tmp_path / "reports/roc.png").stat().st_size > 1000
    assert "logreg" in (tmp_path / "reports/evaluation.md").read_text()
