"""Atomic training checkpoints that survive a killed job: ``last.pt`` and ``best.pt`` only.

They live under ``results/.checkpoints/{model}/fold-{k}/`` (like ``results/.progress``):
Snakemake does not know these files, so it does not delete them when a job fails, and the
rerun resumes from them. Each is written to a temporary file and renamed, so a kill
mid-write leaves the previous checkpoint intact. ``last.pt`` holds everything a resume
needs (model, optimiser, scheduler, grad scaler, epoch, micro-batch, history, RNG states);
``best.pt`` holds the weights of the epoch chosen on the inner validation split.

Loading uses ``torch.load(weights_only=True)`` only: checkpoints hold tensors, numbers,
strings, lists and dicts, never pickled objects.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from lib.utils import atomic_path

log = logging.getLogger(__name__)

LAST, BEST = "last.pt", "best.pt"


def save(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path) -> dict | None:
    """The checkpoint at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) generator states, in weights-only types."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fingerprint(payload: dict) -> str:
    """What a checkpoint must match to be resumed: settings, data, seed (canonical JSON)."""
    return json.dumps(payload, sort_keys=True, default=str)
