"""Stages ``pretrain`` (self-supervised VideoMAE pretraining of one run: a fold, the final
model, or the whole corpus) and ``pretrain-report`` (its history over the runs, for the
report).

A run pretrains on the scaled clips of the videos its fine-tuning may see and reads no
label (:mod:`lib.train.pretrain`); the workflow resolves ``train.deep.videomae.pretrained:
ssl`` to the run's folder, ``results/pretrain/<run>`` (``workflow/rules/common.smk``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lib import schemas
from lib.evaluate.report import plot_pretrain_history


def run_pretrain(
    *,
    scaled: str | Path,
    clips: str | Path,
    folds: str | Path,
    out_dir: str | Path,
    fold: int,
    params: dict,
    checkpoint_dir: str | Path | None,
    pretraining: dict,
    seed: int,
) -> None:
    """Pretrain on the clips of every fold but ``fold`` (``-1``: every fold; scope corpus:
    every valid video) into ``out_dir``. ``params``: ``train.deep.videomae``;
    ``pretraining``: the ``pretrain`` section (:func:`lib.train.pretrain.pretrain_table`'s
    keywords, and ``scope`` and ``train_clips``, which choose the clips)."""
    # torch and transformers: imported by the pretraining jobs only, not by pretrain-report
    # (docs/BENCHMARKS.md, section "Start-up of a stage process").
    from lib.train.pretrain import pretrain_table, pretraining_clips

    recipe = dict(pretraining)
    scope = recipe.pop("scope")
    table = pretraining_clips(
        scaled, clips, folds, fold=fold, scope=scope, train_clips=recipe.pop("train_clips")
    )
    pretrain_table(
        table,
        out_dir,
        run="corpus" if scope == "corpus" else f"fold-{fold}" if fold >= 0 else "final",
        settings=params,
        random_state=seed,
        checkpoint_dir=checkpoint_dir,
        transductive=scope == "corpus",
        **recipe,
    )


def run_pretrain_report(*, histories: list[str], output: str | Path, plot: str | Path, scope: str):
    """Every run's ``history.csv`` in one table (``output``) and one figure (``plot``)."""
    table = pl.concat(
        [schemas.read_table(path, "pretrain_history") for path in histories], how="vertical"
    )
    schemas.write_table(table, output, "pretrain_history")
    plot_pretrain_history(table, Path(plot), transductive=scope == "corpus")
