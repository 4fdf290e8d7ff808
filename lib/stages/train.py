"""Stages ``train`` (one model, one held-out fold) and ``train-final`` (one model on every
fold, what predict loads).

Feature models (scikit-learn, :mod:`lib.train.feature_models`) read the features table;
deep models (torch, :mod:`lib.train.loop`) read the scaled clips. ``train-final`` is
``train`` with a fold no clip has: one code path.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lib.train.feature_models import train_fold
from lib.train.settings import is_deep

#: The fold of the final model: no clip has it, so every fold trains and none is held out.
ALL_FOLDS_TRAIN = -1


def run_train(
    *,
    features: str | Path | None,
    scaled: str | Path | None,
    clips: str | Path,
    folds: str | Path,
    out_dir: str | Path,
    model: str,
    fold: int,
    params: dict,
    checkpoint_dir: str | Path | None,
    positive_label: str,
    seed: int,
) -> None:
    """Fit ``model`` on every fold but ``fold`` and predict that one, in ``out_dir``.

    ``params``: the feature model's estimator keywords (``train.params.<model>``) or the
    deep model's settings (``train.deep.<model>``). Deep models checkpoint under
    ``checkpoint_dir`` and resume from it when rerun.
    """
    if is_deep(model):
        if not scaled:
            raise ValueError(f"{model} is a deep model: give --scaled results/scaled.csv")
        # torch and transformers: imported by deep models' jobs only, which a feature
        # model's job would otherwise pay on every fold (docs/BENCHMARKS.md, section
        # "Start-up of a stage process").
        from lib.train.loop import train_deep_fold

        train_deep_fold(
            scaled,
            clips,
            folds,
            out_dir,
            model_name=model,
            fold=fold,
            settings=params,
            positive_label=positive_label,
            random_state=seed,
            checkpoint_dir=checkpoint_dir,
        )
        return
    if not features:
        raise ValueError(f"{model} is a feature model: give --features")
    train_fold(
        features,
        clips,
        folds,
        out_dir,
        model_name=model,
        fold=fold,
        params=params,
        positive_label=positive_label,
        random_state=seed,
    )


#: ``train-final``: :func:`run_train` on every labelled clip with the cross-validation's
#: settings, nothing held out (``model.joblib`` or ``model.pt``, and ``train_info.json``: what
#: predict reads).
run_train_final = functools.partial(run_train, fold=ALL_FOLDS_TRAIN)
