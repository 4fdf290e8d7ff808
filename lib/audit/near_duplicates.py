"""The leak audit: find every pair of near-duplicate videos by content, and the groups they make.

Matching works on the frame hashes of :mod:`lib.audit.signatures`. Two videos match when at least
``min_matched_frames`` of one video's hashed frames (and at least ``min_matched_fraction`` of
them) each have a frame of the other within ``threshold`` bits (of 64), comparing every crop
variant with every other; a mirrored copy matches through the mirrored variants. Counting
matched frames of *one* video makes a trimmed copy match its source: all of the short clip's
frames find partners inside the long one, although most of the long one's do not.

Never all n² pairs: a bit-sampling LSH index proposes candidates. Each of ``n_bands`` tables
keys every upright hash by ``band_bits`` of its 64 bits, drawn at random (seeded); hashes
within ``threshold`` bits agree on all of them with probability about (1 - d/64)^b, so a
near-duplicate frame pair shares some table's bucket with high probability, while random
64-bit hashes share one with probability 2^-b. Mirrored hashes are looked up in the same
tables. Colliding frame pairs are kept only when their own distance is within the threshold
(one popcount), so the expensive frame-by-frame comparison runs on true candidates only.
The cost is ``n_bands`` sorts of the hashes, O(N log N); random collisions add a term in
N² / 2^b, negligible up to N ≈ 2^b hashes (benchmarks/bench_leaks.py: 10k and 100k videos).

Content shared by very many videos (a viral clip reposted thousands of times) makes huge
buckets; each hash is then paired with its ``max_neighbours`` nearest neighbours in the
bucket only, which keeps the cost linear and the groups complete (a chain joins them all),
though not every pair of such a group is listed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import numpy as np
import polars as pl

from lib.corpus.ingest import UnionFind
from lib.utils import markdown_table
from lib.audit.signatures import HASH_BITS, N_UPRIGHT, VARIANTS, decode_hashes

log = logging.getLogger(__name__)

GROUP_BY = ("annotated", "content", "both")
# Defaults of the matching parameters (the config schema repeats them for users).
MATCH_DEFAULTS = {
    "threshold": 10,
    "min_matched_frames": 3,
    "min_matched_fraction": 0.3,
    "band_bits": 24,
    "n_bands": 24,
    "max_neighbours": 32,
}
_FAR = np.uint8(HASH_BITS + 1)  # distance given to padding (never a match)
_VIDEO_BITS, _LOCAL_BITS = 27, 12  # index packing: 2^27 videos, 2^12 hashes per video and role


# ----------------------------------------------------------------------------- signatures
def signature_arrays(signatures: pl.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Video ids, hashes ``uint64[n, max_frames, 6]`` (zero padded) and frame counts of the
    signatures that have at least one hashed frame."""
    usable = signatures.filter((pl.col("status") == "ok") & (pl.col("frames") > 0))
    decoded = [decode_hashes(text) for text in usable["hashes"]]
    counts = np.array([len(d) for d in decoded], dtype=np.int64)
    width = int(counts.max()) if len(counts) else 0
    hashes = np.zeros((len(decoded), width, len(VARIANTS)), dtype=np.uint64)
    for i, d in enumerate(decoded):
        hashes[i, : len(d)] = d
    return usable["video_id"].to_list(), hashes, counts


# ----------------------------------------------------------------------------- index
def _band_tables(bits: np.ndarray) -> list[np.ndarray]:
    """Lookup tables turning each 16-bit chunk of a hash into its part of the band key."""
    values = np.arange(1 << 16, dtype=np.uint32)
    tables = [np.zeros(1 << 16, dtype=np.uint32) for _ in range(HASH_BITS // 16)]
    for position, bit in enumerate(bits):
        chunk, offset = divmod(int(bit), 16)
        tables[chunk] |= ((values >> np.uint32(offset)) & np.uint32(1)) << np.uint32(position)
    return tables


def _band_key(hashes: np.ndarray, tables: list[np.ndarray]) -> np.ndarray:
    key = np.zeros(len(hashes), dtype=np.uint32)
    for chunk, table in enumerate(tables):
        key |= table[((hashes >> np.uint64(16 * chunk)) & np.uint64(0xFFFF)).astype(np.intp)]
    return key


def candidate_pairs(
    hashes: np.ndarray,
    counts: np.ndarray,
    *,
    threshold: int = 10,
    band_bits: int = 24,
    n_bands: int = 24,
    max_neighbours: int = 32,
    random_state: int = 0,
) -> np.ndarray:
    """Pairs ``(a, b)``, a < b, of video rows with at least one pair of frame hashes within
    ``threshold`` bits found through the LSH tables; ``int64[m, 2]``, sorted."""
    n, width, _ = hashes.shape
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    if not 1 <= band_bits <= 24:
        raise ValueError(f"near_duplicates.band_bits must be in 1..24, got {band_bits}")
    if n >= 1 << _VIDEO_BITS or width * N_UPRIGHT >= 1 << _LOCAL_BITS:
        raise ValueError(f"{n} videos of up to {width} frames: too many for the index's packing")
    video, frame = np.nonzero(np.arange(width)[None, :] < counts[:, None])
    # Items: every upright hash (stored) and every mirrored one (looked up only), each named
    # by (video, role, frame * 3 + variant) packed into the low 40 bits of a 64-bit word;
    # the band key goes on top, so one plain sort of unique words orders the buckets.
    local = (frame[:, None] * N_UPRIGHT + np.arange(N_UPRIGHT)[None, :]).ravel()
    item_video = np.repeat(video, N_UPRIGHT).astype(np.uint64)
    item_hash = np.concatenate(
        [hashes[video, frame, :N_UPRIGHT].ravel(), hashes[video, frame, N_UPRIGHT:].ravel()]
    )
    name = np.concatenate(
        [
            (item_video << np.uint64(_LOCAL_BITS + 1)) | local.astype(np.uint64),
            (item_video << np.uint64(_LOCAL_BITS + 1))
            | np.uint64(1 << _LOCAL_BITS)
            | local.astype(np.uint64),
        ]
    )
    flat = hashes.reshape(n * width * len(VARIANTS))
    rng = np.random.default_rng(random_state)
    found = []
    for band in range(n_bands):
        bits = rng.choice(HASH_BITS, size=band_bits, replace=False)
        key = _band_key(item_hash, _band_tables(bits))
        words = np.sort((key.astype(np.uint64) << np.uint64(40)) | name)
        # One item per (bucket, video, role): many frames of one video share buckets.
        group = words >> np.uint64(_LOCAL_BITS)
        first = np.ones(len(words), dtype=bool)
        first[1:] = group[1:] != group[:-1]
        words = words[first]
        k = words >> np.uint64(40)
        shared = np.zeros(len(k), dtype=bool)  # items whose bucket holds another item
        same = k[1:] == k[:-1]
        shared[1:] |= same
        shared[:-1] |= same
        words, k = words[shared], k[shared]
        v = ((words >> np.uint64(_LOCAL_BITS + 1)) & np.uint64((1 << _VIDEO_BITS) - 1)).astype(
            np.int64
        )
        q = ((words >> np.uint64(_LOCAL_BITS)) & np.uint64(1)).astype(bool)
        frame_of, variant = np.divmod(
            (words & np.uint64((1 << _LOCAL_BITS) - 1)).astype(np.int64), N_UPRIGHT
        )
        h = flat[(v * width + frame_of) * len(VARIANTS) + variant + N_UPRIGHT * q]
        for step in range(1, max_neighbours + 1):
            i = np.nonzero(k[step:] == k[:-step])[0]
            if not len(i):
                break
            j = i + step
            keep = (v[i] != v[j]) & ~(q[i] & q[j])
            i, j = i[keep], j[keep]
            close = np.bitwise_count(h[i] ^ h[j]) <= threshold
            a, b = v[i][close], v[j][close]
            found.append(np.minimum(a, b) * n + np.maximum(a, b))
    codes = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
    return np.stack([codes // n, codes % n], axis=1)


# ----------------------------------------------------------------------------- verification
def verify_pairs(
    hashes: np.ndarray,
    counts: np.ndarray,
    pairs: np.ndarray,
    *,
    threshold: int = 10,
    min_matched_frames: int = 3,
    min_matched_fraction: float = 0.3,
    chunk: int = 512,
) -> pl.DataFrame:
    """Compare candidate pairs frame by frame; the rows of the pairs that match.

    Columns: ``a``, ``b`` (row numbers), ``distance`` (mean bits between each matched frame
    and its partner), ``matched_frames`` (frames of the video that matched best, ``a`` or
    ``b``), ``flipped`` (matched through the mirrored hashes).
    """
    out = []
    width = hashes.shape[1]
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start : start + chunk, 0], pairs[start : start + chunk, 1]
        valid_a = np.arange(width)[None, :] < counts[a][:, None]
        valid_b = np.arange(width)[None, :] < counts[b][:, None]
        both = valid_a[:, :, None] & valid_b[:, None, :]
        best = None
        for flipped in (False, True):
            offset = N_UPRIGHT if flipped else 0
            dist = np.full((len(a), width, width), _FAR, dtype=np.uint8)
            for x in range(N_UPRIGHT):
                for y in range(N_UPRIGHT):
                    d = np.bitwise_count(
                        hashes[a, :, offset + x][:, :, None] ^ hashes[b, :, y][:, None, :]
                    )
                    np.minimum(dist, d, out=dist)
            dist[~both] = _FAR
            result = _direction(
                dist.min(axis=2),
                valid_a,
                counts[a],
                threshold,
                min_matched_frames,
                min_matched_fraction,
            )
            other = _direction(
                dist.min(axis=1),
                valid_b,
                counts[b],
                threshold,
                min_matched_frames,
                min_matched_fraction,
            )
            matched = np.maximum(result[0], other[0])
            distance = np.where(result[0] >= other[0], result[1], other[1])
            if best is None:
                best = (matched, distance, np.zeros(len(a), dtype=bool))
            else:
                better = (matched > best[0]) | ((matched == best[0]) & (distance < best[1]))
                better &= matched > 0
                best = (
                    np.where(better, matched, best[0]),
                    np.where(better, distance, best[1]),
                    better,
                )
        hit = best[0] > 0
        out.append(
            pl.DataFrame(
                {
                    "a": a[hit],
                    "b": b[hit],
                    "distance": best[1][hit],
                    "matched_frames": best[0][hit],
                    "flipped": best[2][hit],
                },
                schema=_PAIR_SCHEMA,
            )
        )
    if not out:
        return pl.DataFrame(schema=_PAIR_SCHEMA)
    return pl.concat(out)


_PAIR_SCHEMA = {
    "a": pl.Int64,
    "b": pl.Int64,
    "distance": pl.Float64,
    "matched_frames": pl.Int64,
    "flipped": pl.Boolean,
}


def _direction(nearest, valid, count, threshold, min_frames, min_fraction):
    """Matched frames of one side (0 when below the bounds) and their mean distance."""
    good = (nearest <= threshold) & valid
    matched = good.sum(axis=1)
    needed = np.maximum(np.minimum(min_frames, count), np.ceil(min_fraction * count))
    ok = (matched >= needed) & (matched > 0)
    total = np.where(good, nearest, 0).sum(axis=1)
    mean = np.where(matched > 0, total / np.maximum(matched, 1), np.inf)
    return np.where(ok, matched, 0), mean


def find_near_duplicates(
    signatures: pl.DataFrame, *, random_state: int = 0, **params
) -> pl.DataFrame:
    """Every matching pair of videos in a signatures table.

    Returns ``video_a, video_b`` (``video_a < video_b``), ``distance``, ``matched_frames``,
    ``flipped``, sorted by the two ids. ``params``: keys of :data:`MATCH_DEFAULTS`.
    """
    unknown = set(params) - set(MATCH_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown near_duplicates parameters {sorted(unknown)}; known: {sorted(MATCH_DEFAULTS)}"
        )
    p = {**MATCH_DEFAULTS, **params}
    ids, hashes, counts = signature_arrays(signatures)
    candidates = candidate_pairs(
        hashes,
        counts,
        threshold=p["threshold"],
        band_bits=p["band_bits"],
        n_bands=p["n_bands"],
        max_neighbours=p["max_neighbours"],
        random_state=random_state,
    )
    log.info("%d signatures, %d candidate pairs from the index", len(ids), len(candidates))
    rows = verify_pairs(
        hashes,
        counts,
        candidates,
        threshold=p["threshold"],
        min_matched_frames=p["min_matched_frames"],
        min_matched_fraction=p["min_matched_fraction"],
    )
    names = np.array(ids, dtype=object)
    first, second = names[rows["a"].to_numpy()], names[rows["b"].to_numpy()]
    swap = first > second
    out = pl.DataFrame(
        {
            "video_a": pl.Series(np.where(swap, second, first), dtype=pl.String),
            "video_b": pl.Series(np.where(swap, first, second), dtype=pl.String),
            "distance": np.round(rows["distance"].to_numpy(), 3),
            "matched_frames": rows["matched_frames"],
            "flipped": rows["flipped"],
        }
    )
    log.info("%d near-duplicate pairs", len(out))
    return out.sort(["video_a", "video_b"], maintain_order=True)


# ----------------------------------------------------------------------------- groups
def fold_groups(
    videos: pl.DataFrame, pairs: pl.DataFrame | None, group_by: str = "both"
) -> pl.Series:
    """The group each video's folds must keep together, one per row of ``videos`` in order.

    ``annotated``: the corpus's ``dup_group``. ``content``: connected components of the
    near-duplicate pairs (a video matching nothing is its own group). ``both``: annotated
    groups joined through content matches (union-find, as ingest joins cascades that share
    a video); a corpus without a group column has one group per video, so ``both`` gives
    its content groups. A group made of several annotated groups is named after them.
    """
    if group_by not in GROUP_BY:
        raise ValueError(f"folds.group_by must be one of {GROUP_BY}, got {group_by!r}")
    ids = videos["video_id"].cast(pl.String).to_list()
    annotated = dict(zip(ids, videos["dup_group"].cast(pl.String).to_list()))
    if group_by == "annotated":
        return pl.Series("dup_group", [annotated[v] for v in ids], dtype=pl.String)
    if pairs is None:
        raise ValueError(f"folds.group_by={group_by!r} needs the near-duplicate pairs")
    union = UnionFind()
    for vid in ids:
        union.find(vid)
    if group_by == "both":
        first_of = {}
        for vid, group in annotated.items():
            union.union(first_of.setdefault(group, vid), vid)
    known = set(ids)
    for a, b in zip(pairs["video_a"].to_list(), pairs["video_b"].to_list()):
        if a in known and b in known:
            union.union(a, b)
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
    return pl.Series("dup_group", [name_of_root[union.find(vid)] for vid in ids], dtype=pl.String)


def _joined_name(groups: list[str], shown: int = 3) -> str:
    """``a+b+c`` for a merge of annotated groups; long merges abbreviated (still unique:
    the smallest member belongs to one merged group only)."""
    if len(groups) <= shown:
        return "+".join(groups)
    return "+".join(groups[:shown]) + f"+{len(groups) - shown}_more"


# ----------------------------------------------------------------------------- the audit
def audit(
    videos: pl.DataFrame,
    signatures: pl.DataFrame,
    *,
    n_folds: int = 5,
    random_state: int = 0,
    group_by: str = "both",
    match: dict | None = None,
    top: int = 30,
) -> tuple[pl.DataFrame, str]:
    """Match every pair of valid videos and judge the annotations and folds against it.

    Returns the ``near_duplicates`` table (pairs, with ``same_annotated_group`` and
    ``same_fold`` against folds made from the annotated groups alone, as they would be
    without this audit; extras ``flipped``, labels and groups of both videos) and the
    markdown of ``results/reports/leaks.md``. ``group_by`` is only reported (the folds
    stage applies it).
    """
    from lib.evaluate.folds import assign_folds

    match = dict(match or {})
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
    order = [
        "video_a",
        "video_b",
        "distance",
        "matched_frames",
        "same_annotated_group",
        "same_fold",
        "flipped",
        "group_a",
        "group_b",
        "label_a",
        "label_b",
        "fold_a",
        "fold_b",
    ]
    table = table.select(order)
    merged = fold_groups(valid, table, "both")
    report = leak_report(
        valid,
        signatures,
        table,
        merged,
        n_folds=n_folds,
        random_state=random_state,
        group_by=group_by,
        match={**MATCH_DEFAULTS, **match},
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
    largest = pl.DataFrame(
        sizes,
        schema={
            "group": pl.String,
            "videos": pl.Int64,
            "annotated_groups": pl.Int64,
            "labels": pl.String,
            "members": pl.String,
        },
    )
    largest = largest.sort(["videos", "group"], descending=[True, False], maintain_order=True)
    cols = [
        "video_a",
        "video_b",
        "distance",
        "matched_frames",
        "flipped",
        "group_a",
        "group_b",
        "label_a",
        "label_b",
        "fold_a",
        "fold_b",
    ]

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
        f"{match['band_bits']} bits).\n",
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


def regroup(videos: pl.DataFrame, near_duplicates, group_by: str) -> pl.DataFrame:
    """``videos`` with ``dup_group`` replaced by the fold groups of ``group_by`` (from the
    pairs table at path ``near_duplicates``); the corpus's own group moves to
    ``annotated_group``."""
    from lib import schemas

    if near_duplicates is None:
        raise ValueError(f"folds.group_by={group_by!r} needs results/near_duplicates.csv")
    pairs = schemas.read_table(near_duplicates, "near_duplicates")
    valid = videos.filter(pl.col("valid"))
    groups = fold_groups(valid, pairs, group_by)
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
