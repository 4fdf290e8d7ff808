"""Stage ``signatures``: perceptual-hash signatures of one shard of videos (the leak audit's
input)."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.audit.signatures import Signature, video_signature
from lib.io.reader import FrameReader
from lib.shards import Shard
from lib.stages.sharded import ShardedStage, failure_reason, segment

#: The stage as lib.shards.run_shard runs it (its progress folder, unit key, table kind).
STAGE = ShardedStage("signatures", key="video_id", out_kind="signatures")


def signatures_shard(
    videos: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    sampling: dict,
    progress_dir: str | Path,
) -> None:
    """Perceptual-hash signature of every valid video (frames sampled across it, streamed).

    ``sampling``: the ``signatures`` config section (``frames_per_second``, ``min_frames``,
    ``max_frames``, ``min_std``), keywords of :func:`lib.audit.signatures.video_signature`.
    A video's corpus segment (WLASL) is what is signed. Invalid videos keep a row with
    ``status=failed`` and the reason.
    """
    sampling = dict(sampling)
    table = schemas.read_table(videos, "videos")

    def row_for(row, status="ok", reason="", signature=Signature([], [], [])):
        return {
            "video_id": row["video_id"],
            "status": status,
            "reason": reason,
            **signature.columns(),
        }

    def skip(row):
        if not row["valid"]:
            return [row_for(row, "failed", f"invalid:{row['reason'] or 'unknown'}")]
        return None

    def process(row):
        start, stop = segment(row)
        with FrameReader(row["path"]) as reader:
            signature = video_signature(reader, start=start, stop=stop, **sampling)
        if not signature.hashes:  # every sampled frame flat (a black screen): nothing to match on
            return [row_for(row, "failed", "no_informative_frames")]
        return [row_for(row, signature=signature)]

    def on_error(row, exc):
        return [row_for(row, "failed", failure_reason("signature_error", exc))]

    params = {"sampling": sampling}
    STAGE.run(table, shard, output, progress_dir, process, on_error, skip, params=params)
