"""Plots and tables of the HTML report (``snakemake --report``): evaluation and data quality.

Every function takes tables and writes one file atomically; lib/evaluate/evaluation.py and
the ``data-quality`` command call them. Curves are drawn on the headline rows (held-out
originals) only.

Tables are polars; matplotlib and scikit-learn get numpy arrays.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from sklearn import metrics as skm

from lib import schemas
from lib.evaluate.metrics import HEADLINE_METRIC, classes_of, originals
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize, squeeze: bool = True):
    """A figure and its axes, without pyplot: figures here are only written to files, so no
    backend or global figure list is involved."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def _binary_truth_score(preds: pl.DataFrame, positive_label: str):
    classes = classes_of(preds)
    pos = positive_label if positive_label in classes else classes[-1]
    return preds["label"].cast(pl.String).to_numpy() == pos, preds[f"score_{pos}"].to_numpy(), pos


def plot_curves(
    by_model: dict[str, dict[int, pl.DataFrame]], path: Path, *, positive_label: str
) -> None:
    """ROC and precision-recall curves per model on held-out originals: the mean curve over
    folds with a ±1 std band (binary; multi-class uses the positive-vs-rest score)."""
    models = sorted(by_model)
    fig, axes = _subplots(len(models), 2, figsize=(9, 3.3 * len(models)), squeeze=False)
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
        for ax, curves, values, name in (
            (row[0], tprs, aucs, "ROC-AUC"),
            (row[1], precs, aps, "AP"),
        ):
            if curves:
                mean, sd = np.mean(curves, axis=0), np.std(curves, axis=0)
                ax.plot(
                    grid,
                    mean,
                    color="C0",
                    label=f"mean of {len(curves)} folds ({name} {np.mean(values):.2f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.2f})",
                )
                ax.fill_between(
                    grid,
                    np.clip(mean - sd, 0, 1),
                    np.clip(mean + sd, 0, 1),
                    color="C0",
                    alpha=0.2,
                    label="± 1 std over folds",
                )
            ax.legend(loc="lower right" if ax is row[0] else "lower left", fontsize=7)
        row[0].plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=0.8)
        row[0].set(
            title=f"{model}: ROC (originals, positive = {pos})",
            xlabel="false positive rate",
            ylabel="true positive rate",
        )
        row[1].set(
            title=f"{model}: precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.02)
        )
    _save(fig, path)


def plot_confusions(confusions: pl.DataFrame, path: Path) -> None:
    """One confusion matrix per model (pooled out-of-fold originals), counts annotated."""
    models = sorted(confusions["model"].unique().to_list())
    fig, axes = _subplots(1, len(models), figsize=(3.2 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        m = (
            confusions.filter(pl.col("model") == model)
            .pivot(on="pred", index="true", values="count", sort_columns=True)
            .sort("true")
        )
        rows, cols = m["true"].to_list(), m.columns[1:]
        counts = m.select(cols).to_numpy()
        ax.imshow(counts, cmap="Blues")
        for (i, j), v in np.ndenumerate(counts):
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(cols)), cols, rotation=45, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set(title=model, xlabel="predicted", ylabel="true")
    _save(fig, path)


def plot_nulls(nulls: dict[str, np.ndarray], summary: pl.DataFrame, path: Path) -> None:
    """Permutation null distribution of the headline metric per model, real score marked."""
    models = sorted(nulls) or ["(no permutation test)"]
    fig, axes = _subplots(1, len(models), figsize=(3.4 * len(models), 3), squeeze=False)
    head = {
        r["model"]: r
        for r in summary.filter(pl.col("metric") == HEADLINE_METRIC).iter_rows(named=True)
    }
    for ax, model in zip(axes[0], models):
        if model not in nulls:
            ax.text(0.5, 0.5, "no permutation test configured", ha="center")
            continue
        ax.hist(nulls[model], bins=20, range=(0, 1), color="grey", label="null")
        real, p = head[model]["mean"], head[model]["p_value"]
        ax.axvline(real, color="C3", label=f"real {real:.3f}")
        ax.set(
            title=f"{model}: p = {p:.3g} (n = {len(nulls[model])})",
            xlabel=HEADLINE_METRIC,
            ylabel="permutations",
        )
        ax.legend(fontsize=7)
    _save(fig, path)


def _histories(prediction_paths) -> dict[str, list[tuple[str, pl.DataFrame]]]:
    """Deep models' ``history.csv`` files (beside a fold's predictions), per model: (fold, table)."""
    histories: dict[str, list[tuple[str, pl.DataFrame]]] = {}
    for p in map(Path, prediction_paths):
        h = p.parent / "history.csv"
        if h.exists():
            table = pl.read_csv(h, schema_overrides={"warnings": pl.String})
            histories.setdefault(p.parent.parent.name, []).append((p.parent.name, table))
    return histories


def training_warnings(prediction_paths) -> pl.DataFrame:
    """Every epoch of a deep model whose ``history.csv`` row carries a warning (loss exactly 0,
    constant logits, vanishing gradients, frozen weights): model, fold, epoch, warnings."""
    rows = [
        {"model": model, "fold": fold, "epoch": int(r["epoch"]), "warnings": r["warnings"]}
        for model, hs in _histories(prediction_paths).items()
        for fold, h in hs
        if "warnings" in h.columns
        for r in h.filter(pl.col("warnings").fill_null("") != "").iter_rows(named=True)
    ]
    return pl.DataFrame(
        rows,
        schema={"model": pl.String, "fold": pl.String, "epoch": pl.Int64, "warnings": pl.String},
    ).sort("model", "fold", "epoch")


def plot_training_curves(prediction_paths, path: Path) -> None:
    """Training curves of deep models (``history.csv`` beside a fold's predictions: epoch,
    train_loss, val_loss, val_auc, ...), epochs with a warning marked by a red cross; a
    placeholder figure when no model wrote one."""
    histories = _histories(prediction_paths)
    if not histories:
        fig, ax = _subplots(figsize=(6, 1.5))
        ax.text(
            0.5,
            0.5,
            "no deep model in this run: feature models have no training curve",
            ha="center",
            va="center",
        )
        ax.axis("off")
        _save(fig, path)
        return
    fig, axes = _subplots(len(histories), 2, figsize=(9, 3 * len(histories)), squeeze=False)
    for row, (model, hs) in zip(axes, sorted(histories.items())):
        n_warned = 0
        for k, (_, h) in enumerate(hs):
            for col in ("train_loss", "val_loss"):
                if col in h.columns:
                    row[0].plot(
                        h["epoch"].to_numpy(),
                        h[col].to_numpy(),
                        color="C0" if col == "train_loss" else "C1",
                        alpha=0.6,
                        label=col if k == 0 else None,
                    )
            if "val_auc" in h.columns:
                row[1].plot(h["epoch"].to_numpy(), h["val_auc"].to_numpy(), color="C2", alpha=0.6)
            if "warnings" in h.columns:
                warned = h.filter(pl.col("warnings").fill_null("") != "")
                if len(warned):
                    row[0].plot(
                        warned["epoch"].to_numpy(),
                        warned["train_loss"].to_numpy(),
                        "x",
                        color="C3",
                        markersize=9,
                        label="warning" if not n_warned else None,
                    )
                n_warned += len(warned)
        title = f"{model}: loss per fold"
        if n_warned:
            title += f" ({n_warned} epochs warned: see evaluation.md)"
        row[0].set_title(title, color="C3" if n_warned else "black")
        row[0].set(xlabel="epoch")
        row[0].legend(fontsize=7)
        row[1].set(title=f"{model}: inner-validation ROC-AUC", xlabel="epoch")
    _save(fig, path)


def plot_pretrain_history(history: pl.DataFrame, path: Path, *, transductive: bool) -> None:
    """Self-supervised pretraining (``pretrain_history``: run, epoch, loss, lr, rss_mb...):
    the reconstruction loss per epoch of every run, and its learning rate. ``transductive``
    (``pretrain.scope: corpus``) says so in the title: the evaluated folds' videos were seen,
    without their labels."""
    fig, (ax, ax_lr) = _subplots(1, 2, figsize=(9, 3.2))
    for k, (run, h) in enumerate(sorted(history.group_by("run"), key=lambda g: str(g[0][0]))):
        h = h.sort("epoch")
        x = h["epoch"].to_numpy()
        ax.plot(x, h["loss"].to_numpy(), marker=".", color=f"C{k}", label=str(run[0]))
        ax_lr.plot(x, h["lr"].to_numpy(), color=f"C{k}")
    scope = (
        "every valid video, evaluated folds included (transductive)"
        if transductive
        else "each fold's training videos only"
    )
    ax.set_title(f"VideoMAE pretraining: {scope}", fontsize=9, color="C3" if transductive else "k")
    ax.set(xlabel="epoch", ylabel="masked-patch reconstruction loss")
    ax.legend(fontsize=7)
    ax_lr.set(title="learning rate (last step of the epoch)", xlabel="epoch")
    _save(fig, path)


def _fmt(v: float | None) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:.3f}"


def evaluation_markdown(
    summary: pl.DataFrame,
    metrics: pl.DataFrame,
    robust: pl.DataFrame,
    n_bootstrap: int,
    warnings: pl.DataFrame | None = None,
    sections: tuple[str, ...] = (),
) -> str:
    """The evaluation report: headline table with spread, interval and p-value (every
    protocol and level, kfold's first); ``sections`` (markdown, e.g. the generalisation
    section of :mod:`lib.evaluate.generalisation`, or a test corpus's) after it; robustness;
    the deep models' training warnings (:func:`training_warnings`), if any."""
    kfold = metrics.filter(pl.col("protocol") == "kfold") if "protocol" in metrics else metrics
    n_folds = kfold["fold"].n_unique()
    lines = [
        "# Evaluation",
        "",
        f"Headline: held-out **original** videos only (one row per video), {n_folds} folds "
        "grouped by duplicate group. Per metric: mean ± sample std over folds, the value "
        f"pooled over all folds, and its 95% interval from {n_bootstrap} bootstrap "
        "resamples of duplicate groups. p: permutation test of the mean fold ROC-AUC "
        "(group labels permuted, same folds and training). Every model sees the same folds, "
        "and the deep models the same inner split too, so their scores are correlated: "
        "models that agree are closer to one observation than to several.",
        "",
        "Protocol kfold is the headline; other protocols' mean ± std is over their splits. "
        "Level window: every temporal window of a video scored on its own; level video: its "
        "windows' probabilities aggregated (column aggregation) or its one clip. Frames: "
        "what a deep model read per clip.",
        "",
        "| model | protocol | level | frames | metric | mean ± std | pooled | 95% CI | p | null mean |",
        "|---" * 10 + "|",
    ]
    for r in summary.iter_rows(named=True):
        p = f"{r['p_value']:.4f}" if np.isfinite(r["p_value"]) else ""
        level = f"{r['level']} ({r['aggregation']})" if r["aggregation"] else r["level"]
        frames = "" if not np.isfinite(r["frames_per_video"]) else f"{r['frames_per_video']:.0f}"
        lines.append(
            f"| {r['model']} | {r['protocol']} | {level} | {frames} | {r['metric']} | "
            f"{r['mean']:.3f} ± {r['std']:.3f} | "
            f"{_fmt(r['pooled'])} | [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {p} | "
            f"{_fmt(r['null_mean'])} |"
        )
    for section in sections:
        lines += ["", section]
    lines += [
        "",
        "## Robustness (augmented held-out clips; not part of the headline)",
        "",
        f"{HEADLINE_METRIC} and accuracy per augmentation type, pooled over folds.",
        "",
        "| model | augmentation | clips | roc_auc | accuracy |",
        "|---" * 5 + "|",
    ]
    wide = {}
    for r in robust.sort(["model", "augmentation", "n_clips"], maintain_order=True).iter_rows(
        named=True
    ):
        wide.setdefault((r["model"], r["augmentation"], r["n_clips"]), {})[r["metric"]] = r["value"]
    for (model, augmentation, n_clips), values in wide.items():
        lines.append(
            f"| {model} | {augmentation} | {n_clips} | {_fmt(values.get('roc_auc'))} | "
            f"{_fmt(values.get('accuracy'))} |"
        )
    if warnings is not None and len(warnings):
        lines += [
            "",
            "## Training warnings (deep models)",
            "",
            "Epochs whose `history.csv` row carries a warning: a model that learned nothing "
            "scores near chance for that reason, not by bad luck.",
            "",
            "| model | fold | epochs | warning |",
            "|---" * 4 + "|",
        ]
        grouped = (
            warnings.group_by("model", "fold", "warnings", maintain_order=True)
            .agg(pl.col("epoch"))
            .sort("model", "fold")
        )
        for r in grouped.iter_rows(named=True):
            epochs = ", ".join(str(e) for e in r["epoch"])
            lines.append(f"| {r['model']} | {r['fold']} | {epochs} | {r['warnings']} |")
    lines += [
        "",
        "![ROC and PR curves](curves.png)",
        "",
        "![Permutation nulls](permutation_null.png)",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------- data quality
#: Columns of videos.csv whose median the data-quality table gives per label and platform.
_MEDIAN_OF = ("width", "height", "fps", "duration_s")
_DATA_QUALITY_SCHEMA = {
    "label": pl.String,
    "platform": pl.String,
    **dict.fromkeys(("listed", "downloaded", "valid"), pl.Int64),
    **{f"median_{c}": pl.Float64 for c in _MEDIAN_OF},
}


def data_quality(
    manifest_path, download_path, videos_path, out_table, out_failures, out_plot
) -> pl.DataFrame:
    """Data quality: per label and platform, videos listed/downloaded/valid and median
    resolution, fps, duration (``out_table``); failures by stage and reason code
    (``out_failures``); a figure of both (``out_plot``)."""
    manifest = schemas.read_table(manifest_path, "manifest")
    download = schemas.read_table(download_path, "download")
    videos = schemas.read_table(videos_path, "videos")
    rows = []
    for (label, platform), m in manifest.sort(["label", "platform"], maintain_order=True).group_by(
        ["label", "platform"], maintain_order=True
    ):
        same = (pl.col("label") == label) & (pl.col("platform") == platform)
        d = download.filter(same)
        ok = videos.filter(same & pl.col("valid"))
        rows.append(
            {
                "label": label,
                "platform": platform or "unknown",
                "listed": len(m),
                "downloaded": int((d["status"] == "ok").sum()),
                "valid": len(ok),
                **{f"median_{c}": _median(ok[c]) for c in _MEDIAN_OF},
            }
        )
    table = pl.DataFrame(rows, schema=_DATA_QUALITY_SCHEMA)
    failures = pl.concat(
        [
            download.filter(pl.col("status") == "failed").select(
                pl.lit("download").alias("stage"), "reason"
            ),
            videos.filter(~pl.col("valid")).select(pl.lit("validate").alias("stage"), "reason"),
        ]
    ).with_columns(pl.col("reason").str.split(":").list.first())
    by_reason = failures.group_by(["stage", "reason"]).len(name="count").sort(["stage", "reason"])
    for frame, out in ((table, out_table), (by_reason, out_failures)):
        with atomic_path(out) as tmp:
            frame.write_csv(tmp)
    fig, axes = _subplots(1, 4, figsize=(15, 3.4))
    ok = videos.filter(pl.col("valid")).with_columns(
        group=pl.col("label") + "/" + pl.col("platform")
    )
    for ax, col, title in zip(
        axes[:3], ("height", "fps", "duration_s"), ("frame height (px)", "fps", "duration (s)")
    ):
        names = sorted(ok["group"].unique().to_list())
        ax.boxplot(
            [
                ok.filter(pl.col("group") == n)[col].fill_nan(None).drop_nulls().to_numpy()
                for n in names
            ],
            tick_labels=names,
        )
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.set(title=f"{title} by label/platform")
    if len(by_reason):
        labels = (by_reason["stage"] + ": " + by_reason["reason"]).to_list()
        axes[3].barh(labels, by_reason["count"].to_numpy(), color="C3")
        axes[3].tick_params(axis="y", labelsize=7)
    axes[3].set(
        title=f"failures by reason ({int(by_reason['count'].sum()) if len(by_reason) else 0})"
    )
    _save(fig, Path(out_plot))
    return table


def _median(values: pl.Series) -> float:
    """Median of the known values (NaN skipped); NaN when none."""
    known = values.cast(pl.Float64).fill_nan(None).drop_nulls()
    return float(known.median()) if len(known) else float("nan")
