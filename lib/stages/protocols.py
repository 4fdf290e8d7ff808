"""Stage ``protocol-folds``: the splits of an evaluation protocol beside k-fold, as a folds
table the training stages run (:mod:`lib.evaluate.protocols`)."""

from __future__ import annotations

import logging
from pathlib import Path

from lib import schemas
from lib.evaluate.protocols import leave_one_group_out_folds

log = logging.getLogger(__name__)


def run_protocol_folds(
    *,
    folds: str | Path,
    videos: str | Path,
    out: str | Path,
    splits: str | Path,
    column: str,
    min_videos_per_class: int,
) -> None:
    """Leave one ``column`` value out (``evaluate.leave_one_group_out``): the protocol's
    folds table (``out``, split k = fold k; videos left out absent) and its splits table
    (``splits``: one row per value, used or skipped with the reason), from the k-fold
    table's duplicate groups (``folds``) and the videos' values (``videos``)."""
    table = schemas.read_table(videos, "videos", columns=[column] if column else [])
    kfold = schemas.read_table(folds, "folds", columns=[])
    protocol, split_table = leave_one_group_out_folds(
        kfold, table, column=column, min_videos_per_class=min_videos_per_class
    )
    schemas.write_table(split_table, splits, "protocol_splits")
    schemas.write_table(protocol, out, "folds")
    for r in split_table.iter_rows(named=True):
        log.info(
            "%s=%s: %s, fold %d, %d test videos (%s), %d training videos, %d left out %s",
            column,
            r["value"],
            r["status"],
            r["fold"],
            r["n_test_videos"],
            r["test_per_class"],
            r["n_train_videos"],
            r["n_left_out"],
            r["reason"],
        )
