"""A second look at the pairs of videos whose frame hashes match: thumbnails, motion and time.

Perceptual hashes keep the coarse layout of a frame. On low-detail content (plain studio
backgrounds, a channel's set and logo, screen recordings, signers in one framing) unrelated
frames share that layout, and so do a copy's frames and the frames of another recording made
in the same place. A pair the hashes propose (:mod:`lib.audit.near_duplicates`) is therefore
kept only when its frames also agree on what the hashes cannot see:

* **Pixels.** Each frame pair the hashes matched is compared on its thumbnails
  (:mod:`lib.audit.signatures`): through the one pair of crop variants that lines the two
  videos up best (mirrored for a flip), a colour shift of at most ``max_colour_shift``
  levels per channel taken out, the best shift of up to :data:`SHIFT` pixels applied. A
  pixel differs when it lies more than ``verify_levels`` (of 255, in Y, Cb or Cr) outside
  the range of the other thumbnail's 3x3 neighbourhood around it, either way (crops and
  rescales never line up exactly; a blend of neighbours is what they make). This is done
  twice: at 32 pixels (:data:`THUMB_SIZE`), where the crop variants and the shift are
  chosen, then, for the frame pairs that agree, at the stored size (64 pixels), the shift
  refined by a pixel: what tells two recordings made in one place apart is often a few
  pixels of 64 (hands, a line of text), which a 32-pixel thumbnail blends away.
* **The part that moves.** Only the moving region is compared: pixels more than
  ``motion_levels`` away from their video's median thumbnail in either frame (a studio, a set,
  a logo, an application's window are the same in every frame of a video and say nothing about
  which recording it is; the hands of a signer do). A frame pair is confirmed when at most
  ``verify_share`` of that region differs, and at most ``frame_share`` of the whole
  thumbnail (another studio, set or application window). A video's frames with fewer than
  :data:`MIN_MOVING` moving pixels (the rest pose before a sign) are not evidence; a video
  none of whose frames move (a still) is compared on whole thumbnails.
* **Time.** A copy shows its source's frames in the source's order: the confirmed frame pairs
  must agree on one time offset (frame ``i`` at time ``t`` in one video, its partner at
  ``t + offset`` in the other), within ``time_tolerance`` times the wider of the two videos'
  sampling gaps (sampled frames of a trimmed copy never fall on the source's exactly).

A pair holds when, at the best offset, the confirmed informative frames of one of its videos
reach ``max(min(min_matched_frames, n), ceil(min_matched_fraction * n))`` of its ``n``
informative frames, as for the hashes alone. Videos signed without thumbnails (tables made
before they existed) are judged by their hashes alone. Measured precision and recall:
docs/BENCHMARKS.md, section "Leak audit: robustness of the signatures and scale of the
matcher".
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import polars as pl

from lib.audit.signatures import N_UPRIGHT, THUMB_SIZE, VARIANTS, decode_thumbnails

SHIFT = 3  # pixels of global shift tried when lining up two 32-pixel thumbnails
MIN_MOVING = 3  # moving pixels (of 32x32) that make a frame informative
_OFFSETS = 2  # time offsets whose frame pairs are compared pixel by pixel
_PROBES = 4  # frame pairs (closest hashes first) that choose the crop variants to compare
_REACH = 2  # pixels by which each frame pair may refine the shift chosen for the pair
_REFINED = 3  # crop variant pairs whose coarse best shift is refined
_CACHED_VIDEOS = 2048  # a video's thumbnails take about 16 kB a frame


class VideoViews:
    """The thumbnails of a signature table's videos, decoded on demand (a bounded cache).

    For video row ``r``: :meth:`times` (seconds: ``frame_index / fps``), :meth:`informative`
    (``bool[n]``) and :meth:`view` (some frames as one upright hash variant sees them, with
    their moving pixels, at 32 pixels or at the stored size). :meth:`decoded` is ``None`` for
    a video without thumbnails; :meth:`scale` is how many times 32 pixels it stores.
    """

    def __init__(self, thumbnails, frame_index, counts, fps, *, motion_levels: int):
        self._thumbnails, self._frame_index, self._counts = thumbnails, frame_index, counts
        self._fps, self._motion_levels = fps, motion_levels
        self.decoded = lru_cache(maxsize=_CACHED_VIDEOS)(self._decode)

    def times(self, row: int) -> np.ndarray:
        text, n = self._frame_index[row], int(self._counts[row])
        index = np.array(text.split(), dtype=np.float64) if text else np.arange(n, dtype=float)
        fps = self._fps[row]
        return index / (fps if np.isfinite(fps) and fps > 0 else 1.0)

    def informative(self, row: int) -> np.ndarray:
        """``bool[n]``: frames with at least :data:`MIN_MOVING` moving pixels (all of them in
        a video none of whose frames move)."""
        return self.decoded(row)[2]

    def scale(self, row: int) -> int:
        """The stored thumbnails' size over :data:`THUMB_SIZE` (1: no finer ones)."""
        return len(self.decoded(row)[3][0]) // THUMB_SIZE

    def view(self, row: int, frames, variant: int, mirrored: bool = False, *, fine: bool = False):
        """``frames`` of video ``row`` as upright hash variant ``variant`` sees them
        (``float32[m, T, T, 3]``, mirrored if asked; ``T`` 32, or the stored size if ``fine``)
        and their moving pixels (``bool[m, T, T]``: farther than ``motion_levels`` from the
        video's median)."""
        thumbs, median, _, stored, stored_median = self.decoded(row)
        if fine:
            thumbs, median = stored, stored_median
        keep = VARIANTS[variant][1]
        seen, still = crop_variant(thumbs[frames], keep), crop_variant(median[None], keep)
        moving = np.abs(seen - still).max(axis=-1) > self._motion_levels
        if mirrored:
            seen, moving = seen[:, :, ::-1], moving[:, :, ::-1]
        return seen, moving

    def _decode(self, row: int):
        if not self._thumbnails[row]:
            return None
        stored = decode_thumbnails(self._thumbnails[row], int(self._counts[row]))
        k = len(stored[0]) // THUMB_SIZE  # each 32-pixel thumbnail pixel: k x k stored ones
        thumbs = stored.reshape(len(stored), THUMB_SIZE, k, THUMB_SIZE, k, 3).mean(axis=(2, 4))
        thumbs = np.round(thumbs).astype(np.uint8)
        median = np.median(thumbs.astype(np.float32), axis=0)
        moving = np.abs(thumbs - median).max(axis=-1) > self._motion_levels
        informative = moving.sum(axis=(1, 2)) >= MIN_MOVING
        if not informative.any():  # a still: every frame counts
            informative[:] = True
        stored_median = np.median(stored.astype(np.float32), axis=0) if k > 1 else median
        return thumbs, median, informative, stored, stored_median


def crop_variant(thumbs: np.ndarray, keep: float) -> np.ndarray:
    """The central ``keep`` of each of ``thumbs[m, T, T, C]`` resampled (bilinear) back to
    ``T`` pixels, as the hash variant of that crop sees the frame: ``float32[m, T, T, C]``."""
    thumbs, size = thumbs.astype(np.float32), thumbs.shape[1]
    if keep >= 1.0:
        return thumbs
    source = size * (1 - keep) / 2 - 0.5 + (np.arange(size) + 0.5) * keep
    low = np.clip(np.floor(source).astype(int), 0, size - 1)
    high = np.clip(low + 1, 0, size - 1)
    weight = (source - np.floor(source)).astype(np.float32)
    rows = thumbs[:, low] * (1 - weight)[:, None, None] + thumbs[:, high] * weight[:, None, None]
    return rows[:, :, low] * (1 - weight)[:, None] + rows[:, :, high] * weight[:, None]


def frame_pairs(hashes_a: np.ndarray, hashes_b: np.ndarray, *, threshold: int):
    """Every frame pair of two videos within ``threshold`` bits (the closest crop variants),
    upright and mirrored: arrays ``i, j, flipped, distance``."""
    out = []
    for flipped in (False, True):
        offset = N_UPRIGHT if flipped else 0
        best = np.full((len(hashes_a), len(hashes_b)), 255, dtype=np.uint8)
        for x in range(N_UPRIGHT):
            for y in range(N_UPRIGHT):
                d = np.bitwise_count(hashes_a[:, None, offset + x] ^ hashes_b[None, :, y])
                np.minimum(best, d, out=best)
        i, j = np.nonzero(best <= threshold)
        out.append((i, j, np.full(len(i), flipped), best[i, j]))
    return tuple(np.concatenate(parts) for parts in zip(*out))


def _padded(x: np.ndarray, by: int) -> np.ndarray:
    """``x[:, T, T, ...]`` with ``by`` edge pixels repeated around each image."""
    return np.pad(x, [(0, 0), (by, by), (by, by)] + [(0, 0)] * (x.ndim - 3), mode="edge")


def _moved(x: np.ndarray, shifts: np.ndarray, limit: int = SHIFT) -> np.ndarray:
    """Each image of ``x[:, T, T, ...]`` moved by its own ``shifts[k] = (dy, dx)`` (at most
    ``limit`` pixels), edges repeated."""
    m, size = len(x), x.shape[1]
    padded = _padded(x, limit)
    rows = (limit - shifts[:, 0])[:, None, None] + np.arange(size)[None, :, None]
    cols = (limit - shifts[:, 1])[:, None, None] + np.arange(size)[None, None, :]
    return padded[np.arange(m)[:, None, None], rows, cols]


def _neighbourhood(x: np.ndarray, pick) -> np.ndarray:
    """``pick`` (np.minimum or np.maximum) over each pixel's 3x3 neighbourhood of
    ``x[:, T, T, C]`` (edges repeated); separable, so two passes of three."""
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    rows = pick(pick(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return pick(pick(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def _far_from_neighbours(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel of ``a``: how far (largest over channels) it lies outside the range of
    ``b``'s 3x3 neighbourhood around it (0 inside: some blend of those pixels, as a slightly
    shifted or rescaled copy makes, gives it)."""
    low, high = _neighbourhood(b, np.minimum), _neighbourhood(b, np.maximum)
    return np.maximum(low - a, a - high).max(axis=-1)


def _shifts(centre=(0, 0), reach: int = SHIFT, limit: int = SHIFT) -> list[tuple[int, int]]:
    """The pixel shifts within ``reach`` of ``centre`` and within ``limit`` of none."""
    ys = range(max(centre[0] - reach, -limit), min(centre[0] + reach, limit) + 1)
    xs = range(max(centre[1] - reach, -limit), min(centre[1] + reach, limit) + 1)
    return [(dy, dx) for dy in ys for dx in xs]


def _fit(a: np.ndarray, b: np.ndarray, shifts, *, max_colour_shift: int, limit: int = SHIFT):
    """``b`` with its colour shifted by at most ``max_colour_shift`` towards ``a``'s, and the
    mean absolute brightness error over the inner pixels for each of ``shifts`` (each at
    most ``limit`` pixels): ``float[m, len(shifts)]``."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    offset = b.mean(axis=(1, 2), keepdims=True) - a.mean(axis=(1, 2), keepdims=True)
    b = b - np.clip(offset, -max_colour_shift, max_colour_shift)
    inner = a[:, limit:-limit, limit:-limit, 0]
    size = inner.shape[1]
    dy, dx = np.array(shifts).T
    # every window of the padded brightness, one per start (2 * limit - shift), in one go
    starts_y, starts_x = 2 * limit - dy, 2 * limit - dx
    low_y, low_x = starts_y.min(), starts_x.min()
    padded = _padded(b[..., 0], limit)[
        :, low_y : starts_y.max() + size, low_x : starts_x.max() + size
    ]
    windows = sliding_window_view(padded, (size, size), axis=(1, 2))
    errors = np.empty((len(a), len(shifts)), dtype=np.float32)
    for start in range(0, len(a), 128):  # bounded memory
        rows = slice(start, start + 128)
        chosen = windows[rows][:, starts_y - low_y, starts_x - low_x]
        errors[rows] = np.abs(chosen - inner[rows, None]).mean(axis=(2, 3))
    return b, errors


def line_up(
    a: np.ndarray, b: np.ndarray, *, max_colour_shift: int, centre=(0, 0), reach=SHIFT, limit=SHIFT
):
    """``b`` (thumbnails ``[m, T, T, 3]``) moved onto ``a``: its colour shifted by at most
    ``max_colour_shift`` towards ``a``'s, then by the pixel shift (within ``reach`` of
    ``centre``, at most ``limit``) whose brightness fits best. Returns the moved
    thumbnails and the shifts ``int[m, 2]``."""
    tried = _shifts(centre, reach, limit)
    b, errors = _fit(a, b, tried, max_colour_shift=max_colour_shift, limit=limit)
    shifts = np.array(tried)[errors.argmin(axis=1)]
    return _moved(b, shifts, limit), shifts


def confirm_frames(
    a,
    b,
    moving_a,
    moving_b,
    *,
    verify_levels,
    verify_share,
    frame_share,
    max_colour_shift,
    centre=(0, 0),
    reach=SHIFT,
    limit=SHIFT,
    min_moving=MIN_MOVING,
):
    """Which frame pairs agree: ``a``, ``b`` thumbnails ``[m, T, T, 3]`` (the variants to
    compare, ``a`` mirrored where the hashes matched mirrored), ``moving_*`` their moving
    pixels ``[m, T, T]``; ``bool[m]``, and the shifts that lined ``b`` up (``int[m, 2]``).
    At most ``verify_share`` of the moving region may differ, and at most ``frame_share`` of
    the whole thumbnail (another application's window, another studio); ``limit`` and
    ``min_moving`` are :data:`SHIFT` and :data:`MIN_MOVING` at the thumbnails' size."""
    moved, shifts = line_up(
        a, b, max_colour_shift=max_colour_shift, centre=centre, reach=reach, limit=limit
    )
    moving_b = _moved(moving_b, shifts, limit)
    a = a.astype(np.float32)
    differs = (_far_from_neighbours(a, moved) > verify_levels) | (
        _far_from_neighbours(moved, a) > verify_levels
    )
    region = moving_a | moving_b
    still = region.sum(axis=(1, 2)) < min_moving
    region[still] = True  # neither frame moves: the whole thumbnail
    moving_agree = (differs & region).sum(axis=(1, 2)) <= verify_share * region.sum(axis=(1, 2))
    return moving_agree & (differs.mean(axis=(1, 2)) <= frame_share), shifts


def offset_support(offsets, frames, n_frames, *, width):
    """For each pair ``k``: how many distinct ``frames`` (of a video of ``n_frames``) have a
    pair whose offset lies within ``width`` of pair ``k``'s."""
    one_hot = np.zeros((len(frames), n_frames), dtype=np.float32)
    one_hot[np.arange(len(frames)), frames] = 1
    support = np.empty(len(frames), dtype=np.int64)
    for start in range(0, len(frames), 1024):  # bounded memory for long, static videos
        close = np.abs(offsets[start : start + 1024, None] - offsets[None, :]) <= width
        support[start : start + 1024] = ((close.astype(np.float32) @ one_hot) > 0).sum(axis=1)
    return support


def _gap(times: np.ndarray) -> float:
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def needed(n: int, *, min_matched_frames: int, min_matched_fraction: float) -> int:
    """Frames of a video of ``n`` (informative) frames that must match."""
    return max(min(min_matched_frames, n), int(np.ceil(min_matched_fraction * n)))


def confirm_pairs(
    pairs, hashes: np.ndarray, counts: np.ndarray, signed: dict, *, threshold, bounds, confirm
):
    """The pairs (rows ``a, b, distance, matched_frames, flipped`` of
    :func:`lib.audit.near_duplicates.verify_pairs`) that the thumbnails and the time offsets
    confirm, with ``matched_frames`` and ``distance`` of the frames that did; pairs with a
    video without thumbnails are kept as the hashes judged them.

    ``signed``: the ``thumbnails``, ``frame_index`` and ``fps`` of the videos, lists in the
    rows' order; ``bounds``: ``min_matched_frames`` and ``min_matched_fraction``;
    ``confirm``: ``verify_levels``, ``verify_share``, ``frame_share``, ``motion_levels``,
    ``max_colour_shift`` and ``time_tolerance`` (the ``near_duplicates`` section's keys)."""
    pixels = ("verify_levels", "verify_share", "frame_share", "max_colour_shift")
    rule = {
        "bounds": bounds,
        "pixels": {key: confirm[key] for key in pixels},
        "time_tolerance": confirm["time_tolerance"],
    }
    views = VideoViews(
        signed["thumbnails"],
        signed["frame_index"],
        counts,
        signed["fps"],
        motion_levels=confirm["motion_levels"],
    )
    keep, matched, distance, flipped_out = [], [], [], []
    for a, b, d, m, f in pairs.select(
        "a", "b", "distance", "matched_frames", "flipped"
    ).iter_rows():
        if views.decoded(a) is None or views.decoded(b) is None:
            keep.append(True), matched.append(m), distance.append(d), flipped_out.append(f)
            continue
        i, j, flipped, bits = frame_pairs(
            hashes[a, : counts[a]], hashes[b, : counts[b]], threshold=threshold
        )
        best = (0, np.inf, False)
        for mirrored in (False, True):
            rows = flipped == mirrored
            if rows.any():
                count, mean_bits = _judge(views, a, b, i[rows], j[rows], bits[rows], mirrored, rule)
                if count > best[0] or (count == best[0] and mean_bits < best[1]):
                    best = (count, mean_bits, mirrored)
        keep.append(best[0] > 0), matched.append(best[0])
        distance.append(best[1]), flipped_out.append(best[2])
    confirmed = pairs.with_columns(
        matched_frames=pl.Series(matched, dtype=pl.Int64),
        distance=pl.Series(distance, dtype=pl.Float64),
        flipped=pl.Series(flipped_out, dtype=pl.Boolean),
    )
    return confirmed.filter(pl.Series(keep, dtype=pl.Boolean))


def _judge(views, a, b, i, j, bits, mirrored, rule):
    """``(frames counted, their mean hash distance)`` for one orientation of a pair; 0 unless
    the confirmed frames of one video at one offset reach its need.

    The offsets that enough frames support by their hashes alone are found first (at most
    :data:`_OFFSETS` of them); only the frame pairs near those are compared pixel by pixel."""
    times_a, times_b = views.times(a), views.times(b)
    width = rule["time_tolerance"] * max(_gap(times_a), _gap(times_b)) + 1e-9
    offsets = times_b[j] - times_a[i]
    sides = []
    for mine, row in ((i, a), (j, b)):
        informative = views.informative(row)
        sides.append((mine, informative, needed(int(informative.sum()), **rule["bounds"])))
    support = np.zeros(len(i), dtype=np.int64)
    supported = np.zeros(len(i), dtype=bool)
    for mine, informative, need in sides:
        use = informative[mine]
        counts = offset_support(offsets[use], mine[use], len(informative), width=width)
        supported[use] |= counts >= need
        support[use] = np.maximum(support[use], counts)
    near, chosen = np.zeros(len(i), dtype=bool), []
    for k in np.argsort(-support, kind="stable"):
        if len(chosen) == _OFFSETS:
            break
        if supported[k] and all(abs(offsets[k] - c) > width for c in chosen):
            chosen.append(offsets[k])
            near |= np.abs(offsets - offsets[k]) <= width
    if not chosen:
        return 0, np.inf
    rows = np.nonzero(near)[0]
    found = np.zeros(len(i), dtype=bool)
    found[rows] = _confirmed(views, a, b, i[rows], j[rows], bits[rows], mirrored, rule["pixels"])
    best = (0, np.inf)
    for mine, informative, need in sides:
        use = found & informative[mine]
        if not use.any():
            continue
        counts = offset_support(offsets[use], mine[use], len(informative), width=width)
        k = int(np.argmax(counts))
        if counts[k] >= need and counts[k] > best[0]:
            counted = use.copy()
            counted[use] = np.abs(offsets[use] - offsets[use][k]) <= width
            best = (int(counts[k]), float(bits[counted].mean()))
    return best


def _confirmed(views, a, b, i, j, bits, mirrored, pixels):
    """Which frame pairs agree, compared through the one pair of crop variants and the one
    shift that line the two videos up best on the frame pairs closest by hash (a copy is
    cropped one way throughout; on low-detail frames the hashes' own choice of variants,
    frame by frame, is often another), each frame pair refining the shift a little."""
    probe = np.argsort(bits, kind="stable")[:_PROBES]
    seen_a = [views.view(a, i[probe], x, mirrored)[0] for x in range(N_UPRIGHT)]
    seen_b = [views.view(b, j[probe], y)[0] for y in range(N_UPRIGHT)]
    combos = [(x, y) for x in range(N_UPRIGHT) for y in range(N_UPRIGHT)]
    probe_a = np.concatenate([seen_a[x] for x, _ in combos])
    probe_b = np.concatenate([seen_b[y] for _, y in combos])
    steps = range(-SHIFT + 1, SHIFT, 2)  # every other shift first, then the best refined
    coarse = [(dy, dx) for dy in steps for dx in steps]
    fit = {"max_colour_shift": pixels["max_colour_shift"]}
    _, errors = _fit(probe_a, probe_b, coarse, **fit)
    errors = errors.reshape(len(combos), len(probe), -1).mean(axis=1)
    best = (np.inf, None, None)
    for c in np.argsort(errors.min(axis=1))[:_REFINED]:
        rows = slice(c * len(probe), (c + 1) * len(probe))
        tried = _shifts(coarse[int(np.argmin(errors[c]))], reach=1)
        _, fine = _fit(probe_a[rows], probe_b[rows], tried, **fit)
        k = int(np.argmin(fine.mean(axis=0)))
        if fine.mean(axis=0)[k] < best[0]:
            best = (fine.mean(axis=0)[k], combos[c], tried[k])
    _, (x, y), centre = best
    (thumbs_a, moving_a), (thumbs_b, moving_b) = views.view(a, i, x, mirrored), views.view(b, j, y)
    agree, shifts = confirm_frames(
        thumbs_a, thumbs_b, moving_a, moving_b, centre=centre, reach=_REACH, **pixels
    )
    k = views.scale(a)
    if k == 1 or views.scale(b) != k or not agree.any():
        return agree
    # The frame pairs that agree, compared again at the stored size: each moved by its own
    # shift found above (k times as many pixels), then refined by up to k - 1 pixels.
    rows = np.nonzero(agree)[0]
    (fine_a, moving_a), (fine_b, moving_b) = (
        views.view(a, i[rows], x, mirrored, fine=True),
        views.view(b, j[rows], y, fine=True),
    )
    limit, first = SHIFT * k, shifts[rows] * k
    fine_b, moving_b = _moved(fine_b, first, limit), _moved(moving_b, first, limit)
    agree[rows], _ = confirm_frames(
        fine_a,
        fine_b,
        moving_a,
        moving_b,
        reach=k - 1,
        limit=limit,
        min_moving=MIN_MOVING * k * k,
        **pixels,
    )
    return agree
