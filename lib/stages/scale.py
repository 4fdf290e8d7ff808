"""Stage ``scale``: scale one shard of clips onto a square canvas."""

from __future__ import annotations

import logging
from pathlib import Path

from lib import schemas
from lib.io.reader import FrameReader
from lib.media.scale import ScaledClipWriter
from lib.shards import Shard
from lib.stages.sharded import (
    ShardedStage,
    failure_reason,
    remove_files,
    remove_stale_temporaries,
    removable_clips,
    require_clip,
    upstream_failed,
)
from lib.utils import relpath

log = logging.getLogger(__name__)


#: The stage as lib.shards.run_shard runs it (its progress folder, unit key, table kind).
STAGE = ShardedStage("scale", key="clip_id", out_kind="scaled")


def scale_shard(
    clips: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    scaled_dir: str | Path,
    method: str,
    size: int,
    model: str | None,
    chunk_frames: int,
    crf: int,
    preset: str,
    encoder_threads: int,
    device: str,
    remove_clips: bool,
    progress_dir: str | Path,
) -> None:
    """Scale every clip onto a fixed square canvas, streamed ``chunk_frames`` at a time.

    Each clip is made by :class:`lib.media.scale.ScaledClipWriter`, the one maker of a
    model's input that predict uses too: frames letterboxed as they are decoded (a chunk
    holds canvas-sized frames only); with the autoencoder, an out-of-memory chunk is halved,
    and when even one frame does not fit, the clip is redone with letterbox and the reason
    recorded.

    ``remove_clips`` (the disk budget): once the shard's table is written, the clip files
    augment wrote for it are removed; the workflow then gives scale augment's own shard
    table, after every other reader of those clips has finished (docs/CLUSTER.md, "Disk").
    """
    table = schemas.read_table(clips, "clips")
    clip_writer = ScaledClipWriter(
        method=method,
        size=size,
        model=model,
        device=device,
        chunk_frames=chunk_frames,
        crf=crf,
        preset=preset,
        encoder_threads=encoder_threads,
    )

    def row_for(row, path, used, reason, reader, status="ok"):
        return {
            "clip_id": row["clip_id"],
            "video_id": row["video_id"],
            "path": path,
            "scale_method": used,
            "orig_width": reader.width if reader else 0,
            "orig_height": reader.height if reader else 0,
            "scaled_width": size if status == "ok" else 0,
            "scaled_height": size if status == "ok" else 0,
            "status": status,
            "reason": reason,
        }

    def skip(row):
        if row["status"] != "ok":
            return [row_for(row, "", "", upstream_failed(row), None, "failed")]
        return None

    def process(row):
        require_clip(row)
        dst = Path(scaled_dir) / row["video_id"] / f"{row['clip_id']}.mp4"
        remove_stale_temporaries([dst])
        with FrameReader(row["path"]) as reader:
            used, reason = clip_writer.write(reader, dst)
        return [row_for(row, relpath(dst), used, reason, reader)]

    def on_error(row, exc):
        return [row_for(row, "", "", failure_reason("scale_error", exc), None, "failed")]

    params = {
        "method": method,
        "size": size,
        "model": model,
        "chunk": chunk_frames,
        "crf": crf,
        "preset": preset,
        "encoder_threads": encoder_threads,
        "dir": str(scaled_dir),
    }

    def finish():
        remove_files(removable_clips(shard.slice(table)), log)

    STAGE.run(
        table,
        shard,
        output,
        progress_dir,
        process,
        on_error,
        skip,
        params=params,
        finish=finish if remove_clips else None,
    )
