"""Stage ``augment``: write the augmented clips of one shard of valid videos."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.media.augment import encode_clips, make_augmentation
from lib.shards import Shard
from lib.stages.sharded import ShardedStage, failure_reason, remove_stale_temporaries, segment
from lib.utils import relpath

#: The stage as lib.shards.run_shard runs it (its progress folder, unit key, table kind).
STAGE = ShardedStage("augment", key="video_id", out_kind="clips")


def augment_shard(
    videos: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    clips_dir: str | Path,
    n_augmentations: int,
    seed: int,
    max_frames: int,
    crf: int,
    preset: str,
    encoder_threads: int,
    progress_dir: str | Path,
) -> None:
    """Write ``n_augmentations`` augmented clips per valid video, plus the original.

    Clips are encoded one after another (:func:`lib.media.augment.encode_clips`), so memory
    holds one encoder whatever ``n_augmentations``. Each clip's parameters come from
    (video id, augmentation index, seed) only.
    """
    table = schemas.read_table(videos, "videos")

    def skip(row):
        return [] if not row["valid"] else None

    def clip_row(row, clip_id, path, aug_idx, augmentation, status="ok", reason=""):
        return {
            "clip_id": clip_id,
            "video_id": row["video_id"],
            "path": path,
            "aug_idx": aug_idx,
            "augmentation": augmentation,
            "label": row["label"],
            "dup_group": row["dup_group"],
            "status": status,
            "reason": reason,
        }

    def process(row):
        vid = row["video_id"]
        start, stop = segment(row)
        trimmed = start > 0 or stop is not None
        out_dir = Path(clips_dir) / vid
        # The original is the untouched file, unless the corpus names a segment of it
        # (WLASL): then the segment is cut out, encoded like the augmented clips.
        augs = [make_augmentation(vid, k, seed) for k in range(n_augmentations)]
        paths = [out_dir / f"{vid}__a{k}.mp4" for k in range(n_augmentations)]
        if trimmed:
            augs, paths = [None, *augs], [out_dir / f"{vid}__orig.mp4", *paths]
            rows = [clip_row(row, f"{vid}__orig", relpath(paths[0]), -1, f"segment:{start}-{stop}")]
        else:
            rows = [clip_row(row, f"{vid}__orig", row["path"], -1, "none")]
        if not paths:
            return rows
        # One clip after another, each from its own decode: one encoder open at a time
        # (bounded memory); if any clip fails, none of this video's clips is left behind.
        last = start + max_frames if stop is None else min(stop, start + max_frames)
        remove_stale_temporaries(paths)
        encode_clips(
            row["path"],
            list(zip(augs, paths)),
            start=start,
            stop=last,
            fps=float(row["fps"]),
            crf=crf,
            preset=preset,
            encoder_threads=encoder_threads,
        )
        augmented = [(a, p) for a, p in zip(augs, paths) if a is not None]
        for k, (aug, p) in enumerate(augmented):
            rows.append(clip_row(row, f"{vid}__a{k}", relpath(p), k, aug.describe()))
        return rows

    def on_error(row, exc):
        vid, reason = row["video_id"], failure_reason("augment_error", exc)
        failed = [
            clip_row(row, f"{vid}__a{k}", "", k, "", "failed", reason)
            for k in range(n_augmentations)
        ]
        start, stop = segment(row)
        if start > 0 or stop is not None:  # the original is the cut segment: it failed too
            original = clip_row(
                row, f"{vid}__orig", "", -1, f"segment:{start}-{stop}", "failed", reason
            )
        else:  # the original is the untouched file, which validate passed
            original = clip_row(row, f"{vid}__orig", row["path"], -1, "none")
        return [original, *failed]

    params = {
        "n": n_augmentations,
        "seed": seed,
        "max_frames": max_frames,
        "crf": crf,
        "preset": preset,
        "encoder_threads": encoder_threads,
        "dir": str(clips_dir),
    }
    STAGE.run(table, shard, output, progress_dir, process, on_error, skip, params=params)
