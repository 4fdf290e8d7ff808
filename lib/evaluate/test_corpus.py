"""The test corpus's scores: each final model on a labelled corpus it never saw, with intervals.

The final model of a model (``train_final``: trained on every video of the training corpus)
classifies the test corpus as ``predict`` classifies new videos (:mod:`lib.predict`: one
score per temporal window). A video's score aggregates its windows' class probabilities by
``evaluate.window_aggregation`` (:func:`lib.evaluate.metrics.aggregate_windows`; level
``video``, the headline), and every window is also scored on its own (level ``window``), as
the evaluate stage does for windowed predictions. Every valid test video whose
prediction succeeded and whose label is one of the model's classes is scored with the
headline metrics of the cross-validation (:func:`lib.evaluate.metrics.headline_metrics`)
and their 95% interval from a bootstrap over the test corpus's duplicate groups
(:func:`lib.evaluate.metrics.group_bootstrap`).

Two subsets are scored (column ``videos``): ``without_cross_duplicates`` leaves out every
test duplicate group holding a video that the leak audit matched to a training video
(:mod:`lib.audit.cross`), and ``all`` keeps them. The headline is the first unless
``test_corpus.keep_cross_duplicates``; the other is reported beside it, so the effect of
the copies is visible.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from lib.evaluate.metrics import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    aggregate_windows,
    classes_of,
    group_bootstrap,
    headline_metrics,
    score_columns,
)
from lib.utils import markdown_table

#: The subsets scored, the cleaner first.
SUBSETS = ("without_cross_duplicates", "all")
_SHOWN = ("roc_auc", "balanced_accuracy", "accuracy", "eer")  # in the comparison table


def headline_subset(keep_cross_duplicates: bool) -> str:
    """The subset the headline quotes."""
    return SUBSETS[1] if keep_cross_duplicates else SUBSETS[0]


def subset_scores(
    scored: pl.DataFrame, classes: list[str], *, positive_label: str, n_bootstrap: int, seed: int
) -> list[dict]:
    """``metric, value, ci_low, ci_high`` of the rows of ``scored`` (``label``, ``dup_group``
    and one ``score_<class>`` column per class); NaN where there is no row."""
    if scored.is_empty():
        names = BINARY_METRICS if len(classes) == 2 else MULTICLASS_METRICS
        return [{"metric": m, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan} for m in names]
    labels = scored["label"].to_numpy()
    scores = scored.select(f"score_{c}" for c in classes).to_numpy()
    values = headline_metrics(labels, scores, classes, positive_label)
    ci = group_bootstrap(
        scored["dup_group"].to_numpy(),
        lambda r: headline_metrics(labels[r], scores[r], classes, positive_label),
        n_boot=n_bootstrap,
        random_state=seed,
    )
    bounds = {m: (lo, hi) for m, lo, hi in ci.iter_rows()}
    return [
        {"metric": m, "value": v, "ci_low": bounds[m][0], "ci_high": bounds[m][1]}
        for m, v in values.items()
    ]


def window_levels(
    ok: pl.DataFrame, windows: pl.DataFrame | None, *, aggregation: str
) -> dict[str, pl.DataFrame]:
    """``level -> video_id, score_<class>`` rows of one model: ``video`` (one row per video:
    its ``windows`` aggregated by ``aggregation``, or predict's own score without windows)
    and, with windows, ``window`` (one row per window of a video in ``ok``). ``ok``: the
    model's predictions that succeeded; ``windows``: predict's windows table."""
    cols = score_columns(ok)
    if windows is None or windows.is_empty():
        return {"video": ok}
    windows = windows.join(ok.select("video_id"), on="video_id", how="semi")
    rows = windows.select(
        "video_id",
        "window",
        *cols,
        clip_id=pl.concat_str("video_id", pl.lit("#"), pl.col("window").cast(pl.String)),
        score=pl.max_horizontal(cols),  # aggregate_windows' own column; not read here
        pred=pl.lit(""),
    )
    video = aggregate_windows(rows, aggregation=aggregation).select("video_id", *cols)
    missing = ok.join(video, on="video_id", how="anti")  # a video without window rows
    video = pl.concat([video, missing.select("video_id", *cols)])
    return {"video": video, "window": rows.select("video_id", *cols)}


def score_test_corpus(
    videos: pl.DataFrame,
    predictions: dict[str, pl.DataFrame],
    *,
    windows: dict[str, pl.DataFrame] | None = None,
    window_aggregation: str,
    keep_cross_duplicates: bool,
    positive_label: str,
    n_bootstrap: int,
    random_state: int,
) -> pl.DataFrame:
    """The ``test_corpus_summary`` table: per model (``predictions``: model -> its ``predict``
    table on the test corpus), level (:func:`window_levels`; ``windows``: model -> predict's
    windows table), subset and headline metric, the value, its interval, the videos and
    groups scored, the videos left out as cross-corpus near-duplicates' groups
    (``n_left_out``) and those not scored (``n_failed``: prediction failed, or a label the
    model does not know). ``videos``: the ``test_corpus_videos`` table. The headline: the
    headline subset at video level."""
    valid = videos.filter(pl.col("valid")).select("video_id", "label", "dup_group", "cross_group")
    headline = headline_subset(keep_cross_duplicates)
    rows = []
    for model, table in sorted(predictions.items()):
        classes = classes_of(table)
        ok = table.filter(pl.col("status") == "ok").select("video_id", *score_columns(table))
        levels = window_levels(ok, (windows or {}).get(model), aggregation=window_aggregation)
        for level, by_level in levels.items():
            scored = valid.join(by_level, on="video_id", how="inner", maintain_order="left")
            scored = scored.filter(pl.col("label").is_in(classes))
            n_scored = scored["video_id"].n_unique()
            for subset in SUBSETS:
                part = scored if subset == "all" else scored.filter(~pl.col("cross_group"))
                common = {
                    "model": model,
                    "videos": subset,
                    "level": level,
                    "aggregation": _aggregation(level, levels, window_aggregation),
                    "headline": subset == headline and level == "video",
                    "n_videos": part["video_id"].n_unique(),
                    "n_groups": part["dup_group"].n_unique(),
                    "n_left_out": n_scored - part["video_id"].n_unique(),
                    "n_failed": len(valid) - n_scored,
                }
                for score in subset_scores(
                    part,
                    classes,
                    positive_label=positive_label,
                    n_bootstrap=n_bootstrap,
                    seed=random_state,
                ):
                    rows.append({**common, **score})
    return pl.DataFrame(rows, infer_schema_length=None)


def _aggregation(level: str, levels: dict, window_aggregation: str) -> str:
    """How a video-level score was made from windows: ``window_aggregation``, or predict's
    own mean when no windows table was given; empty at window level."""
    if level != "video":
        return ""
    return window_aggregation if "window" in levels else "mean"


def generalisation_rows(summary: pl.DataFrame, *, metric: str = "roc_auc") -> pl.DataFrame:
    """The headline ``metric`` of each model on the test corpus as rows of the report's
    generalisation table (:func:`lib.evaluate.generalisation.generalisation_table`'s
    columns), protocol ``test_corpus``: one test set, hence ``n_folds`` 1."""
    rows = summary.filter(pl.col("headline") & (pl.col("metric") == metric))
    return rows.select(
        "model",
        protocol=pl.lit("test_corpus"),
        value="value",
        ci_low="ci_low",
        ci_high="ci_high",
        n_videos="n_videos",
        n_folds=pl.lit(1, dtype=pl.Int64),
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _fmt(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"


def corpus_markdown(
    summary: pl.DataFrame,
    cross: pl.DataFrame,
    videos: pl.DataFrame,
    *,
    corpus: str,
    keep_cross_duplicates: bool,
    n_bootstrap: int,
    sections: tuple[str, ...] = (),
    top: int = 30,
) -> str:
    """The report's test-corpus section: what was scored, the cross-corpus near-duplicates
    and what was done with them, the headline scores with intervals, both subsets side by
    side, then ``sections`` (markdown: the generalisation table)."""
    valid = videos.filter(pl.col("valid"))
    copies = valid.filter(pl.col("cross_duplicate"))
    left = valid.filter(pl.col("cross_group"))
    headline = headline_subset(keep_cross_duplicates)
    aggregations = sorted(set(summary.filter(pl.col("headline"))["aggregation"]))
    windowed = summary.filter(pl.col("level") == "window")
    lines = [
        "# Test corpus",
        "",
        f"{corpus}: {len(videos)} videos, {len(valid)} valid, in "
        f"{valid['dup_group'].n_unique()} duplicate groups; never used for training or "
        "selection. Each model's final model (trained on the whole training corpus) "
        "classified it as `predict` does (a video's score: the "
        f"{'/'.join(aggregations) or 'mean'} of its windows' class probabilities"
        f"{', each window also scored on its own' if len(windowed) else ''}). "
        f"Intervals: 95%, from {n_bootstrap} bootstrap resamples of the test corpus's "
        "duplicate groups.",
        "",
        "## Cross-corpus near-duplicates",
        "",
    ]
    if copies.is_empty():
        lines.append(
            "The leak audit matched no test video to a training video: every valid test "
            "video is scored."
        )
    else:
        verdict = (
            "are **kept** in the headline score (`test_corpus.keep_cross_duplicates: true`): "
            "it is inflated by videos the models were trained on"
            if keep_cross_duplicates
            else "are **left out** of the headline score (`test_corpus.keep_cross_duplicates: "
            "false`, the default)"
        )
        lines += [
            f"The leak audit matched {_count(len(copies), 'test video')} to "
            f"{_count(cross['train_video'].n_unique(), 'training video')} "
            f"({_count(len(cross), 'pair')}). They and the rest of their test duplicate groups "
            f"({_count(len(left), 'video')} in {_count(left['dup_group'].n_unique(), 'group')}) "
            f"{verdict}. Pairs "
            "(all in `results/test_corpus/cross_duplicates.csv`):",
            "",
            markdown_table(
                cross.select(
                    "test_video", "train_video", "matched_frames", "distance", "test_label"
                ).head(top)
            ),
        ]
        if len(cross) > top:
            lines.append(f"\n…and {len(cross) - top} more.")
    lines += [
        "",
        f"## Scores ({headline.replace('_', ' ')})",
        "",
        "| model | metric | value | 95% CI | videos | groups | left out | not scored |",
        "|---" * 8 + "|",
    ]
    for r in summary.filter(pl.col("headline")).iter_rows(named=True):
        lines.append(
            f"| {r['model']} | {r['metric']} | {_fmt(r['value'])} | "
            f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {r['n_videos']} | "
            f"{r['n_groups']} | {r['n_left_out']} | {r['n_failed']} |"
        )
    if len(windowed):
        lines += _window_lines(summary.filter(pl.col("videos") == headline))
    shown = summary.filter(pl.col("metric").is_in(_SHOWN) & (pl.col("level") == "video"))
    wide = shown.pivot("videos", index=["model", "metric"], values="value")
    lines += [
        "",
        "## Without and with the cross-corpus near-duplicates",
        "",
        "Both subsets side by side (the headline is "
        f"`{headline}`); a score that drops without the copies was helped by them.",
        "",
        "| model | metric | " + " | ".join(SUBSETS) + " |",
        "|---" * (2 + len(SUBSETS)) + "|",
    ]
    for r in wide.iter_rows(named=True):
        values = " | ".join(_fmt(r.get(s)) for s in SUBSETS)
        lines.append(f"| {r['model']} | {r['metric']} | {values} |")
    return "\n".join([*lines, "", *sections]) + "\n"


def _window_lines(summary: pl.DataFrame) -> list[str]:
    """The headline subset's metrics per window beside per video (its aggregation named)."""
    shown = summary.filter(pl.col("metric").is_in(_SHOWN))
    wide = shown.pivot("level", index=["model", "metric"], values="value")
    aggregation = "/".join(sorted(set(shown.filter(pl.col("level") == "video")["aggregation"])))
    lines = [
        "",
        "## Window and video level",
        "",
        "Each window of a video scored on its own (`level = window`) beside the video's "
        f"score (`level = video`: the {aggregation} of its windows' probabilities, "
        "`evaluate.window_aggregation`; the headline).",
        "",
        "| model | metric | window | video |",
        "|---" * 4 + "|",
    ]
    for r in wide.iter_rows(named=True):
        lines.append(
            f"| {r['model']} | {r['metric']} | {_fmt(r.get('window'))} | {_fmt(r.get('video'))} |"
        )
    return lines
