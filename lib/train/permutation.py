"""The permutation test: how the headline metric scores when the labels carry no signal.

Many permutations of the duplicate groups' labels, the same folds and the same training as
the real model, give a null distribution of the headline metric (mean over folds of the
originals-only ROC-AUC) and with it a p-value. It replaces the old single shuffled-label
model. A feature model refits per (permutation, fold) in :func:`feature_fit_predict`; a deep
model retrains through :func:`deep_fit_predict`, resumably.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from lib import schemas
from lib.evaluate.metrics import HEADLINE_METRIC, headline_statistic
from lib.train.clips import load_clip_table
from lib.train.feature_models import MODELS, fit_table, load_training_table, predict_table
from lib.train.settings import DeepSettings, as_settings, is_deep

log = logging.getLogger(__name__)


def permute_group_labels(groups, labels, *, random_state) -> np.ndarray:
    """Labels permuted between duplicate groups: every row of a group gets the same label.

    Each group's label (its most frequent one) is shuffled among the groups, so the class
    proportions over groups are kept and near-duplicates never disagree. (scikit-learn's
    ``permutation_test_score(groups=...)`` shuffles *within* groups, which is a no-op when a
    group holds one label, as duplicate groups do.)
    """
    groups, labels = np.asarray(groups), np.asarray(labels)
    counts: dict = {}
    for group, label in zip(groups, labels):  # a group's label: its most frequent, first on ties
        counts.setdefault(group, Counter())[label] += 1
    names = sorted(counts)
    per_group = np.asarray([counts[g].most_common(1)[0][0] for g in names])
    rng = np.random.default_rng(random_state)
    shuffled = dict(zip(names, rng.permutation(per_group)))
    return np.asarray([shuffled[g] for g in groups])


def feature_fit_predict(
    model_name: str,
    cols: list[str],
    *,
    params: dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
):
    """``fit_predict(train, test) -> predictions`` of a feature model, for
    :func:`permutation_test`."""

    def fit_predict(train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
        model = fit_table(model_name, train, cols, params=params, random_state=random_state)
        return predict_table(model, test, cols, positive_label)

    return fit_predict


def deep_fit_predict(
    model_name: str,
    *,
    settings: DeepSettings | dict | None,
    positive_label: str,
    random_state: int,
    work_dir: str | Path,
):
    """``fit_predict(train, test) -> predictions`` of a deep model, for
    :func:`permutation_test`.

    Each call is one :func:`lib.train.loop.train_deep_table` run: ``train`` (permuted labels) trains, the
    epoch chosen on its inner split, and ``test`` (the held-out fold's originals) is
    predicted. Resumable: a call works in ``work_dir/<hash of its labels, clips, settings
    and seed>/``, where the checkpoints make a killed run resume at its last epoch; when it
    ends, its weights and checkpoints are deleted and only ``predictions.csv`` is kept, so a
    rerun of the permutation test returns finished (permutation, fold) fits at once and disk
    use stays at one model's checkpoints. The caller removes ``work_dir`` when done.
    """
    # torch and transformers: imported by deep models' jobs only, which a feature
    # model's job would otherwise pay (docs/BENCHMARKS.md, section "Start-up of a stage
    # process").
    from lib.train.loop import train_deep_table

    s = as_settings(settings, model_name)
    work_dir = Path(work_dir)

    def fit_predict(train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
        fold = int(test["fold"][0])
        key = json.dumps(
            {
                "model": model_name,
                "settings": s.as_dict(),
                "seed": random_state,
                "positive": positive_label,
                "fold": fold,
                "train": train.select("clip_id", "label").rows(),
                "test": test["clip_id"].to_list(),
            },
            sort_keys=True,
            default=str,
        )
        fit_dir = work_dir / f"fold-{fold}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        done = fit_dir / "predictions.csv"
        if done.exists():
            log.info("fold %d of this permutation already fitted: %s", fold, done)
            return schemas.read_table(done, "predictions")
        predictions = train_deep_table(
            pl.concat([train, test]),
            fit_dir,
            checkpoint_dir=fit_dir / "ck",
            model_name=model_name,
            fold=fold,
            settings=s,
            positive_label=positive_label,
            random_state=random_state,
        )
        shutil.rmtree(fit_dir / "ck", ignore_errors=True)
        (fit_dir / "model.pt").unlink(missing_ok=True)
        return predictions

    return fit_predict


def permutation_test(
    table: pl.DataFrame,
    *,
    fit_predict,
    statistic,
    n_permutations: int = 100,
    random_state: int = 0,
    test_folds=None,
    progress: str | None = None,
) -> np.ndarray:
    """Null distribution of ``statistic`` under permuted group labels, same folds and training.

    ``table``: one row per training unit with ``fold``, ``dup_group``, ``label``,
    ``aug_idx`` (:func:`training_table` rows for feature models). ``fit_predict(train,
    test)`` trains on ``train`` (permuted labels) and returns the predictions contract for
    the held-out originals ``test`` — :func:`feature_fit_predict` for feature models,
    :func:`deep_fit_predict` for deep models (``table``: their clip table).
    ``statistic(by_fold)`` is the headline statistic the evaluation reports for the real model (mean over folds of
    the originals-only ROC-AUC). Permutation ``i`` is seeded by ``(random_state, i)``.
    ``test_folds``: the folds held out in turn (default: every fold of ``table``); another
    protocol's splits table tests its used splits only, the others' videos still train.
    """
    folds = sorted(table["fold"].unique().to_list() if test_folds is None else test_folds)
    null = np.empty(n_permutations)
    steps = range(n_permutations)
    if progress:
        steps = tqdm(steps, desc=f"permutations {progress}", mininterval=5)
    for i in steps:
        seed = np.random.SeedSequence([random_state, i]).generate_state(1)[0]
        permuted = table.with_columns(
            label=pl.Series(
                permute_group_labels(
                    table["dup_group"].to_numpy(), table["label"].to_numpy(), random_state=seed
                ),
                dtype=pl.String,
            )
        )
        by_fold = {}
        for k in folds:
            train = permuted.filter(pl.col("fold") != k)
            test = permuted.filter((pl.col("fold") == k) & (pl.col("aug_idx") == -1))
            if train["label"].n_unique() < 2 or test.is_empty():
                continue
            by_fold[k] = fit_predict(train, test)
        null[i] = statistic(by_fold)
    return null


def run_permutation_test(
    features_path,
    clips_path,
    folds_path,
    out_path,
    *,
    model_name: str,
    n_permutations: int,
    params: dict | None = None,
    positive_label: str = "fake",
    random_state: int = 0,
    scaled_path=None,
    checkpoint_dir=None,
    test_folds=None,
) -> pl.DataFrame:
    """:func:`permutation_test` on the pipeline's tables; writes ``permutation, metric, value``.

    Feature models read ``features_path`` (``params``: the estimator's keywords). Deep
    models read ``scaled_path`` (``params``: their ``train.deep.<model>`` settings) and
    retrain every fold of every permutation (:func:`deep_fit_predict`):
    permutations × folds trainings, so ask for few. Their finished (permutation, fold) fits
    are kept under ``checkpoint_dir`` (default ``results/.checkpoints/<model>/permutation``)
    until the table is written: a killed job resumes where it stopped. ``folds_path`` may be
    another protocol's folds table, with ``test_folds`` its used splits
    (:func:`lib.evaluate.protocols.used_folds`).
    """
    work_dir = None
    if is_deep(model_name):
        if not scaled_path:
            raise ValueError(f"{model_name} is a deep model: give --scaled results/scaled.csv")
        table = load_clip_table(scaled_path, clips_path, folds_path)
        work_dir = Path(checkpoint_dir or f"results/.checkpoints/{model_name}/permutation")
        fit_predict = deep_fit_predict(
            model_name,
            settings=params,
            positive_label=positive_label,
            random_state=random_state,
            work_dir=work_dir,
        )
    elif model_name in MODELS:
        if not features_path:
            raise ValueError(f"{model_name} is a feature model: give --features")
        table, cols, _ = load_training_table(features_path, clips_path, folds_path)
        fit_predict = feature_fit_predict(
            model_name,
            cols,
            params=params,
            positive_label=positive_label,
            random_state=random_state,
        )
    else:
        raise ValueError(
            f"permutation test of {model_name!r}: not a known model; feature "
            f"models are {sorted(MODELS)}, deep models lib.train.settings.DEEP_MODELS"
        )
    null = permutation_test(
        table,
        fit_predict=fit_predict,
        n_permutations=n_permutations,
        random_state=random_state,
        test_folds=test_folds,
        progress=model_name,
        statistic=lambda by_fold: headline_statistic(by_fold, positive_label=positive_label),
    )
    out = pl.DataFrame(
        {"permutation": np.arange(n_permutations), "metric": HEADLINE_METRIC, "value": null}
    )
    log.info(
        "%s: %d permutations, null %s mean %.3f sd %.3f",
        model_name,
        n_permutations,
        HEADLINE_METRIC,
        np.nanmean(null),
        np.nanstd(null),
    )
    written = schemas.write_table(out, out_path, "permutation")
    if work_dir is not None:  # the table is safe: the fits kept for a resume can go
        shutil.rmtree(work_dir, ignore_errors=True)
    return written
