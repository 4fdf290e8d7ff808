"""The fused per-frame kernel of the handcrafted features, compiled by numba (issue 9).

:func:`frame_sums` makes one pass over a frame: each row's luma is computed once into a
ring of padded rows and every per-pixel quantity (3×3 noise residual, Sobel, Laplacian,
block-boundary steps) and every 8×8 block DCT is reduced while the rows are in the CPU
caches, where the numpy version this replaces made many passes over each strip (the speed
of both: docs/BENCHMARKS.md, section "Feature math per 1080p frame").

The definitions are those of :mod:`lib.media.features` (scipy.ndimage's kernels with
``mode="reflect"``, the orthonormal 8×8 DCT-II, the block grid at pixel (0, 0));
:mod:`lib.media.handcrafted` turns the sums into the statistics. Arithmetic per pixel is float32 as in the numpy
version, sums are float64, and nothing depends on the machine's vector width: the kernel is
compiled without ``fastmath``, so the order of every sum is the loop's.

Compiled on first use and cached on disk next to this file (numba's ``cache=True``; a
read-only checkout falls back to ``NUMBA_CACHE_DIR`` or the user's cache): both versions are
compiled once per checkout (:func:`compile_kernels`, run by ``make venv``); later processes
load the machine code (the times of both: docs/BENCHMARKS.md, section "Feature math per
1080p frame"). Importing this module imports numba; only :mod:`lib.media.handcrafted`
imports it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BLOCK = 8

N_SUMS = 12
"""Length of the float64 ``sums`` vector :func:`frame_sums` fills, indexed by the names below."""
(
    RESIDUAL,
    RESIDUAL_SQ,
    RESIDUAL_ABS,
    GRADIENT,
    GRADIENT_SQ,
    LAPLACIAN,
    LAPLACIAN_SQ,
    STEP_BOUNDARY,
    STEP_INSIDE,
    N_BOUNDARY,
    N_INSIDE,
    AC_SQ,
) = range(N_SUMS)


@njit(cache=True, nogil=True, inline="always")
def _luma(src, i, j, weights):
    """float32 luma of pixel (i, j) of ``src`` (H, W, C): the value itself when C = 1."""
    if src.shape[2] == 1:
        return np.float32(src[i, j, 0])
    return (
        np.float32(src[i, j, 0]) * weights[0]
        + np.float32(src[i, j, 1]) * weights[1]
        + np.float32(src[i, j, 2]) * weights[2]
    )


@njit(cache=True, nogil=True)
def _luma_row(src, i, weights, shift, out):
    """Row ``i`` of ``src`` as luma minus ``shift`` into ``out[1:-1]``, reflect-padded."""
    width = src.shape[1]
    for j in range(width):
        out[j + 1] = _luma(src, i, j, weights) - shift
    out[0] = out[1]
    out[width + 1] = out[width]


LANES = 8
"""Partial sums per row: fixed lanes make the order of every sum the code's, not the CPU's,
and let LLVM vectorise the reduction without ``fastmath``."""


@njit(cache=True, nogil=True, inline="always")
def _term(value, power):
    """``value`` (power 0), ``|value|`` (1) or ``value²`` (2), in float64."""
    value = np.float64(value)
    if power == 1:
        return abs(value)
    if power == 2:
        return value * value
    return value


@njit(cache=True, nogil=True, inline="always")
def _lane_sum(x, n, power):
    """float64 sum of ``_term(x[j], power)`` over ``x[:n]``, in LANES lanes."""
    lanes = np.zeros(LANES, dtype=np.float64)
    n_full = n // LANES * LANES
    for j in range(0, n_full, LANES):
        for lane in range(LANES):
            lanes[lane] += _term(x[j + lane], power)
    total = 0.0
    for lane in range(LANES):
        total += lanes[lane]
    for j in range(n_full, n):
        total += _term(x[j], power)
    return total


@njit(cache=True, nogil=True)
def frame_sums(src, weights, dct, sums, block_dc, block_ac):
    """Reduce one frame ``src`` (H, W, C; C = 1 for luma, else RGB first) to float64 sums.

    ``weights``: the three float32 luma weights. ``dct``: the float32 8×8 DCT-II matrix.
    ``sums`` (float64, :data:`N_SUMS`) receives the per-pixel sums; ``block_dc`` and
    ``block_ac`` (float64, one per whole 8×8 block, row-major over the block grid) receive
    each block's DC coefficient and mean |AC coefficient|.

    Every pixel value is the luma minus the frame's first pixel: no statistic but DC
    depends on a constant, and a flat frame then gives exact zeros.
    """
    height, width = src.shape[0], src.shape[1]
    sums[:] = 0.0
    ring = np.empty((BLOCK + 2, width + 2), dtype=np.float32)  # rows r-1 .. r+8 of a band
    shift = _luma(src, 0, 0, weights)
    tile_cols = width // BLOCK
    tile_rows = height // BLOCK
    n_band = BLOCK * tile_cols  # one row of a band's blocks, laid out (x, block)
    centred = np.empty((BLOCK, n_band), dtype=np.float32)  # (y, x · block)
    half = np.empty((BLOCK, n_band), dtype=np.float32)  # (ky, x · block)
    per_block = np.empty((4, tile_cols), dtype=np.float32)
    first, coefficient, dc_centred, absolute = (
        per_block[0],
        per_block[1],
        per_block[2],
        per_block[3],
    )
    ninth = np.float32(1.0 / 9.0)
    rows_out = np.empty((6, width), dtype=np.float32)
    residual, magnitude_sq, magnitude = rows_out[0], rows_out[1], rows_out[2]
    laplacian, vertical, horizontal = rows_out[3], rows_out[4], rows_out[5]
    # ring row k holds frame row r0 - 1 + k; row -1 and row H repeat the edge rows
    _luma_row(src, 0, weights, shift, ring[1])
    ring[0, :] = ring[1, :]
    r0 = 0
    while r0 < height:
        rows = min(BLOCK, height - r0)
        for k in range(rows):  # rows r0+1 .. r0+rows (the last one below the band)
            i = r0 + k + 1
            if i < height:
                _luma_row(src, i, weights, shift, ring[k + 2])
            else:
                ring[k + 2, :] = ring[k + 1, :]
        for k in range(rows):
            i = r0 + k
            up, mid, down = ring[k], ring[k + 1], ring[k + 2]
            # element-wise into row buffers (vectorised by LLVM: no reduction in the loop)
            for j in range(width):
                a, b, c = up[j], up[j + 1], up[j + 2]
                d, e, f = mid[j], mid[j + 1], mid[j + 2]
                g, h, q = down[j], down[j + 1], down[j + 2]
                residual[j] = e - ((a + b + c) + (d + e + f) + (g + h + q)) * ninth
                gx = (c - a) + np.float32(2.0) * (f - d) + (q - g)
                gy = (g + np.float32(2.0) * h + q) - (a + np.float32(2.0) * b + c)
                magnitude_sq[j] = gx * gx + gy * gy
                magnitude[j] = np.sqrt(magnitude_sq[j])
                laplacian[j] = (b + h) + (d + f) - np.float32(4.0) * e
                vertical[j] = abs(h - e)
                horizontal[j] = abs(f - e)  # the step from pixel j to j+1
            sums[RESIDUAL] += _lane_sum(residual, width, 0)
            sums[RESIDUAL_SQ] += _lane_sum(residual, width, 2)
            sums[RESIDUAL_ABS] += _lane_sum(residual, width, 1)
            sums[GRADIENT] += _lane_sum(magnitude, width, 0)
            sums[GRADIENT_SQ] += _lane_sum(magnitude_sq, width, 0)
            sums[LAPLACIAN] += _lane_sum(laplacian, width, 0)
            sums[LAPLACIAN_SQ] += _lane_sum(laplacian, width, 2)
            # horizontal steps j → j+1 for j < W-1; j % 8 == 7 straddles a block edge
            if width > 1:
                step_all = _lane_sum(horizontal, width - 1, 0)
                step_boundary = 0.0
                for j in range(BLOCK - 1, width - 1, BLOCK):
                    step_boundary += horizontal[j]
                n_boundary = (width - 1) // BLOCK
                sums[STEP_BOUNDARY] += step_boundary
                sums[STEP_INSIDE] += step_all - step_boundary
                sums[N_BOUNDARY] += n_boundary
                sums[N_INSIDE] += width - 1 - n_boundary
            if i < height - 1:  # vertical steps to the next row (the last row has none)
                step_all = _lane_sum(vertical, width, 0)
                if i % BLOCK == BLOCK - 1:
                    sums[STEP_BOUNDARY] += step_all
                    sums[N_BOUNDARY] += width
                else:
                    sums[STEP_INSIDE] += step_all
                    sums[N_INSIDE] += width
        # the band's 8×8 blocks as C · (B − B[0, 0]) · Cᵀ, laid out (y, x, block) so that
        # every loop below runs over the blocks: contiguous, vectorised, no reduction
        band = r0 // BLOCK
        if rows == BLOCK and band < tile_rows:
            for t in range(tile_cols):
                first[t] = ring[1, t * BLOCK + 1]
            for y in range(BLOCK):
                for x in range(BLOCK):
                    target = centred[y, x * tile_cols : (x + 1) * tile_cols]
                    source = ring[y + 1, x + 1 : x + 1 + tile_cols * BLOCK : BLOCK]
                    for t in range(tile_cols):
                        target[t] = source[t] - first[t]
            half[:] = 0.0  # half = C · centred, one row of (x, block) at a time
            for ky in range(BLOCK):
                target = half[ky]
                for y in range(BLOCK):
                    weight = dct[ky, y]
                    source = centred[y]
                    for m in range(n_band):
                        target[m] += weight * source[m]
            absolute[:] = 0.0
            energy = 0.0
            for ky in range(BLOCK):  # coefficient (ky, kx) = half[ky] · C[kx]
                for kx in range(BLOCK):
                    coefficient[:] = 0.0
                    for x in range(BLOCK):
                        weight = dct[kx, x]
                        source = half[ky, x * tile_cols : (x + 1) * tile_cols]
                        for t in range(tile_cols):
                            coefficient[t] += weight * source[t]
                    if ky == 0 and kx == 0:
                        dc_centred[:] = coefficient
                    else:
                        energy += _lane_sum(coefficient, tile_cols, 2)
                        for t in range(tile_cols):
                            absolute[t] += abs(coefficient[t])
            offset = band * tile_cols
            for t in range(tile_cols):
                block_dc[offset + t] = dc_centred[t] + BLOCK * (
                    np.float64(first[t]) + np.float64(shift)
                )
                block_ac[offset + t] = absolute[t] / (BLOCK * BLOCK - 1)
            sums[AC_SQ] += energy
        # slide the ring: the band's last row and the row below become rows r-1 and r
        if r0 + BLOCK < height:
            ring[0, :] = ring[BLOCK, :]
            ring[1, :] = ring[BLOCK + 1, :]
        r0 += BLOCK


def compile_kernels() -> None:
    """Compile (or load from the disk cache) both versions of :func:`frame_sums`.

    The two array types :func:`lib.media.handcrafted._kernel_input` passes: uint8 RGB frames
    and float32 (H, W, C). ``make venv`` calls this once so that the first features jobs of a
    run load machine code instead of each compiling it.
    """
    weights = np.ones(3, dtype=np.float32)  # only the argument types matter here
    dct = np.eye(BLOCK, dtype=np.float32)
    for frame in (np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9, 1), np.float32)):
        frame_sums(frame, weights, dct, np.zeros(N_SUMS), np.zeros(1), np.zeros(1))


if __name__ == "__main__":
    compile_kernels()
