"""Stage ``scale``: scale one shard of clips onto a square canvas."""

from __future__ import annotations

import logging
from pathlib import Path

from lib import schemas
from lib.io.reader import FrameReader
from lib.io.writer import VideoWriter
from lib.media.scale import ScaleFallback, letterboxed_chunks, make_scaler, scale_frames
from lib.shards import Shard
from lib.stages.sharded import failure_reason, ShardedStage, upstream_failed
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
    progress_dir: str | Path,
) -> None:
    """Scale every clip onto a fixed square canvas, streamed ``chunk_frames`` at a time.

    Each frame is letterboxed as it is decoded, so a chunk holds canvas-sized frames only.
    With the autoencoder, an out-of-memory chunk is halved; when even one frame does not
    fit, the clip is redone with letterbox and the reason recorded in ``scale_method``.
    """
    table = schemas.read_table(clips, "clips")
    scaler = make_scaler(method, size=size, model=model, device=device)
    fallback = make_scaler("letterbox", size=size) if method != "letterbox" else None

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

    def encode(src, dst, use):
        with (
            FrameReader(src) as reader,
            VideoWriter(
                dst, fps=reader.fps, crf=crf, preset=preset, threads=encoder_threads
            ) as writer,
        ):
            chunks = letterboxed_chunks(reader.iter_frames(), size=size, chunk_frames=chunk_frames)
            for frame in scale_frames(chunks, use, source_size=(reader.width, reader.height)):
                writer.write(frame)
            return reader

    def skip(row):
        if row["status"] != "ok":
            return [row_for(row, "", "", upstream_failed(row), None, "failed")]
        return None

    def process(row):
        dst = Path(scaled_dir) / row["video_id"] / f"{row['clip_id']}.mp4"
        try:
            reader = encode(row["path"], dst, scaler)
            return [row_for(row, relpath(dst), scaler.method, "", reader)]
        except ScaleFallback as exc:
            log.warning("%s: %s; falling back to letterbox", row["clip_id"], exc)
            reader = encode(row["path"], dst, fallback)
            return [row_for(row, relpath(dst), "letterbox", f"fallback:{exc}", reader)]

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
    STAGE.run(table, shard, output, progress_dir, process, on_error, skip, params=params)
