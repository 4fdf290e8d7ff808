"""Memory discipline for per-video loops: release what the last video held and log RSS."""

from __future__ import annotations

import gc
import logging

import psutil

_MiB = 1024 * 1024


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    return psutil.Process().memory_info().rss / _MiB


def release(log: logging.Logger | None = None, label: str = "") -> float:
    """Collect garbage (then freeze the survivors), empty the CUDA cache, and log RSS.

    Call it once after each video, after the loop has dropped its own references (frames,
    decoders, models' activations). Returns the RSS in MiB.
    """
    gc.collect()
    # What survives this collection is long-lived (modules, the loop's own state): move it
    # out of the collector's sight, so the next call scans only what the next video
    # allocated. A full collection over the objects that polars, pandera and PyAV leave
    # after import took 106-134 ms per call, most of a demo clip's feature time; frozen
    # objects are still freed by reference counting, only their cycles are no longer sought.
    gc.freeze()
    _empty_cuda_cache()
    rss = rss_mb()
    if log is not None:
        log.info("rss_mb=%.1f %s", rss, label)
    return rss


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CPU ``MemoryError`` and CUDA/accelerator out-of-memory errors."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _empty_cuda_cache() -> None:
    import sys

    torch = sys.modules.get("torch")  # only if a stage already imported it: importing costs 1 s
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
