"""Feature (scikit-learn) models chosen by name from one registry, trained one fold at a time.

Every model is a Pipeline impute → decorrelate (drop one of each pair with |r| > 0.95) →
standardise → classifier, fitted on the training folds only, so no statistic of the held-out
fold leaks into it. Training uses the training folds' originals and their augmentations;
every held-out clip (original and augmented) is predicted, and evaluation scores the
originals only (lib/evaluate/metrics.py).

Models: ``logreg``; ``linear_svm`` (a LinearSVC whose margins are calibrated into
probabilities by ``CalibratedClassifierCV`` on an inner split of the training folds, grouped
by duplicate group); ``hist_gbm`` (HistGradientBoostingClassifier, no early stopping: its
internal validation split would not be grouped); ``dummy`` (DummyClassifier, the floor: what
predicting the training prior scores).

:func:`permutation_test` is the control that replaces the old single shuffled-label model:
many permutations of the duplicate groups' labels, the same folds and training, a null
distribution of the headline metric and a p-value.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted, validate_data

from lib import schemas
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
    return CalibratedClassifierCV(
        svm, method=method, cv=cv if cv is not None else CALIBRATION_FOLDS
    )


def _hist_gbm(params: dict, random_state: int, cv):
    return HistGradientBoostingClassifier(
        early_stopping=False, class_weight="balanced", random_state=random_state, **params
    )


def _dummy(params: dict, random_state: int, cv):
    return DummyClassifier(random_state=random_state, **params)


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
}


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
            ("scale", StandardScaler()),
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
    HistGradientBoosting spent 4x the CPU time spinning threads on a loaded machine.
    """
    from threadpoolctl import threadpool_limits

    cv = inner_splits(y, groups, random_state=random_state) if name == "linear_svm" else None
    model = make_model(name, params=params, random_state=random_state, cv=cv)
    with threadpool_limits(limits=n_threads):
        return model.fit(X, y)


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


def load_training_table(features_path, clips_path, folds_path):
    """(table, feature columns, clips left out because a whole feature set failed)."""
    features = schemas.read_table(features_path, "features")
    clips = schemas.read_table(clips_path, "clips")
    folds = schemas.read_table(folds_path, "folds")
    table, cols = training_table(features, clips, folds)
    incomplete = missing_feature_set(table, cols)
    return table.filter(~incomplete), cols, int(incomplete.sum())


def class_scores(model, X) -> np.ndarray:
    """Per-class probabilities (n, n_classes); every registered model has predict_proba."""
    return model.predict_proba(X)


def predict_table(model, test: pl.DataFrame, cols: list[str], positive_label: str) -> pl.DataFrame:
    """The predictions contract for the rows of ``test``: score of the positive class
    (binary) or of the best class (multi-class), the predicted class, one score per class."""
    scores = class_scores(model, test.select(cols).to_numpy())
    classes = [str(c) for c in model.classes_]
    pred = np.asarray(classes)[scores.argmax(axis=1)]
    pos = classes.index(positive_label) if positive_label in classes else len(classes) - 1
    score = scores[:, pos] if len(classes) == 2 else scores.max(axis=1)
    out = test.select("clip_id", "video_id", "label").with_columns(
        score=pl.Series(score, dtype=pl.Float64),
        pred=pl.Series(pred, dtype=pl.String),
        aug_idx=test["aug_idx"],
    )
    return out.with_columns(
        pl.Series(f"score_{c}", scores[:, j], dtype=pl.Float64) for j, c in enumerate(classes)
    )


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
    model = fit_model(
        model_name,
        train.select(cols).to_numpy(),
        train["label"].to_numpy(),
        train["dup_group"].to_numpy(),
        params=params,
        random_state=random_state,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    classes = [str(c) for c in model.classes_]
    pos = positive_label if positive_label in classes else classes[-1]
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


# ----------------------------------------------------------------------- permutation test
def permute_group_labels(groups, labels, *, random_state) -> np.ndarray:
    """Labels permuted between duplicate groups: every row of a group gets the same label.

    Each group's label (its most frequent one) is shuffled among the groups, so the class
    proportions over groups are kept and near-duplicates never disagree. (scikit-learn's
    ``permutation_test_score(groups=...)`` shuffles *within* groups, which is a no-op when a
    group holds one label, as duplicate groups do.)
    """
    groups, labels = np.asarray(groups), np.asarray(labels)
    counts: dict = {}
    for group, label in zip(groups, labels):  # a group's label: its most frequent, first on ties
        counts.setdefault(group, Counter())[label] += 1
    names = sorted(counts)
    per_group = np.asarray([counts[g].most_common(1)[0][0] for g in names])
    rng = np.random.default_rng(random_state)
    shuffled = dict(zip(names, rng.permutation(per_group)))
    return np.asarray([shuffled[g] for g in groups])


def feature_fit_predict(
    model_name: str,
    cols: list[str],
    *,
    params: dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
):
    """``fit_predict(train, test) -> predictions`` of a feature model, for
    :func:`permutation_test`."""

    def fit_predict(train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
        model = fit_model(
            model_name,
            train.select(cols).to_numpy(),
            train["label"].to_numpy(),
            train["dup_group"].to_numpy(),
            params=params,
            random_state=random_state,
        )
        return predict_table(model, test, cols, positive_label)

    return fit_predict


def permutation_test(
    table: pl.DataFrame,
    *,
    fit_predict,
    statistic,
    n_permutations: int = 100,
    random_state: int = 0,
    progress: str | None = None,
) -> np.ndarray:
    """Null distribution of ``statistic`` under permuted group labels, same folds and training.

    ``table``: one row per training unit with ``fold``, ``dup_group``, ``label``,
    ``aug_idx`` (:func:`training_table` rows for feature models). ``fit_predict(train,
    test)`` trains on ``train`` (permuted labels) and returns the predictions contract for
    the held-out originals ``test`` — :func:`feature_fit_predict` for feature models,
    :func:`lib.train.loop.deep_fit_predict` for deep models (``table``: their clip table). ``statistic(by_fold)``
    is the headline statistic the evaluation reports for the real model (mean over folds of
    the originals-only ROC-AUC). Permutation ``i`` is seeded by ``(random_state, i)``.
    """
    folds = sorted(table["fold"].unique().to_list())
    null = np.empty(n_permutations)
    steps = range(n_permutations)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"permutations {progress}", mininterval=5)
    for i in steps:
        seed = np.random.SeedSequence([random_state, i]).generate_state(1)[0]
        permuted = table.with_columns(
            label=pl.Series(
                permute_group_labels(
                    table["dup_group"].to_numpy(), table["label"].to_numpy(), random_state=seed
                ),
                dtype=pl.String,
            )
        )
        by_fold = {}
        for k in folds:
            train = permuted.filter(pl.col("fold") != k)
            test = permuted.filter((pl.col("fold") == k) & (pl.col("aug_idx") == -1))
            if train["label"].n_unique() < 2 or test.is_empty():
                continue
            by_fold[k] = fit_predict(train, test)
        null[i] = statistic(by_fold)
    return null


def run_permutation_test(
    features_path,
    clips_path,
    folds_path,
    out_path,
    *,
    model_name: str,
    n_permutations: int,
    params: dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
    scaled_path=None,
    checkpoint_dir=None,
) -> pl.DataFrame:
    """:func:`permutation_test` on the pipeline's tables; writes ``permutation, metric, value``.

    Feature models read ``features_path`` (``params``: the estimator's keywords). Deep
    models read ``scaled_path`` (``params``: their ``train.deep.<model>`` settings) and
    retrain every fold of every permutation (:func:`lib.train.loop.deep_fit_predict`):
    permutations × folds trainings, so ask for few. Their finished (permutation, fold) fits
    are kept under ``checkpoint_dir`` (default ``results/.checkpoints/<model>/permutation``)
    until the table is written: a killed job resumes where it stopped.
    """
    from lib.evaluate.metrics import HEADLINE_METRIC, headline_statistic
    from lib.train.settings import is_deep

    work_dir = None
    if is_deep(model_name):
        from lib.train.data import load_clip_table
        from lib.train.loop import deep_fit_predict

        if not scaled_path:
            raise ValueError(f"{model_name} is a deep model: give --scaled results/scaled.csv")
        table = load_clip_table(scaled_path, clips_path, folds_path)
        work_dir = Path(checkpoint_dir or f"results/.checkpoints/{model_name}/permutation")
        fit_predict = deep_fit_predict(
            model_name,
            settings=params,
            positive_label=positive_label,
            random_state=random_state,
            work_dir=work_dir,
        )
    elif model_name in MODELS:
        if not features_path:
            raise ValueError(f"{model_name} is a feature model: give --features")
        table, cols, _ = load_training_table(features_path, clips_path, folds_path)
        fit_predict = feature_fit_predict(
            model_name,
            cols,
            params=params,
            positive_label=positive_label,
            random_state=random_state,
        )
    else:
        raise ValueError(
            f"permutation test of {model_name!r}: not a known model; feature "
            f"models are {sorted(MODELS)}, deep models lib.train.settings.DEEP_MODELS"
        )
    null = permutation_test(
        table,
        fit_predict=fit_predict,
        n_permutations=n_permutations,
        random_state=random_state,
        progress=model_name,
        statistic=lambda by_fold: headline_statistic(by_fold, positive_label=positive_label),
    )
    out = pl.DataFrame(
        {"permutation": np.arange(n_permutations), "metric": HEADLINE_METRIC, "value": null}
    )
    log.info(
        "%s: %d permutations, null %s mean %.3f sd %.3f",
        model_name,
        n_permutations,
        HEADLINE_METRIC,
        np.nanmean(null),
        np.nanstd(null),
    )
    written = schemas.write_table(out, out_path, "permutation")
    if work_dir is not None:  # the table is safe: the fits kept for a resume can go
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
    return written
