"""Stage ``download``: fetch one shard of the manifest (yt-dlp; local files linked)."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from lib import schemas
from lib.corpus.download import (
    build_ydl_options,
    download_video,
    fetch_local_file,
    find_complete_download,
    local_source,
)
from lib.shards import Shard
from lib.stages.sharded import ShardedStage, extra_columns

log = logging.getLogger(__name__)

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


#: The stage as lib.shards.run_shard runs it (its progress folder, unit key, table kind).
STAGE = ShardedStage("download", key="video_id", out_kind="download")


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
    videos_dir: str | Path,
    options: dict,
    retry_failed: bool,
    previous: str | Path | None,
    recheck: str | Path | None,
    progress_dir: str | Path,
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
    options = dict(options)
    table = schemas.read_table(manifest, "manifest")
    ydl_options = build_ydl_options(out_dir=videos_dir, **options)
    earlier, broken = {}, {}
    if not retry_failed and previous and Path(previous).exists():
        prev = schemas.read_table(previous, "download")
        earlier = {r["video_id"]: r for r in prev.iter_rows(named=True) if r["status"] == "failed"}
    if retry_failed:
        broken = broken_downloads(recheck)
    extras = extra_columns(table, "download")

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

    params = {
        "options": options,
        "dir": str(videos_dir),
        "retry_failed": retry_failed,
        "refetch": sorted(broken),
    }
    STAGE.run(
        table, shard, output, progress_dir, process, on_error, skip, params=params, extras=extras
    )
