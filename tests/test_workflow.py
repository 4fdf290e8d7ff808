"""The workflow as users run it: lint, dry run, the demo end to end, and resume after kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
import pytest

from conftest import BIN, DEMO_CONFIG, REPO, copy_workflow, resolved_config, snakemake
from conftest import workflow_env
from planted_corpus import write_test_corpus
from lib import schemas
from lib.evaluate.folds import check_folds

STAGES = (
    "download",
    "validate",
    "augment",
    "features",
    "scale",
    "scaled_features",
    "signatures",
    "near_duplicates",
    "folds",
    "train",
    "train_deep",
    "permutation",
    "evaluate",
    "data_quality",
)

# A small demo, layered on `make demo`'s config files (the demo's canvas, tiny deep models and
# encoder settings): 10 duplicate groups, 1 augmentation, 3 folds, 2 shards, 5 permutations;
# the feature models and one deep model (the others' jobs are the same rule;
# tests/test_train_deep.py trains each).
SMALL = (
    "demo:\n  n_groups: 10\naugment:\n  n_augmentations: 1\nfolds:\n  k: 3\nshards: 2\n"
    "train:\n  models: [logreg, linear_svm, hist_gbm, dummy, naive_cnn]\n"
    "evaluate:\n  bootstrap: 100\n  permutation:\n    n_permutations: 5\n"
    "    models: [logreg, linear_svm, hist_gbm]\n"  # the demo's probe is not trained here
    # leave one platform out (demo.yaml): with 10 groups, platform book has 4 or more test
    # videos per class (a split: 5 more trainings), tube and chirp fewer (skipped)
    "  leave_one_group_out:\n    min_videos_per_class: 4\n"
)
SMALL_CONFIG = ("--configfile", *DEMO_CONFIG, "small.yaml")
MODELS = ("logreg", "linear_svm", "hist_gbm", "dummy")

TABLES = {  # contract tables compared between runs (url holds the absolute checkout path)
    "results/manifest.csv": ("manifest", ["url"]),
    "results/download.csv": ("download", ["url"]),
    "results/videos.csv": ("videos", []),
    "results/clips.csv": ("clips", []),
    "results/scaled.csv": ("scaled", []),
    "results/features.parquet": ("features", []),
    "results/signatures.csv": ("signatures", []),
    "results/near_duplicates.csv": ("near_duplicates", []),
    "results/folds.csv": ("folds", []),
    "results/metrics.csv": ("metrics", []),
    "results/summary.csv": ("summary", []),
}


def small_workflow(dest: Path) -> Path:
    wf = copy_workflow(dest)
    (wf / "small.yaml").write_text(SMALL)
    return wf


def run_demo(wf: Path, *extra: str):
    # Targets and flags first: --configfile takes every word after it as a config file.
    return snakemake(wf, *extra, "--profile", "profiles/local", *SMALL_CONFIG)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """The small demo, run once uninterrupted; other tests compare against it."""
    wf = small_workflow(tmp_path_factory.mktemp("uninterrupted"))
    run_demo(wf)
    return wf


def test_lint_and_snakefmt_are_clean():
    lint = subprocess.run(
        [str(BIN / "snakemake"), "--lint"],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.parametrize(
    "configfiles,models,folds,stages,pretraining",
    [  # the schema's defaults: 4 feature models; the demo's: 6 feature + 3 deep models, and
        # videomae from its fold's pretraining (a pretrain job per fold, pretrain_report);
        # + the protocol_folds checkpoint of leave_one_platform_out, whose splits' jobs a dry
        # run cannot list before it ran (lib/evaluate/protocols.py)
        (("config.yaml",), 4, 5, [s for s in STAGES if s != "train_deep"], 0),
        # + the probe and knn on embeddings: 2 embeddings shards, their gather and the tiny
        # encoder's rule (the demo permutes three models as the defaults do, the probe for
        # hist_gbm)
        (
            DEMO_CONFIG,
            9,
            3,
            [*STAGES, "pretrain", "pretrain_report", "protocol_folds", "embeddings", "tiny_encoder"],
            3 + 1 + 1 + 2 + 1 + 1,
        ),
    ],
    ids=["defaults", "demo"],
)
def test_dry_run_lists_every_stage_and_job_count(
    workflow_dir, configfiles, models, folds, stages, pretraining
):
    out = snakemake(workflow_dir, "-n", "--configfile", *configfiles).stdout
    for stage in stages:
        assert re.search(rf"^{stage}\s+\d+$", out, re.M), f"{stage} missing from the plan"
    total = int(re.search(r"^total\s+(\d+)$", out, re.M).group(1))
    shards, permuted = 2, 3
    gathers = 8  # seven gathers + the merge of both feature tables
    # demo_corpus, manifest, near_duplicates, folds, evaluate, data_quality, completeness, all
    singletons = 8
    assert total == 7 * shards + models * folds + permuted + gathers + singletons + pretraining


def test_job_count_does_not_grow_with_videos(workflow_dir):
    big = workflow_dir / "big.yaml"
    big.write_text("demo:\n  n_groups: 400\n")
    small = snakemake(workflow_dir, "-n", "--configfile", *DEMO_CONFIG).stdout
    large = snakemake(workflow_dir, "-n", "--configfile", *DEMO_CONFIG, "big.yaml").stdout
    count = lambda text: re.search(r"^total\s+(\d+)$", text, re.M).group(1)  # noqa: E731
    assert count(small) == count(large)


def test_manifest_alone_looks_at_a_corpus(workflow_dir):
    (workflow_dir / "small.yaml").write_text(SMALL)
    out = snakemake(workflow_dir, "results/manifest.csv", "--cores", "1", *SMALL_CONFIG).stdout
    manifest = schemas.read_table(workflow_dir / "results/manifest.csv", "manifest")
    assert manifest["dup_group"].n_unique() == 10
    assert not (workflow_dir / "results/download.csv").exists()
    assert (workflow_dir / "results/reports/ingest.md").exists()


@pytest.mark.slow
def test_demo_writes_every_contract_file(demo_run):
    for rel, (kind, _) in TABLES.items():
        assert len(schemas.read_table(demo_run / rel, kind)) > 0, rel
    for model in MODELS:
        for k in range(3):
            d = demo_run / f"results/models/{model}/fold-{k}"
            assert (d / "model.joblib").exists() and (d / "train_info.json").exists()
            schemas.read_table(d / "predictions.csv", "predictions")
    for k in range(3):  # the deep model: every clip of the fold, an epoch history
        d = demo_run / f"results/models/naive_cnn/fold-{k}"
        preds = schemas.read_table(d / "predictions.csv", "predictions")
        assert set(preds["aug_idx"]) == {-1, 0}
        assert len(pl.read_csv(d / "history.csv")) >= 1 and (d / "model.pt").exists()
        assert (demo_run / f"results/.checkpoints/naive_cnn/fold-{k}/last.pt").exists()
    summary = schemas.read_table(demo_run / "results/summary.csv", "summary")
    assert "naive_cnn" in set(summary["model"])
    for report in (
        "evaluation.md",
        "curves.png",
        "confusion.png",
        "permutation_null.png",
        "training_curves.png",
        "data_quality.png",
        "completeness.md",
        "ingest.md",
    ):
        assert (demo_run / "results/reports" / report).stat().st_size > 0
    for stage in ("download", "validate", "augment", "features", "scale", "scaled_features"):
        assert len(list((demo_run / "results/benchmarks" / stage).glob("*.tsv"))) == 2
        assert len(list((demo_run / "logs" / stage).glob("*.log"))) == 2


@pytest.mark.slow
def test_planted_broken_files_are_caught_with_a_reason(demo_run):
    """Each planted file gets its own reason; every other video is valid; nothing is `other`."""
    from lib.corpus.ids import file_video_id

    videos = schemas.read_table(demo_run / "results/videos.csv", "videos")
    manifest = schemas.read_table(demo_run / "results/manifest.csv", "manifest")
    assert len(videos) == len(manifest), "every manifest row has a videos row"
    corpus = demo_run / "data/demo"
    index = pl.read_csv(corpus / "index.csv", empty_string_is_null=False)
    planted = index.filter(pl.col("edits").str.starts_with("broken:"))
    expected_reason = {
        "truncated": "truncated",
        "empty": "not_downloaded:empty",
        "text": "not_a_video",
    }
    expected = {
        file_video_id(corpus / path, base_dir=corpus): expected_reason[edits[7:]]
        for path, edits in zip(planted["path"], planted["edits"])
    }
    assert len(expected) == 3
    invalid = videos.filter(~pl.col("valid"))
    assert dict(zip(invalid["video_id"], invalid["reason"])) == expected
    downloads = schemas.read_table(demo_run / "results/download.csv", "download")
    assert set(downloads["reason"]) == {"", "empty"}, "local files: linked, or failed as empty"
    clips = schemas.read_table(demo_run / "results/clips.csv", "clips")
    assert set(clips["video_id"]).isdisjoint(invalid["video_id"])


@pytest.mark.slow
def test_no_group_straddles_folds_and_clips_follow_originals(demo_run):
    folds = schemas.read_table(demo_run / "results/folds.csv", "folds")
    check_folds(folds)
    clips = schemas.read_table(demo_run / "results/clips.csv", "clips")
    for model in ("logreg",):
        for k in range(3):
            preds = schemas.read_table(
                demo_run / f"results/models/{model}/fold-{k}/predictions.csv", "predictions"
            )
            fold = dict(folds.select("video_id", "fold").iter_rows())
            assert all(
                fold[v] == k for v in preds["video_id"]
            ), "a held-out clip's video belongs to the held-out fold"
            held = clips.filter(pl.col("video_id").is_in(preds["video_id"].implode()))
            per_video = dict(held.group_by("video_id").len().iter_rows())
            assert (
                dict(preds.group_by("video_id").len().iter_rows()) == per_video
            ), "every clip (original and augmentations) of a held-out video is held out"


@pytest.mark.slow
def test_resolved_config_json_is_the_layered_config(demo_run):
    """The run's record of its configuration equals what a dry run of the same command
    resolves (tests/test_config.py reads the latter for the shipped configs): the demo's
    sizes under the small config's."""
    written = json.loads((demo_run / "results/reports/resolved_config.json").read_text())
    assert written == resolved_config(demo_run, "--profile", "profiles/local", *SMALL_CONFIG)
    assert (written["augment"]["n_augmentations"], written["folds"]["k"]) == (1, 3)
    assert written["scale"]["size"] == 128  # configs/demo.yaml's, under small.yaml
    assert written["train"]["deep"]["naive_cnn"]["image_size"] == 32


@pytest.mark.slow
def test_demo_summary_scores_originals_with_intervals_and_p_values(demo_run):
    summary = schemas.read_table(demo_run / "results/summary.csv", "summary")
    videos = schemas.read_table(demo_run / "results/folds.csv", "folds")
    assert set(summary["model"]) == set(MODELS) | {"naive_cnn"}  # SMALL's feature + deep models
    lopo = summary.filter(pl.col("protocol") == "leave_one_platform_out")
    summary = summary.filter(pl.col("protocol") == "kfold")
    auc = summary.filter(pl.col("metric") == "roc_auc")
    assert (auc["n_videos"] == len(videos)).all()  # one row per held-out original video
    assert (auc["ci_low"] <= auc["pooled"]).all() and (auc["pooled"] <= auc["ci_high"]).all()
    tested = auc.filter(pl.col("model").is_in(["logreg", "linear_svm", "hist_gbm"]))
    assert len(tested) == 3 and (tested["n_permutations"] == 5).all()
    assert tested["p_value"].is_between(1 / 6, 1).all()
    assert auc.filter(pl.col("model") == "dummy")["mean"].item() == 0.5
    robust = schemas.read_table(demo_run / "results/robustness.csv", "robustness")
    assert "none (original)" in set(robust["augmentation"]) and len(set(robust["augmentation"])) > 1
    # leave one platform out: every model, through the same train rules, with intervals
    splits = schemas.read_table(
        demo_run / "results/protocols/leave_one_platform_out/splits.csv", "protocol_splits"
    )
    used = splits.filter(pl.col("status") == "used")
    assert len(used) >= 1 and (splits["status"] == "skipped").any()
    lopo_auc = lopo.filter(pl.col("metric") == "roc_auc")
    assert set(lopo_auc["model"]) == set(auc["model"]) and (lopo_auc["n_folds"] == len(used)).all()
    assert (lopo_auc["n_videos"] == used["n_test_videos"].sum()).all()
    assert (lopo_auc["ci_low"] <= lopo_auc["ci_high"]).all()
    report = (demo_run / "results/reports/evaluation.md").read_text()
    assert "## Generalisation" in report and "not tested: fewer than" in report


@pytest.mark.slow
def test_report_builds_and_predict_classifies_a_folder(demo_run):
    snakemake(demo_run, "--report", "results/report.html", *SMALL_CONFIG)
    html = (demo_run / "results/report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "Permutation test" in html
    run_demo(demo_run, "results/predictions/demo.csv")
    preds = schemas.read_table(demo_run / "results/predictions/demo.csv", "predict")
    files = [p for p in (demo_run / "data/demo").iterdir() if p.suffix != ".csv"]
    assert len(preds) == len(files) and preds["video_id"].is_unique().all()
    ok = preds.filter(pl.col("status") == "ok")
    assert len(ok) >= len(files) - 6 and (ok["n_windows"] >= 1).all()
    assert (preds.filter(pl.col("status") == "failed")["reason"] != "").all()


@pytest.mark.slow
def test_test_corpus_leaves_out_a_planted_copy_of_a_training_video(demo_run):
    """A test corpus holding a cropped re-encode of a demo video (tests/planted_corpus.py),
    through the DAG: the final model scores it, the audit across corpora finds the copy, the
    headline test-corpus score leaves it out and the report says so."""
    source, _ = write_test_corpus(demo_run / "test_corpus", demo_run / "data/demo")
    corpus = "test_corpus={path: test_corpus, format: demo, models: [logreg]}"
    run_demo(demo_run, "results/test_corpus/summary.csv", "--config", corpus)
    results = demo_run / "results/test_corpus"
    cross = schemas.read_table(results / "cross_duplicates.csv", "cross_duplicates")
    assert [v.split("_")[0] for v in cross["test_video"].unique()] == ["planted"]
    assert any(v.startswith(Path(source).stem + "_") for v in cross["train_video"])
    summary = schemas.read_table(results / "summary.csv", "test_corpus_summary")
    head = summary.filter(pl.col("headline") & (pl.col("metric") == "roc_auc")).row(0, named=True)
    assert (head["videos"], head["n_left_out"]) == ("without_cross_duplicates", 1)
    assert head["n_videos"] > 0 and head["ci_low"] <= head["value"] <= head["ci_high"]
    report = (demo_run / "results/reports/test_corpus.md").read_text()
    assert "are **left out** of the headline score" in report
    assert "test_corpus |" in report.split("## Generalisation")[1]  # beside kfold and LOPO


def _wait_for_progress(wf: Path, stage: str, min_units: int, proc, timeout: float = 300):
    """Wait until a shard of ``stage`` has finished ``min_units`` units (and is still going)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        for f in (wf / "results/.progress" / stage).glob("*.csv"):
            if f.read_text().count("\n") > min_units:  # header + units
                return
        time.sleep(0.05)
    pytest.fail(f"no {stage} progress after {timeout} s")


@pytest.mark.slow
def test_kill_9_mid_stage_then_resume_equals_uninterrupted_run(demo_run, tmp_path):
    wf = small_workflow(tmp_path / "killed")
    cmd = [str(BIN / "snakemake"), "--profile", "profiles/local", *SMALL_CONFIG]
    with open(tmp_path / "first.log", "w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=wf,
            env=workflow_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_progress(wf, "features", 3, proc)
        finally:  # a dying node: Snakemake and every job, no cleanup
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (wf / "results/features_handcrafted.csv").exists()
    snakemake(wf, "--unlock")
    run_demo(wf, "--rerun-incomplete")

    # The resumed shard skipped what it had finished before the kill.
    logs = "".join(p.read_text() for p in (wf / "logs/features").glob("*.log"))
    resumed = [int(n) for n in re.findall(r"(\d+) already done", logs)]
    assert max(resumed) >= 3, logs[-2000:]

    for rel, (kind, drop) in TABLES.items():
        got = schemas.read_table(wf / rel, kind).drop(drop)
        want = schemas.read_table(demo_run / rel, kind).drop(drop)
        assert_frame_equal(got, want, check_exact=True), rel  # bit for bit
    features = schemas.read_table(wf / "results/features.parquet", "features")
    assert features["clip_id"].is_unique().all()
