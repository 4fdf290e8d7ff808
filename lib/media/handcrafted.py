"""The handcrafted features (``hc_*``, stage 4) of one original-resolution clip.

Sensor and compression traces that a generator or a re-encode changes: high-pass noise
residual, 8×8 block-DCT statistics, sharpness (Laplacian, Sobel), 8×8 blocking, plus the
container-level bitrate, frame rate and resolution. The conventions (luma, filters, the DCT,
the block grid, streaming, NaN for bad clips) are stated once in :mod:`lib.media.features`,
which also holds the feature names and their descriptions.

The pixel statistics take one fused pass over each frame in a numba kernel
(:mod:`lib.media.feature_kernels`; its speed against the plain scipy filters is in
docs/BENCHMARKS.md, section "Feature math per 1080p frame"). Importing this module imports
numba; the scaled features (:mod:`lib.media.features`) do not need it.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from lib.media import feature_kernels as kernels
from lib.media.features import (
    BLOCK,
    BLOCKINESS_EPS,
    HANDCRAFTED_FEATURES,
    LUMA_WEIGHTS,
    MeanAccumulator,
    finite_or_nan,
    valid_frames,
)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and population std with float64 accumulation (stable for 2-Mpixel float32 arrays)."""
    mean = float(np.mean(values, dtype=np.float64))
    std = float(np.std(values, dtype=np.float64))
    return mean, std


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II matrix ``C`` (float64): ``C @ x == scipy.fft.dct(x, norm="ortho")``."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * j + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT = np.ascontiguousarray(_dct_matrix(), dtype=np.float32)
_DCT_NAMES = (
    "hc_dct_dc_mean",
    "hc_dct_dc_std",
    "hc_dct_ac_mean",
    "hc_dct_ac_std",
    "hc_dct_ac_energy",
)


def _kernel_input(frame: np.ndarray) -> np.ndarray:
    """``frame`` as the (H, W, C) array the kernel reads: RGB uint8 as is, else float32.

    A 2-D frame is luma already (C = 1); extra channels (alpha) are dropped. Only two
    array types reach the kernel, so numba compiles (and caches) two versions of it.
    """
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.float32)[..., None]
    rgb = frame[..., :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _variance(total: float, total_sq: float, n: int) -> float:
    mean = total / n
    return max(total_sq / n - mean * mean, 0.0)


def handcrafted_frame_stats(frame: np.ndarray) -> dict[str, float]:
    """The 12 per-frame pixel statistics of :func:`handcrafted_features` for one frame.

    One pass over the frame by :func:`lib.media.feature_kernels.frame_sums` (numba): each row's
    luma is computed once and every filter, step and 8×8 block DCT is reduced to float64
    sums while its rows are in the CPU caches. The definitions are those stated in
    :mod:`lib.media.features` (scipy.ndimage's 3×3 box, Sobel and Laplacian with ``mode="reflect"``;
    the orthonormal 8×8 DCT-II of ``scipy.fft.dctn(norm="ortho")``). Values equal the plain
    full-frame scipy implementation to about 1e-5 relative (``tests/test_features.py`` keeps
    that implementation and compares).
    """
    src = _kernel_input(frame)
    height, width = src.shape[:2]
    n_pixels = height * width
    n_blocks = (height // BLOCK) * (width // BLOCK)
    sums = np.zeros(kernels.N_SUMS, dtype=np.float64)
    block_dc = np.zeros(n_blocks, dtype=np.float64)
    block_ac = np.zeros(n_blocks, dtype=np.float64)
    kernels.frame_sums(src, LUMA_WEIGHTS, _DCT, sums, block_dc, block_ac)
    stats = {
        "hc_noise_energy": sums[kernels.RESIDUAL_SQ] / n_pixels,
        "hc_noise_mean": sums[kernels.RESIDUAL_ABS] / n_pixels,
        "hc_noise_std": math.sqrt(
            _variance(sums[kernels.RESIDUAL], sums[kernels.RESIDUAL_SQ], n_pixels)
        ),
    }
    if n_blocks:
        dc_mean, dc_std = _mean_std(block_dc)
        ac_mean, ac_std = _mean_std(block_ac)
        energy = sums[kernels.AC_SQ] / (n_blocks * (BLOCK * BLOCK - 1))
        stats.update(zip(_DCT_NAMES, (dc_mean, dc_std, ac_mean, ac_std, max(energy, 0.0))))
    else:
        stats.update(dict.fromkeys(_DCT_NAMES, math.nan))
    gradient, gradient_sq = sums[kernels.GRADIENT], sums[kernels.GRADIENT_SQ]
    stats["hc_laplacian_var"] = _variance(
        sums[kernels.LAPLACIAN], sums[kernels.LAPLACIAN_SQ], n_pixels
    )
    stats["hc_gradient_mean"] = gradient / n_pixels
    stats["hc_gradient_std"] = math.sqrt(_variance(gradient, gradient_sq, n_pixels))
    n_boundary, n_inside = sums[kernels.N_BOUNDARY], sums[kernels.N_INSIDE]
    if n_boundary == 0 or n_inside == 0:
        stats["hc_blockiness"] = math.nan
    else:
        b_mean = sums[kernels.STEP_BOUNDARY] / n_boundary
        i_mean = sums[kernels.STEP_INSIDE] / n_inside
        stats["hc_blockiness"] = (b_mean - i_mean) / (b_mean + i_mean + BLOCKINESS_EPS)
    return {name: float(value) for name, value in stats.items()}


def _positive_or_nan(value: float | None) -> float:
    """Probed metadata as a float; missing, non-numeric, non-finite or ≤ 0 means unknown."""
    number = finite_or_nan(value)
    return number if number > 0 else math.nan


def handcrafted_features(
    frames: Iterable[np.ndarray], *, bitrate: float, fps: float, width: int, height: int
) -> dict[str, float]:
    """The 15 ``hc_*`` features of one original-resolution clip, streamed frame by frame.

    Parameters
    ----------
    frames : iterable of RGB uint8 arrays (H, W, 3)
        Consumed once; each frame is reduced to scalars and released (a generator over a
        1080p decode is fine). Values are means over frames of per-frame statistics.
    bitrate : float
        Stream bitrate in bit/s as probed (reported as ``hc_bitrate_kbps`` = bitrate/1000).
    fps, width, height : float, int
        Probed frame rate and original frame size (``hc_resolution_mp`` = w·h/1e6).
        Metadata that is None, non-numeric, non-finite or ≤ 0 (containers report 0 for an
        unknown bitrate) becomes NaN for its feature; the pixel features are unaffected.

    Returns
    -------
    dict with exactly the keys of :data:`HANDCRAFTED_FEATURES`, in that order. Every value is
    NaN when no usable frame arrives (a bad clip never raises).
    """
    acc = MeanAccumulator(HANDCRAFTED_FEATURES[:12])
    n_frames = 0
    for frame in valid_frames(frames, "handcrafted_features"):
        acc.add(handcrafted_frame_stats(frame))
        n_frames += 1
    if n_frames == 0:
        return dict.fromkeys(HANDCRAFTED_FEATURES, math.nan)
    result = acc.means()
    bitrate, fps, width, height = (_positive_or_nan(v) for v in (bitrate, fps, width, height))
    result["hc_bitrate_kbps"] = bitrate / 1000.0
    result["hc_fps"] = fps
    result["hc_resolution_mp"] = width * height / 1e6
    return {name: float(result[name]) for name in HANDCRAFTED_FEATURES}
