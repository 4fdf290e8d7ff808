"""Stage ``folds``: grouped, stratified k-fold assignment of the valid videos."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.audit.groups import regroup
from lib.evaluate.folds import assign_folds, check_folds


def run_folds(
    *,
    videos: str | Path,
    out: str | Path,
    near_duplicates: str | Path | None,
    k: int,
    group_by: str,
    max_merged_share: float,
    seed: int,
) -> None:
    """Assign every video a fold (``folds`` config section, drawn with ``seed``).

    Unless ``group_by`` is ``annotated``, the groups kept together are joined by the leak
    audit's pairs (``near_duplicates``, results/near_duplicates.csv); a merged group above
    ``max_merged_share`` of the valid videos stops here, naming the pairs that built it.
    """
    table = schemas.read_table(videos, "videos")
    if group_by != "annotated":  # groups joined by the leak audit's matches
        table = regroup(table, near_duplicates, group_by, max_merged_share=max_merged_share)
    folds = assign_folds(table, n_folds=k, random_state=seed)
    check_folds(folds)
    schemas.write_table(folds, out, "folds")
