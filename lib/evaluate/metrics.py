"""Evaluation: headline metrics on held-out original videos, intervals, p-values, robustness.

The headline scores the held-out fold's *original* videos only: the clip with
``aug_idx == -1``, one row per video. Augmented clips are our own re-encodes; they differ
from originals in exactly the compression features the models use, so they are scored
apart, per augmentation type, in the robustness table (``robustness.csv``), never in the
headline.

Per model, ``summary.csv`` gives for every headline metric: the mean ± sample std over folds,
the value pooled over all out-of-fold originals, a 95% interval from a bootstrap over
duplicate groups (groups resampled with replacement, not videos: near-duplicates move
together), and, for the headline statistic (mean over folds of ROC-AUC), the permutation
test's p-value and null mean. One tested function per metric family:
:func:`threshold_metrics`, :func:`ranking_metrics`, :func:`brier_score`,
:func:`multiclass_metrics`, :func:`confusion`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import polars as pl

from lib import schemas
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

#: The metric the permutation test's null distribution is built on.
HEADLINE_METRIC = "roc_auc"
BINARY_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "eer",
    "brier",
)
MULTICLASS_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "top_5",
    "roc_auc",
    "pr_auc",
    "brier",
)


# --------------------------------------------------------------------------- metric families
# Written on numpy (checked against scikit-learn in tests/test_evaluate.py): the group
# bootstrap evaluates every metric once per resample and model, where scikit-learn's input
# validation alone costs more than the arithmetic.
def _confusion_counts(labels, pred, classes: list[str]) -> np.ndarray:
    t, p = _positions(labels, classes), _positions(pred, classes)
    if (t < 0).any() or (p < 0).any():
        raise ValueError(f"labels or predictions outside the classes {classes}")
    k = len(classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _positions(values, classes: list[str]) -> np.ndarray:
    """Index of each value in ``classes`` (-1 when absent)."""
    values = np.asarray(values).astype(str)
    names = np.asarray(classes, dtype=str)
    if len(names) == 0:
        return np.full(len(values), -1, dtype=np.intp)
    order = np.argsort(names, kind="stable")
    at = np.searchsorted(names[order], values).clip(max=len(names) - 1)
    return np.where(names[order][at] == values, order[at], -1).astype(np.intp)


def _ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def threshold_metrics(labels, pred, classes: list[str], positive_label: str) -> dict[str, float]:
    """Accuracy, balanced accuracy, precision, recall, F1 of hard predictions.

    Binary: precision/recall/F1 of ``positive_label``; multi-class: macro averages over
    ``classes`` (F1 is then macro-F1, accuracy top-1). Undefined ratios count 0, as
    scikit-learn's ``zero_division=0``; balanced accuracy averages recall over the classes
    present in ``labels``.
    """
    cm = _confusion_counts(labels, pred, classes)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    if len(classes) == 2:
        j = classes.index(positive_label) if positive_label in classes else 1
        p, r, f = precision[j], recall[j], f1[j]
    else:
        p, r, f = precision.mean(), recall.mean(), f1.mean()
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
    }


def _roc_points(truth: np.ndarray, score: np.ndarray):
    """(fpr, tpr, tp, fp) at every distinct threshold, highest first, starting at (0, 0)."""
    order = np.argsort(-score, kind="mergesort")
    score, truth = score[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # end of each tie block
    tp = np.cumsum(truth)[last]
    fp = (last + 1) - tp
    tp, fp = np.r_[0, tp], np.r_[0, fp]
    return fp / fp[-1], tp / tp[-1], tp, fp


def equal_error_rate(truth, score) -> float:
    """The error rate where false positive and false negative rates meet (linear
    interpolation between ROC points)."""
    fpr, tpr, _, _ = _roc_points(np.asarray(truth, dtype=bool), np.asarray(score, dtype=float))
    fnr = 1 - tpr
    i = int(np.flatnonzero(fnr <= fpr)[0])  # fnr falls, fpr rises along the curve
    if i == 0:
        return float(fpr[0])
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def ranking_metrics(truth, score) -> dict[str, float]:
    """ROC-AUC (ties count half), PR-AUC (average precision, as scikit-learn's) and EER of a
    binary score; NaN when ``truth`` holds one class only."""
    truth, score = np.asarray(truth, dtype=bool), np.asarray(score, dtype=float)
    if truth.all() or not truth.any():
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "eer": float("nan")}
    fpr, tpr, tp, fp = _roc_points(truth, score)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    precision = tp[1:] / (tp[1:] + fp[1:])
    ap = float(np.sum(np.diff(tpr) * precision))
    return {"roc_auc": auc, "pr_auc": ap, "eer": equal_error_rate(truth, score)}


def brier_score(labels, scores: np.ndarray, classes: list[str]) -> float:
    """Mean squared error of the class probabilities against one-hot truth.

    Binary: scikit-learn's Brier score of the second class's probability (the same number
    for either class); multi-class: the mean over rows of the sum over classes (range 0–2).
    """
    labels = np.asarray(labels).astype(str)
    onehot = (labels[:, None] == np.asarray(classes)[None, :]).astype(float)
    if len(classes) == 2:
        return float(np.mean((scores[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean(np.sum((scores - onehot) ** 2, axis=1)))


def multiclass_metrics(labels, scores: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Top-5 accuracy, one-vs-rest ROC-AUC and PR-AUC averaged over the classes present.

    A class absent from ``labels`` (common in a fold of a many-class corpus) is left out of
    the averages instead of making them NaN; the AUCs are NaN only when fewer than two
    classes are present at all.
    """
    labels = np.asarray(labels).astype(str)
    k = min(5, len(classes))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    idx = _positions(labels, classes)
    out = {"top_5": float(np.mean((top == idx[:, None]).any(axis=1)))}
    present = [j for j, c in enumerate(classes) if (labels == c).any() and (labels != c).any()]
    if not present:
        return {**out, "roc_auc": float("nan"), "pr_auc": float("nan")}
    per_class = [ranking_metrics(labels == classes[j], scores[:, j]) for j in present]
    return {
        **out,
        "roc_auc": float(np.mean([m["roc_auc"] for m in per_class])),
        "pr_auc": float(np.mean([m["pr_auc"] for m in per_class])),
    }


def confusion(labels, pred, classes: list[str]) -> pl.DataFrame:
    """Confusion matrix as a table: column ``true`` the true class, then one column of
    counts per predicted class."""
    m = _confusion_counts(labels, pred, classes)
    return pl.DataFrame({"true": classes, **{c: m[:, j] for j, c in enumerate(classes)}})


def headline_metrics(
    labels, scores: np.ndarray, classes: list[str], positive_label: str
) -> dict[str, float]:
    """Every headline metric of one set of rows, from per-class scores (n, n_classes)."""
    labels = np.asarray(labels).astype(str)
    pred = np.asarray(classes)[scores.argmax(axis=1)]
    if len(classes) == 2:
        pos = positive_label if positive_label in classes else classes[1]
        out = threshold_metrics(labels, pred, classes, pos)
        out.update(ranking_metrics(labels == pos, scores[:, classes.index(pos)]))
        out["brier"] = brier_score(labels, scores, classes)
        return {m: out[m] for m in BINARY_METRICS}
    out = threshold_metrics(labels, pred, classes, positive_label)
    out.update(multiclass_metrics(labels, scores, classes))
    out["brier"] = brier_score(labels, scores, classes)
    return {m: out[m] for m in MULTICLASS_METRICS}


# --------------------------------------------------------------------------- what is scored
def score_columns(predictions: pl.DataFrame) -> list[str]:
    return [c for c in predictions.columns if c.startswith("score_")]


def classes_of(predictions: pl.DataFrame) -> list[str]:
    return [c.removeprefix("score_") for c in score_columns(predictions)]


def originals(predictions: pl.DataFrame, *, unique: bool = True) -> pl.DataFrame:
    """The headline rows: each held-out video's original clip (``aug_idx == -1``).

    Raises ValueError when a video has more than one original row (a broken contract),
    unless ``unique`` is False (window-level rows: several windows per video).
    """
    out = predictions.filter(pl.col("aug_idx") == -1)
    dup = out["video_id"].is_duplicated()
    if unique and dup.any():
        raise ValueError(
            f"videos with several original clips: {out['video_id'].filter(dup).unique(maintain_order=True).to_list()[:5]}"
        )
    return out.sort("video_id", maintain_order=True)


#: How a clip's windows' class probabilities make its score (``evaluate.window_aggregation``).
WINDOW_AGGREGATIONS = {"mean": pl.mean, "median": pl.median, "max": pl.max}


def aggregate_windows(predictions: pl.DataFrame, *, aggregation: str) -> pl.DataFrame:
    """One row per clip from predictions scored as several temporal windows (a ``window``
    column, one row per window, ``clip_id`` written ``<clip_id>#<window>``: ids stay
    unique); predictions without it are returned unchanged.

    Each class probability is aggregated over the clip's windows (``aggregation``: mean,
    median or max of :data:`WINDOW_AGGREGATIONS`), then renormalised to sum to one (median
    and max do not keep the sum); ``score`` follows the same rule on its column, ``pred`` is
    the class of the highest aggregated probability. Other columns keep the first window's
    value; the ``window`` column is dropped.
    """
    if "window" not in predictions.columns:
        return predictions
    if aggregation not in WINDOW_AGGREGATIONS:
        raise ValueError(
            f"evaluate.window_aggregation={aggregation!r}: use one of {sorted(WINDOW_AGGREGATIONS)}"
        )
    agg, cols = WINDOW_AGGREGATIONS[aggregation], score_columns(predictions)
    rest = [c for c in predictions.columns if c not in {*cols, "score", "window", "clip_id"}]
    clip = pl.col("clip_id").str.replace(r"#[^#]*$", "")
    out = (
        predictions.with_columns(clip)
        .group_by("clip_id", maintain_order=True)
        .agg(*[pl.col(c).first() for c in rest], *[agg(c) for c in [*cols, "score"]])
    )
    total = pl.sum_horizontal(cols)
    out = out.with_columns(
        (pl.col("score") / total).alias("score"), *[(pl.col(c) / total).alias(c) for c in cols]
    )
    classes = np.asarray(classes_of(predictions))
    pred = classes[out.select(cols).to_numpy().argmax(axis=1)] if len(out) else []
    return out.with_columns(pred=pl.Series(pred, dtype=pl.String)).select(
        [c for c in predictions.columns if c != "window"]
    )


def table_metrics(table: pl.DataFrame, positive_label: str) -> dict[str, float]:
    cols = score_columns(table)
    return headline_metrics(
        table["label"].to_numpy(), table.select(cols).to_numpy(), classes_of(table), positive_label
    )


def headline_value(table: pl.DataFrame, positive_label: str) -> float:
    """``HEADLINE_METRIC`` of one set of rows (ROC-AUC; one-vs-rest over present classes)."""
    classes = classes_of(table)
    scores = table.select(score_columns(table)).to_numpy()
    labels = table["label"].cast(pl.String).to_numpy()
    if len(classes) == 2:
        pos = positive_label if positive_label in classes else classes[1]
        return ranking_metrics(labels == pos, scores[:, classes.index(pos)])["roc_auc"]
    return multiclass_metrics(labels, scores, classes)["roc_auc"]


def headline_statistic(by_fold: dict[int, pl.DataFrame], *, positive_label: str) -> float:
    """Mean over folds of the originals-only ``HEADLINE_METRIC`` (as permutation_test_score
    averages its fold scores); the permutation test computes the same for its null."""
    values = [headline_value(originals(p), positive_label) for p in by_fold.values()]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def permutation_p_value(real: float, null: np.ndarray) -> float:
    """(1 + #null ≥ real) / (1 + n): the p-value of permutation_test_score."""
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if not np.isfinite(real) or len(null) == 0:
        return float("nan")
    return float((1 + np.sum(null >= real)) / (1 + len(null)))


def group_bootstrap(
    groups, metric_fn, *, n_boot: int, random_state: int, level: float = 0.95
) -> pl.DataFrame:
    """Percentile interval of every metric of ``metric_fn(rows)`` over group resamples.

    ``groups``: the group of each row; ``metric_fn(rows)`` gets an integer array of row
    positions (repeats included) and returns a dict of metrics.

    Each resample draws as many groups as there are, with replacement, and takes every row
    of each drawn group (a group drawn twice counts twice). Resamples where a metric is
    undefined (e.g. one class only) are left out of that metric's interval.
    Returns a frame of ``metric``, ``ci_low``, ``ci_high`` (metrics in ``metric_fn``'s order).
    """
    groups = np.asarray(groups)
    uniques, codes = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(len(uniques))]
    rng = np.random.default_rng(random_state)
    draws = []
    for _ in range(n_boot):
        picked = rng.integers(0, len(members), size=len(members))
        rows = np.concatenate([members[g] for g in picked])
        draws.append(metric_fn(rows))
    alpha = (1 - level) / 2
    names = list(dict.fromkeys(k for d in draws for k in d))
    low, high = [], []
    for name in names:  # linear-interpolated percentiles of the defined draws
        values = np.asarray([d.get(name, np.nan) for d in draws], dtype=float)
        values = values[~np.isnan(values)]
        low.append(float(np.quantile(values, alpha)) if len(values) else float("nan"))
        high.append(float(np.quantile(values, 1 - alpha)) if len(values) else float("nan"))
    return pl.DataFrame(
        {"metric": names, "ci_low": low, "ci_high": high},
        schema={"metric": pl.String, "ci_low": pl.Float64, "ci_high": pl.Float64},
    )


def augmentation_type(description: str) -> str:
    """The augmentation type of a clips.csv ``augmentation`` value (JSON with ``name``)."""
    try:
        return str(json.loads(description)["name"])
    except (ValueError, TypeError, KeyError):
        return description or "unknown"


def robustness(
    pooled: pl.DataFrame, clips: pl.DataFrame, *, model: str, positive_label: str
) -> pl.DataFrame:
    """Metrics of held-out clips per augmentation type (pooled over folds), originals first
    as the reference row ``none (original)``. Never part of the headline."""
    aug = {
        c: augmentation_type(a)
        for c, a in zip(clips["clip_id"].to_list(), clips["augmentation"].to_list())
    }
    kind = [
        ("none (original)" if k == -1 else aug.get(c, "unknown"))
        for c, k in zip(pooled["clip_id"].to_list(), pooled["aug_idx"].to_list())
    ]
    table = pooled.with_columns(augmentation=pl.Series(kind, dtype=pl.String))
    rows = metrics_per(
        table, "augmentation", model=model, positive_label=positive_label, count="n_clips"
    )
    return pl.DataFrame(rows, schema=ROBUSTNESS_SCHEMA)


def metrics_per(
    table: pl.DataFrame, column: str, *, model: str, positive_label: str, count: str = "n_videos"
) -> list[dict]:
    """:func:`table_metrics` of ``table``'s rows per value of ``column`` (by value; an empty
    one is ``unknown``): rows ``model, <column>, metric, value, <count>`` (rows scored)."""
    rows = []
    for (name,), part in table.sort(column, maintain_order=True).group_by(
        column, maintain_order=True
    ):
        for metric, value in table_metrics(part, positive_label).items():
            rows.append(
                {"model": model, column: name or "unknown", "metric": metric, "value": value}
                | {count: len(part)}
            )
    return rows


#: Columns of the robustness table (one row per model, augmentation type and metric).
ROBUSTNESS_SCHEMA = {
    "model": pl.String,
    "augmentation": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "n_clips": pl.Int64,
}
