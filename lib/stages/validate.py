"""Stage ``validate``: probe one shard of the downloads with PyAV."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.io.probe import probe_video
from lib.shards import Shard
from lib.stages.sharded import ShardedStage, extra_columns, passthrough

#: What the probe adds to a download row (the rest of the videos table travels on).
_PROBE_COLUMNS = [
    c
    for c in schemas.columns("videos")
    if c not in ("video_id", "path", "label", "dup_group", "platform", "is_original")
]


#: The stage as lib.shards.run_shard runs it (its progress folder, unit key, table kind).
STAGE = ShardedStage("validate", key="video_id", out_kind="videos")


def validate_shard(
    downloads: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    limits: dict,
    progress_dir: str | Path,
) -> None:
    """Probe every downloaded video with PyAV; failed downloads get ``valid=False``.

    ``limits``: the ``validate`` config section, keywords of :func:`lib.io.probe.probe_video`.
    """
    limits = dict(limits)
    table = schemas.read_table(downloads, "download")
    extras = extra_columns(table, "videos", drop=("url", "status", "error"))
    base = ["video_id", "path", "label", "dup_group", "platform", "is_original", *extras]

    def invalid(row, reason):
        probe = {c: _empty_value(c) for c in _PROBE_COLUMNS}
        return [{**passthrough(row, base), **probe, "valid": False, "reason": reason}]

    def skip(row):
        if row["status"] == "failed":
            return invalid(row, f"not_downloaded:{row['reason'] or 'other'}")
        return None

    def process(row):
        probe = probe_video(row["path"], **limits)
        return [{**passthrough(row, base), **{c: probe[c] for c in _PROBE_COLUMNS}}]

    def on_error(row, exc):
        return invalid(row, f"probe_error:{type(exc).__name__}")

    params = {"limits": limits}
    STAGE.run(
        table, shard, output, progress_dir, process, on_error, skip, params=params, extras=extras
    )


def _empty_value(column: str):
    kind = schemas.TABLES["videos"][column]
    return {"str": "", "int": 0, "float": float("nan"), "bool": False}[kind]
