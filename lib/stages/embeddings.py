"""Stage ``embeddings`` (one shard of clips): frozen image-encoder vectors of sampled frames,
mean-pooled per clip, and stage ``tiny-encoder`` (a random-init encoder saved as a
checkpoint, for the demo).

Each clip's frames are sampled as the feature stage samples them (or ``num_frames``
uniformly), streamed through the encoder (:mod:`lib.media.embeddings`) and averaged: one
row per clip with ``frame = -1`` and the ``emb_*`` columns, plus with ``keep_frames`` one
row per embedded frame (``frame`` = its index in the clip). The encoder is loaded once per
shard, when the first clip needs it, so a resumed shard whose clips are all done loads none.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig

from lib import schemas
from lib.io.reader import FrameReader
from lib.media.embeddings import (
    build_tiny_encoder,
    clip_embedding,
    embedding_columns,
    frame_indices,
    load_encoder,
)
from lib.shards import Shard
from lib.stages.sharded import ShardedStage, failure_reason, upstream_failed

STAGE = ShardedStage("embeddings", "clip_id", "embeddings")
#: ``frame`` of a clip's mean vector (the per-frame rows hold the frame's index).
CLIP_MEAN = -1


def encoder_dim(model: str) -> int:
    """The vector size of checkpoint ``model`` from its config.json alone (no weights)."""
    config = AutoConfig.from_pretrained(model)
    return int((getattr(config, "vision_config", None) or config).hidden_size)


def embeddings_shard(
    clips: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    model: str,
    num_frames: int,
    batch_size: int,
    device: str,
    precision: str,
    keep_frames: bool,
    sampling: dict,
    progress_dir: str | Path,
) -> None:
    """Embeddings of every clip of ``shard`` of ``clips`` (the ``embeddings`` config section;
    ``sampling``: the ``features`` section, used when ``num_frames`` is 0)."""
    table = schemas.read_table(clips, "clips")
    names = embedding_columns(encoder_dim(model))
    loaded = []  # the encoder, once a clip needs it
    nan = dict.fromkeys(names, float("nan"))
    source = {"encoder": model, "num_frames": num_frames}

    def head(clip, frame, status, reason):
        return {"clip_id": clip["clip_id"], "frame": frame, "status": status, "reason": reason}

    def failed(clip, reason):
        return [{**head(clip, CLIP_MEAN, "failed", reason), **source, **nan}]

    def skip(clip):
        return failed(clip, upstream_failed(clip)) if clip["status"] != "ok" else None

    def process(clip):
        if not loaded:
            loaded.append(
                load_encoder(model, device=device, precision=precision, batch_size=batch_size)
            )
        with FrameReader(clip["path"]) as reader:
            picks = frame_indices(reader.n_frames, num_frames=num_frames, sampling=sampling)
            frames = (frame for _, frame in reader.read(picks))
            mean, per_frame = clip_embedding(loaded[0], frames, keep_frames=keep_frames)
        if not picks:
            return failed(clip, "no_frames")
        rows = [{**head(clip, CLIP_MEAN, "ok", ""), **source, **_values(names, mean)}]
        for index, vector in zip(picks, per_frame):
            rows.append({**head(clip, index, "ok", ""), **source, **_values(names, vector)})
        return rows

    def on_error(clip, exc):
        return failed(clip, failure_reason("embedding_error", exc))

    params = {"sampling": dict(sampling), **source, "keep_frames": keep_frames}
    params["precision"] = precision  # bf16 and fp32 vectors differ: never mixed in one shard
    handlers = (process, on_error, skip)
    STAGE.run(table, shard, output, progress_dir, *handlers, params=params, extras=names)


def _values(names: list[str], vector) -> dict[str, float]:
    return {name: float(value) for name, value in zip(names, vector)}


def run_tiny_encoder(*, out_dir: str | Path, settings: dict, seed: int) -> None:
    """Save a random-init tiny encoder of kind ``settings["tiny"]`` (clip, siglip, dinov2;
    input side ``tiny_image_size``) and its image processor into ``out_dir``: the demo's
    stand-in for a downloaded checkpoint, no weights fetched."""
    if not settings.get("tiny"):
        raise ValueError("embeddings.tiny is null: set it (clip, siglip or dinov2) to build one")
    build_tiny_encoder(
        settings["tiny"], out_dir, image_size=settings["tiny_image_size"], random_state=seed
    )
