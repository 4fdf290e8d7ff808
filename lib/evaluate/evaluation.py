"""The evaluate stage: every table and figure of the evaluation, from the folds' predictions.

Scores come from :mod:`lib.evaluate.metrics` (held-out originals only in the headline,
augmented clips in the robustness table), figures and the markdown report from
:mod:`lib.evaluate.report`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import polars as pl

from lib import schemas
from lib.evaluate import report
from lib.evaluate.generalisation import (
    generalisation_markdown,
    generalisation_table,
    plot_generalisation,
)
from lib.evaluate.protocols import KFOLD
from lib.evaluate.metrics import (
    HEADLINE_METRIC,
    ROBUSTNESS_SCHEMA,
    aggregate_windows,
    classes_of,
    confusion,
    group_bootstrap,
    headline_metrics,
    headline_statistic,
    originals,
    permutation_p_value,
    robustness,
    score_columns,
    metrics_per,
    table_metrics,
)
from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def _split_of(path: Path) -> tuple[str, str, int]:
    """(model, protocol, fold) of ``.../models/<model>/fold-<k>/predictions.csv`` (kfold) or
    ``.../models/<model>/<protocol>/fold-<k>/predictions.csv`` (another protocol)."""
    fold = int(path.parent.name.removeprefix("fold-"))
    return (*_model_protocol(path.parent.parent), fold)


def _model_protocol(folder: Path) -> tuple[str, str]:
    """(model, protocol) of ``.../models/<model>`` (kfold) or ``.../models/<model>/<protocol>``
    (another protocol), the folder of a protocol's runs or permutation test."""
    if folder.name.startswith("leave_one_") and folder.name.endswith("_out"):
        return folder.parent.name, folder.name
    return folder.name, KFOLD


def _null_panels(nulls: dict, summary: pl.DataFrame) -> tuple[dict, pl.DataFrame]:
    """The permutation nulls and the video-level summary rows of :func:`report.plot_nulls`,
    one panel per (model, protocol): kfold's named by the model, another protocol's by
    protocol and model."""
    rows = summary.filter(pl.col("level") == "video").with_columns(
        model=pl.when(pl.col("protocol") == KFOLD)
        .then(pl.col("model"))
        .otherwise(pl.concat_str("protocol", pl.lit("\n"), "model"))
    )
    named = {m if p == KFOLD else f"{p}\n{m}": null for (m, p), null in nulls.items()}
    return named, rows


def _frames_per_video(path: Path) -> float:
    """The frames a deep model read per clip (``train_info.json`` beside the predictions:
    its ``settings.num_frames``); NaN for a feature model (its features stage samples a
    share of each clip) or when the file is missing."""
    info = path.parent / "train_info.json"
    if not info.exists():
        return float("nan")
    frames = (json.loads(info.read_text()).get("settings") or {}).get("num_frames")
    return float(frames) if frames is not None else float("nan")


def _summary_rows(
    by_fold: dict[int, pl.DataFrame],
    fold_rows: list[dict],
    groups: dict,
    *,
    key: dict,
    null,
    n_bootstrap: int,
    random_state: int,
    positive_label: str,
) -> list[dict]:
    """Summary rows of one (model, protocol, level): mean ± std over folds (``fold_rows``),
    the pooled value with its group-bootstrap interval, the permutation test (``null``)."""
    pooled = pl.concat(list(by_fold.values()), how="vertical_relaxed")
    heads = originals(pooled, unique=key["level"] == "video")
    heads_groups = np.asarray([groups.get(v, v) for v in heads["video_id"].to_list()])
    labels, scores, classes = (
        heads["label"].to_numpy(),
        heads.select(score_columns(heads)).to_numpy(),
        classes_of(heads),
    )
    ci = group_bootstrap(
        heads_groups,
        lambda r: headline_metrics(labels[r], scores[r], classes, positive_label),
        n_boot=n_bootstrap,
        random_state=random_state,
    )
    ci = {m: (lo, hi) for m, lo, hi in ci.iter_rows()}
    per_metric: dict[str, list[float]] = {}
    for r in fold_rows:
        per_metric.setdefault(r["metric"], []).append(r["value"])
    spread = {m: _mean_std(v) for m, v in per_metric.items()}
    real = np.nan if null is None else headline_statistic(by_fold, positive_label=positive_label)
    rows = []
    for metric, value in table_metrics(heads, positive_label).items():
        is_head = metric == HEADLINE_METRIC and null is not None
        rows.append(
            {
                **key,
                "metric": metric,
                "mean": spread[metric]["mean"],
                "std": spread[metric]["std"],
                "pooled": value,
                "ci_low": ci[metric][0],
                "ci_high": ci[metric][1],
                "n_folds": len(by_fold),
                "n_videos": heads["video_id"].n_unique(),
                "p_value": permutation_p_value(real, null) if is_head else np.nan,
                "null_mean": float(np.nanmean(null)) if is_head else np.nan,
                "null_std": (
                    float(np.nanstd(null, ddof=1)) if is_head and len(null) > 1 else np.nan
                ),
                "n_permutations": len(null) if is_head else 0,
            }
        )
    return rows


def evaluate(
    prediction_paths: list[str | Path],
    metrics_path: str | Path,
    summary_path: str | Path,
    report_dir: str | Path,
    *,
    clips_path: str | Path,
    folds_path: str | Path,
    videos_path: str | Path | None = None,
    permutation_paths: list[str | Path] = (),
    split_paths: list[str | Path] = (),
    robustness_path: str | Path | None = None,
    platform_path: str | Path | None = None,
    confusion_path: str | Path | None = None,
    positive_label: str,
    n_bootstrap: int,
    random_state: int,
    window_aggregation: str,
    config: dict | None = None,
) -> pl.DataFrame:
    """Headline metrics of every (model, protocol, fold) on originals, summary with intervals
    and p-values, robustness per augmentation type, per-platform metrics and the report plots.

    Prediction paths look like ``.../models/<model>/fold-<k>/predictions.csv`` (kfold) or
    ``.../models/<model>/<protocol>/fold-<k>/predictions.csv`` (e.g. leave_one_platform_out,
    whose splits tables are ``split_paths``); permutation paths like
    ``.../models/<model>/permutation.csv`` (kfold) or ``.../models/<model>/<protocol>/
    permutation.csv`` (``evaluate.permutation.protocols``). Predictions with a ``window``
    column (several temporal windows per clip) are scored per window (level ``window``)
    and per video, the windows' probabilities aggregated by ``window_aggregation``
    (:func:`lib.evaluate.metrics.aggregate_windows`). Robustness, per-platform metrics,
    confusion matrices and curves are kfold's, at video level. The report (``report_dir``)
    records the configuration and seed the results came from.
    """
    clips = schemas.read_table(clips_path, "clips", columns=[])
    folds_table = schemas.read_table(folds_path, "folds", columns=[])
    groups = dict(zip(folds_table["video_id"].to_list(), folds_table["dup_group"].to_list()))
    platforms = None
    if videos_path:
        videos = schemas.read_table(videos_path, "videos", columns=[])
        platforms = dict(zip(videos["video_id"].to_list(), videos["platform"].to_list()))
    nulls = {
        _model_protocol(Path(p).parent): schemas.read_table(p, "permutation")["value"].to_numpy()
        for p in permutation_paths
    }
    splits = (
        pl.concat([schemas.read_table(p, "protocol_splits") for p in split_paths])
        if split_paths
        else None
    )
    by_split: dict[tuple[str, str], dict[int, pl.DataFrame]] = {}
    frames: dict[str, float] = {}
    for path in map(Path, prediction_paths):
        model, protocol, fold = _split_of(path)
        preds = schemas.read_table(path, "predictions")
        by_split.setdefault((model, protocol), {})[fold] = preds.with_columns(
            fold=pl.lit(fold, dtype=pl.Int64)
        )
        if not np.isfinite(frames.get(model, np.nan)):  # any of its runs' train_info.json
            frames[model] = _frames_per_video(path)
    by_model = {m: by_fold for (m, p), by_fold in by_split.items() if p == KFOLD}
    rows, summaries, robust, per_platform, confusions = [], [], [], [], []
    for (model, protocol), raw in sorted(by_split.items(), key=_protocol_order):
        windowed = any("window" in p.columns for p in raw.values())
        levels = {
            "video": (
                {k: aggregate_windows(p, aggregation=window_aggregation) for k, p in raw.items()}
            )
        }
        if windowed:
            levels["window"] = raw
        for level, by_fold in levels.items():
            key = {
                "model": model,
                "protocol": protocol,
                "level": level,
                "aggregation": window_aggregation if windowed and level == "video" else "",
                "frames_per_video": frames[model],
            }
            fold_rows = []
            for fold, preds in sorted(by_fold.items()):
                heads = originals(preds, unique=level == "video")
                for metric, value in table_metrics(heads, positive_label).items():
                    fold_rows.append({**_metric_key(key), "fold": fold, "metric": metric})
                    fold_rows[-1]["value"] = value
            rows += fold_rows
            summaries += _summary_rows(
                by_fold,
                fold_rows,
                groups,
                key=key,
                null=nulls.get((model, protocol)) if level == "video" else None,
                n_bootstrap=n_bootstrap,
                random_state=random_state,
                positive_label=positive_label,
            )
        if protocol != KFOLD:
            continue
        by_model[model] = by_fold = levels["video"]
        pooled = pl.concat(list(by_fold.values()), how="vertical_relaxed")
        heads = originals(pooled)
        robust.append(robustness(pooled, clips, model=model, positive_label=positive_label))
        if platforms is not None:
            per_platform += _platform_rows(heads, platforms, model, positive_label)
        cm = confusion(heads["label"].to_numpy(), heads["pred"].to_numpy(), classes_of(heads))
        confusions.append(
            cm.unpivot(index="true", variable_name="pred", value_name="count").with_columns(
                model=pl.lit(model)
            )
        )
    metrics = schemas.write_table(
        pl.DataFrame(rows, schema=_METRICS_SCHEMA), metrics_path, "metrics"
    )
    summary = schemas.write_table(
        pl.DataFrame(summaries, infer_schema_length=None), summary_path, "summary"
    )
    robust = pl.concat(robust) if robust else pl.DataFrame(schema=ROBUSTNESS_SCHEMA)
    if robustness_path:
        schemas.write_table(robust, robustness_path, "robustness")
    if platform_path:
        _write_csv(
            pl.DataFrame(
                per_platform,
                schema={
                    "model": pl.String,
                    "platform": pl.String,
                    "metric": pl.String,
                    "value": pl.Float64,
                    "n_videos": pl.Int64,
                },
            ),
            platform_path,
        )
    confusions = (
        pl.concat(confusions).select("model", "true", "pred", "count")
        if confusions
        else pl.DataFrame(
            schema={"model": pl.String, "true": pl.String, "pred": pl.String, "count": pl.Int64}
        )
    )
    if confusion_path:
        _write_csv(confusions, confusion_path)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    report.plot_curves(by_model, report_dir / "curves.png", positive_label=positive_label)
    report.plot_confusions(confusions, report_dir / "confusion.png")
    report.plot_nulls(*_null_panels(nulls, summary), report_dir / "permutation_null.png")
    kfold_paths = [p for p in prediction_paths if _split_of(Path(p))[1] == KFOLD]
    report.plot_training_curves(kfold_paths, report_dir / "training_curves.png")
    plot_generalisation(summary, report_dir / "generalisation.png")
    training_warnings = report.training_warnings(kfold_paths)
    for r in training_warnings.iter_rows(named=True):
        log.warning("%s %s epoch %d: %s", r["model"], r["fold"], r["epoch"], r["warnings"])
    atomic_write_text(
        report_dir / "resolved_config.json",
        json.dumps(config or {}, indent=2, sort_keys=True, default=str),
    )
    atomic_write_text(
        report_dir / "evaluation.md",
        report.evaluation_markdown(
            summary,
            metrics,
            robust,
            n_bootstrap,
            warnings=training_warnings,
            sections=(
                generalisation_markdown(
                    generalisation_table(summary), metrics=metrics, splits=splits
                ),
            ),
        ),
    )
    for m in summary.filter(pl.col("metric") == HEADLINE_METRIC).iter_rows(named=True):
        log.info(
            "%s %s (%s level): ROC-AUC %.3f ± %.3f over %d folds, 95%% CI [%.3f, %.3f], p = %s",
            m["model"],
            m["protocol"],
            m["level"],
            m["mean"],
            m["std"],
            m["n_folds"],
            m["ci_low"],
            m["ci_high"],
            f"{m['p_value']:.4f}" if np.isfinite(m["p_value"]) else "n/a",
        )
    return summary


def _protocol_order(item) -> tuple:
    """kfold first, then the other protocols by name; models by name within."""
    (model, protocol), _ = item
    return (protocol != KFOLD, protocol, model)


def _metric_key(key: dict) -> dict:
    return {k: key[k] for k in ("model", "protocol", "level")}


def _platform_rows(heads: pl.DataFrame, platforms: dict, model: str, positive_label: str):
    """Headline metrics of one model's pooled originals per platform."""
    plat = heads.with_columns(
        platform=pl.Series(
            [platforms.get(v, "") for v in heads["video_id"].to_list()], dtype=pl.String
        )
    )
    return metrics_per(plat, "platform", model=model, positive_label=positive_label)


def _mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample std over folds, skipping folds where the metric is undefined (NaN);
    the std of a single fold is 0, of a single defined value among several NaN."""
    v = np.asarray(values, dtype=float)
    defined = v[~np.isnan(v)]
    mean = float(defined.mean()) if len(defined) else float("nan")
    if len(v) <= 1:
        return {"mean": mean, "std": 0.0}
    return {
        "mean": mean,
        "std": float(np.std(defined, ddof=1)) if len(defined) > 1 else float("nan"),
    }


def _write_csv(df: pl.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.write_csv(tmp)


_METRICS_SCHEMA = {
    "model": pl.String,
    "protocol": pl.String,
    "level": pl.String,
    "fold": pl.Int64,
    "metric": pl.String,
    "value": pl.Float64,
}
