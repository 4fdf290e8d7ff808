"""Per-clip features (stages 4 and 6): their names and descriptions, the conventions and
frame helpers both families share, and the scaled features.

Two feature families, both returned as ``{name: float}`` with a fixed key order:

* :func:`lib.media.handcrafted.handcrafted_features` (``hc_*``, 15 values) on the
  *original-resolution* clip:
  sensor/compression traces that a generator or a re-encode changes — high-pass noise
  residual, 8×8 block-DCT statistics, sharpness (Laplacian, Sobel), 8×8 blocking, plus the
  container-level bitrate, frame rate and resolution.
* :func:`scaled_features` (``sc_*``, 8 values) on the *scaled* (letterboxed) clip: cheap
  content statistics at the common model resolution plus whether scaling up- or
  down-sampled the source.

Design constraints (why the code looks the way it does):

* Streaming: the frames arrive as an iterable (often a generator over a 1080p decode).
  Each frame is reduced to a handful of scalars at once and dropped; clip values are the
  mean of the per-frame values. Nothing ever stacks the frames.
* float32 arithmetic on luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (0–255), float64 sums.
  The handcrafted statistics take one fused pass over each frame in a numba kernel
  (:mod:`lib.media.feature_kernels`; docs/BENCHMARKS.md, section "Feature math per 1080p
  frame", has its speed). Same frames → bitwise identical values.
* Bad clips never raise: no (valid) frames → every feature NaN; a frame with an unusable
  shape is skipped with a warning; a statistic a frame is too small for (e.g. 8×8 DCT
  blocks in a 5-px-high frame) is NaN for that frame and left out of the mean.
  Exceptions raised *by the iterable itself* (decode errors) propagate: the stage driver
  owns decoding and records the reason.

Conventions stated once:

* Filters are those of ``scipy.ndimage`` with ``mode="reflect"`` (the default: the edge
  pixel repeats), so a flat frame has exactly zero residual, gradient and Laplacian,
  borders included. The handcrafted features compute them on a ring of padded luma rows
  (same kernels); the scaled features call ``scipy.ndimage`` directly.
* Sobel is ``scipy.ndimage.sobel`` (unnormalised: [1,2,1] smoothing × [-1,0,1]
  difference), so a vertical step edge of height *h* luma levels has magnitude ``4 h``.
* The block DCT is the orthonormal 2-D DCT-II (``scipy.fft.dctn(..., norm="ortho")``,
  computed as ``C · B · Cᵀ`` with the 8×8 DCT matrix ``C``) on
  8×8 luma blocks of the top-left ``floor(H/8)·8 × floor(W/8)·8`` region, **without** a
  JPEG-style level shift: the DC coefficient is ``8 × block mean``, so a flat grey frame of
  value ``v`` has ``hc_dct_dc_mean = 8 v`` (1024 for v = 128) and, by Parseval, the AC
  coefficients of a block hold exactly its ``64 × variance``.
* The 8×8 block grid is anchored at pixel (0, 0) of the decoded frame, where codecs put it.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, Iterator

import numpy as np
import scipy.ndimage as ndi

log = logging.getLogger(__name__)

BLOCK = 8
"""Side of the codec block grid (JPEG/MPEG/H.264 transform and macroblock alignment)."""

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma weights, applied to RGB in 0–255."""

EDGE_THRESHOLD = 100.0
"""Default Sobel-magnitude threshold for ``sc_edge_density``: a clean step of 25 luma levels."""

BLOCKINESS_EPS = 1e-6
"""Added to B + I in the blockiness ratio (B − I)/(B + I), so a flat frame gives 0, not NaN."""

#: Every feature: a line ``name [unit]``, then its description on indented lines. Read into
#: :data:`FEATURE_DOCS`; the order is the order of the feature columns.
_FEATURE_TABLE = f"""
hc_noise_energy [luma²]
    Mean squared noise residual: luma minus its 3×3 box mean (a 3×3 high-pass)
hc_noise_mean [luma]
    Mean absolute noise residual (same 3×3 high-pass)
hc_noise_std [luma]
    Standard deviation of the signed noise residual over pixels
hc_dct_dc_mean [luma (DCT-ortho)]
    Mean DC coefficient of the orthonormal 8×8 luma block DCT (= 8 × block mean)
hc_dct_dc_std [luma (DCT-ortho)]
    Standard deviation of the DC coefficient across 8×8 blocks
hc_dct_ac_mean [luma (DCT-ortho)]
    Mean over 8×8 blocks of the block's mean |AC coefficient| (detail per block)
hc_dct_ac_std [luma (DCT-ortho)]
    Standard deviation across 8×8 blocks of the block's mean |AC coefficient|
hc_dct_ac_energy [luma²]
    Mean squared AC coefficient over all blocks (= 64/63 × mean within-block variance)
hc_laplacian_var [luma²]
    Variance of the 4-neighbour Laplacian of luma (focus/sharpness)
hc_gradient_mean [luma]
    Mean Sobel gradient magnitude of luma (unnormalised Sobel)
hc_gradient_std [luma]
    Standard deviation of the Sobel gradient magnitude
hc_blockiness [ratio in [-1, 1]]
    Block-boundary inconsistency: (B − I)/(B + I) of mean |luma step| across 8-px block
    boundaries (B) vs inside blocks (I); 0 = no blocking, 1 = steps only at boundaries
hc_bitrate_kbps [kbit/s]
    Codec bitrate reported by the container/stream
hc_fps [frames/s]
    Frame rate
hc_resolution_mp [megapixels]
    Frame size width × height of the original video
sc_edge_density [fraction]
    Share of pixels whose Sobel luma magnitude exceeds {EDGE_THRESHOLD:g} (a clean 25-level
    step)
sc_texture_uniformity [fraction]
    Histogram energy Σp² of the 256-bin luma histogram (Gonzalez & Woods' statistical
    'uniformity'; 1 = a single grey level, 1/256 = flat histogram)
sc_color_std_r [0–255]
    Standard deviation of the red channel over pixels
sc_color_std_g [0–255]
    Standard deviation of the green channel over pixels
sc_color_std_b [0–255]
    Standard deviation of the blue channel over pixels
sc_blockiness [ratio in [-1, 1]]
    Same (B − I)/(B + I) 8×8 block-boundary measure as hc_blockiness, on the scaled clip
sc_is_upscaled [flag]
    1 if the letterbox scale factor min(scaled_w/orig_w, scaled_h/orig_h) > 1, else 0
sc_is_downscaled [flag]
    1 if the letterbox scale factor < 1, else 0
"""


def _read_feature_table(table: str) -> dict[str, tuple[str, str]]:
    """``{name: (what it measures, unit)}`` from :data:`_FEATURE_TABLE`'s layout."""
    docs: dict[str, list] = {}
    for line in table.strip().splitlines():
        if line.startswith(" "):
            docs[name][0].append(line.strip())
        else:
            name, unit = line.split(" ", 1)
            docs[name] = [[], unit[1:-1]]
    return {name: (" ".join(words), unit) for name, (words, unit) in docs.items()}


FEATURE_DOCS: dict[str, tuple[str, str]] = _read_feature_table(_FEATURE_TABLE)
"""What each feature measures and its unit (the README's and docs/FEATURES.md's table)."""

HANDCRAFTED_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_DOCS if n.startswith("hc_"))
"""Columns of the handcrafted features (stage 4), in order."""

SCALED_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_DOCS if n.startswith("sc_"))
"""Columns of the scaled features (stage 6), in order."""


def feature_table_markdown() -> str:
    """A Markdown table (feature, what it measures, unit) of every feature, for the README."""
    lines = ["| feature | what it measures | unit |", "|---|---|---|"]
    for name in HANDCRAFTED_FEATURES + SCALED_FEATURES:
        what, unit = (text.replace("|", r"\|") for text in FEATURE_DOCS[name])
        lines.append(f"| `{name}` | {what} | {unit} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- frame helpers


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB frame as float32 (H, W) in 0–255; a 2-D frame is taken as luma."""
    if frame.ndim == 2:
        return frame.astype(np.float32, copy=False)
    rgb = frame[..., :3].astype(np.float32, copy=False)
    # one matrix-vector product over the pixels: faster than matmul's 3-D broadcasting
    return (rgb.reshape(-1, 3) @ LUMA_WEIGHTS).reshape(rgb.shape[:-1])


def _usable(frame: object) -> bool:
    """True for a non-empty (H, W) or (H, W, ≥3) numeric array; anything else is skipped."""
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        return False
    if not (np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating)):
        return False
    return frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] >= 3)


def valid_frames(frames: Iterable[np.ndarray], where: str) -> Iterator[np.ndarray]:
    """Yield the usable frames, warning once per clip about the ones skipped."""
    skipped = 0
    for frame in frames:
        if _usable(frame):
            yield frame
        else:
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d unusable frame(s)", where, skipped)


class MeanAccumulator:
    """Running per-key mean of per-frame scalars that skips NaN (frames too small for a stat)."""

    def __init__(self, names: Iterable[str]):
        self._sums = {name: 0.0 for name in names}
        self._counts = {name: 0 for name in self._sums}

    def add(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            if math.isfinite(value):
                self._sums[name] += value
                self._counts[name] += 1

    def means(self) -> dict[str, float]:
        return {
            name: (self._sums[name] / self._counts[name]) if self._counts[name] else math.nan
            for name in self._sums
        }


# --------------------------------------------------------------------------- frame statistics


def sobel_magnitude(y: np.ndarray) -> np.ndarray:
    """Unnormalised Sobel gradient magnitude of luma, float32 (a step of h levels → 4h)."""
    gy = ndi.sobel(y, axis=0, mode="reflect")
    gx = ndi.sobel(y, axis=1, mode="reflect")
    return np.hypot(gx, gy)


def block_boundary_contrast(
    y: np.ndarray, *, block: int = BLOCK, offset_y: int = 0, offset_x: int = 0
) -> float:
    """8×8 blocking of one luma frame as ``(B − I) / (B + I)``, in [-1, 1].

    B is the mean absolute luma step between neighbouring pixels that straddle a block
    boundary, I the mean over neighbouring pairs inside blocks, pooled over horizontal and
    vertical neighbours. Block coding quantises each block on its own, so steps pile up on
    the boundaries: 0 means no blocking (or a flat frame), 1 means every step sits on a
    boundary (block-mean image). The normalised difference stays finite where the plain
    ratio B/I would explode (I → 0 for heavily quantised video).

    ``offset_y``/``offset_x`` give the frame's position in the block grid (a crop starting
    at column 13 has ``offset_x = 13``), so a crop is measured on the grid of the full frame.
    NaN when the frame crosses no boundary (both sides ≤ ``block`` pixels).
    """
    boundary_sum = inside_sum = 0.0
    boundary_count = inside_count = 0
    for axis, offset in ((1, offset_x), (0, offset_y)):
        n = y.shape[axis]
        if n < 2:
            continue
        steps = np.abs(np.diff(y, axis=axis))  # step j is between pixels j and j+1
        # pixel j+1 starts a block when (offset + j + 1) % block == 0
        first = (-(offset + 1)) % block
        boundary = steps[:, first::block] if axis == 1 else steps[first::block, :]
        total = float(np.sum(steps, dtype=np.float64))
        b_sum = float(np.sum(boundary, dtype=np.float64))
        boundary_sum += b_sum
        inside_sum += total - b_sum
        boundary_count += boundary.size
        inside_count += steps.size - boundary.size
    if boundary_count == 0 or inside_count == 0:
        return math.nan
    b_mean = boundary_sum / boundary_count
    i_mean = inside_sum / inside_count
    return (b_mean - i_mean) / (b_mean + i_mean + BLOCKINESS_EPS)


def finite_or_nan(value: float | None) -> float:
    """``value`` as a float; NaN when it is missing, not a number or not finite."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


# --------------------------------------------------------------------------- scaled (stage 6)


def letterbox_scale_factor(
    *, orig_width: int, orig_height: int, scaled_width: int, scaled_height: int
) -> float:
    """``min(scaled_w/orig_w, scaled_h/orig_h)``: > 1 the clip was enlarged, < 1 shrunk."""
    sizes = [finite_or_nan(v) for v in (orig_width, orig_height, scaled_width, scaled_height)]
    if not all(size > 0 for size in sizes):  # NaN > 0 is False: unknown sizes give NaN
        return math.nan
    ow, oh, sw, sh = sizes
    return min(sw / ow, sh / oh)


def letterbox_content_box(
    *, orig_width: int, orig_height: int, scaled_width: int, scaled_height: int, inset: int = 1
) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the picture inside a centred letterbox canvas, bars excluded.

    The picture is ``round(orig·factor)`` pixels on each side, centred with ``(canvas −
    size) // 2``. Sides that have a bar are pulled in by ``inset`` pixels so a one-pixel
    rounding difference from the scaler (or a VAE's smeared bar edge) never counts a bar
    edge as picture. Falls back to the whole canvas when the geometry is unknown.
    """
    factor = letterbox_scale_factor(
        orig_width=orig_width,
        orig_height=orig_height,
        scaled_width=scaled_width,
        scaled_height=scaled_height,
    )
    if not math.isfinite(factor) or factor <= 0:
        return 0, 0, int(scaled_width), int(scaled_height)
    boxes = []
    for orig, canvas in ((orig_width, scaled_width), (orig_height, scaled_height)):
        canvas = int(canvas)
        size = min(canvas, max(1, int(round(orig * factor))))
        start = (canvas - size) // 2
        if size < canvas and size > 2 * inset:
            start, size = start + inset, size - 2 * inset
        boxes.append((start, size))
    (x0, w), (y0, h) = boxes
    return x0, y0, w, h


def _histogram_uniformity(y: np.ndarray) -> float:
    """Σp² of the 256-bin histogram of luma rounded to integers (1 for a single grey)."""
    levels = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    counts = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    p = counts / counts.sum()
    return float(np.dot(p, p))


def scaled_features(
    frames: Iterable[np.ndarray],
    *,
    orig_width: int,
    orig_height: int,
    scaled_width: int,
    scaled_height: int,
    crop_letterbox: bool = True,
    edge_threshold: float = EDGE_THRESHOLD,
) -> dict[str, float]:
    """The 8 ``sc_*`` features of one scaled (letterboxed) clip, streamed frame by frame.

    Parameters
    ----------
    frames : iterable of RGB uint8 arrays (scaled_height, scaled_width, 3)
        Consumed once; values are means over frames of per-frame statistics.
    orig_width, orig_height, scaled_width, scaled_height : int
        Source and canvas sizes (scaled.csv); they give the letterbox scale factor behind
        ``sc_is_upscaled``/``sc_is_downscaled`` and the picture box.
    crop_letterbox : bool, default True
        Measure only the picture inside the centred letterbox (see
        :func:`letterbox_content_box`). Without it the black bars dominate histogram
        energy, colour spread and edges and the features mostly encode the aspect ratio.
        Blockiness stays on the canvas' 8×8 grid (the grid the scaled clip was encoded on).
    edge_threshold : float
        Sobel-magnitude threshold for ``sc_edge_density`` (default 100 = a 25-level step).

    Returns
    -------
    dict with exactly the keys of :data:`SCALED_FEATURES`, in that order; every value NaN
    when no usable frame arrives.
    """
    acc = MeanAccumulator(SCALED_FEATURES[:6])
    box: tuple[int, int, int, int] | None = None  # (x0, y0, w, h), computed on the first frame
    n_frames = 0
    for frame in valid_frames(frames, "scaled_features"):
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        picture = frame[..., :3]
        off_y = off_x = 0
        if crop_letterbox and frame.shape[:2] == (scaled_height, scaled_width):
            if box is None:
                box = letterbox_content_box(
                    orig_width=orig_width,
                    orig_height=orig_height,
                    scaled_width=scaled_width,
                    scaled_height=scaled_height,
                )
            x0, y0, box_w, box_h = box
            picture = picture[y0 : y0 + box_h, x0 : x0 + box_w]
            off_y, off_x = y0, x0
        y = luma(picture)
        channel_std = np.std(picture.reshape(-1, 3), axis=0, dtype=np.float64)
        acc.add(
            {
                "sc_edge_density": float(np.mean(sobel_magnitude(y) > edge_threshold)),
                "sc_texture_uniformity": _histogram_uniformity(y),
                "sc_color_std_r": float(channel_std[0]),
                "sc_color_std_g": float(channel_std[1]),
                "sc_color_std_b": float(channel_std[2]),
                "sc_blockiness": block_boundary_contrast(y, offset_y=off_y, offset_x=off_x),
            }
        )
        n_frames += 1
        del y, picture
    if n_frames == 0:
        return dict.fromkeys(SCALED_FEATURES, math.nan)
    result = acc.means()
    factor = letterbox_scale_factor(
        orig_width=orig_width,
        orig_height=orig_height,
        scaled_width=scaled_width,
        scaled_height=scaled_height,
    )
    if math.isfinite(factor):
        result["sc_is_upscaled"] = float(factor > 1.0)
        result["sc_is_downscaled"] = float(factor < 1.0)
    else:
        result["sc_is_upscaled"] = result["sc_is_downscaled"] = math.nan
    return {name: float(result[name]) for name in SCALED_FEATURES}
