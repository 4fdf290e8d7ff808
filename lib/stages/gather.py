"""Stages ``gather`` (concatenate the shard tables of a stage, in shard order) and
``completeness`` (expected vs present rows per stage, and why)."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.evaluate.completeness import log_stage_summary, write_completeness
from lib.shards import concat_tables


def run_gather(
    *, kind: str, stage: str | None, output: str | Path, inputs: list[str | Path]
) -> None:
    """Write the ``kind`` table (lib/schemas/tables.py) of every shard table in ``inputs``; with a
    ``stage`` name, log that stage's failures by reason."""
    table = schemas.write_table(concat_tables(inputs, kind), output, kind)
    if stage:
        log_stage_summary(stage, table)


def run_completeness(
    *, root: str | Path, md_path: str | Path, csv_path: str | Path, n_augmentations: int
) -> None:
    """Expected vs present rows per stage under ``root``, and why rows are missing: the
    markdown report and its per-stage counts (:func:`lib.evaluate.completeness.write_completeness`).
    """
    write_completeness(root, md_path, csv_path, n_augmentations=n_augmentations)
