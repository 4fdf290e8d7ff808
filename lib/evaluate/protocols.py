"""Evaluation protocols beside grouped k-fold: leave one group out over a column.

``kfold`` (the headline) holds out folds of duplicate groups drawn from the whole corpus.
``leave_one_group_out`` over a column (``platform`` by default) trains on every other value
of the column and tests on one, once per value that has at least ``min_videos_per_class``
test videos of each class: how a model does on a platform (a re-encoding, a source) it never
saw. Its splits are written as a folds table (``results/protocols/<protocol>/folds.csv``,
the ``folds`` contract): split ``k`` is fold ``k``, so the training stages run it exactly as
a k-fold fold (the inner split for selection stays grouped by ``dup_group``).

**Duplicate groups spanning several values.** A duplicate group (annotated, joined with the
leak audit's matches as in ``results/folds.csv``) follows its original's value: the most
frequent value among its ``is_original`` videos (all its videos when none is marked), ties
broken by name. Its members on another value are left out of the protocol (absent from the
folds table: neither trained on nor tested in any split). So no split trains on a tested
group, and no split trains on a video of the value it tests. Values too small to test are
not tested, but their videos train the other splits (their fold number is never run).
"""

from __future__ import annotations

import logging

import polars as pl

log = logging.getLogger(__name__)

KFOLD = "kfold"
LEAVE_ONE_GROUP_OUT = "leave_one_group_out"
PROTOCOLS = (KFOLD, LEAVE_ONE_GROUP_OUT)
#: The value of a video whose column is empty (e.g. a platform that no URL names).
UNKNOWN = "unknown"

#: Columns of the splits table (``results/protocols/<protocol>/splits.csv``).
SPLITS_SCHEMA = {
    "protocol": pl.String,
    "column": pl.String,
    "value": pl.String,
    "fold": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
    "n_test_videos": pl.Int64,
    "n_train_videos": pl.Int64,
    "n_left_out": pl.Int64,
    "test_per_class": pl.String,
}


def protocol_name(column: str) -> str:
    """The name of leave-one-group-out over ``column`` in the tables, e.g.
    ``leave_one_platform_out``."""
    return f"leave_one_{column}_out"


def group_values(table: pl.DataFrame, *, column: str) -> pl.DataFrame:
    """``dup_group`` -> ``group_value``: the value each duplicate group follows (its
    originals' most frequent value; all its videos' when none is an original; ties by name)."""
    has_original = pl.col("is_original").any().over("dup_group")
    voters = table.filter(pl.col("is_original") | ~has_original)
    counts = voters.group_by("dup_group", column).len()
    return (
        counts.sort(["dup_group", "len", column], descending=[False, True, False])
        .group_by("dup_group", maintain_order=True)
        .first()
        .select("dup_group", pl.col(column).alias("group_value"))
    )


def leave_one_group_out_folds(
    folds: pl.DataFrame,
    videos: pl.DataFrame,
    *,
    column: str,
    min_videos_per_class: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The leave-one-``column``-out splits as a folds table, and the splits table.

    ``folds``: the k-fold table (``video_id, dup_group, label, fold``: its groups are the
    ones kept together); ``videos``: ``video_id``, ``is_original`` and ``column``.
    Returns ``(folds, splits)``: the folds table of the protocol (``video_id, dup_group,
    label, fold`` and ``column``; the videos left out are absent) and one row per value
    (:data:`SPLITS_SCHEMA`: its fold, ``used`` or ``skipped`` with the reason, test and
    training videos, videos left out, test videos per class). The rule for groups spanning
    several values: the module's docstring.
    """
    if column not in videos.columns:
        raise ValueError(
            f"evaluate.leave_one_group_out.column={column!r} is not a column of videos.csv "
            f"(it has {videos.columns}): choose one of them, e.g. platform"
        )
    name = protocol_name(column)
    extra = videos.select(
        "video_id",
        pl.col("is_original").fill_null(True),
        pl.col(column).cast(pl.String).fill_null("").replace("", UNKNOWN).alias(column),
    )
    table = folds.select("video_id", "dup_group", "label").join(extra, on="video_id", how="left")
    table = table.with_columns(
        pl.col("is_original").fill_null(True), pl.col(column).fill_null(UNKNOWN)
    )
    table = table.join(group_values(table, column=column), on="dup_group", how="left")
    kept = table.filter(pl.col(column) == pl.col("group_value"))
    left_out = table.filter(pl.col(column) != pl.col("group_value"))
    classes = sorted(table["label"].unique().to_list())
    rows = []
    for value in sorted(table[column].unique().to_list()):
        test = kept.filter(pl.col(column) == value)
        train = kept.filter(pl.col(column) != value)
        counts = {c: int((test["label"] == c).sum()) for c in classes}
        small = [f"{c}: {n}" for c, n in counts.items() if n < min_videos_per_class]
        reason = ""
        if small:
            reason = (
                f"fewer than evaluate.leave_one_group_out.min_videos_per_class="
                f"{min_videos_per_class} test videos of a class ({', '.join(small)})"
            )
        elif train["label"].n_unique() < len(classes):
            reason = "the other values' videos do not hold every class to train on"
        rows.append(
            {
                "protocol": name,
                "column": column,
                "value": value,
                "fold": -1,
                "status": "skipped" if reason else "used",
                "reason": reason,
                "n_test_videos": len(test),
                "n_train_videos": len(train),
                "n_left_out": int((left_out[column] == value).sum()),
                "test_per_class": ", ".join(f"{c}: {n}" for c, n in counts.items()),
            }
        )
    used = [r["value"] for r in rows if r["status"] == "used"]
    order = used + [r["value"] for r in rows if r["status"] != "used"]
    fold_of = {v: k for k, v in enumerate(order)}  # skipped values: folds no split runs
    for r in rows:
        if r["status"] == "used":
            r["fold"] = fold_of[r["value"]]
        else:
            log.warning("%s: %s=%s skipped: %s", name, column, r["value"], r["reason"])
    if len(left_out):
        log.info(
            "%s: %d videos left out (their %s differs from their duplicate group's original's)",
            name,
            len(left_out),
            column,
        )
    out = (
        kept.with_columns(fold=pl.col(column).replace_strict(fold_of, return_dtype=pl.Int64))
        .select("video_id", "dup_group", "label", "fold", column)
        .sort("video_id")
    )
    return out, pl.DataFrame(rows, schema=SPLITS_SCHEMA)


def used_folds(splits: pl.DataFrame) -> list[int]:
    """The folds a protocol's splits table runs (its used values), in order."""
    return sorted(splits.filter(pl.col("status") == "used")["fold"].to_list())
