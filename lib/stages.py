"""The sharded stages: each reads its input table, processes one shard unit by unit
(resumably, see :mod:`lib.shards`) and writes its shard table.

Each ``*_shard`` function is what one Snakemake job runs; each is an ordinary function of
explicit parameters and can be called (and tested) without Snakemake.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from lib import schemas
from lib.commands import PROGRESS_DIR as DEFAULT_PROGRESS_DIR  # the command line's default
from lib.shards import Shard, run_shard
from lib.utils import relpath

log = logging.getLogger(__name__)


def _passthrough(row: dict, names: list[str]) -> dict:
    return {n: row[n] for n in names}


def _extra_columns(table, out_kind: str, drop: tuple[str, ...] = ()) -> list[str]:
    """Input columns beyond the stage's contract that travel on (e.g. a WLASL segment)."""
    spec = schemas.TABLES[out_kind]
    return [c for c in table.columns if c not in spec and c not in drop]


def _run(
    table,
    shard: Shard,
    output,
    progress_dir,
    *,
    stage: str,
    key: str,
    out_kind: str,
    params: dict,
    process,
    on_error,
    skip=None,
    extras: list[str] | tuple[str, ...] = (),
):
    """The skeleton every stage shares: its shard of ``table``, one unit (row ``key``) at a
    time, resumably (:func:`lib.shards.run_shard`), written as an ``out_kind`` table whose
    columns are the contract's plus ``extras``. A stage supplies only what differs: what a
    unit becomes (``process``), a failed unit's rows (``on_error``), units needing no
    work (``skip``) and the ``params`` that fingerprint its progress."""
    return run_shard(
        table,
        shard,
        stage=stage,
        key=key,
        process=process,
        on_error=on_error,
        skip=skip,
        out_kind=out_kind,
        out_columns=schemas.columns(out_kind) + list(extras),
        output=output,
        progress_dir=progress_dir,
        params=params,
    )


def _reason(prefix: str, exc: Exception) -> str:
    """A failed unit's reason: the stage's code, then the exception (type and message)."""
    return f"{prefix}:{type(exc).__name__}: {exc}"


def _upstream_failed(row: dict) -> str:
    return f"upstream_failed:{row['reason']}"


def segment(row: dict) -> tuple[int, int | None]:
    """The ``[start, stop)`` frames to keep (``frame_start``/``frame_end``; -1 = to the end)."""
    start = int(row.get("frame_start", 0) or 0)
    end = int(row.get("frame_end", -1))
    return max(start, 0), (None if end < 0 else end)


# ---------------------------------------------------------------------------- download
#: Validate's verdicts on a file that a new download may repair (a cut transfer, an empty
#: or garbled file); limits (too_large) and content (no_video_stream) are not retried.
BROKEN_FILE_REASONS = (
    "missing",
    "empty_file",
    "not_a_video",
    "zero_frames",
    "truncated",
    "decode_error",
    "probe_error",
)


def broken_downloads(videos: str | Path | None) -> dict[str, str]:
    """``video_id -> path`` of files on disk that an earlier validate found broken."""
    if not videos or not Path(videos).exists():
        return {}
    table = schemas.read_table(videos, "videos")
    code = pl.col("reason").str.split(":").list.first()
    broken = table.filter(
        ~pl.col("valid") & code.is_in(BROKEN_FILE_REASONS) & (pl.col("path") != "")
    )
    return dict(zip(broken["video_id"].to_list(), broken["path"].to_list()))


def download_shard(
    manifest: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    videos_dir: str | Path = "data/videos",
    options: dict | None = None,
    retry_failed: bool = True,
    previous: str | Path | None = None,
    recheck: str | Path | None = None,
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Fetch one shard of the manifest; one ledger row per manifest row.

    Web URLs go through yt-dlp. Local files the corpus names (``file://`` URLs in the
    manifest: a CSV's ``path`` column, class folders, and ``url`` cells of a corpus that
    opted in) are linked or copied as they are (:func:`lib.corpus.download.fetch_local_file`),
    with the same row, skip and failure reasons. Files already in ``videos_dir`` are not
    fetched again, except those that ``recheck`` (an earlier ``results/videos.csv``) found
    broken when ``retry_failed``: they are removed and fetched anew. With
    ``retry_failed=False`` and a ``previous`` download table, rows that failed before keep
    their failure row instead of being tried again.
    """
    from lib.corpus.download import (
        build_ydl_options,
        download_video,
        fetch_local_file,
        find_complete_download,
        local_source,
    )

    options = dict(options or {})
    table = schemas.read_table(manifest, "manifest")
    ydl_options = build_ydl_options(out_dir=videos_dir, **options)
    earlier, broken = {}, {}
    if not retry_failed and previous and Path(previous).exists():
        prev = schemas.read_table(previous, "download")
        earlier = {r["video_id"]: r for r in prev.iter_rows(named=True) if r["status"] == "failed"}
    if retry_failed:
        broken = broken_downloads(recheck)
    extras = _extra_columns(table, "download")

    def skip(row):
        if row["video_id"] in earlier:
            return [earlier[row["video_id"]]]
        return None

    def process(row):
        vid = row["video_id"]
        if vid in broken:
            found = find_complete_download(videos_dir, vid)
            if found is not None and found.resolve() == Path(broken[vid]).resolve():
                log.info("%s: validate found %s broken; fetching it again", vid, broken[vid])
                found.unlink()
        source = local_source(row["url"])
        if source is not None:
            result = fetch_local_file(source, vid, videos_dir)
        else:
            result = download_video(row["url"], vid, videos_dir, ydl_options=ydl_options)
        return [{**row, **result}]

    def on_error(row, exc):
        return [
            {
                **row,
                "status": "failed",
                "path": "",
                "reason": "other",
                "error": f"{type(exc).__name__}: {exc}",
            }
        ]

    _run(
        table,
        shard,
        output,
        progress_dir,
        stage="download",
        key="video_id",
        out_kind="download",
        extras=extras,
        process=process,
        on_error=on_error,
        skip=skip,
        params={
            "options": options,
            "dir": str(videos_dir),
            "retry_failed": retry_failed,
            "refetch": sorted(broken),
        },
    )


# ---------------------------------------------------------------------------- validate
_PROBE_COLUMNS = [
    c
    for c in schemas.columns("videos")
    if c not in ("video_id", "path", "label", "dup_group", "platform", "is_original")
]


def validate_shard(
    downloads: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    limits: dict | None = None,
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Probe every downloaded video with PyAV; failed downloads get ``valid=False``."""
    from lib.io.probe import probe_video

    limits = dict(limits or {})
    table = schemas.read_table(downloads, "download")
    extras = _extra_columns(table, "videos", drop=("url", "status", "error"))
    base = ["video_id", "path", "label", "dup_group", "platform", "is_original", *extras]

    def invalid(row, reason):
        probe = {c: _empty_value(c) for c in _PROBE_COLUMNS}
        return [{**_passthrough(row, base), **probe, "valid": False, "reason": reason}]

    def skip(row):
        if row["status"] == "failed":
            return invalid(row, f"not_downloaded:{row['reason'] or 'other'}")
        return None

    def process(row):
        probe = probe_video(row["path"], **limits)
        return [{**_passthrough(row, base), **{c: probe[c] for c in _PROBE_COLUMNS}}]

    def on_error(row, exc):
        return invalid(row, f"probe_error:{type(exc).__name__}")

    _run(
        table,
        shard,
        output,
        progress_dir,
        stage="validate",
        key="video_id",
        out_kind="videos",
        extras=extras,
        process=process,
        on_error=on_error,
        skip=skip,
        params={"limits": limits},
    )


def _empty_value(column: str):
    kind = schemas.TABLES["videos"][column]
    return {"str": "", "int": 0, "float": float("nan"), "bool": False}[kind]


# ---------------------------------------------------------------------------- augment
def augment_shard(
    videos: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    clips_dir: str | Path = "data/clips",
    n_augmentations: int = 10,
    seed: int = 0,
    max_frames: int = 250,
    crf: int = 18,
    preset: str = "veryfast",
    encoder_threads: int = 2,
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Write ``n_augmentations`` augmented clips per valid video, plus the original.

    Clips are encoded one after another (:func:`lib.media.augment.encode_clips`), so memory
    holds one encoder whatever ``n_augmentations``. Each clip's parameters come from
    (video id, augmentation index, seed) only.
    """
    from lib.media.augment import encode_clips, make_augmentation

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
        vid, reason = row["video_id"], _reason("augment_error", exc)
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

    _run(
        table,
        shard,
        output,
        progress_dir,
        stage="augment",
        key="video_id",
        out_kind="clips",
        process=process,
        on_error=on_error,
        skip=skip,
        params={
            "n": n_augmentations,
            "seed": seed,
            "max_frames": max_frames,
            "crf": crf,
            "preset": preset,
            "encoder_threads": encoder_threads,
            "dir": str(clips_dir),
        },
    )


# ---------------------------------------------------------------------------- features
def _feature_shard(
    clips_table,
    output,
    shard: Shard,
    *,
    stage: str,
    names: tuple[str, ...],
    compute,
    sampling: dict,
    progress_dir,
    params: dict,
) -> None:
    """Shared driver of both feature stages: sample frames, compute, one row per clip."""
    from lib.io.reader import FrameReader
    from lib.io.sampling import sample_fraction

    def skip(row):
        if row["status"] != "ok":
            return [failed(row, _upstream_failed(row))]
        return None

    def failed(row, reason):
        return {
            "clip_id": row["clip_id"],
            "status": "failed",
            "reason": reason,
            **{n: float("nan") for n in names},
        }

    def process(row):
        with FrameReader(row["path"]) as reader:
            indices = sample_fraction(reader.n_frames, **sampling)
            frames = (frame for _, frame in reader.read(indices))
            values = compute(row, reader, frames)
        return [
            {
                "clip_id": row["clip_id"],
                "status": "ok",
                "reason": "",
                **{n: float(values[n]) for n in names},
            }
        ]

    def on_error(row, exc):
        return [failed(row, _reason("feature_error", exc))]

    _run(
        clips_table,
        shard,
        output,
        progress_dir,
        stage=stage,
        key="clip_id",
        out_kind="features_stage",
        extras=names,
        process=process,
        on_error=on_error,
        skip=skip,
        params={**params, "sampling": sampling},
    )


def features_shard(
    clips: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    sampling: dict | None = None,
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Handcrafted features of every clip (noise residual, DCT, sharpness, blockiness, codec)."""
    from lib.media.features import HANDCRAFTED_FEATURES, handcrafted_features

    def compute(row, reader, frames):
        return handcrafted_features(
            frames,
            bitrate=reader.bit_rate,
            fps=reader.fps,
            width=reader.width,
            height=reader.height,
        )

    _feature_shard(
        schemas.read_table(clips, "clips"),
        output,
        shard,
        stage="features",
        names=HANDCRAFTED_FEATURES,
        compute=compute,
        sampling=dict(sampling or {}),
        progress_dir=progress_dir,
        params={},
    )


def scaled_features_shard(
    scaled: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    sampling: dict | None = None,
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Features of the scaled clips: edges, texture, colour, blockiness, up/down-scale flags."""
    from lib.media.features import SCALED_FEATURES, scaled_features

    def compute(row, reader, frames):
        return scaled_features(
            frames,
            orig_width=row["orig_width"],
            orig_height=row["orig_height"],
            scaled_width=row["scaled_width"],
            scaled_height=row["scaled_height"],
        )

    _feature_shard(
        schemas.read_table(scaled, "scaled"),
        output,
        shard,
        stage="scaled_features",
        names=SCALED_FEATURES,
        compute=compute,
        sampling=dict(sampling or {}),
        progress_dir=progress_dir,
        params={},
    )


def merge_features(handcrafted: str | Path, scaled: str | Path, output: str | Path) -> None:
    """Join both feature tables on clip_id into ``features.parquet`` (clip_id + floats).

    A clip whose features failed in either stage keeps its row with NaN values; the
    status and reason stay in the two stage tables, and training reports what it skipped.
    """
    hc = schemas.read_table(handcrafted, "features_stage")
    sc = schemas.read_table(scaled, "features_stage")
    merged = hc.drop("status", "reason").join(
        sc.drop("status", "reason"), on="clip_id", how="left", validate="1:1", maintain_order="left"
    )
    schemas.write_table(merged, output, "features")


# ---------------------------------------------------------------------------- scale
def scale_shard(
    clips: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    scaled_dir: str | Path = "data/scaled",
    method: str = "letterbox",
    size: int = 256,
    model: str | None = None,
    chunk_frames: int = 100,
    crf: int = 18,
    preset: str = "veryfast",
    encoder_threads: int = 1,
    device: str = "auto",
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Scale every clip onto a fixed square canvas, streamed ``chunk_frames`` at a time.

    Each frame is letterboxed as it is decoded, so a chunk holds canvas-sized frames only.
    With the autoencoder, an out-of-memory chunk is halved; when even one frame does not
    fit, the clip is redone with letterbox and the reason recorded in ``scale_method``.
    """
    from lib.media.scale import ScaleFallback, letterboxed_chunks, make_scaler, scale_frames
    from lib.io.reader import FrameReader
    from lib.io.writer import VideoWriter

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
            return [row_for(row, "", "", _upstream_failed(row), None, "failed")]
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
        return [row_for(row, "", "", _reason("scale_error", exc), None, "failed")]

    _run(
        table,
        shard,
        output,
        progress_dir,
        stage="scale",
        key="clip_id",
        out_kind="scaled",
        process=process,
        on_error=on_error,
        skip=skip,
        params={
            "method": method,
            "size": size,
            "model": model,
            "chunk": chunk_frames,
            "crf": crf,
            "preset": preset,
            "encoder_threads": encoder_threads,
            "dir": str(scaled_dir),
        },
    )


# ---------------------------------------------------------------------------- signatures
def signatures_shard(
    videos: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    sampling: dict | None = None,
    progress_dir: str | Path = DEFAULT_PROGRESS_DIR,
) -> None:
    """Perceptual-hash signature of every valid video (frames sampled across it, streamed).

    ``sampling``: ``frames_per_second``, ``min_frames``, ``max_frames``, ``min_std`` of
    :func:`lib.audit.signatures.video_signature`. A video's corpus segment (WLASL) is what is
    signed. Invalid videos keep a row with ``status=failed`` and the reason.
    """
    from lib.audit.signatures import encode_hashes, video_signature
    from lib.io.reader import FrameReader

    sampling = dict(sampling or {})
    table = schemas.read_table(videos, "videos")

    def row_for(row, status="ok", reason="", indices=(), hashes=()):
        return {
            "video_id": row["video_id"],
            "status": status,
            "reason": reason,
            "frames": len(hashes),
            "frame_index": " ".join(str(i) for i in indices),
            "hashes": encode_hashes(list(hashes)),
        }

    def skip(row):
        if not row["valid"]:
            return [row_for(row, "failed", f"invalid:{row['reason'] or 'unknown'}")]
        return None

    def process(row):
        start, stop = segment(row)
        with FrameReader(row["path"]) as reader:
            indices, hashes = video_signature(reader, start=start, stop=stop, **sampling)
        if not hashes:  # every sampled frame flat (a black screen): nothing to match on
            return [row_for(row, "failed", "no_informative_frames")]
        return [row_for(row, indices=indices, hashes=hashes)]

    def on_error(row, exc):
        return [row_for(row, "failed", _reason("signature_error", exc))]

    _run(
        table,
        shard,
        output,
        progress_dir,
        stage="signatures",
        key="video_id",
        out_kind="signatures",
        process=process,
        on_error=on_error,
        skip=skip,
        params={"sampling": sampling},
    )
