"""Memory of a stage process: RSS logged after each unit, caches emptied, and the cycle
collector's one workaround (skipped at exit)."""

from __future__ import annotations

import gc
import logging
import sys

import psutil

_MiB = 1024 * 1024


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    return psutil.Process().memory_info().rss / _MiB


def release(log: logging.Logger | None = None, label: str = "", *, collect: bool = True) -> float:
    """Empty the CUDA cache and log RSS; with ``collect``, run a full cycle collection first.

    Collect after an out-of-memory error, where cycles may still hold the failed attempt's
    tensors. After each unit of a shard, pass ``collect=False``: the collector's own
    generational runs keep RSS flat there, whereas a full collection after every unit scans
    every object the stage imported (docs/BENCHMARKS.md, section "gc"). Returns the RSS in MiB.
    """
    if collect:
        gc.collect()
    _empty_cuda_cache()
    rss = rss_mb()
    if log is not None:
        log.info("rss_mb=%.1f %s", rss, label)
    return rss


def skip_the_collection_at_exit() -> None:
    """Leave every object alive now out of the collection the interpreter runs at exit.

    Call it once, just before a stage process exits, when its results are written and
    closed: that last collection would scan every object the stage imported (torch,
    transformers, scikit-learn, polars...) only to free memory the operating system takes
    back anyway. Frozen objects are still freed by reference counting; only cycles among
    them are left to the operating system. The only freeze of the collector in ``lib``, kept
    because it shortens every stage process (docs/BENCHMARKS.md, section "gc", which also
    measures the freezes that went: after every shard unit and around heavy imports).
    """
    gc.freeze()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CPU ``MemoryError`` and CUDA/accelerator out-of-memory errors."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _empty_cuda_cache() -> None:
    # Only if the stage already imported torch: importing it just to ask would slow every stage.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
