"""Stage ``near-duplicates``: the leak audit, matching every video's signature against all
others, with its pairs table and report."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.audit.leaks import audit
from lib.utils import atomic_write_text


def run_near_duplicates(
    *,
    videos: str | Path,
    signatures: str | Path,
    out: str | Path,
    report: str | Path,
    match: dict,
    k: int,
    group_by: str,
    seed: int,
) -> None:
    """Write the near-duplicate pairs (``out``) and the leak report (``report``).

    ``match``: the ``near_duplicates`` config section; ``k`` and ``group_by``: the folds
    the report judges (``folds`` section), drawn with ``seed``.
    """
    pairs, text = audit(
        schemas.read_table(videos, "videos"),
        schemas.read_table(signatures, "signatures"),
        n_folds=k,
        random_state=seed,
        group_by=group_by,
        match=match,
    )
    schemas.write_table(pairs, out, "near_duplicates")
    atomic_write_text(report, text)
