"""How a deep model learns, one epoch at a time: optimiser, schedule, the epoch, validation.

:func:`training_state` makes AdamW with linear warm-up and cosine decay (:func:`lr_factor`)
and fp16's grad scaler. :func:`train_epoch` is one pass over the inner-training clips: it
draws its clip order, augmentation and dropout from generators seeded by the seed it is
given (the loop derives it from seed, model, fold and epoch), so a resumed run repeats the
epochs of an uninterrupted one; gradient accumulation fills the effective batch from
micro-batches, and gradients are unscaled before clipping. :func:`validate` is the pass over
the inner-validation clips.

Together they give the epoch's row in ``history.csv`` (:data:`HISTORY_COLUMNS`);
:func:`diagnose` turns the seed's silent failures into warnings.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from lib.shards import _tqdm_kw
from lib.train.checkpoint import TrainingState
from lib.train.runtime import autocast
from lib.train.settings import DeepSettings
from lib.utils import atomic_path

log = logging.getLogger(__name__)

#: The columns of ``history.csv``: one row per epoch.


HISTORY_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "train_auc",
    "val_auc",
    "lr",
    "grad_norm",
    "update_norm",
    "logit_mean",
    "logit_std",
    "logit_unique",
    "micro_batch",
    "rss_mb",
    "cuda_peak_mb",
    "seconds",
    "warnings",
]


def data_loader(ds, batches, workers):
    """A loader that yields ``ds``'s items in ``batches`` (lists of indices), in order."""
    return torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=workers)


def predict_logits(model, ds, *, micro_batch, workers, device, precision, desc) -> np.ndarray:
    """Logits (n, classes) float32 of every item, in order."""
    batches = [
        list(range(i, min(i + micro_batch, len(ds)))) for i in range(0, len(ds), micro_batch)
    ]
    out = np.zeros((len(ds), 0), dtype=np.float32)
    chunks = []
    model.eval()
    with torch.no_grad(), autocast(device, precision):
        for x, _, idx in tqdm(
            data_loader(ds, batches, workers), desc=desc, file=sys.stderr, **_tqdm_kw()
        ):
            chunks.append(model(x.to(device)).float().cpu().numpy())
    if chunks:
        out = np.concatenate(chunks)
    return out


def auc(logits: np.ndarray, labels: np.ndarray, pos: int) -> float:
    """ROC-AUC of class probabilities (binary: the positive class; else one-vs-rest)."""
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return float("nan")
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels == pos, probs[:, pos]))
    try:
        return float(
            roc_auc_score(labels, probs, multi_class="ovr", labels=list(range(probs.shape[1])))
        )
    except ValueError:
        return float("nan")


def diagnose(row: dict, *, grad_floor: float = 1e-8) -> list[str]:
    """The seed's silent failures, spotted in one epoch's history row."""
    warnings = []
    if row["train_loss"] == 0.0:
        warnings.append("train loss is exactly 0 (labels leaked or a degenerate head)")
    if row["logit_unique"] <= 1:
        warnings.append("validation logits are constant: the model gives every clip the same score")
    if row["grad_norm"] < grad_floor:
        warnings.append(f"gradient norm {row['grad_norm']:.2e} vanishes: nothing is learning")
    if row["update_norm"] == 0.0:
        warnings.append("weights did not change this epoch (learning rate 0 or everything frozen)")
    return warnings


def lr_factor(step: int, *, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at ``total`` optimiser steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model, params: list, *, lr: float, layer_decay: float) -> list[dict]:
    """AdamW's parameter groups: layer-wise learning-rate decay over the backbone.

    With ``layer_decay`` d < 1 the head (everything outside ``model.backbone``) trains at
    ``lr``, the backbone's last block at ``lr * d``, the block before at ``lr * d**2`` and
    so on, and what the backbone holds outside its blocks (embeddings) at ``lr * d**(n+1)``
    for ``n`` blocks (a final norm rides with the last block): a pretrained backbone's early layers move least (BEiT, VideoMAE
    fine-tuning). ``layer_decay`` 1 is one group at ``lr``. Only the trainable ``params``
    go in; groups are ordered head first, empty ones left out.
    """
    if layer_decay >= 1.0:
        return [{"params": params, "lr": lr}]
    trainable = {id(p) for p in params}
    # A final norm listed as a block of its own rides with the block before it (as in
    # apply_freeze): ``levels`` are the blocks' positions counted without such norms.
    levels, level = [], -1
    for i, block in enumerate(model.backbone_blocks):
        level += 0 if i and isinstance(block, torch.nn.LayerNorm) else 1
        levels.append(level)
    depth_of = {}  # parameter id -> number of levels above it (0: the last block)
    for block, lv in zip(model.backbone_blocks, levels):
        for p in block.parameters():
            depth_of.setdefault(id(p), level - lv)
    in_backbone = {id(p) for p in model.backbone.parameters()}
    groups: dict[int, list] = {}
    for p in model.parameters():
        if id(p) in trainable:  # the head 0, the last block 1, ..., embeddings level + 2
            k = 1 + depth_of.get(id(p), level + 1) if id(p) in in_backbone else 0
            groups.setdefault(k, []).append(p)
    return [{"params": groups[k], "lr": lr * layer_decay**k} for k in sorted(groups)]


def training_state(model, params: list, s: DeepSettings, rt: dict, *, n_train: int):
    """AdamW over the trainable ``params`` (learning rates per :func:`param_groups`),
    warm-up + cosine, and fp16's grad scaler."""
    groups = param_groups(model, params, lr=s.lr, layer_decay=s.layer_decay) if params else []
    optimiser = torch.optim.AdamW(
        groups or [torch.nn.Parameter(torch.zeros(1))], lr=s.lr, weight_decay=s.weight_decay
    )
    total_steps = max(1, s.epochs * math.ceil(n_train / s.batch_size))
    warmup = round(s.warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, warmup=warmup, total=total_steps)
    )
    scaler = torch.amp.GradScaler(rt["device"], enabled=rt["precision"] == "fp16")
    return TrainingState(model, optimiser, scheduler, scaler)


def class_weights(labels: list[int], n_classes: int, class_balance: str, device: str):
    """Inverse-frequency loss weights (mean weight 1 over the clips), or None."""
    if class_balance != "loss_weights":
        return None
    counts = np.bincount(labels, minlength=n_classes)
    w = len(labels) / (n_classes * np.maximum(counts, 1))
    return torch.tensor(w, dtype=torch.float32, device=device)


def epoch_order(n: int, labels: list[int], *, balance: str, seed: int) -> list[int]:
    """The epoch's clip order: a permutation, or a class-balanced draw with ``sampler``."""
    g = torch.Generator().manual_seed(seed)
    if balance == "sampler":  # class-balanced draw with replacement, n items per epoch
        counts = np.bincount(labels)
        w = torch.tensor([1.0 / counts[y] for y in labels], dtype=torch.float64)
        return torch.multinomial(w, n, replacement=True, generator=g).tolist()
    return torch.randperm(n, generator=g).tolist()


def optimiser_steps(order: list[int], batch_size: int, micro: int) -> list[list[list[int]]]:
    """Optimiser steps of ``batch_size`` items, each a list of micro-batches."""
    steps = []
    for i in range(0, len(order), batch_size):
        step = order[i : i + batch_size]
        steps.append([step[j : j + micro] for j in range(0, len(step), micro)])
    return steps


def train_epoch(
    state: TrainingState,
    ds,
    params: list,
    *,
    weight,
    s: DeepSettings,
    rt: dict,
    epoch: int,
    seed: int,
    labels: list[int],
    pos: int,
    desc: str,
    delay: float,
) -> dict:
    """One pass over the inner-training clips; returns the epoch's training diagnostics.

    ``seed`` seeds the epoch's order, augmentation and dropout; ``delay`` (seconds after each
    micro-batch) is the kill -9 test's fault injection.
    """
    model, optimiser, scheduler, scaler = (
        state.model,
        state.optimiser,
        state.scheduler,
        state.scaler,
    )
    device, precision = rt["device"], rt["precision"]
    torch.manual_seed(seed)  # dropout and anything else drawing from torch's global RNG
    ds.set_epoch(epoch)
    order = epoch_order(len(ds), labels, balance=s.class_balance, seed=seed % 2**63)
    steps = optimiser_steps(order, s.batch_size, rt["micro_batch"])
    before = [p.detach().clone() for p in params]
    model.train()
    loader = data_loader(ds, [mb for step in steps for mb in step], rt["workers"])
    batches = iter(loader)
    losses, norms, all_logits, all_labels = [], [], [], []
    bar = tqdm(total=len(order), desc=desc, unit="clip", file=sys.stderr, **_tqdm_kw())
    lr = optimiser.param_groups[0]["lr"]
    for step in steps:
        n_step = sum(len(mb) for mb in step)
        step_loss = 0.0
        for _ in step:
            x, y, _ = next(batches)
            x, y = x.to(device), y.to(device)
            with autocast(device, precision):
                logits = model(x)
                loss = (
                    F.cross_entropy(
                        logits.float(),
                        y,
                        weight=weight,
                        label_smoothing=s.label_smoothing,
                        reduction="sum",
                    )
                    / n_step
                )
            scaler.scale(loss).backward()
            step_loss += float(loss.detach())
            all_logits.append(logits.detach().float().cpu())
            all_labels.append(y.cpu())
            bar.update(len(y))
            if delay:
                time.sleep(delay)
        scaler.unscale_(optimiser)
        clip = s.grad_clip if s.grad_clip > 0 else math.inf
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip)) if params else 0.0)
        lr = optimiser.param_groups[0]["lr"]
        scaler.step(optimiser)
        scaler.update()
        optimiser.zero_grad(set_to_none=True)
        scheduler.step()
        losses.append(step_loss)
        bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
    bar.close()
    update = math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(params, before)))
    logits = torch.cat(all_logits).numpy() if all_logits else np.zeros((0, 2))
    ys = torch.cat(all_labels).numpy() if all_labels else np.zeros(0, dtype=int)
    return {
        "epoch": epoch + 1,
        "train_loss": float(np.mean(losses)) if losses else math.nan,
        "train_auc": auc(logits, ys, pos),
        "lr": lr,
        "grad_norm": float(np.mean(norms)) if norms else 0.0,
        "update_norm": update,
        "micro_batch": rt["micro_batch"],
    }


def validate(model, ds, labels: np.ndarray, *, pos: int, rt: dict, desc: str) -> dict:
    """The validation pass: loss, ROC-AUC and the spread of the logits on the inner split."""
    logits = predict_logits(
        model,
        ds,
        micro_batch=rt["micro_batch"],
        workers=rt["workers"],
        device=rt["device"],
        precision=rt["precision"],
        desc=desc,
    )
    loss = (
        float(F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(labels)))
        if len(labels)
        else math.nan
    )
    pos_logit = logits[:, pos] if len(logits) else np.zeros(0)
    return {
        "val_loss": loss,
        "val_auc": auc(logits, labels, pos),
        "logit_mean": float(logits.mean()) if logits.size else math.nan,
        "logit_std": float(logits.std()) if logits.size else math.nan,
        "logit_unique": int(np.unique(np.round(pos_logit, 6)).size),
    }


def log_epoch(row: dict, *, s: DeepSettings, device: str) -> None:
    log.info(
        "epoch %d/%d: train loss %.4f auc %.3f | val loss %.4f auc %.3f | lr %.2e | "
        "grad %.3g | rss %.0f MiB%s",
        row["epoch"],
        s.epochs,
        row["train_loss"],
        row["train_auc"],
        row["val_loss"],
        row["val_auc"],
        row["lr"],
        row["grad_norm"],
        row["rss_mb"],
        "" if device == "cpu" else f" | cuda peak {row['cuda_peak_mb']:.0f} MiB",
    )


def write_history(history: list[dict], path: Path) -> None:
    frame = pl.DataFrame({c: [r.get(c) for r in history] for c in HISTORY_COLUMNS}, strict=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)
