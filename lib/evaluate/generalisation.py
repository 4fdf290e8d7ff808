"""The report's "generalisation" section: the evaluation protocols side by side.

One row per model and protocol (kfold, leave_one_<column>_out, and any other source of
scores, e.g. a test corpus), the headline metric pooled over the protocol's held-out
originals with its group-bootstrap interval, each split's own value, the splits that were
skipped and why, and a figure of the intervals. Other report sections add rows with
:func:`generalisation_table`'s columns (``model, protocol, value, ci_low, ci_high,
n_videos, n_folds``) and render them with :func:`generalisation_markdown` and
:func:`plot_generalisation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from lib.evaluate.metrics import HEADLINE_METRIC
from lib.evaluate.protocols import KFOLD
from lib.evaluate.report import _fmt, _save, _subplots

TABLE_SCHEMA = {
    "model": pl.String,
    "protocol": pl.String,
    "value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n_videos": pl.Int64,
    "n_folds": pl.Int64,
}


def generalisation_table(summary: pl.DataFrame, *, metric: str = HEADLINE_METRIC) -> pl.DataFrame:
    """``metric`` pooled per model and protocol (video level), with its interval."""
    rows = summary.filter((pl.col("metric") == metric) & (pl.col("level") == "video"))
    return rows.select(
        "model",
        "protocol",
        pl.col("pooled").alias("value"),
        "ci_low",
        "ci_high",
        "n_videos",
        "n_folds",
    ).cast(TABLE_SCHEMA)


def generalisation_markdown(
    table: pl.DataFrame,
    *,
    metrics: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
    metric: str = HEADLINE_METRIC,
    figure: str = "generalisation.png",
) -> str:
    """The section: protocols side by side (value [95% CI] per model), each split's value
    (``metrics``' rows of the protocols other than kfold, named by ``splits``), the values
    skipped with their reason, and the image ``figure`` (:func:`plot_generalisation`'s file,
    relative to the markdown)."""
    protocols = sorted(table["protocol"].unique().to_list(), key=lambda p: (p != KFOLD, p))
    lines = [
        "## Generalisation",
        "",
        f"{metric} pooled over each protocol's held-out original videos, with its 95% "
        "interval (bootstrap of duplicate groups). kfold: grouped, stratified folds of one "
        "corpus (the headline). leave_one_<column>_out: trained on every other value of the "
        "column, tested on one, pooled over the values tested: how a model does on a "
        'platform it never saw (docs/EVALUATION.md, "Protocols").',
        "",
        "| model | " + " | ".join(protocols) + " |",
        "|---" * (len(protocols) + 1) + "|",
    ]
    cells = {(r["model"], r["protocol"]): r for r in table.iter_rows(named=True)}
    for model in sorted(table["model"].unique().to_list()):
        row = []
        for p in protocols:
            r = cells.get((model, p))
            row.append(
                f"{_fmt(r['value'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] "
                f"({r['n_videos']} videos)"
                if r
                else ""
            )
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    if splits is not None and len(splits):
        names = {(r["protocol"], r["fold"]): r for r in splits.iter_rows(named=True)}
        if metrics is not None:
            per_split = metrics.filter(
                (pl.col("protocol") != KFOLD)
                & (pl.col("metric") == metric)
                & (pl.col("level") == "video")
            ).sort("protocol", "model", "fold")
            lines += [
                "",
                f"Each split's {metric}:",
                "",
                "| model | protocol | held out | test videos | value |",
            ]
            lines.append("|---" * 5 + "|")
            for r in per_split.iter_rows(named=True):
                s = names.get((r["protocol"], r["fold"]), {})
                held = f"{s.get('column', '')}={s.get('value', r['fold'])}"
                lines.append(
                    f"| {r['model']} | {r['protocol']} | {held} | {s.get('test_per_class', '')} "
                    f"| {_fmt(r['value'])} |"
                )
        skipped = splits.filter(pl.col("status") == "skipped")
        left_out = int(splits["n_left_out"].sum())
        lines += [""]
        for r in skipped.iter_rows(named=True):
            lines.append(
                f"- {r['protocol']}: {r['column']}={r['value']} not tested: {r['reason']} "
                "(its videos still train the other splits)"
            )
        if left_out:
            lines.append(
                f"- {left_out} videos left out of the protocols above: reposts on another value "
                "than their duplicate group's original (the group follows its original)."
            )
    lines += ["", f"![Generalisation]({figure})", ""]
    return "\n".join(lines)


def plot_generalisation(
    summary: pl.DataFrame, path: Path, *, metric: str = HEADLINE_METRIC, table=None
) -> None:
    """Per model, each protocol's pooled ``metric`` with its 95% interval (``table``:
    :func:`generalisation_table`'s, by default built from ``summary``)."""
    table = generalisation_table(summary, metric=metric) if table is None else table
    protocols = sorted(table["protocol"].unique().to_list(), key=lambda p: (p != KFOLD, p))
    models = sorted(table["model"].unique().to_list())
    fig, ax = _subplots(figsize=(max(5, 1.1 * len(models) + 2), 3.4))
    width = 0.8 / max(len(protocols), 1)
    for j, protocol in enumerate(protocols):
        part = {
            r["model"]: r
            for r in table.filter(pl.col("protocol") == protocol).iter_rows(named=True)
        }
        x = np.arange(len(models)) - 0.4 + width * (j + 0.5)
        value = np.array([part[m]["value"] if m in part else np.nan for m in models])
        low = np.array([part[m]["ci_low"] if m in part else np.nan for m in models])
        high = np.array([part[m]["ci_high"] if m in part else np.nan for m in models])
        err = np.nan_to_num(np.vstack([value - low, high - value]).clip(min=0))
        ax.errorbar(x, value, yerr=err, fmt="o", capsize=3, color=f"C{j}", label=protocol)
    if metric in ("roc_auc", "balanced_accuracy"):
        ax.axhline(0.5, color="black", linestyle=":", linewidth=0.8)
    ax.set_xticks(range(len(models)), models, rotation=30, fontsize=8)
    ax.set(title=f"{metric} by protocol (pooled, 95% group-bootstrap interval)", ylabel=metric)
    ax.legend(fontsize=7)
    _save(fig, Path(path))
