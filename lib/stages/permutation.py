"""Stage ``permutation``: the permutation test of one model (the null distribution of its
headline metric under permuted group labels)."""

from __future__ import annotations

from pathlib import Path

from lib import schemas
from lib.evaluate.protocols import used_folds
from lib.train.permutation import run_permutation_test
from lib.train.settings import is_deep


def run_permutation(
    *,
    features: str | Path | None,
    scaled: str | Path | None,
    clips: str | Path,
    folds: str | Path,
    splits: str | Path | None = None,
    model: str,
    output: str | Path,
    params: dict,
    checkpoint_dir: str | Path | None,
    n_permutations: int,
    n_permutations_deep: int,
    positive_label: str,
    seed: int,
) -> None:
    """The permutation test of ``model`` (:func:`lib.train.permutation.run_permutation_test`):
    ``n_permutations`` for a feature model, ``n_permutations_deep`` for a deep one (each
    retrains every fold). ``folds`` is k-fold's table, or another protocol's with its
    ``splits`` table (``evaluate.permutation.protocols``): its used splits are tested."""
    test_folds = None
    if splits:
        test_folds = used_folds(schemas.read_table(splits, "protocol_splits"))
    run_permutation_test(
        features,
        clips,
        folds,
        output,
        model_name=model,
        n_permutations=n_permutations_deep if is_deep(model) else n_permutations,
        params=params,
        positive_label=positive_label,
        random_state=seed,
        scaled_path=scaled,
        checkpoint_dir=checkpoint_dir,
        test_folds=test_folds,
    )
