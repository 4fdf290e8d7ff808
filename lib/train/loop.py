"""Train one deep model on all folds but one, choose its epoch on an inner split, predict the fold.

Read :func:`train_deep_table` top to bottom like nanoGPT's ``train.py``: data and inner
split, runtime choices (device, precision, micro-batch, workers: :mod:`lib.train.runtime`),
model and freezing, AdamW with warm-up + cosine, then one epoch at a time
(:mod:`lib.train.epoch`: gradient accumulation to the effective batch, clipping, the
validation pass, diagnostics) each ending with an atomic checkpoint
(:mod:`lib.train.checkpoint`), and finally the evaluated fold predicted once by the epoch
chosen without it.

One loop, three callers: :func:`train_deep_fold` (a cross-validation fold, from the
pipeline's tables), ``train_final`` (``fold=-1``: every fold trains, nothing predicted) and
the permutation test (:func:`lib.train.permutation.deep_fit_predict`: tables with permuted
labels), all through :func:`train_deep_table`.

Resume: every epoch ends with ``last.pt``; a rerun whose settings, data and seed match
resumes after the last finished epoch. Each epoch draws its order, augmentation and dropout
from generators seeded by (seed, fold, epoch), and the checkpoint restores model,
optimiser, scheduler, scaler and RNG states, so a killed and resumed job ends with the
weights and predictions of an uninterrupted one (CPU, same seed). An epoch that runs out of
memory halves the micro-batch (same effective batch) and restarts from ``last.pt``.

Failure modes of the seed, made loud: each epoch's row in ``history.csv`` carries warnings
(also logged) when the training loss is exactly 0, the validation logits are constant,
the gradient norm vanishes, or the weights did not move (a learning rate of 0, everything
frozen); the run refuses to start when fewer than ``min_trainable_share`` of the
parameters train, unless ``allow_low_trainable``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from lib import schemas
from lib.config import ConfigError
from lib.memory import is_out_of_memory, rss_mb
from lib.train.check import check_settings
from lib.train.checkpoint import FoldCheckpoints, TrainingState, fingerprint
from lib.train.clips import load_clip_table, split_fold
from lib.train.data import ClipCache, FrameClipDataset
from lib.train.epoch import (
    class_weights,
    diagnose,
    log_epoch,
    predict_logits,
    train_epoch,
    training_state,
    validate,
    write_history,
)
from lib.train.export import export_final
from lib.train.models import apply_freeze, create_model
from lib.train.predictions import predictions_table
from lib.train.runtime import resolve_runtime
from lib.train.settings import DeepSettings, as_settings
from lib.utils import atomic_path, atomic_write_text, stable_seed

log = logging.getLogger(__name__)


# Fault injection for the kill -9 test: seconds to sleep after each micro-batch.
STEP_DELAY_ENV = "VIDSTAGE_TRAIN_STEP_DELAY_S"


def train_deep_fold(
    scaled_path: str | Path,
    clips_path: str | Path,
    folds_path: str | Path,
    out_dir: str | Path,
    **kwargs,
) -> pl.DataFrame:
    """Train on every fold but ``fold``; predict every clip of ``fold`` once.

    The pipeline's tables in, :func:`train_deep_table` on them (``kwargs`` are its keywords).
    ``fold=-1`` is the final model (``train_final``): trained on every fold, nothing predicted.
    """
    return train_deep_table(load_clip_table(scaled_path, clips_path, folds_path), out_dir, **kwargs)


def train_deep_table(
    table: pl.DataFrame,
    out_dir: str | Path,
    *,
    model_name: str,
    fold: int,
    settings: DeepSettings | dict | None,
    positive_label: str,
    random_state: int,
    checkpoint_dir: str | Path | None = None,
) -> pl.DataFrame:
    """Train on the rows of ``table`` outside ``fold``; predict the rows of ``fold`` once.

    ``table``: one row per clip, as :func:`lib.train.clips.clip_table` gives it (clip_id,
    path, video_id, label, aug_idx, dup_group, fold). The permutation test passes tables
    with permuted labels. ``fold=-1`` (no row has it) is the final model: every row trains
    (the epoch still chosen on the inner split), nothing is predicted and no
    ``predictions.csv`` is written.

    Writes into ``out_dir``: ``predictions.csv`` (the contract of every model),
    ``history.csv`` (one row per epoch), ``model.pt`` (weights of the chosen epoch) and
    ``train_info.json`` (resolved settings, runtime choices, parameter counts, splits, the
    chosen epoch, classes and normalisation: what ``predict`` needs). Checkpoints go to
    ``checkpoint_dir`` (default ``results/.checkpoints/{model}/fold-{fold}``, or
    ``.../final`` for ``fold=-1``).
    """
    s = as_settings(settings, model_name)
    check_settings(model_name, s)
    out_dir = Path(out_dir)
    final = fold < 0
    run = "final" if final else f"fold-{fold}"
    ckpt_dir = Path(checkpoint_dir or f"results/.checkpoints/{model_name}/{run}")
    started = time.perf_counter()

    # -- data: the evaluated fold is set aside before anything else looks at the clips ----
    data = split_fold(
        table,
        model_name=model_name,
        fold=fold,
        val_fraction=s.val_fraction,
        train_clips=s.train_clips,
        positive_label=positive_label,
        random_state=random_state,
    )
    classes, pos = data.classes, data.pos

    # -- runtime, model, optimiser -------------------------------------------------------
    rt = resolve_runtime(s)
    device = rt["device"]
    log.info("runtime: %s", json.dumps(rt))
    torch.manual_seed(stable_seed(random_state, model_name, fold, "init"))
    model = create_model(model_name, s, num_classes=len(classes)).to(device)
    counts = freeze(model, model_name, s)
    params = [p for p in model.parameters() if p.requires_grad]
    state = training_state(model, params, s, rt, n_train=len(data.inner_train))
    cache = ClipCache(s.cache_mb)  # shared by the three datasets: a clip is decoded once
    ds_kw = {
        "classes": classes,
        "num_frames": s.num_frames,
        "image_size": s.image_size,
        "mean": model.mean,
        "std": model.std,
        "cache": cache,
    }
    train_ds = FrameClipDataset(data.inner_train, augment=s.augment, seed=random_state, **ds_kw)
    val_ds = FrameClipDataset(data.inner_val, **ds_kw)
    weight = class_weights(train_ds.labels, len(classes), s.class_balance, device)

    # -- resume, then one epoch at a time ------------------------------------------------
    checkpoints = FoldCheckpoints(
        ckpt_dir,
        fingerprint(
            {
                "model": model_name,
                "fold": fold,
                "settings": s.as_dict(),
                "seed": random_state,
                "train": data.inner_train["clip_id"].to_list(),
                "val": data.inner_val["clip_id"].to_list(),
                "classes": classes,
            }
        ),
    )
    history, resumed_from, oom_events = run_epochs(
        state,
        params,
        train_ds,
        val_ds,
        checkpoints=checkpoints,
        s=s,
        rt=rt,
        model_name=model_name,
        fold=fold,
        random_state=random_state,
        weight=weight,
        pos=pos,
        history_path=out_dir / "history.csv",
    )

    # -- the evaluated fold, predicted once by the chosen epoch --------------------------
    chosen = None if s.select_on == "last" else checkpoints.load_best()
    if chosen is None:  # select_on: last, or every validation score was NaN
        if s.select_on != "last":
            log.warning("no epoch had a finite %s: predicting with the last epoch", s.select_on)
        chosen = {"epoch": len(history) - 1, "model": model.state_dict()}
    model.load_state_dict(chosen["model"])
    log.info(
        "%s with the weights of epoch %d (%s)",
        "final model" if final else f"predicting fold {fold}",
        chosen["epoch"] + 1,
        "the last" if s.select_on == "last" else "chosen on the inner split",
    )
    predictions = None
    if not final:
        logits = predict_logits(
            model,
            FrameClipDataset(data.test, **ds_kw),
            micro_batch=rt["micro_batch"],
            workers=rt["workers"],
            device=device,
            precision=rt["precision"],
            desc=f"{model_name} fold {fold} predict",
        )
        probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
        predictions = predictions_table(data.test, probs, classes, positive_label=positive_label)
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
        **data.sizes(),
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
    if final:  # also a folder opened without this project (lib/train/export.py)
        export_final(model, out_dir, info)
    if predictions is None:
        return pl.DataFrame()
    return schemas.write_table(predictions, out_dir / "predictions.csv", "predictions")


def run_epochs(
    state: TrainingState,
    params: list,
    train_ds: FrameClipDataset,
    val_ds: FrameClipDataset,
    *,
    checkpoints: FoldCheckpoints,
    s: DeepSettings,
    rt: dict,
    model_name: str,
    fold: int,
    random_state: int,
    weight: torch.Tensor | None,
    pos: int,
    history_path: Path,
) -> tuple[list[dict], int | None, list[dict]]:
    """Resume after the last finished epoch of a matching checkpoint, then train the epochs
    left, each ending with its history row, ``last.pt`` and, when it is the best so far on
    the inner split, ``best.pt``; stop early after ``s.patience`` epochs without improvement.

    Returns the history rows, the epoch resumed at (None: started afresh) and the
    out-of-memory events. ``rt`` keeps the micro-batch an out-of-memory event lowered.
    """
    model, device = state.model, rt["device"]
    history: list[dict] = []
    best = {"epoch": -1, "score": math.inf}
    start_epoch, resumed_from, oom_events, done = 0, None, [], False
    last = checkpoints.resume(state)
    if last is None:  # the starting point: an OOM in the first epoch restarts from here
        checkpoints.save_last(
            state,
            epoch=-1,
            done=False,
            history=history,
            best=best,
            runtime=rt,
            oom_events=oom_events,
        )
    else:
        history, best, oom_events = last["history"], last["best"], last["oom_events"]
        done = bool(last.get("done"))
        rt["micro_batch"], rt["accumulation"] = last["micro_batch"], last["accumulation"]
        start_epoch = resumed_from = last["epoch"] + 1
        log.info(
            "resuming at epoch %d of %d from %s (checkpoint of epoch %d)",
            start_epoch + 1,
            s.epochs,
            checkpoints.last,
            start_epoch,
        )

    val_labels = np.asarray(val_ds.labels)
    delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
    for epoch in range(start_epoch, s.epochs if not done else start_epoch):
        t0 = time.perf_counter()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        row = train_epoch_within_memory(
            state,
            train_ds,
            params,
            model_name=model_name,
            checkpoints=checkpoints,
            oom_events=oom_events,
            weight=weight,
            s=s,
            rt=rt,
            epoch=epoch,
            seed=stable_seed(random_state, model_name, fold, "epoch", epoch),
            labels=train_ds.labels,
            pos=pos,
            desc=f"{model_name} fold {fold} epoch {epoch + 1}/{s.epochs}",
            delay=delay,
        )
        desc = f"{model_name} fold {fold} validate {epoch + 1}"
        row.update(validate(model, val_ds, val_labels, pos=pos, rt=rt, desc=desc))
        row.update(
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
        if s.select_on == "last":  # no selection: the last epoch's weights, no early stop
            best, stop = {"epoch": epoch, "score": -epoch}, False
        else:
            score = row["val_loss"] if s.select_on == "val_loss" else -row["val_auc"]
            if not math.isnan(score) and score < best["score"]:
                best = {"epoch": epoch, "score": score}
                checkpoints.save_best(model, epoch)
            stop = epoch - best["epoch"] >= s.patience and best["epoch"] >= 0
        checkpoints.save_last(
            state,
            epoch=epoch,
            done=stop or epoch == s.epochs - 1,
            history=history,
            best=best,
            runtime=rt,
            oom_events=oom_events,
        )
        write_history(history, history_path)
        log_epoch(row, s=s, device=device)
        if stop:
            log.info(
                "early stop after epoch %d: no improvement of %s for %d epochs",
                epoch + 1,
                s.select_on,
                s.patience,
            )
            break
    write_history(history, history_path)
    return history, resumed_from, oom_events


def freeze(model, model_name: str, s: DeepSettings) -> dict:
    """Apply ``s.freeze``; refuse too few trainable parameters unless allowed. Returns counts."""
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
    return counts


def train_epoch_within_memory(
    state: TrainingState,
    ds,
    params: list,
    *,
    model_name: str,
    checkpoints: FoldCheckpoints,
    oom_events: list,
    s: DeepSettings,
    rt: dict,
    epoch: int,
    **epoch_kw,
) -> dict:
    """:func:`lib.train.epoch.train_epoch` (``epoch_kw``: its other keywords); when it runs
    out of memory, the micro-batch is halved (same effective batch, noted in ``rt`` and
    ``oom_events``) and the epoch restarts from the last checkpoint."""
    while True:
        try:
            return train_epoch(state, ds, params, s=s, rt=rt, epoch=epoch, **epoch_kw)
        except Exception as exc:  # noqa: BLE001  (only OOM is handled; the rest re-raised)
            if not is_out_of_memory(exc):
                raise
            if rt["micro_batch"] == 1:
                raise RuntimeError(
                    f"out of memory at micro-batch 1 ({exc}); lower "
                    f"train.deep.{model_name}.image_size or num_frames, or "
                    "freeze more of the backbone"
                ) from exc
            state.optimiser.zero_grad(set_to_none=True)
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
            checkpoints.restore_last(state)
            if rt["device"] == "cuda":
                torch.cuda.empty_cache()
