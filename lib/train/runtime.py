"""Where and how a deep model runs: device, precision, micro-batch, loader workers.

Chosen from the hardware unless the settings fix them; the training loop and predict
(:mod:`lib.predict`) make the same choices through :func:`resolve_runtime` and run the
forward pass in the same precision context (:func:`autocast`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os

import torch

from lib.config import ConfigError
from lib.train.settings import DeepSettings

log = logging.getLogger(__name__)


def resolve_runtime(s: DeepSettings) -> dict:
    """Device, precision, micro-batch, accumulation and workers: from the hardware unless set."""
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if s.device == "auto" else s.device
    if device == "cuda" and not cuda:
        raise ConfigError("device: cuda but torch sees no CUDA device; set device: auto or cpu")
    if device == "cpu":
        if s.precision in ("bf16", "fp16"):
            log.warning(
                "precision %s asked on CPU: training in fp32 (autocast is for CUDA)", s.precision
            )
        precision = "fp32"
    elif s.precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    else:
        precision = s.precision
    micro = s.micro_batch or (s.batch_size if device == "cuda" else min(s.batch_size, 4))
    cores = os.cpu_count() or 1
    workers = (
        s.workers
        if s.workers is not None
        else (0 if device == "cpu" or cores <= 2 else min(4, cores - 1))
    )
    return {
        "device": device,
        "precision": precision,
        "micro_batch": int(micro),
        "accumulation": math.ceil(s.batch_size / micro),
        "batch_size": s.batch_size,
        "workers": int(workers),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": cores,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
    }


def autocast(device: str, precision: str):
    """The forward pass's precision context: none in fp32, else torch's autocast."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
