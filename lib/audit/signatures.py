"""Compact visual signatures of videos: perceptual hashes of frames sampled across each one.

A signature is, for each sampled frame, six 64-bit DCT perceptual hashes (``imagehash.phash``)
of its grey image: the whole frame and its central 90% and 80% (so that a copy cropped by up
to about 20% still lines up with one of them), and the same three of the horizontally
mirrored frame (so that a flipped repost matches too). Why these choices:

* pHash keeps the signs of the lowest 8x8 frequencies of a 32x32 downscale: re-encoding,
  rescaling, small watermarks and colour shifts barely move it (a few bits of 64).
* Uniform borders (letterbox/pillarbox bars that reposts add) are cut off before hashing.
* Nearly flat frames (black, fades, a title card's background) say nothing about which
  video they come from and collide across unrelated videos: they are not hashed.
* Frames are sampled across the whole video (``frames_per_second``, clipped to
  ``[min_frames, max_frames]``), so a trimmed copy's frames still find frames of the
  original near them in time; matching works frame by frame (:mod:`lib.audit.near_duplicates`).

Hashes find candidates; they cannot tell apart frames that differ only in small regions or in
colour (a signer's hands, another signer in the same framing, the text of a screen). Each
hashed frame therefore also keeps a thumbnail: the frame as :data:`DETAIL_SIZE` x
:data:`DETAIL_SIZE` YCbCr pixels, after cutting the dark bars that every sampled frame shares
(letterboxing; cut per video, not per frame, so that the thumbnails of one video line up),
against which :mod:`lib.audit.verify` checks the frames the hashes matched: lined up at
:data:`THUMB_SIZE` (each pixel the mean of 2x2 stored ones), then compared at the stored
size (a signer's hands a few pixels apart are one pixel apart at 32). Tables signed with
32-pixel thumbnails (before the stored size grew) are still read, and compared at 32.

A signature row stores ``hashes``: one token per hashed frame, separated by spaces, each six
16-digit hex hashes joined by ``:`` in the order of :data:`VARIANTS`; and ``thumbnails``: the
thumbnails of those frames, in order, one base64-encoded JPEG (quality
:data:`JPEG_QUALITY`, a few levels of error, well inside what the comparison tolerates) per
frame, separated by spaces, a quarter of the size of the raw pixels compressed without loss;
``fps``: the video's frame rate, so that frame indices become times (copies often change the
rate).
"""

from __future__ import annotations

import base64
import io
import zlib
from typing import NamedTuple

import imagehash
import numpy as np
from PIL import Image

from lib.io.sampling import sample_uniform

# Hash variants of one frame, in storage order: (name, fraction of width/height kept, mirrored).
VARIANTS: tuple[tuple[str, float, bool], ...] = (
    ("full", 1.0, False),
    ("crop90", 0.9, False),
    ("crop80", 0.8, False),
    ("full_flip", 1.0, True),
    ("crop90_flip", 0.9, True),
    ("crop80_flip", 0.8, True),
)
N_UPRIGHT = 3  # the first three variants are the frame as shown; the last three mirrored
HASH_BITS = 64
THUMB_SIZE = 32  # the thumbnails on which frames are lined up
DETAIL_SIZE = 64  # the thumbnails stored, on which lined-up frames are compared
JPEG_QUALITY = 90
_WORK_SIZE = (128, 128)


class Signature(NamedTuple):
    """The informative frames of one video: their indices, hashes and thumbnails, and the
    video's frame rate (frame times for the matcher)."""

    indices: list[int]
    hashes: list[np.ndarray]
    thumbnails: list[np.ndarray]
    fps: float = float("nan")

    def columns(self) -> dict:
        """The signature table's columns for this video (``frames`` to ``thumbnails``)."""
        return {
            "frames": len(self.hashes),
            "frame_index": " ".join(str(i) for i in self.indices),
            "hashes": encode_hashes(list(self.hashes)),
            "thumbnails": encode_thumbnails(list(self.thumbnails)),
            "fps": float(self.fps),
        }


def n_sampled_frames(
    n_frames: int,
    fps: float,
    *,
    frames_per_second: float,
    min_frames: int,
    max_frames: int,
) -> int:
    """How many frames to hash: ``frames_per_second`` of the duration, within bounds."""
    if n_frames <= 0:
        return 0
    duration = n_frames / fps if fps and fps > 0 else 0.0
    k = int(round(duration * frames_per_second))
    return min(max(k, int(min_frames)), int(max_frames), int(n_frames))


def strip_flat_borders(
    grey: np.ndarray, *, tolerance: int = 12, max_share: float = 0.3
) -> np.ndarray:
    """``grey`` without uniform bars at its edges (rows/columns whose range <= tolerance).

    At most ``max_share`` of the height (width) is removed from each side, so that a frame
    that is mostly flat is hashed whole rather than cut down to a sliver.
    """
    height, width = grey.shape
    flat_rows = np.ptp(grey, axis=1) <= tolerance
    flat_cols = np.ptp(grey, axis=0) <= tolerance

    def cut(flat: np.ndarray, size: int) -> tuple[int, int]:
        limit = int(size * max_share)
        start = int(np.argmin(flat)) if not flat.all() else 0
        end = int(np.argmin(flat[::-1])) if not flat.all() else 0
        return min(start, limit), size - min(end, limit)

    top, bottom = cut(flat_rows, height)
    left, right = cut(flat_cols, width)
    return grey[top:bottom, left:right]


def dark_lines(grey: np.ndarray, *, tolerance: int = 12, darkest: int = 16):
    """Which rows and columns of a grey frame are dark and uniform (range <= ``tolerance``,
    mean <= ``darkest``): ``(bool[height], bool[width])``."""
    rows = (np.ptp(grey, axis=1) <= tolerance) & (grey.mean(axis=1) <= darkest)
    cols = (np.ptp(grey, axis=0) <= tolerance) & (grey.mean(axis=0) <= darkest)
    return rows, cols


def bars_box(rows: np.ndarray, cols: np.ndarray, *, max_share: float = 0.3):
    """``(top, bottom, left, right)``: the frame without the bars that ``rows``/``cols`` (dark
    in every frame of a video: :func:`dark_lines`, and-ed) mark at its edges, at most
    ``max_share`` of the height (width) from each side."""

    def cut(flat: np.ndarray) -> tuple[int, int]:
        limit = int(len(flat) * max_share)
        start = min(int(np.argmin(flat)) if not flat.all() else 0, limit)
        end = min(int(np.argmin(flat[::-1])) if not flat.all() else 0, limit)
        return start, len(flat) - end

    return (*cut(rows), *cut(cols))


def frame_thumbnail(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The part of an RGB frame inside ``box`` (:func:`bars_box`) as
    ``uint8[DETAIL_SIZE, DETAIL_SIZE, 3]`` YCbCr (each pixel the mean of its block)."""
    top, bottom, left, right = box
    image = Image.fromarray(np.ascontiguousarray(frame[top:bottom, left:right]))
    if image.width > _WORK_SIZE[0] or image.height > _WORK_SIZE[1]:
        image = image.resize(_WORK_SIZE, Image.Resampling.BOX)
    image = image.resize((DETAIL_SIZE, DETAIL_SIZE), Image.Resampling.BOX)
    return np.asarray(image.convert("YCbCr"))


def encode_thumbnails(thumbnails: list[np.ndarray]) -> str:
    """The ``thumbnails`` column: each YCbCr thumbnail as a base64-encoded JPEG, in order,
    separated by spaces."""
    tokens = []
    for thumbnail in thumbnails:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(thumbnail, dtype=np.uint8), "YCbCr").save(
            buffer, "JPEG", quality=JPEG_QUALITY
        )
        tokens.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return " ".join(tokens)


def _jpeg_ycbcr(token: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(token)))
    image.draft("YCbCr", image.size)  # the decoder's own YCbCr: no round trip through RGB
    return np.asarray(image)


def decode_thumbnails(text: str, n_frames: int) -> np.ndarray:
    """Inverse of :func:`encode_thumbnails`: ``uint8[n_frames, size, size, 3]``, ``size``
    :data:`DETAIL_SIZE`. Tables signed before thumbnails were JPEGs hold one zlib-compressed
    block of raw pixels, of :data:`DETAIL_SIZE` or :data:`THUMB_SIZE`: read as well."""
    tokens = text.split(" ") if text else []
    if len(tokens) == n_frames and n_frames and base64.b64decode(tokens[0][:8])[:2] == b"\xff\xd8":
        thumbs = np.stack([_jpeg_ycbcr(token) for token in tokens])
        if thumbs.shape[1:] == (DETAIL_SIZE, DETAIL_SIZE, 3):
            return thumbs
    data = zlib.decompress(base64.b64decode(text)) if len(tokens) == 1 else b""
    for size in (DETAIL_SIZE, THUMB_SIZE):
        shape = (n_frames, size, size, 3)
        if n_frames and len(data) == int(np.prod(shape)):
            return np.frombuffer(data, dtype=np.uint8).reshape(shape)
    raise ValueError(
        f"thumbnails hold {len(data)} bytes: not {n_frames} frames of {DETAIL_SIZE} or "
        f"{THUMB_SIZE} pixels; sign the videos again (delete results/signatures.csv)"
    )


def frame_hashes(frame: np.ndarray, *, min_std: float) -> np.ndarray | None:
    """The :data:`VARIANTS` pHashes of one RGB (or grey) uint8 frame as ``uint64[6]``.

    Returns None for a nearly flat frame (grey standard deviation below ``min_std``).
    """
    grey = frame if frame.ndim == 2 else np.asarray(Image.fromarray(frame).convert("L"))
    grey = strip_flat_borders(grey)
    if grey.size == 0 or float(grey.std()) < min_std:
        return None
    # pHash squeezes the image to 32x32 anyway (aspect ignored): a cheap box filter down to
    # 128x128 first makes its Lanczos resampling, the costliest step, a few times cheaper.
    image = Image.fromarray(np.ascontiguousarray(grey)).resize(_WORK_SIZE, Image.Resampling.BOX)
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = np.empty(len(VARIANTS), dtype=np.uint64)
    for k, (_, keep, flip) in enumerate(VARIANTS):
        src = mirrored if flip else image
        if keep < 1.0:
            w, h = src.size
            dx, dy = w * (1 - keep) / 2, h * (1 - keep) / 2
            src = src.crop((round(dx), round(dy), round(w - dx), round(h - dy)))
        bits = imagehash.phash(src).hash.ravel()  # 64 booleans, row-major (as str() prints)
        out[k] = np.packbits(bits).view(">u8")[0]
    return out


def encode_hashes(frames: list[np.ndarray]) -> str:
    """The ``hashes`` column: frames separated by spaces, variants by ``:``, 16 hex digits."""
    return " ".join(":".join(f"{int(h):016x}" for h in row) for row in frames)


def decode_hashes(text: str) -> np.ndarray:
    """Inverse of :func:`encode_hashes`: ``uint64[n_frames, len(VARIANTS)]``."""
    tokens = text.split()
    out = np.empty((len(tokens), len(VARIANTS)), dtype=np.uint64)
    for i, token in enumerate(tokens):
        parts = token.split(":")
        if len(parts) != len(VARIANTS):
            raise ValueError(
                f"signature frame {i} has {len(parts)} hashes, expected {len(VARIANTS)}"
            )
        out[i] = [int(p, 16) for p in parts]
    return out


def video_signature(
    reader,
    *,
    start: int = 0,
    stop: int | None = None,
    frames_per_second: float,
    min_frames: int,
    max_frames: int,
    min_std: float,
) -> Signature:
    """Sample frames of an open :class:`lib.io.reader.FrameReader` (within ``[start, stop)``),
    hash them and keep their thumbnails; returns the informative frames' :class:`Signature`.
    The keywords after ``stop`` are the ``signatures`` section's keys."""
    stop = reader.n_frames if stop is None else min(stop, reader.n_frames)
    span = max(stop - start, 0)
    k = n_sampled_frames(
        span,
        reader.fps,
        frames_per_second=frames_per_second,
        min_frames=min_frames,
        max_frames=max_frames,
    )
    indices, hashes, kept = [], [], []
    rows = cols = None
    for index, frame in reader.read([start + i for i in sample_uniform(span, k)]):
        grey = np.asarray(Image.fromarray(frame).convert("L"))
        h = frame_hashes(grey, min_std=min_std)
        if h is None:
            continue
        indices.append(int(index))
        hashes.append(h)
        dark_rows, dark_cols = dark_lines(grey)
        rows = dark_rows if rows is None else rows & dark_rows
        cols = dark_cols if cols is None else cols & dark_cols
        kept.append(_reduced(frame))
    if not kept:
        return Signature([], [], [], float(reader.fps))
    top, bottom, left, right = bars_box(rows, cols)
    height, width = len(rows), len(cols)
    scale_y, scale_x = kept[0].shape[0] / height, kept[0].shape[1] / width
    box = (
        round(top * scale_y),
        round(bottom * scale_y),
        round(left * scale_x),
        round(right * scale_x),
    )
    return Signature(indices, hashes, [frame_thumbnail(f, box) for f in kept], float(reader.fps))


def _reduced(frame: np.ndarray, largest: int = 256) -> np.ndarray:
    """``frame`` shrunk (block means) to at most ``largest`` pixels a side, so that a video's
    frames can wait for its bars to be known without holding them at full size."""
    height, width = frame.shape[:2]
    if height <= largest and width <= largest:
        return frame
    size = (min(width, largest), min(height, largest))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))
