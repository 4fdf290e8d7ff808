"""Plots and tables of the HTML report (``snakemake --report``): evaluation and data quality.

Every function takes tables and writes one file atomically; lib/evaluate.py and the
``data-quality`` command call them. Curves are drawn on the headline rows (held-out
originals) only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from lib import schemas
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _plt()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _binary_truth_score(preds: pd.DataFrame, positive_label: str):
    from lib.evaluate import classes_of

    classes = classes_of(preds)
    pos = positive_label if positive_label in classes else classes[-1]
    return preds["label"].astype(str).to_numpy() == pos, preds[f"score_{pos}"].to_numpy(), pos


def plot_curves(by_model: dict[str, dict[int, pd.DataFrame]], path: Path, *,
                positive_label: str) -> None:  # fmt: skip
    """ROC and precision-recall curves per model on held-out originals: the mean curve over
    folds with a ±1 std band (binary; multi-class uses the positive-vs-rest score)."""
    from lib.evaluate import originals

    plt = _plt()
    models = sorted(by_model)
    fig, axes = plt.subplots(len(models), 2, figsize=(9, 3.3 * len(models)), squeeze=False)
    grid = np.linspace(0, 1, 101)
    for row, model in zip(axes, models):
        tprs, precs, aucs, aps = [], [], [], []
        pos = positive_label
        for fold, preds in sorted(by_model[model].items()):
            truth, score, pos = _binary_truth_score(originals(preds), positive_label)
            if truth.all() or not truth.any():
                continue
            fpr, tpr, _ = skm.roc_curve(truth, score)
            tprs.append(np.interp(grid, fpr, tpr))
            tprs[-1][0] = 0.0
            prec, rec, _ = skm.precision_recall_curve(truth, score)
            precs.append(np.interp(grid, rec[::-1], prec[::-1]))
            aucs.append(skm.roc_auc_score(truth, score))
            aps.append(skm.average_precision_score(truth, score))
            row[0].plot(fpr, tpr, color="grey", alpha=0.3, linewidth=0.8)
            row[1].plot(rec, prec, color="grey", alpha=0.3, linewidth=0.8)
        for ax, curves, values, name in ((row[0], tprs, aucs, "ROC-AUC"), (row[1], precs, aps, "AP")):
            if curves:
                mean, sd = np.mean(curves, axis=0), np.std(curves, axis=0)
                ax.plot(grid, mean, color="C0",
                        label=f"mean of {len(curves)} folds ({name} {np.mean(values):.2f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.2f})")  # fmt: skip
                ax.fill_between(grid, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1),
                                color="C0", alpha=0.2, label="± 1 std over folds")  # fmt: skip
            ax.legend(loc="lower right" if ax is row[0] else "lower left", fontsize=7)
        row[0].plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=0.8)
        row[0].set(title=f"{model}: ROC (originals, positive = {pos})",
                   xlabel="false positive rate", ylabel="true positive rate")  # fmt: skip
        row[1].set(title=f"{model}: precision-recall", xlabel="recall", ylabel="precision",
                   ylim=(0, 1.02))  # fmt: skip
    _save(fig, path)


def plot_confusions(confusions: pd.DataFrame, path: Path) -> None:
    """One confusion matrix per model (pooled out-of-fold originals), counts annotated."""
    plt = _plt()
    models = sorted(confusions["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        m = confusions[confusions["model"] == model].pivot(index="true", columns="pred",
                                                           values="count")  # fmt: skip
        ax.imshow(m.to_numpy(), cmap="Blues")
        for (i, j), v in np.ndenumerate(m.to_numpy()):
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(m.columns)), m.columns, rotation=45, fontsize=7)
        ax.set_yticks(range(len(m.index)), m.index, fontsize=7)
        ax.set(title=model, xlabel="predicted", ylabel="true")
    _save(fig, path)


def plot_nulls(nulls: dict[str, np.ndarray], summary: pd.DataFrame, path: Path) -> None:
    """Permutation null distribution of the headline metric per model, real score marked."""
    from lib.evaluate import HEADLINE_METRIC

    plt = _plt()
    models = sorted(nulls) or ["(no permutation test)"]
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3), squeeze=False)
    head = summary[summary["metric"] == HEADLINE_METRIC].set_index("model")
    for ax, model in zip(axes[0], models):
        if model not in nulls:
            ax.text(0.5, 0.5, "no permutation test configured", ha="center")
            continue
        ax.hist(nulls[model], bins=20, range=(0, 1), color="grey", label="null")
        real, p = head.loc[model, "mean"], head.loc[model, "p_value"]
        ax.axvline(real, color="C3", label=f"real {real:.3f}")
        ax.set(title=f"{model}: p = {p:.3g} (n = {len(nulls[model])})", xlabel=HEADLINE_METRIC,
               ylabel="permutations")  # fmt: skip
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_training_curves(prediction_paths, path: Path) -> None:
    """Training curves of deep models (``history.csv`` beside a fold's predictions: epoch,
    train_loss, val_loss, val_auc, ...); a placeholder figure when no model wrote one."""
    plt = _plt()
    histories = {}
    for p in map(Path, prediction_paths):
        h = p.parent / "history.csv"
        if h.exists():
            histories.setdefault(p.parent.parent.name, []).append(pd.read_csv(h))
    if not histories:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no deep model in this run: feature models have no training curve",
                ha="center", va="center")  # fmt: skip
        ax.axis("off")
        _save(fig, path)
        return
    fig, axes = plt.subplots(len(histories), 2, figsize=(9, 3 * len(histories)), squeeze=False)
    for row, (model, hs) in zip(axes, sorted(histories.items())):
        for k, h in enumerate(hs):
            for col in ("train_loss", "val_loss"):
                if col in h:
                    row[0].plot(h["epoch"], h[col], color="C0" if col == "train_loss" else "C1",
                                alpha=0.6, label=col if k == 0 else None)  # fmt: skip
            if "val_auc" in h:
                row[1].plot(h["epoch"], h["val_auc"], color="C2", alpha=0.6)
        row[0].set(title=f"{model}: loss per fold", xlabel="epoch")
        row[0].legend(fontsize=7)
        row[1].set(title=f"{model}: inner-validation ROC-AUC", xlabel="epoch")
    _save(fig, path)


def _fmt(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.3f}"


def evaluation_markdown(summary: pd.DataFrame, metrics: pd.DataFrame, robust: pd.DataFrame,
                        n_bootstrap: int) -> str:  # fmt: skip
    """The evaluation report: headline table with spread, interval and p-value; robustness."""
    from lib.evaluate import HEADLINE_METRIC

    n_folds = metrics["fold"].nunique()
    lines = ["# Evaluation", "",
             f"Headline: held-out **original** videos only (one row per video), {n_folds} folds "
             "grouped by duplicate group. Per metric: mean ± sample std over folds, the value "
             f"pooled over all folds, and its 95% interval from {n_bootstrap} bootstrap "
             "resamples of duplicate groups. p: permutation test of the mean fold ROC-AUC "
             "(group labels permuted, same folds and training).", "",
             "| model | metric | mean ± std | pooled | 95% CI | p | null mean |", "|---" * 7 + "|"]  # fmt: skip
    for r in summary.itertuples():
        p = f"{r.p_value:.4f}" if np.isfinite(r.p_value) else ""
        lines.append(f"| {r.model} | {r.metric} | {r.mean:.3f} ± {r.std:.3f} | {_fmt(r.pooled)} | "
                     f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | {p} | {_fmt(r.null_mean)} |")  # fmt: skip
    lines += ["", "## Robustness (augmented held-out clips; not part of the headline)", "",
              f"{HEADLINE_METRIC} and accuracy per augmentation type, pooled over folds.", "",
              "| model | augmentation | clips | roc_auc | accuracy |", "|---" * 5 + "|"]  # fmt: skip
    wide = robust.pivot_table(index=["model", "augmentation", "n_clips"], columns="metric",
                              values="value").reset_index()  # fmt: skip
    for r in wide.itertuples():
        lines.append(f"| {r.model} | {r.augmentation} | {r.n_clips} | {_fmt(r.roc_auc)} | "
                     f"{_fmt(r.accuracy)} |")  # fmt: skip
    lines += ["", "![ROC and PR curves](curves.png)", "", "![Permutation nulls](permutation_null.png)", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------- data quality
def data_quality(manifest_path, download_path, videos_path, out_table, out_failures,
                 out_plot) -> pd.DataFrame:  # fmt: skip
    """Data quality: per label and platform, videos listed/downloaded/valid and median
    resolution, fps, duration (``out_table``); failures by stage and reason code
    (``out_failures``); a figure of both (``out_plot``)."""
    manifest = schemas.read_table(manifest_path, "manifest")
    download = schemas.read_table(download_path, "download")
    videos = schemas.read_table(videos_path, "videos")
    rows = []
    for (label, platform), m in manifest.groupby(["label", "platform"], sort=True):
        d = download[(download["label"] == label) & (download["platform"] == platform)]
        v = videos[(videos["label"] == label) & (videos["platform"] == platform)]
        ok = v[v["valid"]]
        rows.append({"label": label, "platform": platform or "unknown", "listed": len(m),
                     "downloaded": int((d["status"] == "ok").sum()), "valid": int(ok["valid"].sum()),
                     "median_width": ok["width"].median(), "median_height": ok["height"].median(),
                     "median_fps": ok["fps"].median(), "median_duration_s": ok["duration_s"].median()})  # fmt: skip
    table = pd.DataFrame(rows)
    failures = pd.concat([
        download.loc[download["status"] == "failed", "reason"].rename("reason").to_frame().assign(stage="download"),
        videos.loc[~videos["valid"], "reason"].rename("reason").to_frame().assign(stage="validate"),
    ])  # fmt: skip
    failures["reason"] = failures["reason"].astype(str).str.split(":").str[0]
    by_reason = failures.groupby(["stage", "reason"]).size().rename("count").reset_index()
    for frame, out in ((table, out_table), (by_reason, out_failures)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False)
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    ok = videos[videos["valid"]].assign(group=lambda v: v["label"] + "/" + v["platform"])
    for ax, col, title in zip(axes[:3], ("height", "fps", "duration_s"),
                              ("frame height (px)", "fps", "duration (s)")):  # fmt: skip
        names = sorted(ok["group"].unique())
        ax.boxplot([ok.loc[ok["group"] == n, col].dropna() for n in names], tick_labels=names)
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.set(title=f"{title} by label/platform")
    if len(by_reason):
        labels = by_reason["stage"] + ": " + by_reason["reason"]
        axes[3].barh(labels, by_reason["count"], color="C3")
        axes[3].tick_params(axis="y", labelsize=7)
    axes[3].set(title=f"failures by reason ({int(by_reason['count'].sum()) if len(by_reason) else 0})")
    _save(fig, Path(out_plot))
    return table
