"""Evaluation: metric families with known answers, originals-only headline, group bootstrap,
the permutation test (centred on chance, and able to fail on a planted leak), determinism."""

from __future__ import annotations

import json

import joblib
import numpy as np
import polars as pl
import pytest

from lib import schemas
from lib.evaluate.evaluation import evaluate
from lib.evaluate.metrics import (brier_score, confusion, group_bootstrap, headline_metrics,
                                  multiclass_metrics, originals, permutation_p_value, ranking_metrics,
                                  threshold_metrics)  # fmt: skip
from lib.train.feature_models import CorrelationFilter, load_training_table, train_fold
from lib.train.permutation import (feature_fit_predict, permutation_test, permute_group_labels,
                                   run_permutation_test)  # fmt: skip
from lib.evaluate.metrics import headline_statistic


# ----------------------------------------------------------------------------- metric families
def test_threshold_metrics_known_answers():
    labels = ["fake", "fake", "real", "real"]
    m = threshold_metrics(labels, ["fake", "real", "real", "real"], ["fake", "real"], "fake")
    assert m == {"accuracy": 0.75, "balanced_accuracy": 0.75, "precision": 1.0, "recall": 0.5,
                 "f1": pytest.approx(2 / 3)}  # fmt: skip
    # imbalanced: always "real" on 1 fake + 3 real -> accuracy 0.75, balanced 0.5
    m = threshold_metrics(["fake", "real", "real", "real"], ["real"] * 4, ["fake", "real"], "fake")
    assert (m["accuracy"], m["balanced_accuracy"], m["recall"]) == (0.75, 0.5, 0.0)


def test_ranking_metrics_known_answers():
    m = ranking_metrics([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1])
    assert m == {"roc_auc": 1.0, "pr_auc": 1.0, "eer": 0.0}
    m = ranking_metrics([1, 1, 0, 0], [0.1, 0.3, 0.8, 0.9])
    assert m["roc_auc"] == 0.0 and m["eer"] == 1.0
    # one of two positives below one of two negatives: FPR = FNR = 0.5 at the crossing
    assert ranking_metrics([1, 1, 0, 0], [0.9, 0.2, 0.5, 0.1])["eer"] == pytest.approx(0.5)
    assert np.isnan(ranking_metrics([1, 1], [0.2, 0.3])["roc_auc"])


def test_metric_families_agree_with_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.4
    score = np.round(rng.random(200) * 0.6 + 0.4 * truth, 1)  # many ties
    m = ranking_metrics(truth, score)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, score))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(truth, score))
    classes = ["a", "b", "c"]
    labels, pred = rng.choice(classes, 100), rng.choice(["a", "b"], 100)
    t = threshold_metrics(labels, pred, classes, "fake")
    kw = {"average": "macro", "labels": classes, "zero_division": 0}
    assert t["f1"] == pytest.approx(skm.f1_score(labels, pred, **kw))
    assert t["precision"] == pytest.approx(skm.precision_score(labels, pred, **kw))
    assert t["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, pred))
    probs = rng.dirichlet([1, 1], 50)
    y = rng.choice(["fake", "real"], 50)
    assert brier_score(y, probs, ["fake", "real"]) == pytest.approx(
        skm.brier_score_loss(y == "real", probs[:, 1]))


def test_brier_and_confusion():
    scores = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    assert brier_score(["fake", "fake", "real"], scores, ["fake", "real"]) == pytest.approx(0.25 / 3)
    cm = confusion(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert cm["true"].to_list() == ["a", "b", "c"] and cm.columns == ["true", "a", "b", "c"]
    assert cm.row(0) == ("a", 1, 1, 0) and cm.row(2)[1:] == (0, 0, 0)


def test_multiclass_auc_over_present_classes_is_never_nan():
    classes = ["a", "b", "c", "d", "e", "f"]
    labels = ["a", "b", "a", "b"]  # c..f absent from this fold
    scores = np.full((4, 6), 0.05)
    scores[[0, 2], 0] = 0.75
    scores[[1, 3], 1] = 0.75
    m = multiclass_metrics(labels, scores, classes)
    assert m["roc_auc"] == 1.0 and m["pr_auc"] == 1.0 and m["top_5"] == 1.0
    full = headline_metrics(labels, scores, classes, "fake")
    assert full["f1"] == pytest.approx(2 / 6)  # macro over all 6 classes: a and b perfect
    assert full["accuracy"] == 1.0 and not any(np.isnan(v) for v in full.values())
    # top-5: the true class ranked 6th misses
    worst = np.tile(np.linspace(0.3, 0.05, 6), (1, 1))
    assert multiclass_metrics(["f"], worst, classes)["top_5"] == 0.0


# ---------------------------------------------------------------------------- synthetic data
def _synthetic(tmp_path, *, n_groups=24, per_group=3, dims=4, signal=1.0, noise=0.5,
               leak=False, n_augmentations=2, seed=0):  # fmt: skip
    """Duplicate groups of near-identical videos (one label per group), 3 folds.

    ``hc_signal`` separates the classes by ``signal``; ``dims`` group-specific features make
    near-duplicates recognisable. ``leak=True`` spreads each group over every fold.
    """
    rng = np.random.default_rng(seed)
    clips, feats, folds = [], [], []
    for g in range(n_groups):
        label = "fake" if g % 2 else "real"
        centre = rng.normal(0, 1, dims)
        base = (label == "fake") * signal + rng.normal(0, noise)
        for v in range(per_group):
            vid = f"g{g}v{v}"
            fold = v % 3 if leak else g % 3
            folds.append({"video_id": vid, "dup_group": f"g{g}", "label": label, "fold": fold})
            for k in range(-1, n_augmentations):
                cid = f"{vid}__{'orig' if k < 0 else f'a{k}'}"
                aug = "none" if k < 0 else json.dumps({"name": ["hflip", "gaussian_blur"][k % 2], "params": {}})
                clips.append({"clip_id": cid, "video_id": vid, "path": "", "aug_idx": k,
                              "augmentation": aug, "label": label, "dup_group": f"g{g}",
                              "status": "ok", "reason": ""})  # fmt: skip
                row = {"clip_id": cid, "hc_signal": base + rng.normal(0, 0.05)}
                row.update({f"hc_g{j}": centre[j] + rng.normal(0, 0.05) for j in range(dims)})
                row["hc_copy"] = 2 * row["hc_signal"] + 1e-6 * rng.normal()  # collinear
                feats.append(row)
    feats[0] = {k: (v if k == "clip_id" else float("nan")) for k, v in feats[0].items()}
    schemas.write_table(pl.DataFrame(clips), tmp_path / "clips.csv", "clips")
    schemas.write_table(pl.DataFrame(feats), tmp_path / "features.parquet", "features")
    schemas.write_table(pl.DataFrame(folds), tmp_path / "folds.csv", "folds")
    return [tmp_path / n for n in ("features.parquet", "clips.csv", "folds.csv")]


def _predictions(tmp_path, model, tables, n_folds=3, **kw):
    paths = []
    for fold in range(n_folds):
        out = tmp_path / "models" / model / f"fold-{fold}"
        train_fold(*tables, out, model_name=model, fold=fold, random_state=1, **kw)
        paths.append(out / "predictions.csv")
    return paths


# ------------------------------------------------------------------------------- the models
def test_correlation_filter_drops_near_copies_and_constants():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    X = np.column_stack([a, 3 * a + 0.01 * rng.normal(size=50), b, np.ones(50), -a])
    f = CorrelationFilter(0.95).fit(X)
    assert f.support_.tolist() == [True, False, True, False, False]
    assert f.transform(X).shape == (50, 2)
    assert list(f.get_feature_names_out(["a", "a3", "b", "one", "neg"])) == ["a", "b"]


@pytest.mark.parametrize("name", ["logreg", "linear_svm", "hist_gbm", "dummy"])
def test_every_model_gives_probabilities_fitted_on_training_folds_only(tmp_path, name):
    tables = _synthetic(tmp_path, n_augmentations=1)
    out = tmp_path / "m"
    preds = train_fold(*tables, out, model_name=name, fold=0, random_state=1)
    folds = schemas.read_table(tables[2], "folds")
    held_out = set(folds.filter(pl.col("fold") == 0)["video_id"])
    clips = schemas.read_table(tables[1], "clips")
    expected = clips.filter(pl.col("video_id").is_in(held_out) & (pl.col("clip_id") != "g0v0__orig"))
    assert set(preds["clip_id"]) == set(expected["clip_id"])  # every held-out clip, augmented too
    assert (preds["aug_idx"] >= 0).any() and (preds["aug_idx"] == -1).any()
    np.testing.assert_allclose(preds.select(pl.col("score_fake") + pl.col("score_real")).to_series(), 1.0)
    pipe = joblib.load(out / "model.joblib")
    info = json.loads((out / "train_info.json").read_text())
    assert info["skipped_clips_without_features"] == 1
    assert "hc_copy" in info["features_dropped_correlated"]
    table, cols, _ = load_training_table(*tables)
    train = table.filter(pl.col("fold") != 0)
    kept = pipe.named_steps["decorrelate"].support_
    np.testing.assert_allclose(pipe.named_steps["scale"].mean_,
                               train.select(cols).to_numpy()[:, kept].mean(axis=0), rtol=1e-9)  # fmt: skip
    if name == "linear_svm":  # calibrated on inner splits grouped by duplicate group
        from lib.train.feature_models import inner_splits

        for tr, te in inner_splits(train["label"], train["dup_group"], random_state=1):
            assert not set(train["dup_group"].gather(tr)) & set(train["dup_group"].gather(te))


# --------------------------------------------------------------------------- the headline
def test_augmented_clips_never_enter_the_headline(tmp_path):
    tables = _synthetic(tmp_path)
    paths = _predictions(tmp_path, "logreg", tables)
    for p in paths:  # originals perfectly right, augmentations perfectly wrong
        preds = schemas.read_table(p, "predictions")
        fake = (preds["label"] == "fake").cast(pl.Float64).to_numpy()
        right = np.where(preds["aug_idx"].to_numpy() == -1, fake, 1 - fake)
        preds = preds.with_columns(score_fake=right, score_real=1 - right, score=right,
                                   pred=pl.Series(np.where(right > 0.5, "fake", "real")))  # fmt: skip
        schemas.write_table(preds, p, "predictions")
    pl.DataFrame({"epoch": [1, 2], "train_loss": [0.7, 0.5], "val_loss": [0.7, 0.6],
                  "val_auc": [0.6, 0.7]}).write_csv(paths[0].parent / "history.csv")  # fmt: skip
    summary = evaluate(paths, tmp_path / "metrics.csv", tmp_path / "summary.csv",
                       tmp_path / "reports", clips_path=tables[1], folds_path=tables[2],
                       robustness_path=tmp_path / "robustness.csv", positive_label="fake",
                       n_bootstrap=50, random_state=0, window_aggregation="mean")  # fmt: skip
    for figure in ("curves", "confusion", "permutation_null", "training_curves"):
        assert (tmp_path / f"reports/{figure}.png").stat().st_size > 5000, figure
    s = {r["metric"]: r for r in summary.iter_rows(named=True)}
    assert s["roc_auc"]["pooled"] == 1.0 and s["accuracy"]["mean"] == 1.0
    assert s["accuracy"]["n_videos"] == 24 * 3 - 1  # one video per row, g0v0 has no features
    robust = schemas.read_table(tmp_path / "robustness.csv", "robustness")
    acc = dict(robust.filter(pl.col("metric") == "accuracy").select("augmentation", "value").iter_rows())
    assert acc["hflip"] == 0.0 and acc["gaussian_blur"] == 0.0 and acc["none (original)"] == 1.0
    with pytest.raises(ValueError, match="several original"):
        originals(pl.DataFrame({"video_id": ["a", "a"], "aug_idx": [-1, -1]}))


def test_group_bootstrap_resamples_whole_groups():
    groups = np.repeat(["a", "b", "c", "d"], [1, 2, 3, 4])
    table = pl.DataFrame({"g": groups})
    sizes = dict(table["g"].value_counts().iter_rows())

    def whole(t):  # every drawn group appears a multiple of its size
        counts = dict(t["g"].value_counts().iter_rows())
        return {"whole": float(all(counts[g] % sizes[g] == 0 for g in counts)),
                "n": float(len(t))}  # fmt: skip

    ci = group_bootstrap(groups, lambda rows: whole(table[rows]), n_boot=200, random_state=0)
    ci = {m: (lo, hi) for m, lo, hi in ci.iter_rows()}
    assert ci["whole"][0] == 1.0
    assert ci["n"][0] < 10 < ci["n"][1]  # group sizes vary


# ----------------------------------------------------------------------- permutation test
def test_permute_group_labels_keeps_groups_and_proportions():
    groups = np.repeat([f"g{i}" for i in range(10)], 3)
    labels = np.repeat(["fake"] * 4 + ["real"] * 6, 3)
    out = permute_group_labels(groups, labels, random_state=3)
    assert pl.DataFrame({"g": groups, "y": out}).group_by("g").agg(pl.col("y").n_unique())["y"].max() == 1
    assert (out == "fake").sum() == 12
    assert not (out == labels).all()
    assert permutation_p_value(0.9, np.array([0.5, 0.6, 0.95])) == pytest.approx(2 / 4)


def _null(tables, n=20, model="logreg"):
    table, cols, _ = load_training_table(*tables)
    return permutation_test(table, fit_predict=feature_fit_predict(model, cols), n_permutations=n,
                            random_state=0,
                            statistic=lambda b: headline_statistic(b, positive_label="fake"))  # fmt: skip


def test_permutation_null_centres_on_chance_and_real_model_beats_it(tmp_path):
    tables = _synthetic(tmp_path, n_groups=30, signal=2.0, n_augmentations=1)
    null = _null(tables)
    assert abs(null.mean() - 0.5) < 0.08, null
    paths = _predictions(tmp_path, "logreg", tables)
    perm = tmp_path / "models/logreg/permutation.csv"
    run_permutation_test(*tables, perm, model_name="logreg", n_permutations=20, random_state=0)
    np.testing.assert_allclose(schemas.read_table(perm, "permutation")["value"], null)
    summary = evaluate(paths, tmp_path / "metrics.csv", tmp_path / "summary.csv",
                       tmp_path / "reports", clips_path=tables[1], folds_path=tables[2],
                       permutation_paths=[perm], positive_label="fake", n_bootstrap=100, window_aggregation="mean",
                       random_state=0)  # fmt: skip
    auc = summary.filter(pl.col("metric") == "roc_auc").row(0, named=True)
    assert auc["mean"] > 0.8 and auc["p_value"] < 0.05 and auc["n_permutations"] == 20
    assert auc["ci_low"] < auc["pooled"] < auc["ci_high"] or auc["pooled"] == 1.0
    assert (tmp_path / "reports/permutation_null.png").stat().st_size > 1000


def test_planted_leak_moves_the_null_off_chance(tmp_path):
    """A group split across folds: near-duplicates carry the same permuted label into the
    training and the held-out fold, so a model scores far above chance on random labels."""
    honest = _null(_synthetic(tmp_path / "honest", n_groups=30, dims=20, signal=0.0, n_augmentations=0), n=12)
    leaky = _null(_synthetic(tmp_path / "leaky", n_groups=30, dims=20, signal=0.0, leak=True,
                             n_augmentations=0), n=12)
    assert abs(honest.mean() - 0.5) < 0.1, honest
    assert leaky.mean() > 0.75, leaky


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    tables = _synthetic(tmp_path)
    outputs = []
    for run in ("a", "b"):
        paths = _predictions(tmp_path / run, "linear_svm", tables)
        evaluate(paths, tmp_path / run / "metrics.csv", tmp_path / run / "summary.csv",
                 tmp_path / run / "reports", clips_path=tables[1], folds_path=tables[2],
                 positive_label="fake", n_bootstrap=50, random_state=7, window_aggregation="mean")  # fmt: skip
        outputs.append([(tmp_path / run / n).read_bytes() for n in ("metrics.csv", "summary.csv")])
    assert outputs[0] == outputs[1]


def test_calibration_splits_of_a_tiny_corpus_keep_both_classes():
    from lib.train.feature_models import fit_model, inner_splits

    # 3 groups: one 'real' group, two 'fake' ones; no grouped split can stratify.
    y = np.array(["real"] * 4 + ["fake"] * 8)
    groups = np.array([0] * 4 + [1] * 4 + [2] * 4)
    for train, test in inner_splits(y, groups, random_state=0):
        assert set(y[train]) == {"real", "fake"} and len(test) > 0
    X = np.random.default_rng(0).normal(size=(12, 3))
    model = fit_model("linear_svm", X, y, groups, random_state=0)
    assert model.predict_proba(X).shape == (12, 2)
