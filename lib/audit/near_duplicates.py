"""Near-duplicate videos by content: every pair of videos whose frames match.

Matching works on the frame hashes of :mod:`lib.audit.signatures`. Two videos match when at least
``min_matched_frames`` of one video's hashed frames (and at least ``min_matched_fraction`` of
them) each have a frame of the other within ``threshold`` bits (of 64), comparing every crop
variant with every other; a mirrored copy matches through the mirrored variants. Counting
matched frames of *one* video makes a trimmed copy match its source: all of the short clip's
frames find partners inside the long one, although most of the long one's do not.

The pairs the hashes match are then confirmed on the frames' thumbnails, on the part of the
frames that moves, and by a common time offset (:mod:`lib.audit.verify`): hashes alone pair
unrelated low-detail videos (plain backgrounds, logos, screen recordings, signers).

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

import numpy as np
import polars as pl

from lib.audit.signatures import HASH_BITS, N_UPRIGHT, VARIANTS, decode_hashes
from lib.audit.verify import confirm_pairs

log = logging.getLogger(__name__)

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
    threshold: int,
    band_bits: int,
    n_bands: int,
    max_neighbours: int,
    random_state: int,
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
    threshold: int,
    min_matched_frames: int,
    min_matched_fraction: float,
    chunk: int = 512,
) -> pl.DataFrame:
    """Compare candidate pairs frame by frame; the rows of the pairs that match.

    Columns: ``a``, ``b`` (row numbers), ``distance`` (mean bits between each matched frame
    and its partner), ``matched_frames`` (frames of the video that matched best, ``a`` or
    ``b``), ``flipped`` (matched through the mirrored hashes).
    """
    out = []
    width = hashes.shape[1]
    bounds = (threshold, min_matched_frames, min_matched_fraction)
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
            result = _direction(dist.min(axis=2), valid_a, counts[a], *bounds)  # a's frames
            other = _direction(dist.min(axis=1), valid_b, counts[b], *bounds)  # b's frames
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
    signatures: pl.DataFrame,
    *,
    threshold: int,
    min_matched_frames: int,
    min_matched_fraction: float,
    band_bits: int,
    n_bands: int,
    max_neighbours: int,
    verify_levels: int,
    verify_share: float,
    frame_share: float,
    motion_levels: int,
    max_colour_shift: int,
    time_tolerance: float,
    random_state: int,
    skip_among: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Every matching pair of videos in a signatures table.

    Returns ``video_a, video_b`` (``video_a < video_b``), ``distance`` (mean bits between the
    counted frames' hashes), ``matched_frames`` (frames counted), ``flipped``, sorted by the
    two ids. The keywords are the ``near_duplicates`` section's keys (see the module
    docstrings) and the seed of the index's bit sampling; pairs of two videos of
    ``skip_among`` are neither checked nor reported (a corpus already audited, matched
    against another: :mod:`lib.audit.cross`).
    """
    ids, hashes, counts = signature_arrays(signatures)
    index = {"band_bits": band_bits, "n_bands": n_bands, "max_neighbours": max_neighbours}
    candidates = candidate_pairs(
        hashes, counts, threshold=threshold, random_state=random_state, **index
    )
    if skip_among:
        known = np.array([v in skip_among for v in ids], dtype=bool)
        candidates = candidates[~(known[candidates[:, 0]] & known[candidates[:, 1]])]
    log.info("%d signatures, %d candidate pairs from the index", len(ids), len(candidates))
    bounds = {
        "min_matched_frames": min_matched_frames,
        "min_matched_fraction": min_matched_fraction,
    }
    rows = verify_pairs(hashes, counts, candidates, threshold=threshold, **bounds)
    log.info("%d pairs match by their hashes", len(rows))
    usable = signatures.filter((pl.col("status") == "ok") & (pl.col("frames") > 0))
    signed = {  # tables signed before thumbnails and frame rates were kept lack them
        name: usable[name].to_list() if name in usable.columns else [missing] * len(usable)
        for name, missing in (("thumbnails", ""), ("frame_index", ""), ("fps", 1.0))
    }
    confirm = {"verify_levels": verify_levels, "verify_share": verify_share}
    confirm |= {"frame_share": frame_share, "motion_levels": motion_levels}
    confirm |= {"max_colour_shift": max_colour_shift, "time_tolerance": time_tolerance}
    rows = confirm_pairs(
        rows, hashes, counts, signed, threshold=threshold, bounds=bounds, confirm=confirm
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
    log.info("%d near-duplicate pairs confirmed", len(out))
    return out.sort(["video_a", "video_b"], maintain_order=True)
