"""Metrics per (model, fold) at clip and video level, their mean ± std, and a report.

Clip level scores every held-out clip (originals and augmentations); its metrics keep the
plain names (``accuracy``, ``roc_auc``, ...). Video level averages the per-class scores of a
video's clips, grouped on the explicit ``video_id``, and predicts the best class of that
average; its metrics are prefixed ``video_`` (``video_roc_auc``). Binary problems report precision/recall/F1 of the positive
class and ROC-AUC of its score; multi-class ones report macro averages and one-vs-rest AUC.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from lib import schemas
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
LEVEL_PREFIX = {"clip": "", "video": "video_"}


def score_columns(predictions: pd.DataFrame) -> list[str]:
    return [c for c in predictions.columns if c.startswith("score_")]


def classification_metrics(labels, scores: np.ndarray, classes: list[str],
                           positive_label: str) -> dict[str, float]:  # fmt: skip
    """Accuracy, precision, recall, F1 and ROC-AUC from per-class scores (n, n_classes)."""
    labels = np.asarray(labels).astype(str)
    pred = np.asarray(classes)[scores.argmax(axis=1)]
    out = {"accuracy": skm.accuracy_score(labels, pred)}
    if len(classes) == 2:
        pos = positive_label if positive_label in classes else classes[1]
        kw = {"average": "binary", "pos_label": pos, "zero_division": 0}
        auc_score = scores[:, classes.index(pos)]
        out["roc_auc"] = (skm.roc_auc_score(labels == pos, auc_score)
                          if len(set(labels)) == 2 else float("nan"))  # fmt: skip
    else:
        kw = {"average": "macro", "labels": classes, "zero_division": 0}
        present = set(labels) == set(classes)
        out["roc_auc"] = (skm.roc_auc_score(labels, scores, multi_class="ovr", labels=classes)
                          if present else float("nan"))  # fmt: skip
    out["precision"] = skm.precision_score(labels, pred, **kw)
    out["recall"] = skm.recall_score(labels, pred, **kw)
    out["f1"] = skm.f1_score(labels, pred, **kw)
    return {m: float(out[m]) for m in METRICS}


def video_level(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per video: its label and the mean per-class scores of its clips."""
    cols = score_columns(predictions)
    grouped = predictions.groupby("video_id", sort=True)
    return grouped[cols].mean().join(grouped["label"].first()).reset_index()


def fold_metrics(predictions: pd.DataFrame, *, positive_label: str) -> dict[str, dict]:
    """Metrics of one fold's predictions at clip and video level."""
    cols = score_columns(predictions)
    classes = [c.removeprefix("score_") for c in cols]
    videos = video_level(predictions)
    return {
        "clip": classification_metrics(predictions["label"], predictions[cols].to_numpy(),
                                       classes, positive_label),
        "video": classification_metrics(videos["label"], videos[cols].to_numpy(),
                                        classes, positive_label),
    }  # fmt: skip


def evaluate(
    prediction_paths: list[str | Path],
    metrics_path: str | Path,
    summary_path: str | Path,
    report_dir: str | Path,
    *,
    positive_label: str = "fake",
    config: dict | None = None,
) -> pd.DataFrame:
    """Metrics of every (model, fold), their mean ± std over folds, a report and plots.

    Paths must look like ``.../models/<model>/fold-<k>/predictions.csv``. The report
    (``report_dir/evaluation.md``, ``roc.png``, ``resolved_config.json``) records the
    configuration and seed the results came from.
    """
    rows, pooled = [], {}
    for path in prediction_paths:
        path = Path(path)
        model, fold = path.parent.parent.name, int(path.parent.name.removeprefix("fold-"))
        preds = schemas.read_table(path, "predictions")
        for level, values in fold_metrics(preds, positive_label=positive_label).items():
            rows += [{"model": model, "fold": fold, "metric": LEVEL_PREFIX[level] + m, "value": v}
                     for m, v in values.items()]  # fmt: skip
        pooled.setdefault(model, []).append(preds)
    metrics = pd.DataFrame(rows).sort_values(["model", "metric", "fold"], kind="stable")
    metrics = schemas.write_table(metrics, metrics_path, "metrics")
    summary = (metrics.groupby(["model", "metric"], sort=True)["value"]
               .agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
               .reset_index())  # fmt: skip
    summary = schemas.write_table(summary, summary_path, "summary")
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_roc({m: pd.concat(p) for m, p in pooled.items()}, report_dir / "roc.png",
             positive_label=positive_label)  # fmt: skip
    atomic_write_text(report_dir / "resolved_config.json",
                      json.dumps(config or {}, indent=2, sort_keys=True, default=str))  # fmt: skip
    atomic_write_text(report_dir / "evaluation.md", summary_markdown(summary, metrics))
    return summary


def summary_markdown(summary: pd.DataFrame, metrics: pd.DataFrame) -> str:
    """The evaluation report: mean ± std per model and level, folds counted."""
    n_folds = metrics["fold"].nunique()
    lines = ["# Evaluation", "",
             f"Out-of-fold metrics over {n_folds} folds grouped by duplicate group "
             "(mean ± sample std over folds). `shuffled_control` is trained on permuted "
             "labels: a real model must clearly beat it.", ""]  # fmt: skip
    for level, prefix in LEVEL_PREFIX.items():
        lines += [f"## {level.capitalize()} level", "", "| model | " + " | ".join(METRICS) + " |",
                  "|---" * (len(METRICS) + 1) + "|"]  # fmt: skip
        for model, m in summary.groupby("model", sort=True):
            cells = {r.metric: f"{r.mean:.3f} ± {r.std:.3f}" for r in m.itertuples()}
            lines.append(f"| {model} | " + " | ".join(cells.get(prefix + k, "") for k in METRICS) + " |")
        lines.append("")
    lines += ["![ROC curves](roc.png)", ""]
    return "\n".join(lines)


def plot_roc(pooled: dict[str, pd.DataFrame], path: Path, *, positive_label: str) -> None:
    """Pooled out-of-fold ROC curves, one per model, clip and video level side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, level in zip(axes, ("clip", "video")):
        for model, preds in sorted(pooled.items()):
            table = preds if level == "clip" else video_level(preds)
            cols = score_columns(preds)
            classes = [c.removeprefix("score_") for c in cols]
            pos = positive_label if positive_label in classes else classes[-1]
            truth = table["label"].astype(str) == pos
            if truth.nunique() < 2:
                continue
            fpr, tpr, _ = skm.roc_curve(truth, table[f"score_{pos}"])
            auc = skm.auc(fpr, tpr)
            ax.plot(fpr, tpr, label=f"{model} (AUC {auc:.2f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"{level} level, positive = {pos}", xlabel="false positive rate",
               ylabel="true positive rate")  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
