"""The leak audit: near-duplicate pairs judged against the corpus's annotations and against
folds made from the annotated groups alone, and the markdown report ``leaks.md``.

The pairs come from :func:`lib.audit.near_duplicates.find_near_duplicates`; the groups the
folds keep together from :func:`lib.audit.groups.fold_groups`.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import polars as pl

from lib.audit.groups import fold_groups
from lib.audit.near_duplicates import find_near_duplicates
from lib.evaluate.folds import assign_folds
from lib.utils import markdown_table

#: A pair's columns: the match, then what the report shows beside it.
_MATCH_COLUMNS = ["video_a", "video_b", "distance", "matched_frames"]
_CONTEXT_COLUMNS = ["flipped", "group_a", "group_b", "label_a", "label_b", "fold_a", "fold_b"]
#: Columns of the report's table of the largest merged groups.
_MERGED_GROUPS_SCHEMA = {
    "group": pl.String,
    "videos": pl.Int64,
    "annotated_groups": pl.Int64,
    "labels": pl.String,
    "members": pl.String,
}


def audit(
    videos: pl.DataFrame,
    signatures: pl.DataFrame,
    *,
    n_folds: int,
    random_state: int,
    group_by: str,
    match: dict,
    top: int = 30,
) -> tuple[pl.DataFrame, str]:
    """Match every pair of valid videos and judge the annotations and folds against it.

    Returns the ``near_duplicates`` table (pairs, with ``same_annotated_group`` and
    ``same_fold`` against folds made from the annotated groups alone, as they would be
    without this audit; extras ``flipped``, labels and groups of both videos) and the
    markdown of ``results/reports/leaks.md``. ``match``: the keywords of
    :func:`lib.audit.near_duplicates.find_near_duplicates` (the ``near_duplicates`` section);
    ``group_by`` is only reported (the folds stage applies it); ``top``: rows per table of the
    report.
    """
    valid = videos.filter(pl.col("valid"))
    signed = signatures.filter(pl.col("video_id").is_in(valid["video_id"].implode()))
    pairs = find_near_duplicates(signed, random_state=random_state, **match)
    annotated_folds = assign_folds(valid, n_folds=n_folds, random_state=random_state)
    fold = dict(zip(annotated_folds["video_id"].to_list(), annotated_folds["fold"].to_list()))
    group = dict(zip(valid["video_id"].to_list(), valid["dup_group"].cast(pl.String).to_list()))
    label = dict(zip(valid["video_id"].to_list(), valid["label"].cast(pl.String).to_list()))
    a, b = pairs["video_a"].to_list(), pairs["video_b"].to_list()
    table = pairs.with_columns(
        same_annotated_group=pl.Series(
            [group[x] == group[y] for x, y in zip(a, b)], dtype=pl.Boolean
        ),
        same_fold=pl.Series([fold[x] == fold[y] for x, y in zip(a, b)], dtype=pl.Boolean),
        group_a=pl.Series([group[x] for x in a], dtype=pl.String),
        group_b=pl.Series([group[x] for x in b], dtype=pl.String),
        label_a=pl.Series([label[x] for x in a], dtype=pl.String),
        label_b=pl.Series([label[x] for x in b], dtype=pl.String),
        fold_a=pl.Series([fold[x] for x in a], dtype=pl.Int64),
        fold_b=pl.Series([fold[x] for x in b], dtype=pl.Int64),
    )
    table = table.select(*_MATCH_COLUMNS, "same_annotated_group", "same_fold", *_CONTEXT_COLUMNS)
    merged = fold_groups(valid, table, "both")
    report = leak_report(
        valid,
        signatures,
        table,
        merged,
        n_folds=n_folds,
        random_state=random_state,
        group_by=group_by,
        match=match,
        top=top,
    )
    return table, report


def _md_table(df: pl.DataFrame, columns: list[str], top: int) -> str:
    if df.is_empty():
        return "_none_\n"
    more = (
        f"\n…and {len(df) - top} more (all in `results/near_duplicates.csv`).\n"
        if len(df) > top
        else "\n"
    )
    return markdown_table(df.select(columns).head(top)) + "\n" + more


def leak_report(
    valid: pl.DataFrame,
    signatures: pl.DataFrame,
    pairs: pl.DataFrame,
    merged: pl.Series,
    *,
    n_folds: int,
    random_state: int,
    group_by: str,
    match: dict,
    top: int = 30,
) -> str:
    """The markdown leak report (see :func:`audit`)."""
    ok = signatures["status"] == "ok"
    in_valid = signatures["video_id"].is_in(valid["video_id"].implode())
    failed = signatures.filter(~ok & in_valid)["reason"]
    missed = pairs.filter(~pl.col("same_annotated_group"))
    straddling = pairs.filter(~pl.col("same_fold"))
    conflicts = pairs.filter(pl.col("label_a") != pl.col("label_b"))
    n_annotated = valid["dup_group"].n_unique()
    n_merged_groups = merged.n_unique()
    labels = dict(zip(valid["video_id"].to_list(), valid["label"].cast(pl.String).to_list()))
    annotated = dict(zip(valid["video_id"].to_list(), valid["dup_group"].cast(pl.String).to_list()))
    members_of: dict[str, list[str]] = defaultdict(list)  # merged group -> its videos
    for vid, name in zip(valid["video_id"].to_list(), merged.to_list()):
        members_of[name].append(vid)
    sizes = []
    for name, members in sorted(members_of.items()):
        groups = sorted({annotated[v] for v in members})
        if len(groups) > 1:
            counts = Counter(labels[v] for v in members)
            sizes.append(
                {
                    "group": name,
                    "videos": len(members),
                    "annotated_groups": len(groups),
                    "labels": ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
                    "members": " ".join(sorted(members)[:8]) + (" …" if len(members) > 8 else ""),
                }
            )
    largest = pl.DataFrame(sizes, schema=_MERGED_GROUPS_SCHEMA).sort(
        ["videos", "group"], descending=[True, False], maintain_order=True
    )
    cols = _MATCH_COLUMNS + _CONTEXT_COLUMNS

    def by_strength(df):
        return df.sort(
            ["matched_frames", "distance", "video_a", "video_b"],
            descending=[True, False, False, False],
            maintain_order=True,
        )

    codes = Counter(r.split(":")[0] for r in failed.to_list())
    failures = ", ".join(
        f"{k}: {v}" for k, v in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    text = [
        "# Leak audit: near-duplicates found by content\n",
        f"Every valid video was signed with perceptual hashes of frames sampled across it "
        f"(`lib/audit/signatures.py`) and every pair matched through an LSH index "
        f"(`lib/audit/near_duplicates.py`): a pair matches when at least {match['min_matched_frames']} "
        f"frames (and {match['min_matched_fraction']:.0%}) of one video each have a frame of the "
        f"other within {match['threshold']} bits of 64 (index: {match['n_bands']} tables of "
        f"{match['band_bits']} bits), and those frames' thumbnails agree where the videos move "
        f"(at most {match['verify_share']:.0%} of the moving pixels off by more than "
        f"{match['verify_levels']} levels) at one time offset (`lib/audit/verify.py`); still "
        "frames of a moving video are not counted.\n",
        "| | count |",
        "|---|---|",
        f"| valid videos | {len(valid)} |",
        f"| videos with a signature | {int((ok & in_valid).sum())} |",
        f"| videos without one | {len(failed)}{f' ({failures})' if failures else ''} |",
        f"| near-duplicate pairs | {len(pairs)} |",
        f"| pairs the annotations missed (different annotated groups) | {len(missed)} |",
        f"| pairs straddling folds made from annotated groups alone (k={n_folds}, seed {random_state}) | {len(straddling)} |",
        f"| pairs with different labels (annotation conflicts) | {len(conflicts)} |",
        f"| annotated groups | {n_annotated} |",
        f"| groups after joining content matches | {n_merged_groups} |",
        f"| annotated groups merged by the audit | {n_annotated - n_merged_groups} (into {len(largest)} groups) |",
        "",
        f"Folds use `folds.group_by: {group_by}`"
        + {
            "annotated": " — the annotated groups only: the leaks below remain.",
            "content": " — content groups only (annotations ignored).",
            "both": " — annotated groups joined through these matches: no pair below straddles the folds actually used.",
        }[group_by]
        + "\n",
        "## Pairs the annotations missed\n",
        _md_table(by_strength(missed), cols, top),
        "## Pairs straddling folds (annotated groups alone)\n",
        _md_table(by_strength(straddling), cols, top),
        "## Pairs with different labels\n",
        _md_table(by_strength(conflicts), cols, top),
        "## Largest merged groups\n",
        _md_table(largest, list(largest.columns), top),
    ]
    return "\n".join(text)
