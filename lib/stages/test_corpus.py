"""Stages ``test-corpus-audit`` (the test corpus matched against the training corpus) and
``test-corpus-score`` (each final model's scores on it, and the report's section).

The test corpus reaches them through the training corpus's own commands (``manifest`` under
the name ``test-corpus-manifest``, ``download``, ``validate``, ``signatures``, ``predict``),
run on its files under ``results/test_corpus/`` (workflow/rules/test_corpus.smk).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from lib import schemas
from lib.audit.cross import cross_corpus_audit
from lib.evaluate.generalisation import (
    generalisation_markdown,
    generalisation_table,
    plot_generalisation,
)
from lib.evaluate.test_corpus import (
    corpus_markdown,
    generalisation_rows,
    headline_subset,
    score_test_corpus,
)
from lib.utils import atomic_write_text

log = logging.getLogger(__name__)


def run_test_corpus_audit(
    *,
    videos: str | Path,
    signatures: str | Path,
    test_videos: str | Path,
    test_signatures: str | Path,
    out: str | Path,
    groups_out: str | Path,
    match: dict,
    group_by: str,
    seed: int,
) -> None:
    """Write the cross-corpus near-duplicate pairs (``out``) and the test corpus's videos
    with their groups and matches (``groups_out``): :func:`lib.audit.cross.cross_corpus_audit`.
    ``match``: the ``near_duplicates`` section; ``group_by``: ``folds.group_by``."""
    cross, table = cross_corpus_audit(
        schemas.read_table(videos, "videos"),
        schemas.read_table(signatures, "signatures"),
        schemas.read_table(test_videos, "videos"),
        schemas.read_table(test_signatures, "signatures"),
        match=match,
        group_by=group_by,
        random_state=seed,
    )
    schemas.write_table(cross, out, "cross_duplicates")
    schemas.write_table(table, groups_out, "test_corpus_videos")


def run_test_corpus_score(
    *,
    videos: str | Path,
    cross: str | Path,
    predictions: list[str | Path],
    out: str | Path,
    report: str | Path,
    summary: str | Path | None,
    plot: str | Path | None,
    windows: list[str | Path] = (),
    format: str,
    path: str,
    keep_cross_duplicates: bool,
    bootstrap: int,
    window_aggregation: str,
    positive_label: str,
    seed: int,
) -> None:
    """Score every model's predictions on the test corpus (``predictions``:
    ``.../<model>.csv`` tables of ``predict``) into ``out`` and write the report section
    ``report``: :func:`lib.evaluate.test_corpus.score_test_corpus` with ``bootstrap``
    resamples drawn with ``seed``; ``windows`` (``.../<model>.windows.csv``) give each video's
    windows, aggregated by ``window_aggregation`` and scored per window too. ``format``,
    ``path``: the test corpus, as the report
    names it; ``keep_cross_duplicates``: whether the headline keeps the copies. With
    ``summary`` (``results/summary.csv``) the section ends with the generalisation table:
    the evaluate stage's protocols and the test corpus side by side, drawn into ``plot``."""
    table = schemas.read_table(videos, "test_corpus_videos")
    pairs = schemas.read_table(cross, "cross_duplicates")
    by_model = {Path(p).stem: schemas.read_table(p, "predict") for p in predictions}
    by_window = {Path(p).name.removesuffix(".windows.csv"): _windows(p) for p in windows}
    scores = score_test_corpus(
        table,
        by_model,
        windows=by_window,
        window_aggregation=window_aggregation,
        keep_cross_duplicates=keep_cross_duplicates,
        positive_label=positive_label,
        n_bootstrap=bootstrap,
        random_state=seed,
    )
    scores = schemas.write_table(scores, out, "test_corpus_summary")
    sections = ()
    if summary:
        side_by_side = pl.concat(
            [
                generalisation_table(schemas.read_table(summary, "summary")),
                generalisation_rows(scores),
            ]
        )
        sections = (generalisation_markdown(side_by_side),)
        if plot:
            plot_generalisation(None, Path(plot), table=side_by_side)
            # the figure beside this section is this one, with the test corpus
            sections = (sections[0].replace("](generalisation.png)", f"]({Path(plot).name})"),)
    text = corpus_markdown(
        scores,
        pairs,
        table,
        corpus=f"`{path}` ({format} format)",
        keep_cross_duplicates=keep_cross_duplicates,
        n_bootstrap=bootstrap,
        sections=sections,
    )
    atomic_write_text(report, text)
    headline = headline_subset(keep_cross_duplicates)
    roc = scores.filter(pl.col("headline") & (pl.col("metric") == "roc_auc"))
    for r in roc.iter_rows(named=True):
        log.info(
            "%s on the test corpus (%s): ROC-AUC %.3f, 95%% CI [%.3f, %.3f], %d videos",
            r["model"],
            headline,
            r["value"],
            r["ci_low"],
            r["ci_high"],
            r["n_videos"],
        )


def _windows(path: str | Path) -> pl.DataFrame:
    """predict's windows table (``video_id, window, start_frame, stop_frame, score_<class>``);
    an empty one (no window scored) has no columns."""
    return pl.read_csv(path) if Path(path).stat().st_size else pl.DataFrame()
