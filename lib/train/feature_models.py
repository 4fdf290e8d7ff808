"""Feature (scikit-learn) models chosen by name from one registry, trained one fold at a time.

Every model is a Pipeline impute → decorrelate (drop one of each pair with |r| > 0.95) →
standardise → classifier, fitted on the training folds only, so no statistic of the held-out
fold leaks into it. Training uses the training folds' originals and their augmentations;
every held-out clip (original and augmented) is predicted, and evaluation scores the
originals only (lib/evaluate/metrics.py).

Models: ``logreg``; ``linear_svm`` (a LinearSVC whose margins are calibrated into
probabilities by ``CalibratedClassifierCV`` on inner splits of the training folds, grouped
by duplicate group: one calibrator on every split's held-out margins); ``hist_gbm`` (HistGradientBoostingClassifier, no early stopping: its
internal validation split would not be grouped); ``dummy`` (DummyClassifier, the floor: what
predicting the training prior scores).

On frozen-encoder embeddings (the ``embeddings`` stage; which tables a model reads:
:mod:`lib.train.embedding_models`): ``probe``, a linear probe (the standardised logistic
regression above, on the clip's mean vector); ``knn``, k nearest neighbours by cosine
distance (not standardised: the encoder's own geometry); ``probe_hc``, the probe on the
embeddings joined with the handcrafted and scaled features.

Their permutation test (the null distribution of the headline metric) is in
:mod:`lib.train.permutation`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from lib import schemas
from lib.train.predictions import positive_index, predictions_table
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

#: Pairs of features correlated above this (absolute Pearson r) keep only the first.
CORRELATION_THRESHOLD = 0.95
#: Inner folds of the training folds for probability calibration (grouped like the outer ones).
CALIBRATION_FOLDS = 3


class CorrelationFilter(TransformerMixin, BaseEstimator):
    """Drop features that are near-copies of an earlier one (|Pearson r| > ``threshold``).

    Columns are visited in order; a column is kept when its absolute correlation with every
    kept column is at most ``threshold``. Constant columns (no variance in the training data)
    are dropped too: they carry nothing and their correlation is undefined. Fitted on the
    data passed to ``fit`` only (the training folds inside a Pipeline).
    """

    def __init__(self, threshold: float = CORRELATION_THRESHOLD):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        std = np.nanstd(X, axis=0)
        varying = np.flatnonzero(std > 0)
        kept: list[int] = []
        if len(varying):
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.abs(np.corrcoef(X[:, varying], rowvar=False))
            corr = np.atleast_2d(np.nan_to_num(corr, nan=0.0))
            chosen: list[int] = []
            for j in range(len(varying)):
                if all(corr[j, i] <= self.threshold for i in chosen):
                    chosen.append(j)
            kept = [int(varying[j]) for j in chosen]
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[kept] = True
        return self

    def transform(self, X):
        check_is_fitted(self, "support_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return X[:, self.support_]

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "support_")
        names = (
            np.asarray(input_features)
            if input_features is not None
            else np.asarray([f"x{i}" for i in range(len(self.support_))])
        )
        return names[self.support_]


def inner_splits(y, groups, *, n_splits: int = CALIBRATION_FOLDS, random_state: int = 0):
    """Grouped (and, where the classes allow, stratified) splits of the training rows.

    Used for probability calibration, so the held-out fold never tunes anything. Falls back
    to GroupKFold when a class has fewer groups than splits (keeping only splits whose
    training part holds every class), and to in-sample calibration when no split does;
    ``n_splits`` is lowered to the number of groups (at least 2).
    """
    y, groups = np.asarray(y), np.asarray(groups)
    n_splits = max(2, min(n_splits, len(np.unique(groups))))
    X = np.zeros((len(y), 1))
    per_class = min(len(np.unique(groups[y == c])) for c in np.unique(y))
    if per_class >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        return list(splitter.split(X, y, groups))
    # Too few groups of a class to stratify: keep the grouped splits whose training part
    # still holds every class (a one-class fit cannot be calibrated). With none left (a tiny
    # corpus), calibrate in-sample on the training rows: still never on the evaluated fold.
    classes = np.unique(y)
    splits = [
        (train, test)
        for train, test in GroupKFold(n_splits=n_splits).split(X, y, groups)
        if len(np.unique(y[train])) == len(classes)
    ]
    if splits:
        return splits
    everything = np.arange(len(y))
    return [(everything, everything)]


def _logreg(params: dict, random_state: int, cv):
    return LogisticRegression(
        max_iter=5000, class_weight="balanced", random_state=random_state, **params
    )


def _linear_svm(params: dict, random_state: int, cv):
    params = dict(params)
    method = params.pop("calibration", "sigmoid")
    svm = LinearSVC(class_weight="balanced", random_state=random_state, **params)
    # ensemble=False: one calibrator fitted on the margins of every inner split's held-out
    # groups, and one SVM on all training rows. The default (a calibrator per split, their
    # probabilities averaged) fits each on a few groups; on the demo their slopes came out of
    # both signs and the average scrambled a ranking the margins had right.
    # A fallback split list that is not a partition (inner_splits) keeps the average.
    return CalibratedClassifierCV(
        svm,
        method=method,
        cv=cv if cv is not None else CALIBRATION_FOLDS,
        ensemble=cv is not None and not _is_partition(cv),
    )


def _is_partition(splits) -> bool:
    """Whether the held-out parts of ``splits`` cover every row exactly once."""
    held_out = np.concatenate([test for _, test in splits])
    n_rows = len(splits[0][0]) + len(splits[0][1])
    return len(held_out) == n_rows and len(np.unique(held_out)) == n_rows


def _hist_gbm(params: dict, random_state: int, cv):
    return HistGradientBoostingClassifier(
        early_stopping=False, class_weight="balanced", random_state=random_state, **params
    )


def _dummy(params: dict, random_state: int, cv):
    return DummyClassifier(random_state=random_state, **params)


def _knn(params: dict, random_state: int, cv):
    return KNeighborsClassifier(**params)


#: name -> (builder(params, random_state, inner cv splits), default params)
MODELS = {
    "logreg": (_logreg, {"C": 1.0}),
    "linear_svm": (_linear_svm, {"C": 0.1, "calibration": "sigmoid"}),
    "hist_gbm": (
        _hist_gbm,
        {
            "max_iter": 50,
            "learning_rate": 0.1,
            "max_leaf_nodes": 8,
            "min_samples_leaf": 10,
            "max_bins": 64,
        },
    ),
    "dummy": (_dummy, {"strategy": "prior"}),
    # Not tuned: many dimensions and few hundred to few thousand clips want a strong L2.
    "probe": (_logreg, {"C": 0.1}),
    "knn": (_knn, {"n_neighbors": 10, "metric": "cosine", "weights": "uniform"}),
    "probe_hc": (_logreg, {"C": 0.1}),
}
#: Models whose inputs are not standardised (a cosine distance reads the vectors as they are).
UNSCALED = ("knn",)


def make_model(
    name: str,
    *,
    params: dict | None = None,
    random_state: int = 0,
    cv=None,
    correlation_threshold: float = CORRELATION_THRESHOLD,
) -> Pipeline:
    """A fresh, unfitted pipeline for model ``name`` (see ``MODELS``).

    ``cv``: the inner splits of the training rows for models that calibrate (``linear_svm``);
    :func:`fit_model` passes grouped ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown feature model {name!r}; choose from {sorted(MODELS)}")
    build, defaults = MODELS[name]
    clf = build({**defaults, **(params or {})}, random_state, cv)
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("decorrelate", CorrelationFilter(correlation_threshold)),
            ("scale", "passthrough" if name in UNSCALED else StandardScaler()),
            ("clf", clf),
        ]
    )


def valid_params(name: str) -> list[str]:
    """The keys ``train.params.<name>`` takes: the arguments of the model's estimator (of the
    estimator it calibrates, for ``linear_svm``) and the registry's own (``calibration``)."""
    clf = make_model(name).named_steps["clf"]
    estimator = clf.estimator if isinstance(clf, CalibratedClassifierCV) else clf
    return sorted({*estimator.get_params(deep=False), *MODELS[name][1]})


def fit_model(
    name: str,
    X,
    y,
    groups,
    *,
    params: dict | None = None,
    random_state: int = 0,
    n_threads: int = 1,
):
    """Fit ``name`` on (X, y); calibration splits are grouped by ``groups``.

    ``n_threads`` caps OpenMP/BLAS threads (the rule's one core): on small tables
    HistGradientBoosting spends most of its CPU time spinning threads on a loaded machine.
    """
    cv = inner_splits(y, groups, random_state=random_state) if name == "linear_svm" else None
    model = make_model(name, params=params, random_state=random_state, cv=cv)
    with threadpool_limits(limits=n_threads):
        return model.fit(X, y)


def fit_table(name: str, train: pl.DataFrame, cols: list[str], *, params, random_state: int):
    """:func:`fit_model` on the rows of a training table: features ``cols``, their labels,
    calibration grouped by duplicate group."""
    return fit_model(
        name,
        train.select(cols).to_numpy(),
        train["label"].to_numpy(),
        train["dup_group"].to_numpy(),
        params=params,
        random_state=random_state,
    )


def training_table(features: pl.DataFrame, clips: pl.DataFrame, folds: pl.DataFrame):
    """Clips with their fold, group and features; clips of videos without a fold are left out.

    Clips missing a feature set are dropped by the callers (:func:`missing_feature_set`).
    """
    ok = clips.filter(pl.col("status") == "ok").select(
        "clip_id", "video_id", "label", "aug_idx", "augmentation"
    )
    table = ok.join(folds.select("video_id", "dup_group", "fold"), on="video_id", how="inner")
    table = table.join(features, on="clip_id", how="inner")
    feature_cols = [c for c in features.columns if c != "clip_id"]
    return table.sort("clip_id", maintain_order=True), feature_cols


def missing_feature_set(table: pl.DataFrame, feature_cols: list[str]) -> pl.Series:
    """Clips missing a whole feature set (every ``hc_*`` or every ``sc_*`` value NaN: that
    stage failed on the clip). They are left out of training and counted, never imputed."""
    sets = {}
    for col in feature_cols:
        sets.setdefault(col.split("_", 1)[0], []).append(col)
    missing = [
        pl.all_horizontal([pl.col(c).fill_nan(None).is_null() for c in cols])
        for cols in sets.values()
    ]
    if not missing:
        return pl.Series("missing", [False] * len(table))
    return table.select(pl.any_horizontal(missing).alias("missing")).to_series()


def read_model_inputs(paths) -> pl.DataFrame:
    """clip_id and the feature columns of one table or several joined on clip_id: the
    features table and/or an embeddings table (its clip means: ``frame == -1``)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    tables = [_read_input(path) for path in paths]
    joined = tables[0]
    for table in tables[1:]:
        joined = joined.join(
            table, on="clip_id", how="inner", validate="1:1", maintain_order="left"
        )
    return joined


def _is_embeddings(path) -> bool:
    """Whether the table at ``path`` is an embeddings table (its contract's columns)."""
    path = Path(path)
    if not path.exists():  # read_table says it is missing and what writes it
        return False
    scan = pl.scan_parquet(path) if path.suffix == ".parquet" else pl.scan_csv(path)
    return set(schemas.columns("embeddings")) <= set(scan.collect_schema().names())


def _read_input(path) -> pl.DataFrame:
    if not _is_embeddings(path):
        return schemas.read_table(path, "features")
    table = schemas.read_table(path, "embeddings").filter(pl.col("frame") == -1)
    return table.drop([c for c in schemas.columns("embeddings") if c != "clip_id"])


def embedding_source(paths) -> dict | None:
    """The encoder and ``num_frames`` the embeddings among ``paths`` were made with (what
    predict embeds a window with), or None when no table is an embeddings table."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for path in paths:
        if _is_embeddings(path):
            table = schemas.read_table(path, "embeddings", columns=[]).unique(
                ["encoder", "num_frames"]
            )
            if len(table) != 1:
                raise ValueError(f"{path}: embeddings of several encoders or settings: rerun")
            return {"encoder": table["encoder"][0], "num_frames": int(table["num_frames"][0])}
    return None


def load_training_table(features_path, clips_path, folds_path):
    """(table, feature columns, clips left out because a whole feature set failed);
    ``features_path``: one table or several (:func:`read_model_inputs`)."""
    features = read_model_inputs(features_path)
    clips = schemas.read_table(clips_path, "clips")
    folds = schemas.read_table(folds_path, "folds")
    table, cols = training_table(features, clips, folds)
    incomplete = missing_feature_set(table, cols)
    return table.filter(~incomplete), cols, int(incomplete.sum())


def predict_table(model, test: pl.DataFrame, cols: list[str], positive_label: str) -> pl.DataFrame:
    """The predictions contract for the rows of ``test`` (every registered model has
    ``predict_proba``)."""
    probs = model.predict_proba(test.select(cols).to_numpy())
    classes = [str(c) for c in model.classes_]
    return predictions_table(test, probs, classes, positive_label=positive_label)


def _check_split(train: pl.DataFrame, test: pl.DataFrame, fold: int) -> None:
    if train.is_empty() or test.is_empty() or train["label"].n_unique() < 2:
        raise ValueError(
            f"fold {fold}: {len(train)} training and {len(test)} test clips with "
            f"{train['label'].n_unique()} classes; need both sets and ≥2 classes"
        )


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
) -> pl.DataFrame:
    """Fit ``model_name`` on every fold but ``fold``; predict every held-out clip.

    ``fold=-1`` is the final model: fitted on every fold with the same settings, nothing
    held out (no predictions; used by ``predict``). Writes ``model.joblib``,
    ``predictions.csv`` (the predictions contract, with ``aug_idx``) and ``train_info.json``
    (sizes, clips skipped for missing features, parameters, seed, features used).
    """
    table, cols, skipped = load_training_table(features_path, clips_path, folds_path)
    train = table.filter(pl.col("fold") != fold)
    test = table.filter(pl.col("fold") == fold)
    if fold >= 0:
        _check_split(train, test, fold)
    model = fit_table(model_name, train, cols, params=params, random_state=random_state)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    classes = [str(c) for c in model.classes_]
    pos = classes[positive_index(classes, positive_label)]
    kept = model.named_steps["decorrelate"].support_
    info = {
        "model": model_name,
        "family": "feature",
        "fold": fold,
        "params": params or {},
        "random_state": random_state,
        "n_train_clips": int(len(train)),
        "n_test_clips": int(len(test)),
        "n_train_videos": int(train["video_id"].n_unique()),
        "n_test_videos": int(test["video_id"].n_unique()),
        "skipped_clips_without_features": skipped,
        "classes": classes,
        "positive_label": pos,
        "features": cols,
        "features_kept": [c for c, k in zip(cols, kept) if k],
        "features_dropped_correlated": [c for c, k in zip(cols, kept) if not k],
    }
    source = embedding_source(features_path)
    if source is not None:
        info["embedding"] = source
    atomic_write_text(out_dir / "train_info.json", json.dumps(info, indent=2))
    log.info(
        "%s fold %d: trained on %d clips (%d features kept of %d), predicted %d "
        "(skipped %d without features)",
        model_name,
        fold,
        len(train),
        int(kept.sum()),
        len(cols),
        len(test),
        skipped,
    )
    if fold < 0:
        return pl.DataFrame()
    predictions = predict_table(model, test, cols, positive_label)
    return schemas.write_table(predictions, out_dir / "predictions.csv", "predictions")
