"""Stages ``evaluate`` (every table, figure and the report of the evaluation, from the
folds' predictions) and ``data-quality`` (what the corpus lost on its way to training)."""

from __future__ import annotations

from pathlib import Path

from lib.evaluate.evaluation import evaluate
from lib.evaluate.report import data_quality


def run_evaluate(
    *,
    metrics: str | Path,
    summary: str | Path,
    report_dir: str | Path,
    clips: str | Path,
    folds: str | Path,
    videos: str | Path | None,
    permutations: list[str | Path],
    splits: list[str | Path],
    robustness: str | Path | None,
    platform: str | Path | None,
    confusion: str | Path | None,
    resolved_config: dict,
    predictions: list[str | Path],
    bootstrap: int,
    window_aggregation: str,
    positive_label: str,
    seed: int,
) -> None:
    """Headline metrics on held-out originals with intervals and p-values (``bootstrap``
    resamples, drawn with ``seed``) for every protocol (k-fold predictions, and those of
    the protocols whose ``splits`` tables are given), windows aggregated by
    ``window_aggregation``; robustness per augmentation type, per platform, the confusion
    matrices and the report (:func:`lib.evaluate.evaluation.evaluate`)."""
    evaluate(
        predictions,
        metrics,
        summary,
        report_dir,
        clips_path=clips,
        folds_path=folds,
        videos_path=videos,
        permutation_paths=permutations,
        split_paths=splits,
        robustness_path=robustness,
        platform_path=platform,
        confusion_path=confusion,
        positive_label=positive_label,
        n_bootstrap=bootstrap,
        random_state=seed,
        window_aggregation=window_aggregation,
        config=resolved_config,
    )


def run_data_quality(
    *,
    manifest: str | Path,
    downloads: str | Path,
    videos: str | Path,
    table: str | Path,
    failures: str | Path,
    plot: str | Path,
) -> None:
    """Per label and platform, the videos listed, downloaded and valid (``table``), the
    failures by stage and reason (``failures``) and a figure of both (``plot``):
    :func:`lib.evaluate.report.data_quality`."""
    data_quality(manifest, downloads, videos, table, failures, plot)
