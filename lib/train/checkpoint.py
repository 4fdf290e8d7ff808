"""Atomic training checkpoints that survive a killed job: ``last.pt`` and ``best.pt`` only.

They live under ``results/.checkpoints/{model}/fold-{k}/`` (like ``results/.progress``):
Snakemake does not know these files, so it does not delete them when a job fails, and the
rerun resumes from them. Each is written to a temporary file and renamed, so a kill
mid-write leaves the previous checkpoint intact. ``last.pt`` holds everything a resume
needs (model, optimiser, scheduler, grad scaler, epoch, micro-batch, history, RNG states);
``best.pt`` holds the weights of the epoch chosen on the inner validation split.

Loading uses ``torch.load(weights_only=True)`` only: checkpoints hold tensors, numbers,
strings, lists and dicts, never pickled objects.

A checkpoint belongs to one run: its fingerprint (settings, data, seed) must match for a
rerun to resume from it (:class:`FoldCheckpoints`). What it restores, on a resume and when
an epoch restarts after running out of memory, is one :class:`TrainingState`.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
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


@dataclass
class TrainingState:
    """What a checkpoint saves and restores: model, optimiser, scheduler and grad scaler."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimiser.load_state_dict(checkpoint["optimiser"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])


class FoldCheckpoints:
    """``last.pt`` and ``best.pt`` of one run in ``directory``, valid for one ``fingerprint``."""

    def __init__(self, directory: str | Path, fingerprint: str):
        self.directory, self.fingerprint = Path(directory), fingerprint
        self.last, self.best = self.directory / LAST, self.directory / BEST
        self.directory.mkdir(parents=True, exist_ok=True)

    def resume(self, state: TrainingState) -> dict | None:
        """This run's ``last.pt`` with ``state`` and the RNG states restored from it; None
        (and an other run's ``best.pt`` removed) when there is none to resume from."""
        last = load(self.last)
        if last is not None and last["fingerprint"] == self.fingerprint:
            state.load_state_dict(last)
            set_rng_state(last["rng"])
            return last
        if last is not None:
            log.warning("checkpoint %s is from other settings or data: starting afresh", self.last)
        self.best.unlink(missing_ok=True)
        return None

    def restore_last(self, state: TrainingState) -> None:
        """``state`` as the last checkpoint left it (an epoch restarts from there)."""
        state.load_state_dict(load(self.last))

    def save_last(
        self,
        state: TrainingState,
        *,
        epoch: int,
        done: bool,
        history: list,
        best: dict,
        runtime: dict,
        oom_events: list,
    ) -> None:
        """Everything a resume after ``epoch`` needs (-1: the starting point)."""
        save(
            self.last,
            {
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "done": done,
                **state.state_dict(),
                "rng": rng_state(),
                "history": history,
                "best": best,
                "micro_batch": runtime["micro_batch"],
                "accumulation": runtime["accumulation"],
                "oom_events": oom_events,
            },
        )

    def save_best(self, model: torch.nn.Module, epoch: int) -> None:
        save(
            self.best,
            {"fingerprint": self.fingerprint, "epoch": epoch, "model": model.state_dict()},
        )

    def load_best(self) -> dict | None:
        """This run's ``best.pt`` (``epoch``, ``model``), or None."""
        best = load(self.best)
        return best if best is not None and best["fingerprint"] == self.fingerprint else None
