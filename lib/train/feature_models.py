"""Models chosen by name from one registry, trained one (model, fold) at a time.

Every model is a scikit-learn Pipeline (impute → scale → classifier) fitted on the training
folds only, so no statistic of the held-out fold leaks into it. ``shuffled_control`` is a
logistic regression trained on labels permuted within the training fold: its score is what
"learning nothing" looks like on this data, and a real model must beat it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from lib import schemas
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def _logreg(params: dict, random_state: int):
    return LogisticRegression(max_iter=5000, class_weight="balanced",
                              random_state=random_state, **params)  # fmt: skip


def _linear_svm(params: dict, random_state: int):
    return LinearSVC(class_weight="balanced", random_state=random_state, **params)


MODELS = {
    "logreg": (_logreg, {"C": 1.0}),
    "linear_svm": (_linear_svm, {"C": 0.1}),
    "shuffled_control": (_logreg, {"C": 1.0}),
}


def make_model(name: str, *, params: dict | None = None, random_state: int = 0) -> Pipeline:
    """A fresh, unfitted pipeline for model ``name`` (see ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    build, defaults = MODELS[name]
    clf = build({**defaults, **(params or {})}, random_state)
    return Pipeline([("impute", SimpleImputer(strategy="median")),
                     ("scale", StandardScaler()), ("clf", clf)])  # fmt: skip


def training_table(features: pd.DataFrame, clips: pd.DataFrame, folds: pd.DataFrame):
    """Clips with their fold and features; clips of videos without a fold are left out."""
    ok = clips[clips["status"] == "ok"][["clip_id", "video_id", "label", "aug_idx"]]
    table = ok.merge(folds[["video_id", "fold"]], on="video_id", how="inner")
    table = table.merge(features, on="clip_id", how="inner")
    feature_cols = [c for c in features.columns if c != "clip_id"]
    return table.sort_values("clip_id", kind="stable").reset_index(drop=True), feature_cols


def missing_feature_set(table: pd.DataFrame, feature_cols: list[str]) -> pd.Series:
    """Clips missing a whole feature set (every ``hc_*`` or every ``sc_*`` value NaN: that
    stage failed on the clip). They are left out of training and counted, never imputed."""
    sets = {}
    for col in feature_cols:
        sets.setdefault(col.split("_", 1)[0], []).append(col)
    missing = pd.Series(False, index=table.index)
    for cols in sets.values():
        missing |= table[cols].isna().all(axis=1)
    return missing


def class_scores(model: Pipeline, X) -> np.ndarray:
    """Per-class scores (n, n_classes): probabilities, or a softmax of SVM margins."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    margin = model.decision_function(X)
    if margin.ndim == 1:  # binary: margin of classes_[1]
        margin = np.column_stack([-margin, margin])
    e = np.exp(margin - margin.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def train_fold(
    features_path: str | Path,
    clips_path: str | Path,
    folds_path: str | Path,
    out_dir: str | Path,
    *,
    model_name: str,
    fold: int,
    params: dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
) -> pd.DataFrame:
    """Fit ``model_name`` on every fold but ``fold``; predict the held-out clips.

    Writes ``model.joblib``, ``predictions.csv`` (clip_id, video_id, label, score, pred and
    one ``score_<class>`` column per class) and ``train_info.json`` (sizes, clips skipped
    for missing features, the parameters and seed) into ``out_dir``.
    """
    features = schemas.read_table(features_path, "features")
    clips = schemas.read_table(clips_path, "clips")
    folds = schemas.read_table(folds_path, "folds")
    table, cols = training_table(features, clips, folds)
    incomplete = missing_feature_set(table, cols)
    skipped = int(incomplete.sum())
    table = table[~incomplete]
    train, test = table[table["fold"] != fold], table[table["fold"] == fold]
    if train.empty or test.empty or train["label"].nunique() < 2:
        raise ValueError(f"fold {fold}: {len(train)} training and {len(test)} test clips with "
                         f"{train['label'].nunique()} classes; need both sets and ≥2 classes")  # fmt: skip
    y = train["label"].to_numpy()
    if model_name == "shuffled_control":  # permute per video: its clips share a label
        videos = train.drop_duplicates("video_id")
        rng = np.random.default_rng(random_state + fold)
        shuffled = dict(zip(videos["video_id"], rng.permutation(videos["label"].to_numpy())))
        y = train["video_id"].map(shuffled).to_numpy()
    model = make_model(model_name, params=params, random_state=random_state)
    model.fit(train[cols].to_numpy(), y)
    scores = class_scores(model, test[cols].to_numpy())
    classes = [str(c) for c in model.classes_]
    pred = np.asarray(classes)[scores.argmax(axis=1)]
    pos = classes.index(positive_label) if positive_label in classes else len(classes) - 1
    score = scores[:, pos] if len(classes) == 2 else scores.max(axis=1)
    predictions = pd.DataFrame({"clip_id": test["clip_id"].values,
                                "video_id": test["video_id"].values,
                                "label": test["label"].values, "score": score, "pred": pred,
                                "aug_idx": test["aug_idx"].values})  # fmt: skip
    for j, c in enumerate(classes):
        predictions[f"score_{c}"] = scores[:, j]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    info = {"model": model_name, "fold": fold, "params": params or {}, "random_state": random_state,
            "n_train_clips": int(len(train)), "n_test_clips": int(len(test)),
            "n_train_videos": int(train["video_id"].nunique()),
            "n_test_videos": int(test["video_id"].nunique()),
            "skipped_clips_without_features": skipped, "classes": classes,
            "positive_label": classes[pos], "features": cols}  # fmt: skip
    atomic_write_text(out_dir / "train_info.json", json.dumps(info, indent=2))
    log.info("%s fold %d: trained on %d clips, predicted %d (skipped %d without features)",
             model_name, fold, len(train), len(test), skipped)  # fmt: skip
    return schemas.write_table(predictions, out_dir / "predictions.csv", "predictions")
