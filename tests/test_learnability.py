"""Learnability: every deep family learns a signal it can see, at the demo's settings.

Through the DAG's entry point (:func:`lib.train.loop.train_deep_table`), on corpora of
``tests/visible_corpus.py`` whose class is plainly visible at 32 px: a family trains on two
folds and predicts the third, and must reach a held-out ROC-AUC of 0.90 (naive_cnn 0.95)
on each corpus make of the suite. The settings are configs/demo.yaml's ``train.deep``
(the one place the tiny CPU recipe lives), only ``epochs`` changed. With the labels shuffled
at random per group nothing is left to learn: the mean held-out AUC over five seeds must
stay within 0.5 +/- 0.1 (one seed of about 40 held-out groups spreads too much for a bound
of its own). ``pytest -s -k learnab`` prints the figures; docs/BENCHMARKS.md, section
"learnability" has more corpora, the settings before the recipe, and epoch selection.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from conftest import REPO
from lib.train.loop import train_deep_table
from lib.train.settings import DEEP_MODELS
from visible_corpus import shuffled, visible_table

#: Corpus makes of the suite (more in the benchmark): different object, size, background,
#: motion and colour.
SUITE_MAKES = ("square", "bar")
#: The one setting the suite changes from configs/demo.yaml.
EPOCHS = 8
HELD_OUT_FOLD = 0
SHUFFLE_SEEDS = range(5)
#: The control's corpus: as many clips as the suite's, but every clip a group of its own, so
#: the evaluated fold holds about 40 independent groups (3 near-duplicates of a group score
#: alike: the suite's corpora hold about 13 groups per fold, and a mean of 5 such AUCs
#: would spread too much for the bound).
SHUFFLE_MAKE = "square"
SHUFFLE_CORPUS = {"n_groups": 120, "clips_per_group": 1}
POSITIVE = "fake"


def demo_settings(family: str) -> dict:
    """configs/demo.yaml's ``train.deep.<family>``, ``epochs`` replaced, from random weights.

    The demo's videomae starts from its fold's own pretraining (``pretrained: ssl``, which
    only the DAG's pretrain stage resolves; tests/test_pretrain.py): the recipe itself must
    learn from scratch, so ``pretrained`` is dropped here.
    """
    deep = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["train"]["deep"]
    return {**deep[family], "epochs": EPOCHS, "pretrained": None}


def held_out_auc(table: pl.DataFrame, family: str, work, *, seed: int = 0) -> float:
    preds = train_deep_table(
        table,
        work / "out",
        model_name=family,
        fold=HELD_OUT_FOLD,
        settings=demo_settings(family),
        positive_label=POSITIVE,
        random_state=seed,
        checkpoint_dir=work / "ck",
    )
    originals = preds.filter(pl.col("aug_idx") == -1)
    assert len(originals) == len(table.filter(pl.col("fold") == HELD_OUT_FOLD))
    return float(roc_auc_score(originals["label"] == POSITIVE, originals["score"]))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, pl.DataFrame]:
    root = tmp_path_factory.mktemp("visible")
    tables = {make: visible_table(root / make, make) for make in SUITE_MAKES}
    tables["control"] = visible_table(root / "control", SHUFFLE_MAKE, **SHUFFLE_CORPUS)
    return tables


def test_learnability_settings_are_the_demos():
    """Every registered family has its tiny recipe in configs/demo.yaml, and only there."""
    deep = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["train"]["deep"]
    assert sorted(deep) == sorted(DEEP_MODELS)
    every = yaml.safe_load((REPO / "configs" / "all_families.yaml").read_text())["train"]
    assert "deep" not in every and set(DEEP_MODELS) <= set(every["models"])


@pytest.mark.parametrize("make", SUITE_MAKES)
@pytest.mark.parametrize("family", DEEP_MODELS)
def test_learnability_family_learns_a_visible_signal(family, make, corpora, tmp_path):
    auc = held_out_auc(corpora[make], family, tmp_path)
    floor = 0.95 if family == "naive_cnn" else 0.90
    print(f"\nlearnability {family} on {make}: held-out ROC-AUC {auc:.3f} (floor {floor})")
    assert auc >= floor, f"{family} does not learn the visible {make} corpus: AUC {auc:.3f}"


@pytest.mark.parametrize("family", DEEP_MODELS)
def test_learnability_shuffled_labels_stay_at_chance(family, corpora, tmp_path):
    aucs = [
        held_out_auc(shuffled(corpora["control"], seed), family, tmp_path / str(seed), seed=seed)
        for seed in SHUFFLE_SEEDS
    ]
    mean = float(np.mean(aucs))
    print(
        f"\nlearnability control {family}, shuffled labels on {SHUFFLE_MAKE}: held-out AUC "
        f"{', '.join(f'{a:.2f}' for a in aucs)}; mean {mean:.3f} (must be 0.5 +/- 0.1)"
    )
    assert abs(mean - 0.5) <= 0.1
