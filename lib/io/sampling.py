"""Which frames to read: frame-index sampling helpers (pure index arithmetic, no decoding)."""

from __future__ import annotations

import numpy as np

__all__ = ["sample_uniform", "sample_fraction", "sliding_windows"]


def sample_uniform(n_frames: int, k: int) -> list[int]:
    """``k`` evenly spaced frame indices, each centred in its bin of ``n_frames / k``.

    Returns every frame when ``k >= n_frames`` and ``[]`` for ``n_frames <= 0`` or
    ``k <= 0``. Deterministic and strictly increasing.
    """
    n_frames, k = int(n_frames), int(k)
    if n_frames <= 0 or k <= 0:
        return []
    if k >= n_frames:
        return list(range(n_frames))
    positions = (np.arange(k, dtype=np.float64) + 0.5) * (n_frames / k)
    return np.floor(positions).astype(int).tolist()


def sample_fraction(
    n_frames: int, *, fraction: float, min_frames: int, max_frames: int
) -> list[int]:
    """The seed's sampling: ``fraction`` of the frames (rounded down), clipped to
    ``[min_frames, max_frames]`` and to ``n_frames``, spaced by :func:`sample_uniform`.

    The three keywords are the config's ``features`` section (the schema holds their
    defaults)."""
    n_frames = int(n_frames)
    if n_frames <= 0:
        return []
    k = int(np.floor(n_frames * float(fraction)))
    k = min(max(k, int(min_frames)), int(max_frames), n_frames)
    return sample_uniform(n_frames, k)


def sliding_windows(n_frames: int, size: int, stride: int) -> list[list[int]]:
    """Windows of ``size`` consecutive indices starting every ``stride`` frames.

    Only full windows are returned (``[]`` when ``n_frames < size``): a clip model sees
    a fixed number of frames.
    """
    if size <= 0 or stride <= 0:
        raise ValueError("size and stride must be positive")
    n_frames = int(n_frames)
    return [list(range(s, s + size)) for s in range(0, max(n_frames - size + 1, 0), stride)]
