"""Train one deep model on all folds but one, choose its epoch on an inner split, predict the fold.

Read it top to bottom like nanoGPT's ``train.py``: data and inner split, runtime choices
(device, precision, micro-batch, workers), model and freezing, AdamW with warm-up + cosine,
then one epoch at a time — gradient accumulation to the effective batch, clipping,
diagnostics, an atomic checkpoint — and finally the evaluated fold predicted once by the
epoch chosen without it.

One loop, three callers: :func:`train_deep_fold` (a cross-validation fold, from the
pipeline's tables), ``train_final`` (``fold=-1``: every fold trains, nothing predicted) and
the permutation test (:func:`deep_fit_predict`: tables with permuted labels), all through
:func:`train_deep_table`.

Resume: every epoch ends with ``last.pt`` (see :mod:`lib.train.checkpoint`); a rerun whose
settings, data and seed match resumes after the last finished epoch. Each epoch draws its
order, augmentation and dropout from generators seeded by (seed, fold, epoch), and the
checkpoint restores model, optimiser, scheduler, scaler and RNG states, so a killed and
resumed job ends with the weights and predictions of an uninterrupted one (CPU, same seed).

Failure modes of the seed, made loud: each epoch's row in ``history.csv`` carries warnings
(also logged) when the training loss is exactly 0, the validation logits are constant,
the gradient norm vanishes, or the weights did not move (a learning rate of 0, everything
frozen); the run refuses to start when fewer than ``min_trainable_share`` of the
parameters train, unless ``allow_low_trainable``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from lib import schemas
from lib.config import ConfigError
from lib.memory import is_out_of_memory, rss_mb
from lib.train import checkpoint as ckpt
from lib.train.check import check_settings
from lib.train.data import ClipCache, FrameClipDataset, inner_split, load_clip_table
from lib.train.models import apply_freeze, create_model
from lib.train.settings import DeepSettings
from lib.utils import atomic_path, atomic_write_text, stable_seed

log = logging.getLogger(__name__)

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

# Fault injection for the kill -9 test: seconds to sleep after each micro-batch.
STEP_DELAY_ENV = "VIDSTAGE_TRAIN_STEP_DELAY_S"


# --------------------------------------------------------------------------------------
# Runtime choices
# --------------------------------------------------------------------------------------


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


def _autocast(device: str, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def lr_factor(step: int, *, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at ``total`` optimiser steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------------------
# Metrics and diagnostics
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# The fold
# --------------------------------------------------------------------------------------


def _loader(ds, batches, workers):
    return torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=workers)


def _predict(model, ds, *, micro_batch, workers, device, precision, desc):
    """Logits (n, classes) float32 of every item, in order."""
    batches = [
        list(range(i, min(i + micro_batch, len(ds)))) for i in range(0, len(ds), micro_batch)
    ]
    out = np.zeros((len(ds), 0), dtype=np.float32)
    chunks = []
    model.eval()
    with torch.no_grad(), _autocast(device, precision):
        for x, _, idx in tqdm(
            _loader(ds, batches, workers), desc=desc, file=sys.stderr, **_tqdm_kw()
        ):
            chunks.append(model(x.to(device)).float().cpu().numpy())
    if chunks:
        out = np.concatenate(chunks)
    return out


def _tqdm_kw() -> dict:
    from lib.shards import _tqdm_kw as kw

    return kw()


def _epoch_order(n: int, labels: list[int], *, balance: str, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    if balance == "sampler":  # class-balanced draw with replacement, n items per epoch
        counts = np.bincount(labels)
        w = torch.tensor([1.0 / counts[y] for y in labels], dtype=torch.float64)
        return torch.multinomial(w, n, replacement=True, generator=g).tolist()
    return torch.randperm(n, generator=g).tolist()


def _steps(order: list[int], batch_size: int, micro: int) -> list[list[list[int]]]:
    """Optimiser steps of ``batch_size`` items, each a list of micro-batches."""
    steps = []
    for i in range(0, len(order), batch_size):
        step = order[i : i + batch_size]
        steps.append([step[j : j + micro] for j in range(0, len(step), micro)])
    return steps


def train_deep_fold(
    scaled_path: str | Path,
    clips_path: str | Path,
    folds_path: str | Path,
    out_dir: str | Path,
    *,
    model_name: str,
    fold: int,
    settings: DeepSettings | dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
    checkpoint_dir: str | Path | None = None,
) -> pl.DataFrame:
    """Train ``model_name`` on every fold but ``fold``; predict every clip of ``fold`` once.

    The pipeline's tables in, :func:`train_deep_table` on them. ``fold=-1`` is the final
    model (``train_final``): trained on every fold, nothing predicted.
    """
    table = load_clip_table(scaled_path, clips_path, folds_path)
    return train_deep_table(
        table,
        out_dir,
        model_name=model_name,
        fold=fold,
        settings=settings,
        positive_label=positive_label,
        random_state=random_state,
        checkpoint_dir=checkpoint_dir,
    )


def train_deep_table(
    table: pl.DataFrame,
    out_dir: str | Path,
    *,
    model_name: str,
    fold: int,
    settings: DeepSettings | dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
    checkpoint_dir: str | Path | None = None,
) -> pl.DataFrame:
    """Train on the rows of ``table`` outside ``fold``; predict the rows of ``fold`` once.

    ``table``: one row per clip, as :func:`lib.train.data.clip_table` gives it (clip_id,
    path, video_id, label, aug_idx, dup_group, fold). The permutation test passes tables
    with permuted labels (:func:`deep_fit_predict`). ``fold=-1`` (no row has it) is the
    final model: every row trains (the epoch still chosen on the inner split), nothing is
    predicted and no ``predictions.csv`` is written.

    Writes into ``out_dir``: ``predictions.csv`` (the contract of every model),
    ``history.csv`` (one row per epoch), ``model.pt`` (weights of the chosen epoch) and
    ``train_info.json`` (resolved settings, runtime choices, parameter counts, splits, the
    chosen epoch, classes and normalisation: what ``predict`` needs). Checkpoints go to
    ``checkpoint_dir`` (default ``results/.checkpoints/{model}/fold-{fold}``, or
    ``.../final`` for ``fold=-1``).
    """
    s = (
        settings
        if isinstance(settings, DeepSettings)
        else DeepSettings.from_dict(settings, model_name)
    )
    check_settings(model_name, s)
    out_dir = Path(out_dir)
    final = fold < 0
    default_ckpt = f"results/.checkpoints/{model_name}/{'final' if final else f'fold-{fold}'}"
    ckpt_dir = Path(checkpoint_dir or default_ckpt)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # -- data: the evaluated fold is set aside before anything else looks at the clips ----
    train_all = table.filter(pl.col("fold") != fold)
    test = table.filter(pl.col("fold") == fold)
    if train_all.is_empty() or (test.is_empty() and not final) or train_all["label"].n_unique() < 2:
        raise ValueError(
            f"fold {fold}: {len(train_all)} training and {len(test)} test clips "
            f"with {train_all['label'].n_unique()} classes; need both sets and "
            "at least 2 classes (check folds.k and the scaled clips)"
        )
    classes = sorted(str(c) for c in train_all["label"].unique().to_list())
    pos = classes.index(positive_label) if positive_label in classes else len(classes) - 1
    inner_train, inner_val = inner_split(
        train_all,
        val_fraction=s.val_fraction,
        random_state=stable_seed(random_state, "inner", fold) % 2**32,
    )
    leaked = set(inner_val["video_id"]) & set(test["video_id"])
    assert not leaked, f"evaluated-fold videos in the inner validation split: {sorted(leaked)[:5]}"
    if s.train_clips == "originals":
        inner_train = inner_train.filter(pl.col("aug_idx") == -1)
        inner_val = inner_val.filter(pl.col("aug_idx") == -1)
    log.info(
        "%s fold %d: %d training clips (%d videos), %d inner-validation clips (%d videos, "
        "%d groups), %d clips to predict; classes %s",
        model_name,
        fold,
        len(inner_train),
        inner_train["video_id"].n_unique(),
        len(inner_val),
        inner_val["video_id"].n_unique(),
        inner_val["dup_group"].n_unique(),
        len(test),
        classes,
    )

    # -- runtime and model ---------------------------------------------------------------
    rt = resolve_runtime(s)
    device, precision = rt["device"], rt["precision"]
    log.info("runtime: %s", json.dumps(rt))
    torch.manual_seed(stable_seed(random_state, model_name, fold, "init"))
    model = create_model(model_name, s, num_classes=len(classes)).to(device)
    counts = apply_freeze(model, s.freeze)
    log.info(
        "parameters: %d trainable of %d (%.2f %%), freeze=%s; normalisation from %s",
        counts["trainable_params"],
        counts["total_params"],
        100 * counts["trainable_share"],
        s.freeze,
        model.norm_source,
    )
    if counts["trainable_share"] < s.min_trainable_share:
        msg = (
            f"train.deep.{model_name}: only {counts['trainable_params']} of "
            f"{counts['total_params']} parameters ({100 * counts['trainable_share']:.3f} %) "
            f"would train with freeze={s.freeze!r}, below min_trainable_share="
            f"{s.min_trainable_share}. Unfreeze more (freeze: none or all_but_last_N) or set "
            "allow_low_trainable: true if this is intended"
        )
        if not s.allow_low_trainable:
            raise ConfigError(msg)
        log.warning("%s (allowed by allow_low_trainable)", msg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        params or [torch.nn.Parameter(torch.zeros(1))], lr=s.lr, weight_decay=s.weight_decay
    )
    steps_per_epoch = math.ceil(len(inner_train) / s.batch_size)
    total_steps = max(1, s.epochs * steps_per_epoch)
    warmup = round(s.warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, warmup=warmup, total=total_steps)
    )
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    train_labels = [classes.index(str(c)) for c in inner_train["label"]]
    class_counts = np.bincount(train_labels, minlength=len(classes))
    weight = None
    if s.class_balance == "loss_weights":  # inverse frequency, mean weight 1 over the clips
        w = len(train_labels) / (len(classes) * np.maximum(class_counts, 1))
        weight = torch.tensor(w, dtype=torch.float32, device=device)

    cache = ClipCache(s.cache_mb)  # shared by the three datasets: a clip is decoded once
    ds_kw = {
        "classes": classes,
        "num_frames": s.num_frames,
        "image_size": s.image_size,
        "mean": model.mean,
        "std": model.std,
        "cache": cache,
    }
    train_ds = FrameClipDataset(inner_train, augment=s.augment, seed=random_state, **ds_kw)
    val_ds = FrameClipDataset(inner_val, **ds_kw)
    val_labels = np.asarray(val_ds.labels)

    # -- resume --------------------------------------------------------------------------
    fp = ckpt.fingerprint(
        {
            "model": model_name,
            "fold": fold,
            "settings": s.as_dict(),
            "seed": random_state,
            "train": inner_train["clip_id"].to_list(),
            "val": inner_val["clip_id"].to_list(),
            "classes": classes,
        }
    )
    history: list[dict] = []
    best = {"epoch": -1, "score": math.inf}
    start_epoch, resumed_from, oom_events = 0, None, []
    state = ckpt.load(ckpt_dir / ckpt.LAST)
    if state is not None and state["fingerprint"] == fp:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        history, best = state["history"], state["best"]
        rt["micro_batch"], rt["accumulation"] = state["micro_batch"], state["accumulation"]
        oom_events = state["oom_events"]
        start_epoch = resumed_from = state["epoch"] + 1
        log.info(
            "resuming at epoch %d of %d from %s (checkpoint of epoch %d)",
            start_epoch + 1,
            s.epochs,
            ckpt_dir / ckpt.LAST,
            start_epoch,
        )
    else:
        if state is not None:
            log.warning(
                "checkpoint %s is from other settings or data: starting afresh",
                ckpt_dir / ckpt.LAST,
            )
        (ckpt_dir / ckpt.BEST).unlink(missing_ok=True)

    def save_last(epoch: int, done: bool = False) -> None:
        ckpt.save(
            ckpt_dir / ckpt.LAST,
            {
                "fingerprint": fp,
                "epoch": epoch,
                "done": done,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": ckpt.rng_state(),
                "history": history,
                "best": best,
                "micro_batch": rt["micro_batch"],
                "accumulation": rt["accumulation"],
                "oom_events": oom_events,
            },
        )

    if state is None or state["fingerprint"] != fp:
        save_last(-1)  # the starting point: an OOM in epoch 0 restarts from here

    delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
    done = bool(state and state["fingerprint"] == fp and state.get("done"))
    for epoch in range(start_epoch, s.epochs if not done else start_epoch):
        t0 = time.perf_counter()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        while True:
            try:
                row = _train_epoch(
                    model,
                    optimiser,
                    scheduler,
                    scaler,
                    train_ds,
                    params,
                    weight=weight,
                    s=s,
                    rt=rt,
                    epoch=epoch,
                    fold=fold,
                    seed=random_state,
                    labels=train_labels,
                    pos=pos,
                    name=model_name,
                    delay=delay,
                )
                break
            except Exception as exc:  # noqa: BLE001  (only OOM is handled; the rest re-raised)
                if not is_out_of_memory(exc):
                    raise
                if rt["micro_batch"] == 1:
                    raise RuntimeError(
                        f"out of memory at micro-batch 1 ({exc}); lower "
                        f"train.deep.{model_name}.image_size or num_frames, or "
                        "freeze more of the backbone"
                    ) from exc
                optimiser.zero_grad(set_to_none=True)
                rt["micro_batch"] //= 2
                rt["accumulation"] = math.ceil(s.batch_size / rt["micro_batch"])
                oom_events.append({"epoch": epoch, "micro_batch": rt["micro_batch"]})
                log.warning(
                    "out of memory in epoch %d (%s): micro-batch halved to %d, "
                    "accumulation %d (same effective batch %d); epoch restarts from "
                    "the last checkpoint",
                    epoch + 1,
                    str(exc).splitlines()[0],
                    rt["micro_batch"],
                    rt["accumulation"],
                    s.batch_size,
                )
                last = ckpt.load(ckpt_dir / ckpt.LAST)
                model.load_state_dict(last["model"])
                optimiser.load_state_dict(last["optimiser"])
                scheduler.load_state_dict(last["scheduler"])
                scaler.load_state_dict(last["scaler"])
                if device == "cuda":
                    torch.cuda.empty_cache()
        val_logits = _predict(
            model,
            val_ds,
            micro_batch=rt["micro_batch"],
            workers=rt["workers"],
            device=device,
            precision=precision,
            desc=f"{model_name} fold {fold} validate {epoch + 1}",
        )
        val_loss = (
            float(
                F.cross_entropy(torch.from_numpy(val_logits).double(), torch.from_numpy(val_labels))
            )
            if len(val_labels)
            else math.nan
        )
        pos_logit = val_logits[:, pos] if len(val_logits) else np.zeros(0)
        row.update(
            val_loss=val_loss,
            val_auc=auc(val_logits, val_labels, pos),
            logit_mean=float(val_logits.mean()) if val_logits.size else math.nan,
            logit_std=float(val_logits.std()) if val_logits.size else math.nan,
            logit_unique=int(np.unique(np.round(pos_logit, 6)).size),
            rss_mb=round(rss_mb(), 1),
            cuda_peak_mb=(
                round(torch.cuda.max_memory_allocated() / 2**20, 1)
                if device == "cuda"
                else math.nan
            ),
            seconds=round(time.perf_counter() - t0, 2),
        )
        warnings = diagnose(row)
        for w in warnings:
            log.warning("%s fold %d epoch %d: %s", model_name, fold, epoch + 1, w)
        row["warnings"] = "; ".join(warnings)
        history.append(row)
        score = val_loss if s.select_on == "val_loss" else -row["val_auc"]
        if not math.isnan(score) and score < best["score"]:
            best = {"epoch": epoch, "score": score}
            ckpt.save(
                ckpt_dir / ckpt.BEST,
                {"fingerprint": fp, "epoch": epoch, "model": model.state_dict()},
            )
        stop = epoch - best["epoch"] >= s.patience and best["epoch"] >= 0
        save_last(epoch, done=stop or epoch == s.epochs - 1)
        _write_history(history, out_dir / "history.csv")
        log.info(
            "epoch %d/%d: train loss %.4f auc %.3f | val loss %.4f auc %.3f | lr %.2e | "
            "grad %.3g | rss %.0f MiB%s",
            epoch + 1,
            s.epochs,
            row["train_loss"],
            row["train_auc"],
            val_loss,
            row["val_auc"],
            row["lr"],
            row["grad_norm"],
            row["rss_mb"],
            "" if device == "cpu" else f" | cuda peak {row['cuda_peak_mb']:.0f} MiB",
        )
        if stop:
            log.info(
                "early stop after epoch %d: no improvement of %s for %d epochs",
                epoch + 1,
                s.select_on,
                s.patience,
            )
            break
    _write_history(history, out_dir / "history.csv")

    # -- the evaluated fold, predicted once by the chosen epoch --------------------------
    chosen = ckpt.load(ckpt_dir / ckpt.BEST)
    if chosen is None or chosen["fingerprint"] != fp:  # every validation loss was NaN
        log.warning("no epoch had a finite %s: predicting with the last epoch", s.select_on)
        chosen = {"epoch": len(history) - 1, "model": model.state_dict()}
    model.load_state_dict(chosen["model"])
    log.info(
        "%s with the weights of epoch %d (chosen on the inner split)",
        "final model" if final else f"predicting fold {fold}",
        chosen["epoch"] + 1,
    )
    predictions = None
    if not final:
        test_ds = FrameClipDataset(test, **ds_kw)
        logits = _predict(
            model,
            test_ds,
            micro_batch=rt["micro_batch"],
            workers=rt["workers"],
            device=device,
            precision=precision,
            desc=f"{model_name} fold {fold} predict",
        )
        probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
        predictions = test.select("clip_id", "video_id", "label").with_columns(
            score=pl.Series(
                probs[:, pos] if len(classes) == 2 else probs.max(axis=1), dtype=pl.Float64
            ),
            pred=pl.Series(np.asarray(classes)[probs.argmax(axis=1)], dtype=pl.String),
            aug_idx=test["aug_idx"],
            *[
                pl.Series(f"score_{c}", probs[:, j], dtype=pl.Float64)
                for j, c in enumerate(classes)
            ],
        )
    if s.cache_mb:
        log.info("clip cache: %s", json.dumps(cache.stats()))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    info = {
        "model": model_name,
        "fold": fold,
        "family": model.family,
        "settings": s.as_dict(),
        "random_state": random_state,
        "runtime": rt,
        **counts,
        "classes": classes,
        "positive_label": classes[pos],
        "normalisation": {"mean": model.mean, "std": model.std, "source": model.norm_source},
        "n_train_clips": len(inner_train),
        "n_val_clips": len(inner_val),
        "n_test_clips": len(test),
        "n_train_videos": int(inner_train["video_id"].n_unique()),
        "n_val_videos": int(inner_val["video_id"].n_unique()),
        "n_test_videos": int(test["video_id"].n_unique()),
        "val_groups": sorted(inner_val["dup_group"].unique().to_list()),
        "epochs_run": len(history),
        "best_epoch": chosen["epoch"] + 1,
        "resumed_from_epoch": None if resumed_from is None else resumed_from + 1,
        "oom_events": oom_events,
        "checkpoint_dir": str(ckpt_dir),
        "clip_cache": cache.stats(),
        "warnings": sorted({w for r in history for w in r["warnings"].split("; ") if w}),
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(out_dir / "train_info.json", json.dumps(info, indent=2, default=float))
    if predictions is None:
        return pl.DataFrame()
    return schemas.write_table(predictions, out_dir / "predictions.csv", "predictions")


def deep_fit_predict(
    model_name: str,
    *,
    settings: DeepSettings | dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
    work_dir: str | Path,
):
    """``fit_predict(train, test) -> predictions`` of a deep model, for
    :func:`lib.train.feature_models.permutation_test`.

    Each call is one :func:`train_deep_table` run: ``train`` (permuted labels) trains, the
    epoch chosen on its inner split, and ``test`` (the held-out fold's originals) is
    predicted. Resumable: a call works in ``work_dir/<hash of its labels, clips, settings
    and seed>/``, where the checkpoints make a killed run resume at its last epoch; when it
    ends, its weights and checkpoints are deleted and only ``predictions.csv`` is kept, so a
    rerun of the permutation test returns finished (permutation, fold) fits at once and disk
    use stays at one model's checkpoints. The caller removes ``work_dir`` when done.
    """
    import hashlib
    import shutil

    s = (
        settings
        if isinstance(settings, DeepSettings)
        else DeepSettings.from_dict(settings, model_name)
    )
    work_dir = Path(work_dir)

    def fit_predict(train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
        fold = int(test["fold"][0])
        key = json.dumps(
            {
                "model": model_name,
                "settings": s.as_dict(),
                "seed": random_state,
                "positive": positive_label,
                "fold": fold,
                "train": train.select("clip_id", "label").rows(),
                "test": test["clip_id"].to_list(),
            },
            sort_keys=True,
            default=str,
        )
        fit_dir = work_dir / f"fold-{fold}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        done = fit_dir / "predictions.csv"
        if done.exists():
            log.info("fold %d of this permutation already fitted: %s", fold, done)
            return schemas.read_table(done, "predictions")
        predictions = train_deep_table(
            pl.concat([train, test]),
            fit_dir,
            model_name=model_name,
            fold=fold,
            settings=s,
            positive_label=positive_label,
            random_state=random_state,
            checkpoint_dir=fit_dir / "ck",
        )
        shutil.rmtree(fit_dir / "ck", ignore_errors=True)
        (fit_dir / "model.pt").unlink(missing_ok=True)
        return predictions

    return fit_predict


def _write_history(history: list[dict], path: Path) -> None:
    frame = pl.DataFrame({c: [r.get(c) for r in history] for c in HISTORY_COLUMNS}, strict=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)


def _train_epoch(
    model,
    optimiser,
    scheduler,
    scaler,
    ds,
    params,
    *,
    weight,
    s,
    rt,
    epoch,
    fold,
    seed,
    labels,
    pos,
    name,
    delay,
) -> dict:
    """One pass over the inner-training clips; returns the epoch's training diagnostics."""
    device, precision = rt["device"], rt["precision"]
    epoch_seed = stable_seed(seed, name, fold, "epoch", epoch)
    torch.manual_seed(epoch_seed)  # dropout and anything else drawing from torch's global RNG
    ds.set_epoch(epoch)
    order = _epoch_order(len(ds), labels, balance=s.class_balance, seed=epoch_seed % 2**63)
    steps = _steps(order, s.batch_size, rt["micro_batch"])
    before = [p.detach().clone() for p in params]
    model.train()
    loader = _loader(ds, [mb for step in steps for mb in step], rt["workers"])
    batches = iter(loader)
    losses, norms, all_logits, all_labels = [], [], [], []
    bar = tqdm(
        total=len(order),
        desc=f"{name} fold {fold} epoch {epoch + 1}/{s.epochs}",
        unit="clip",
        file=sys.stderr,
        **_tqdm_kw(),
    )
    lr = optimiser.param_groups[0]["lr"]
    for step in steps:
        n_step = sum(len(mb) for mb in step)
        step_loss = 0.0
        for _ in step:
            x, y, _ = next(batches)
            x, y = x.to(device), y.to(device)
            with _autocast(device, precision):
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
