"""What the sharded stages share: the skeleton of a stage over one shard, and the small
helpers their rows are made with.

A sharded stage reads its input table, processes its shard one unit (video or clip) at a
time, resumably (:func:`lib.shards.run_shard`), and writes its shard table. Each stage
module supplies only what differs: what a unit becomes, a failed unit's rows, which units
need no work, and the parameters that fingerprint its progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from lib import schemas
from lib.shards import Shard, ShardStopped, run_shard


@dataclass(frozen=True)
class ShardedStage:
    """A sharded stage, as :func:`lib.shards.run_shard` needs it: its ``name`` (its progress
    folder and log lines), the column that names a unit (``key``) and the kind of table it
    writes (``out_kind``)."""

    name: str
    key: str
    out_kind: str

    def run(
        self,
        table: pl.DataFrame,
        shard: Shard,
        output: str | Path,
        progress_dir: str | Path,
        process: Callable[[dict], list[dict]],
        on_error: Callable[[dict, Exception], list[dict]],
        skip: Callable[[dict], list[dict] | None] | None,
        *,
        params: dict,
        extras: list[str] | tuple[str, ...] = (),
        finish: Callable[[], None] | None = None,
    ) -> pl.DataFrame:
        """Process ``shard`` of ``table`` one unit at a time, resumably, into an ``out_kind``
        table whose columns are the contract's plus ``extras``.

        ``process`` turns a unit into its rows, ``on_error`` a failed unit into rows with a
        reason, ``skip`` (or None) gives the rows of a unit needing no work; ``params``
        fingerprint the stage's progress; ``finish`` runs once the table is written
        (:func:`lib.shards.run_shard`).
        """
        return run_shard(
            table,
            shard,
            stage=self.name,
            key=self.key,
            process=process,
            on_error=on_error,
            skip=skip,
            out_kind=self.out_kind,
            out_columns=schemas.columns(self.out_kind) + list(extras),
            output=output,
            progress_dir=progress_dir,
            params=params,
            finish=finish,
        )


def remove_stale_temporaries(paths: list[Path]) -> None:
    """Remove the temporary files a killed earlier attempt left beside ``paths``.

    A writer renames its temporary file onto the path only when it succeeds
    (:func:`lib.utils.atomic_path`); kill -9 (an out-of-memory killer) leaves the temporary
    behind, which no reader opens but which holds disk: the unit's rerun clears it.
    """
    for path in paths:
        path = Path(path)
        prefix, suffix = f".tmp-{path.stem}-", path.suffix
        try:
            names = os.listdir(path.parent)
        except FileNotFoundError:
            continue
        # string tests, not glob: a glob pattern per clip fills pathlib's and fnmatch's caches
        # of compiled patterns, which grew the shard's memory unit after unit
        for name in names:
            middle = name[len(prefix) : len(name) - len(suffix)]
            # mkstemp's random part has no '-': another stem never matches
            if name.startswith(prefix) and name.endswith(suffix) and middle and "-" not in middle:
                (path.parent / name).unlink(missing_ok=True)


def require_clip(row: dict) -> None:
    """Stop the shard when a clip that augment wrote (status ok) is not on disk.

    Not a fault of the unit: its clips were removed after every reader had them (the disk
    budget, ``scale.remove_clips``) or the data folder changed. Rerunning augment for them
    brings them back, bitwise identical (docs/CLUSTER.md, "Disk").
    """
    if row["status"] == "ok" and not Path(row["path"]).exists():
        raise ShardStopped(
            f"clip {row['clip_id']}: {row['path']} is missing (removed after it was read, "
            "scale.remove_clips, or the data folder changed); rerun augment first, e.g. "
            "snakemake --forcerun augment ..."
        )


def removable_clips(table: pl.DataFrame) -> list[str]:
    """The files augment wrote for ``table``'s clips: augmented clips and cut segments,
    never a corpus's own video (the untouched original, ``aug_idx`` -1)."""
    written = (pl.col("aug_idx") >= 0) | pl.col("augmentation").str.starts_with("segment:")
    mask = written & (pl.col("status") == "ok") & (pl.col("path") != "")
    return table.filter(mask)["path"].to_list()


def remove_files(paths: list[str], log) -> int:
    """Remove ``paths`` (and folders left empty); returns the bytes freed."""
    freed = 0
    for path in map(Path, paths):
        if path.exists():
            freed += path.stat().st_size
            path.unlink()
        try:
            path.parent.rmdir()  # only when empty
        except OSError:
            pass
    log.info("removed %d clip files (%.1f MB) that every reader has read", len(paths), freed / 1e6)
    return freed


def passthrough(row: dict, names: list[str]) -> dict:
    """The columns ``names`` of ``row``, as they are."""
    return {n: row[n] for n in names}


def extra_columns(table: pl.DataFrame, out_kind: str, drop: tuple[str, ...] = ()) -> list[str]:
    """Input columns beyond the stage's contract that travel on (e.g. a WLASL segment)."""
    spec = schemas.TABLES[out_kind]
    return [c for c in table.columns if c not in spec and c not in drop]


def failure_reason(prefix: str, exc: Exception) -> str:
    """A failed unit's reason: the stage's code, then the exception (type and message)."""
    return f"{prefix}:{type(exc).__name__}: {exc}"


def upstream_failed(row: dict) -> str:
    """The reason of a unit whose input row failed in an earlier stage."""
    return f"upstream_failed:{row['reason']}"


def segment(row: dict) -> tuple[int, int | None]:
    """The ``[start, stop)`` frames to keep (``frame_start``/``frame_end``; -1 = to the end)."""
    start = int(row.get("frame_start", 0) or 0)
    end = int(row.get("frame_end", -1))
    return max(start, 0), (None if end < 0 else end)
