"""The groups that folds keep together: annotated duplicate groups, joined through the
near-duplicate pairs the leak audit found.

:class:`UnionFind` joins groups that share a member; ingest uses it to join cascades that list
the same video, :func:`fold_groups` to join annotated groups through content matches.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import polars as pl

from lib import schemas

log = logging.getLogger(__name__)

GROUP_BY = ("annotated", "content", "both")


class UnionFind:
    """Disjoint sets of names; each set is named by its smallest member (deterministic)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def fold_groups(videos: pl.DataFrame, pairs: pl.DataFrame | None, group_by: str) -> pl.Series:
    """The group each video's folds must keep together, one per row of ``videos`` in order.

    ``annotated``: the corpus's ``dup_group``. ``content``: connected components of the
    near-duplicate pairs (a video matching nothing is its own group). ``both``: annotated
    groups joined through content matches (union-find, as ingest joins cascades that share
    a video); a corpus without a group column has one group per video, so ``both`` gives
    its content groups. A group made of several annotated groups is named after them.
    """
    return _merge(videos, pairs, group_by)[0]


def _merge(videos: pl.DataFrame, pairs: pl.DataFrame | None, group_by: str):
    """:func:`fold_groups` and the row numbers of the pairs that joined two groups (the
    links that built each merged group, in the order they joined)."""
    if group_by not in GROUP_BY:
        raise ValueError(f"folds.group_by must be one of {GROUP_BY}, got {group_by!r}")
    ids = videos["video_id"].cast(pl.String).to_list()
    annotated = dict(zip(ids, videos["dup_group"].cast(pl.String).to_list()))
    if group_by == "annotated":
        return pl.Series("dup_group", [annotated[v] for v in ids], dtype=pl.String), []
    if pairs is None:
        raise ValueError(f"folds.group_by={group_by!r} needs the near-duplicate pairs")
    union = UnionFind()
    for vid in ids:
        union.find(vid)
    if group_by == "both":
        first_of = {}
        for vid, group in annotated.items():
            union.union(first_of.setdefault(group, vid), vid)
    known, links = set(ids), []
    for row, (a, b) in enumerate(zip(pairs["video_a"].to_list(), pairs["video_b"].to_list())):
        if a in known and b in known and union.find(a) != union.find(b):
            union.union(a, b)
            links.append(row)
    members = defaultdict(list)
    for vid in ids:
        members[union.find(vid)].append(vid)
    name_of_root = {}
    for root, vids in members.items():
        if group_by == "content":
            name_of_root[root] = f"content:{root}"  # named by its smallest video id
            continue
        groups = sorted({annotated[v] for v in vids})
        name_of_root[root] = groups[0] if len(groups) == 1 else _joined_name(groups)
    names = [name_of_root[union.find(vid)] for vid in ids]
    return pl.Series("dup_group", names, dtype=pl.String), links


def check_merged_groups(
    videos: pl.DataFrame, pairs: pl.DataFrame, group_by: str, *, max_merged_share: float
) -> None:
    """Raise ValueError when a group that the leak audit's ``pairs`` merged (annotated groups
    joined under ``both``, videos under ``content``) holds more than ``max_merged_share`` of
    ``videos`` (the valid ones): one chain of matches, false ones included, would then fill a
    fold by itself. The message lists the pairs that built the group, with their scores, and
    the keys that change the outcome."""
    groups, links = _merge(videos, pairs, group_by)
    ids = videos["video_id"].cast(pl.String).to_list()
    group_of = dict(zip(ids, groups.to_list()))
    chains = pairs[links].with_columns(
        group=pl.col("video_a").replace_strict(group_of, default=None)
    )
    sizes = groups.value_counts().filter(pl.col("dup_group").is_in(chains["group"].implode()))
    over = sizes.filter(pl.col("count") > max_merged_share * len(videos))
    if over.is_empty():
        return
    name, size = over.sort(["count", "dup_group"], descending=[True, False]).row(0)
    chain = chains.filter(pl.col("group") == name)
    chain = chain.sort(["matched_frames", "distance"], descending=[False, True])
    shown = "; ".join(
        f"{a} ~ {b} ({m} frames, {d:.1f} bits)"
        for a, b, m, d in chain.select("video_a", "video_b", "matched_frames", "distance")
        .head(_CHAIN_SHOWN)
        .iter_rows()
    )
    more = f"; ...and {len(chain) - _CHAIN_SHOWN} more" if len(chain) > _CHAIN_SHOWN else ""
    joined = len(chain) + 1  # each link joined one more annotated group (or video)
    unit = "videos" if group_by == "content" else "annotated groups"
    raise ValueError(
        f"the leak audit joined {joined} {unit} into one group of {size} of the "
        f"{len(videos)} valid videos ({size / len(videos):.0%}, above folds.max_merged_share "
        f"{max_merged_share:.0%}) through this chain of {len(chain)} near-duplicate pairs "
        f"(weakest first: matched frames, mean hash distance; all pairs in "
        f"results/near_duplicates.csv, merged groups in results/reports/leaks.md): {shown}"
        f"{more}. If these videos are copies of one another, raise folds.max_merged_share; "
        "if some pairs are not copies, tighten near_duplicates (verify_share, frame_share, "
        "verify_levels, threshold, min_matched_frames) and rerun the audit, or set "
        "folds.group_by: annotated to use the corpus's groups alone."
    )


_CHAIN_SHOWN = 20


def _joined_name(groups: list[str], shown: int = 3) -> str:
    """``a+b+c`` for a merge of annotated groups; long merges abbreviated (still unique:
    the smallest member belongs to one merged group only)."""
    if len(groups) <= shown:
        return "+".join(groups)
    return "+".join(groups[:shown]) + f"+{len(groups) - shown}_more"


def regroup(
    videos: pl.DataFrame, near_duplicates, group_by: str, *, max_merged_share: float
) -> pl.DataFrame:
    """``videos`` with ``dup_group`` replaced by the fold groups of ``group_by`` (from the
    pairs table at path ``near_duplicates``); the corpus's own group moves to
    ``annotated_group``. Stops (:func:`check_merged_groups`) when a merged group holds more
    than ``max_merged_share`` of the valid videos."""
    if near_duplicates is None:
        raise ValueError(f"folds.group_by={group_by!r} needs results/near_duplicates.csv")
    pairs = schemas.read_table(near_duplicates, "near_duplicates")
    valid = videos.filter(pl.col("valid"))
    groups = fold_groups(valid, pairs, group_by)
    check_merged_groups(valid, pairs, group_by, max_merged_share=max_merged_share)
    new_group = dict(zip(valid["video_id"].to_list(), groups.to_list()))
    out = videos.with_columns(
        dup_group=pl.Series(
            [
                new_group.get(v, g)
                for v, g in zip(videos["video_id"].to_list(), videos["dup_group"].to_list())
            ],
            dtype=pl.String,
        ),
        annotated_group=videos["dup_group"],
    )
    log.info(
        "folds group by %s: %d annotated groups -> %d groups",
        group_by,
        valid["dup_group"].n_unique(),
        groups.n_unique(),
    )
    return out
