"""The test corpus (config ``test_corpus``): a second corpus scored by each final model, matched
against the training corpus by the leak audit, its copies of training videos left out.

Both corpora go through the commands the rules run (``python -m lib ...`` as
workflow/rules/test_corpus.smk calls them, one shard each), on two small demo corpora of
independent seeds, the test one holding a cropped re-encode of a training original
(tests/planted_corpus.py). The DAG itself: a dry run here, a real run in
tests/test_workflow.py (test_test_corpus_leaves_out_a_planted_copy_of_a_training_video).
Time: about 20 s on a quiet two-core machine, most of it writing the corpora.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import snakemake
from lib import cli, schemas
from lib.config import check_config
from lib.corpus.demo import generate_demo_corpus
from lib.predict import list_inputs
from planted_corpus import write_test_corpus


def _run(*argv) -> None:
    assert cli.main([str(a) for a in argv]) == 0, argv


def _data_stages(root: Path, name: str, command: str, section: str, corpus: Path) -> Path:
    """Ingest, download, validate and sign a corpus with the commands the rules run."""
    out = root / "results" / name
    config = {section: {"format": "demo", "path": str(corpus)}}
    shard = ("--shard", "1-of-1", "--progress-dir", root / "progress" / name)
    _run(command, "--out", out / "manifest.csv", "--report", out / "ingest.md",
         "--config-json", json.dumps(config))  # fmt: skip
    _run("download", "--manifest", out / "manifest.csv", *shard, "--videos-dir",
         root / "data" / name, "--out", out / "download.csv")  # fmt: skip
    _run("validate", "--downloads", out / "download.csv", *shard, "--out", out / "videos.csv")
    _run("signatures", "--videos", out / "videos.csv", *shard, "--out", out / "signatures.csv")
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The training corpus, the test corpus with its planted copy, and the audit's tables."""
    root = tmp_path_factory.mktemp("test_corpus")
    generate_demo_corpus(root / "train_corpus", n_groups=4, seed=0, plant_broken=False)
    source, label = write_test_corpus(root / "test_corpus", root / "train_corpus", seed=1)
    train = _data_stages(root, "train", "manifest", "dataset", root / "train_corpus")
    test = _data_stages(root, "test", "test-corpus-manifest", "test_corpus", root / "test_corpus")
    _run("test-corpus-audit", "--videos", train / "videos.csv", "--signatures",
         train / "signatures.csv", "--test-videos", test / "videos.csv", "--test-signatures",
         test / "signatures.csv", "--out", test / "cross.csv", "--groups-out",
         test / "groups.csv")  # fmt: skip
    return {"root": root, "train": train, "test": test, "source": source, "label": label}


def _id_of(table: pl.DataFrame, stem: str) -> str:
    (found,) = table.filter(pl.col("video_id").str.starts_with(stem))["video_id"].to_list()
    return found


def test_the_audit_finds_the_planted_copy_and_nothing_else(corpora):
    train = schemas.read_table(corpora["train"] / "videos.csv", "videos")
    test = schemas.read_table(corpora["test"] / "videos.csv", "videos")
    cross = schemas.read_table(corpora["test"] / "cross.csv", "cross_duplicates")
    groups = schemas.read_table(corpora["test"] / "groups.csv", "test_corpus_videos")
    planted = _id_of(test, "planted")
    source = _id_of(train, Path(corpora["source"]).stem + "_")
    source_group = train.filter(pl.col("video_id") == source)["dup_group"].item()
    # the copy matches its source (and the source's reposts), and no other test video matches
    assert cross["test_video"].unique().to_list() == [planted]
    assert source in cross["train_video"].to_list()
    matched = train.filter(pl.col("video_id").is_in(cross["train_video"].implode()))
    assert (matched["dup_group"] == source_group).all()
    assert (cross["test_label"] == corpora["label"]).all()
    flagged = groups.filter(pl.col("cross_group"))
    assert flagged["video_id"].to_list() == [planted]
    assert groups.filter(pl.col("video_id") == planted)["cross_duplicate"].item()
    assert source in groups.filter(pl.col("video_id") == planted)["train_matches"].item()
    # the test corpus's own reposts stay in their groups (the bootstrap's unit)
    assert groups.filter(pl.col("valid"))["dup_group"].n_unique() == 5


def _predictions(path: Path, groups: pl.DataFrame, planted: str, seed: int) -> Path:
    """A model that knows the planted copy (it was trained on it) and guesses the rest; one
    video's prediction failed."""
    rng = np.random.default_rng(seed)
    valid = groups.filter(pl.col("valid"))
    fake = np.where(
        valid["video_id"] == planted,
        np.where(valid["label"] == "fake", 1.0, 0.0),
        rng.uniform(size=len(valid)),
    )
    failed = valid["video_id"][0]
    table = valid.select("video_id").with_columns(
        path=pl.lit("x.mp4"),
        model=pl.lit("memoriser"),
        n_windows=pl.lit(1),
        score=pl.Series(fake),
        pred=pl.Series(np.where(fake >= 0.5, "fake", "real")),
        status=pl.when(pl.col("video_id") == failed).then(pl.lit("failed")).otherwise(pl.lit("ok")),
        reason=pl.lit(""),
        score_fake=pl.Series(fake),
        score_real=pl.Series(1 - fake),
    )
    schemas.write_table(table, path, "predict")
    return path


@pytest.mark.parametrize("keep", [False, True], ids=["default", "kept"])
def test_the_score_leaves_out_the_copy_and_the_report_says_so(corpora, keep):
    test = corpora["test"]
    groups = schemas.read_table(test / "groups.csv", "test_corpus_videos")
    planted = _id_of(groups, "planted")
    preds = _predictions(test / "memoriser.csv", groups, planted, seed=3)
    corpus = {"format": "demo", "path": str(corpora["root"] / "test_corpus")}
    config = {
        "test_corpus": {**corpus, "keep_cross_duplicates": keep},
        "evaluate": {"bootstrap": 200},
    }
    summary_path, report_path = test / f"summary-{keep}.csv", test / f"report-{keep}.md"
    kfold = test / "kfold_summary.csv"  # the evaluate stage's, for the generalisation table
    schemas.write_table(_kfold_summary(), kfold, "summary")
    _run("test-corpus-score", "--videos", test / "groups.csv", "--cross", test / "cross.csv",
         "--out", summary_path, "--report", report_path, "--config-json", json.dumps(config),
         "--summary", kfold, "--plot", test / "side_by_side.png", preds)  # fmt: skip
    summary = schemas.read_table(summary_path, "test_corpus_summary")
    report = report_path.read_text()
    n_valid = int(groups["valid"].sum())
    roc = summary.filter(pl.col("metric") == "roc_auc")
    clean = roc.filter(pl.col("videos") == "without_cross_duplicates").row(0, named=True)
    everything = roc.filter(pl.col("videos") == "all").row(0, named=True)
    assert (clean["n_videos"], clean["n_left_out"], clean["n_failed"]) == (n_valid - 2, 1, 1)
    assert (everything["n_videos"], everything["n_left_out"]) == (n_valid - 1, 0)
    assert clean["n_groups"] == everything["n_groups"] - 1
    assert clean["ci_low"] <= clean["value"] <= clean["ci_high"]
    assert clean["headline"] is not keep and everything["headline"] is keep
    assert planted in report and "matched 1 test video to" in report
    if keep:
        assert "are **kept** in the headline score" in report
        assert "## Scores (all)" in report
    else:
        assert "are **left out** of the headline score" in report
        assert "## Scores (without cross duplicates)" in report
    # the headline table quotes the headline subset's numbers
    line = next(l for l in report.splitlines() if l.startswith("| memoriser | roc_auc |"))
    quoted = everything if keep else clean
    assert f"| {quoted['value']:.3f} |" in line and f"| {quoted['n_videos']} |" in line
    # ... and so does the generalisation table, beside the kfold protocol
    assert "| model | kfold | test_corpus |" in report
    row = next(l for l in report.splitlines() if l.startswith("| memoriser | 0.800 ["))
    assert f"| {quoted['value']:.3f} [" in row and "![Generalisation](side_by_side.png)" in report
    assert (test / "side_by_side.png").stat().st_size > 0


def test_windows_are_scored_and_aggregate_to_the_video_score_by_the_named_rule(corpora):
    """predict's windows table: the video-level score is evaluate.window_aggregation of its
    windows (here max, not predict's mean), and every window is scored beside it."""
    from sklearn.metrics import roc_auc_score

    test = corpora["test"]
    groups = schemas.read_table(test / "groups.csv", "test_corpus_videos")
    preds = _predictions(test / "memoriser.csv", groups, _id_of(groups, "planted"), seed=4)
    ok = schemas.read_table(preds, "predict").filter(pl.col("status") == "ok")
    rng = np.random.default_rng(5)
    fake = np.column_stack([ok["score_fake"], rng.uniform(size=len(ok))])  # two windows each
    windows = pl.DataFrame({
        "video_id": np.repeat(ok["video_id"].to_numpy(), 2), "window": np.tile([0, 1], len(ok)),
        "start_frame": 0, "stop_frame": 8, "score_fake": fake.ravel(),
        "score_real": 1 - fake.ravel()})  # fmt: skip
    windows.write_csv(test / "memoriser.windows.csv")
    corpus = {"format": "demo", "path": str(corpora["root"] / "test_corpus")}
    config = {"test_corpus": {**corpus, "keep_cross_duplicates": True},
              "evaluate": {"bootstrap": 50, "window_aggregation": "max"}}  # fmt: skip
    _run("test-corpus-score", "--videos", test / "groups.csv", "--cross", test / "cross.csv",
         "--out", test / "windowed.csv", "--report", test / "windowed.md", "--windows",
         test / "memoriser.windows.csv", "--config-json", json.dumps(config), preds)  # fmt: skip
    summary = schemas.read_table(test / "windowed.csv", "test_corpus_summary")
    roc = summary.filter((pl.col("metric") == "roc_auc") & (pl.col("videos") == "all"))
    by_level = {r["level"]: r for r in roc.iter_rows(named=True)}
    labels = dict(zip(groups["video_id"], groups["label"] == "fake"))
    truth = [labels[v] for v in ok["video_id"]]
    top = fake.max(axis=1) / (fake.max(axis=1) + (1 - fake).max(axis=1))
    assert by_level["video"]["value"] == pytest.approx(roc_auc_score(truth, top))
    assert by_level["video"]["value"] != pytest.approx(roc_auc_score(truth, fake.mean(axis=1)))
    assert by_level["window"]["value"] == pytest.approx(
        roc_auc_score(np.repeat(truth, 2), fake.ravel())
    )
    assert (by_level["video"]["aggregation"], by_level["window"]["aggregation"]) == ("max", "")
    assert by_level["video"]["headline"] and not by_level["window"]["headline"]
    assert by_level["video"]["n_videos"] == by_level["window"]["n_videos"] == len(ok)
    report = (test / "windowed.md").read_text()
    assert "## Window and video level" in report and "the max of its windows'" in report
    section = report.split("## Window and video level")[1].split("##")[0]
    line = next(l for l in section.splitlines() if l.startswith("| memoriser | roc_auc |"))
    assert line.endswith(
        f"| {by_level['window']['value']:.3f} | {by_level['video']['value']:.3f} |"
    )


def _kfold_summary() -> pl.DataFrame:
    row = {c: None for c in schemas.columns("summary")}
    row |= {"model": "memoriser", "protocol": "kfold", "level": "video", "metric": "roc_auc"}
    row |= {"pooled": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n_folds": 3, "n_videos": 20}
    row |= {"aggregation": "mean", "n_permutations": 0}
    return pl.DataFrame([row])


def test_predict_reads_a_videos_table_as_its_valid_videos(corpora):
    videos = schemas.read_table(corpora["test"] / "videos.csv", "videos")
    listed = list_inputs(corpora["test"] / "videos.csv")
    valid = videos.filter(pl.col("valid"))
    assert listed["video_id"].to_list() == valid["video_id"].to_list()
    assert listed["path"].to_list() == valid["path"].to_list()  # as the table stores them


@pytest.mark.parametrize("overlay,message", [
    ({"path": "tc.csv"}, "test_corpus.path is set but test_corpus.format is not"),
    ({"path": "missing.csv", "format": "csv"}, "test_corpus.path: 'missing.csv'"),
    ({"path": "data/demo", "format": "demo"}, "test_corpus.path is dataset.path"),
    ({"path": "tc.csv", "format": "csv", "models": ["hist_gbm"]},
     "test_corpus.models lists ['hist_gbm'], not in train.models"),
    ({"path": "tc.csv", "format": "cvs"}, "test_corpus.format"),
])  # fmt: skip
def test_a_bad_test_corpus_stops_at_start_up_naming_the_key(tmp_path, overlay, message):
    (tmp_path / "tc.csv").write_text("path,label\na.mp4,fake\n")
    (tmp_path / "data/demo").mkdir(parents=True)
    (tmp_path / "data/demo/index.csv").write_text("path,label\n")
    config = {"dataset": {"format": "demo", "path": "data/demo"}, "test_corpus": overlay}
    config["train"] = {"models": ["logreg", "dummy"]}
    problems = check_config(config, root=tmp_path)
    assert any(message in p for p in problems), problems
    good = {**config, "test_corpus": {"path": "tc.csv", "format": "csv"}}
    assert check_config(good, root=tmp_path) == []


@pytest.mark.parametrize("rows,label_map,message", [
    ("a.mp4,fake\nb.mp4,fake\n", {}, "the corpus has one class only (fake: 2 videos; 2 rows "
     "read, dropped by reason: none); its scores (ROC-AUC) need at least two: add videos of "
     "another class or fix test_corpus.label_map"),
    ("a.mp4,fake\nb.mp4,real\n", {"fake": None, "real": None}, "the corpus yields no video "
     "(2 rows read, dropped by reason: label_dropped_by_map: 2); check test_corpus.path and "
     "test_corpus.format, the label column and test_corpus.label_map"),
], ids=["one class", "no video"])  # fmt: skip
def test_an_unscorable_test_corpus_is_refused_at_ingest_naming_its_keys(
    tmp_path, caplog, rows, label_map, message
):
    (tmp_path / "tc.csv").write_text("path,label\n" + rows)
    section = {"format": "csv", "path": str(tmp_path / "tc.csv")}
    config = {"test_corpus": {**section, "label_map": label_map or None}}
    argv = ["test-corpus-manifest", "--out", tmp_path / "manifest.csv", "--report",
            tmp_path / "ingest.md", "--config-json", json.dumps(config)]  # fmt: skip
    caplog.clear()
    assert cli.main([str(a) for a in argv]) == 1
    assert message in caplog.text and "dataset." not in caplog.text
    assert not (tmp_path / "manifest.csv").exists()


def _plan(out: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", out, re.M)}


def test_a_dry_run_with_a_test_corpus_plans_its_jobs(workflow_dir):
    (workflow_dir / "tc").mkdir()
    (workflow_dir / "tc/index.csv").write_text("path,label\na.mp4,fake\nb.mp4,real\n")
    (workflow_dir / "tc.yaml").write_text(
        "test_corpus: {path: tc/index.csv, format: csv, models: [logreg, dummy]}\n"
    )
    without = _plan(snakemake(workflow_dir, "-n", "--configfile", "config.yaml").stdout)
    plan = _plan(snakemake(workflow_dir, "-n", "--configfile", "config.yaml", "tc.yaml").stdout)
    singles = ("manifest", "download", "validate", "signatures", "audit", "score")
    assert all(plan[f"test_corpus_{s}"] == 1 for s in singles), plan
    assert plan["test_corpus_predict"] == plan["train_final"] == 2
    assert not any(k.startswith("test_corpus") or k == "train_final" for k in without)
    assert plan["total"] == without["total"] + len(singles) + 2 + 2
    # every listed model's final fit is what scores the corpus
    out = snakemake(workflow_dir, "-n", "-p", "--configfile", "config.yaml", "tc.yaml").stdout
    assert "--model-dir results/models/logreg/final" in out
    assert "--input results/test_corpus/videos.csv" in out
