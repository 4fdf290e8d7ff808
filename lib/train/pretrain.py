"""Self-supervised VideoMAE pretraining on a fold's training videos, reading no label.

VideoMAE (Tong et al., NeurIPS 2022): most of a clip's tubelet tokens are hidden, the
encoder sees the rest and a small decoder reconstructs the hidden patches; the mean squared
reconstruction error (each patch normalised by its own mean and std with ``norm_pix_loss``)
is the loss. Tube masking hides the same spatial patches in every frame, so a patch cannot
be copied from its neighbour in time. transformers' ``VideoMAEForPreTraining`` computes the
loss; this module chooses the clips and the masks and runs the epochs.

Which clips (:func:`pretraining_clips`): the scaled clips of the videos outside the
evaluated fold (``scope: fold``; ``fold=-1``, the final model's run: every fold's videos),
or of every valid video (``scope: corpus``: transductive, the evaluated fold's videos
included). Only clip ids, paths, augmentation indices, video ids and folds are read, never a
label (:func:`lib.schemas.read_columns`): the weights cannot depend on one.

The encoder is the one ``videomae`` fine-tunes: :func:`lib.train.models.videomae_config` of
the same ``train.deep.videomae`` settings, plus a decoder (:func:`pretraining_config`). The
folder written (``save_pretrained``: config.json and model.safetensors, and the image
processor of the normalisation used) is what ``pretrained: ssl`` resolves to:
``VideoMAEForVideoClassification.from_pretrained`` loads its encoder under a new head.
Frames are normalised with ImageNet's mean and std, which ``VideoMAEForPreTraining`` undoes
to compute its targets.

Training reuses fine-tuning's parts: the frame dataset (:class:`FrameClipDataset`, every
clip in one placeholder class), AdamW with warm-up + cosine (:func:`training_state` given
the ``pretrain`` section's optimisation keys), the epoch order and micro-batches, and the
checkpoints (:class:`FoldCheckpoints`): every epoch ends with ``last.pt``; each epoch's
order, augmentation, masks and dropout come from generators seeded by (seed, run, epoch),
so a killed and resumed job ends with the weights of an uninterrupted one (CPU, same seed).
"""

from __future__ import annotations

import dataclasses
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
from tqdm import tqdm
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEImageProcessorPil

from lib import schemas
from lib.config import ConfigError
from lib.memory import rss_mb
from lib.shards import _tqdm_kw
from lib.train.check import SSL_SETTINGS
from lib.train.checkpoint import FoldCheckpoints, TrainingState, fingerprint
from lib.train.data import ClipCache, FrameClipDataset
from lib.train.epoch import data_loader, epoch_order, optimiser_steps, training_state
from lib.train.loop import STEP_DELAY_ENV
from lib.train.models import IMAGENET_MEAN, IMAGENET_STD, videomae_config
from lib.train.runtime import autocast, resolve_runtime
from lib.train.settings import DeepSettings, as_settings
from lib.utils import atomic_write_text, stable_seed

log = logging.getLogger(__name__)

#: The one class every pretraining clip is put in: the frame dataset wants one.
UNLABELLED = "unlabelled"

#: The model family pretraining makes encoders for (``train.deep.<family>``).
FAMILY = "videomae"

#: Files of a finished pretraining run (besides ``config.json`` and ``model.safetensors``).
HISTORY, INFO = "history.csv", "pretrain_info.json"


def pretraining_clips(
    scaled_path, clips_path, folds_path, *, fold: int, scope: str, train_clips: str
) -> pl.DataFrame:
    """The clips one pretraining run learns from: ``clip_id, video_id, path, aug_idx, fold``.

    ``scope`` fold: the videos outside ``fold`` (``-1``: every video with a fold); corpus:
    every valid video (``fold`` unused). ``train_clips``: all or originals. No label is read.
    """
    scaled = schemas.read_columns(scaled_path, "scaled", ["clip_id", "video_id", "path", "status"])
    aug = schemas.read_columns(clips_path, "clips", ["clip_id", "aug_idx"])
    folds = schemas.read_columns(folds_path, "folds", ["video_id", "fold"])
    table = (
        scaled.filter(pl.col("status") == "ok")
        .drop("status")
        .join(aug, on="clip_id", how="inner")
        .join(folds, on="video_id", how="left")
    )
    if scope == "fold":
        table = table.filter(pl.col("fold").is_not_null() & (pl.col("fold") != fold))
    elif scope != "corpus":
        raise ConfigError(f"pretrain.scope={scope!r}: use fold or corpus")
    if train_clips == "originals":
        table = table.filter(pl.col("aug_idx") == -1)
    if table.is_empty():
        raise ValueError(
            f"no scaled clip to pretrain on (scope {scope}, fold {fold}, train_clips {train_clips}): "
            "check results/scaled.csv and folds.k"
        )
    return table.sort("clip_id", maintain_order=True)


def pretraining_config(
    s: DeepSettings,
    *,
    norm_pix_loss: bool,
    decoder_hidden_size: int | None,
    decoder_num_attention_heads: int | None,
    decoder_num_hidden_layers: int,
    decoder_intermediate_size: int | None,
) -> VideoMAEConfig:
    """The encoder ``videomae`` builds from ``s`` (:func:`videomae_config`) with a decoder:
    by default half the encoder's width and heads, VideoMAE-base's proportions."""
    cfg = videomae_config(s)
    width = decoder_hidden_size or max(1, cfg.hidden_size // 2)
    heads = decoder_num_attention_heads or max(1, cfg.num_attention_heads // 2)
    problems = []
    if width % heads:
        problems.append(
            f"pretrain.decoder_hidden_size={width} is not a multiple of "
            f"decoder_num_attention_heads={heads}: choose sizes that divide"
        )
    if s.image_size % cfg.patch_size or s.num_frames % cfg.tubelet_size:
        problems.append(
            f"train.deep.{FAMILY}: image_size={s.image_size} and num_frames={s.num_frames} "
            f"must be multiples of patch_size={cfg.patch_size} and tubelet_size="
            f"{cfg.tubelet_size} to reconstruct whole patches: set them in "
            f"train.deep.{FAMILY} (model_config for the patch and tubelet)"
        )
    if problems:
        raise ConfigError(problems)
    cfg.decoder_hidden_size = width
    cfg.decoder_num_attention_heads = heads
    cfg.decoder_num_hidden_layers = decoder_num_hidden_layers
    cfg.decoder_intermediate_size = decoder_intermediate_size or 4 * width
    cfg.norm_pix_loss = norm_pix_loss
    return cfg


def tube_masks(
    n: int,
    *,
    patches_per_frame: int,
    tubelets: int,
    mask_ratio: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """``(n, tubelets * patches_per_frame)`` bool, True = hidden from the encoder.

    Per clip, ``floor(mask_ratio * patches_per_frame)`` spatial patches (at least one, at
    most all but one) drawn at random, hidden in every tubelet: tube masking. Every clip
    hides the same number, as ``VideoMAEForPreTraining`` requires. Token order is the patch
    embedding's: time outermost.
    """
    hidden = hidden_patches(patches_per_frame, mask_ratio)
    order = torch.rand(n, patches_per_frame, generator=generator).argsort(dim=1)
    spatial = torch.zeros(n, patches_per_frame, dtype=torch.bool)
    spatial.scatter_(1, order[:, :hidden], True)
    return spatial.repeat(1, tubelets)


def hidden_patches(patches_per_frame: int, mask_ratio: float) -> int:
    """Spatial patches a tube mask hides: ``floor(mask_ratio * patches_per_frame)``, at least
    one and at most all but one."""
    return min(patches_per_frame - 1, max(1, math.floor(mask_ratio * patches_per_frame + 1e-9)))


def pretrain_table(
    table: pl.DataFrame,
    out_dir: str | Path,
    *,
    run: str,
    settings: DeepSettings | dict | None,
    mask_ratio: float,
    norm_pix_loss: bool,
    epochs: int,
    lr: float,
    weight_decay: float,
    warmup_fraction: float,
    batch_size: int,
    grad_clip: float,
    augment: bool,
    random_state: int,
    checkpoint_dir: str | Path | None = None,
    transductive: bool = False,
    **decoder,
) -> pl.DataFrame:
    """Pretrain a VideoMAE encoder on every clip of ``table`` (no label column needed).

    ``settings``: ``train.deep.videomae``, of which the encoder, frames, size and runtime
    choices are read (:data:`lib.train.check.SSL_SETTINGS`); the other keywords are the
    ``pretrain`` section's, ``decoder`` its ``decoder_*`` keys (:func:`pretraining_config`).
    Writes into ``out_dir`` the ``save_pretrained`` folder (config, weights, image processor), ``history.csv`` (one row
    per epoch: reconstruction loss, learning rate, gradient norm, RSS) and
    ``pretrain_info.json``; checkpoints go to ``checkpoint_dir`` (default
    ``results/.checkpoints/pretrain/<run>``). Returns the history.
    """
    given = as_settings(settings, FAMILY).as_dict()  # only what pretraining reads
    s = as_settings({k: given[k] for k in SSL_SETTINGS}, FAMILY)
    cfg = pretraining_config(s, norm_pix_loss=norm_pix_loss, **decoder)
    # The fine-tuning settings with pretraining's optimisation: what training_state reads.
    ps = dataclasses.replace(
        s,
        pretrained=None,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        warmup_fraction=warmup_fraction,
        batch_size=batch_size,
        micro_batch=None if s.micro_batch is None else min(s.micro_batch, batch_size),
        grad_clip=grad_clip,
        augment=augment,
    )
    out_dir = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir or f"results/.checkpoints/pretrain/{run}")
    started = time.perf_counter()
    rt = resolve_runtime(ps)
    log.info("pretrain %s: %d clips, runtime %s", run, len(table), json.dumps(rt))
    torch.manual_seed(stable_seed(random_state, "pretrain", run, "init"))
    model = VideoMAEForPreTraining(cfg).to(rt["device"])
    params = list(model.parameters())
    state = training_state(model, params, ps, rt, n_train=len(table))
    cache = ClipCache(s.cache_mb)
    ds = FrameClipDataset(
        table.with_columns(label=pl.lit(UNLABELLED)),
        classes=[UNLABELLED],
        num_frames=s.num_frames,
        image_size=s.image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment=augment,
        seed=random_state,
        cache=cache,
    )
    side = s.image_size // cfg.patch_size
    geometry = {
        "patches_per_frame": side * side,
        "tubelets": s.num_frames // cfg.tubelet_size,
        "mask_ratio": mask_ratio,
    }
    checkpoints = FoldCheckpoints(
        ckpt_dir,
        fingerprint(
            {
                "run": run,
                "config": cfg.to_dict(),
                "settings": ps.as_dict(),
                "mask_ratio": mask_ratio,
                "seed": random_state,
                "clips": table["clip_id"].to_list(),
            }
        ),
    )
    history: list[dict] = []
    last = checkpoints.resume(state)
    if last is None:
        start = resumed_from = None
        _save_last(checkpoints, state, -1, history, rt, ps)
    else:
        history = last["history"]
        rt["micro_batch"], rt["accumulation"] = last["micro_batch"], last["accumulation"]
        start = resumed_from = last["epoch"] + 1
        log.info("resuming at epoch %d of %d from %s", start + 1, epochs, checkpoints.last)
    delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
    for epoch in range(start or 0, epochs):
        t0 = time.perf_counter()
        row = pretrain_epoch(
            state,
            ds,
            params,
            geometry=geometry,
            s=ps,
            rt=rt,
            epoch=epoch,
            seed=stable_seed(random_state, "pretrain", run, "epoch", epoch),
            desc=f"pretrain {run} epoch {epoch + 1}/{epochs}",
            delay=delay,
        )
        row.update(
            run=run,
            n_clips=len(ds),
            mask_ratio=mask_ratio,
            rss_mb=round(rss_mb(), 1),
            seconds=round(time.perf_counter() - t0, 2),
        )
        history.append(row)
        _save_last(checkpoints, state, epoch, history, rt, ps)
        write_history(history, out_dir / HISTORY)
        log.info(
            "pretrain %s epoch %d/%d: reconstruction loss %.4f | lr %.2e | grad %.3g | "
            "rss %.0f MiB | %.1f s",
            run,
            epoch + 1,
            epochs,
            row["loss"],
            row["lr"],
            row["grad_norm"],
            row["rss_mb"],
            row["seconds"],
        )
    frame = write_history(history, out_dir / HISTORY)
    model.save_pretrained(out_dir)
    VideoMAEImageProcessorPil(
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        size={"shortest_edge": s.image_size},
        crop_size={"height": s.image_size, "width": s.image_size},
    ).save_pretrained(out_dir)
    info = {
        "run": run,
        "transductive": transductive,
        "n_clips": len(table),
        "n_videos": int(table["video_id"].n_unique()),
        "folds": sorted(table["fold"].drop_nulls().unique().to_list()),
        "tokens_per_clip": geometry["patches_per_frame"] * geometry["tubelets"],
        "hidden_tokens_per_clip": hidden_patches(geometry["patches_per_frame"], mask_ratio)
        * geometry["tubelets"],
        **geometry,
        "settings": ps.as_dict(),
        "decoder": {k: getattr(cfg, k) for k in _DECODER_KEYS},
        "norm_pix_loss": norm_pix_loss,
        "normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "parameters": sum(p.numel() for p in params),
        "encoder_parameters": sum(p.numel() for p in model.videomae.parameters()),
        "runtime": rt,
        "random_state": random_state,
        "epochs_run": len(history),
        "resumed_from_epoch": None if resumed_from is None else resumed_from + 1,
        "checkpoint_dir": str(ckpt_dir),
        "clip_cache": cache.stats(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(out_dir / INFO, json.dumps(info, indent=2, default=float))
    return frame


_DECODER_KEYS = (
    "decoder_hidden_size",
    "decoder_num_attention_heads",
    "decoder_num_hidden_layers",
    "decoder_intermediate_size",
)


def _save_last(checkpoints, state, epoch, history, rt, ps) -> None:
    checkpoints.save_last(
        state,
        epoch=epoch,
        done=epoch == ps.epochs - 1,
        history=history,
        best={},
        runtime=rt,
        oom_events=[],
    )


def pretrain_epoch(
    state: TrainingState,
    ds: FrameClipDataset,
    params: list,
    *,
    geometry: dict,
    s: DeepSettings,
    rt: dict,
    epoch: int,
    seed: int,
    desc: str,
    delay: float,
) -> dict:
    """One pass over the pretraining clips: each micro-batch with fresh tube masks, gradient
    accumulation to ``s.batch_size`` clips per step. Returns the epoch's mean reconstruction
    loss, last learning rate and mean gradient norm (before clipping)."""
    model, optimiser = state.model, state.optimiser
    device, precision = rt["device"], rt["precision"]
    torch.manual_seed(seed)  # dropout, if the config has any
    masks = torch.Generator().manual_seed(stable_seed(seed, "masks") % 2**63)
    ds.set_epoch(epoch)
    order = epoch_order(len(ds), [0] * len(ds), balance="none", seed=seed % 2**63)
    steps = optimiser_steps(order, s.batch_size, rt["micro_batch"])
    model.train()
    batches = iter(data_loader(ds, [mb for step in steps for mb in step], rt["workers"]))
    losses, norms = [], []
    lr = optimiser.param_groups[0]["lr"]
    bar = tqdm(total=len(order), desc=desc, unit="clip", file=sys.stderr, **_tqdm_kw())
    for step in steps:
        n_step = sum(len(mb) for mb in step)
        step_loss = 0.0
        for mb in step:
            x, _, _ = next(batches)
            hidden = tube_masks(len(mb), generator=masks, **geometry)
            with autocast(device, precision):
                out = model(pixel_values=x.to(device), bool_masked_pos=hidden.to(device))
            loss = out.loss.float() * (len(mb) / n_step)
            state.scaler.scale(loss).backward()
            step_loss += float(loss.detach())
            bar.update(len(mb))
            if delay:
                time.sleep(delay)
        norms.append(_step(state, params, grad_clip=s.grad_clip))
        lr = optimiser.param_groups[0]["lr"]
        losses.append(step_loss)
        bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
    bar.close()
    return {
        "epoch": epoch + 1,
        "loss": float(np.mean(losses)) if losses else math.nan,
        "lr": lr,
        "grad_norm": float(np.mean(norms)) if norms else 0.0,
    }


def _step(state: TrainingState, params: list, *, grad_clip: float) -> float:
    """Unscale, clip, step the optimiser and the schedule; the gradient norm before clipping."""
    state.scaler.unscale_(state.optimiser)
    norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf))
    state.scaler.step(state.optimiser)
    state.scaler.update()
    state.optimiser.zero_grad(set_to_none=True)
    state.scheduler.step()
    return norm


def write_history(history: list[dict], path: Path) -> pl.DataFrame:
    """The pretraining history table (``pretrain_history``), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = schemas.columns("pretrain_history")
    frame = pl.DataFrame([{c: r[c] for c in cols} for r in history]) if history else None
    return schemas.write_table(
        schemas.empty("pretrain_history") if frame is None else frame, path, "pretrain_history"
    )
