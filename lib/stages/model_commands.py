"""The commands that train, evaluate and apply models (rows of
:data:`lib.stages.commands.COMMANDS`)."""

from __future__ import annotations

from lib.stages.command_spec import (
    CLIPS,
    Command,
    DOWNLOADS,
    FOLDS,
    MANIFEST,
    OUT,
    POSITIVE_LABEL,
    SCALED,
    SEED,
    Section,
    VIDEOS,
    arg,
    folder,
    json_arg,
    reads,
    resume_dir,
    training_args,
)

#: The test corpus's keys that say how to ingest it (as the dataset section's do).
TEST_CORPUS_KEYS = tuple(
    "format path label_map allow_file_urls keep_labels label_precedence folder_group".split()
)


MODEL_COMMANDS: tuple[Command, ...] = (
    Command(
        "train",
        "fit one model on all folds but one, predict that one",
        description="Feature models (train.params) read --features; deep models "
        "(train.deep) read the scaled clips (--scaled), choose their epoch on an inner split "
        "of the training folds, checkpoint every epoch under --checkpoint-dir and resume "
        "from it when rerun.",
        args=training_args(
            arg("--out-dir", required=True, help="the model's fold folder"),
            "fold-<k>",
            arg("--fold", type=int, required=True, help="the held-out fold"),
        ),
        sections=(POSITIVE_LABEL, SEED),
    ),
    Command(
        "train-final",
        "fit one model on every fold (for predict)",
        description="The cross-validation's settings on every labelled clip, nothing held "
        "out. Feature models read --features and write model.joblib; deep models read "
        "--scaled, still choose their epoch on an inner split (grouped as in "
        "cross-validation), checkpoint under --checkpoint-dir and write model.pt. Both "
        "write train_info.json (classes, settings; deep: normalisation), what predict reads.",
        args=training_args(
            arg("--out-dir", required=True, help="results/models/<model>/final"),
            "final",
        ),
        sections=(POSITIVE_LABEL, SEED),
    ),
    Command(
        "permutation",
        "permutation test of one model: null distribution of the headline ROC-AUC "
        "under permuted group labels",
        description="Feature models read --features; deep models read --scaled and "
        "retrain every fold for every permutation (permutations x folds trainings: ask "
        "for few), keeping finished fits under --checkpoint-dir so a killed job resumes.",
        args=training_args(
            OUT,
            "permutation",
            reads(
                "--splits",
                "results/protocols/<protocol>/splits.csv, with that protocol's --folds: "
                "the splits it tests (evaluate.permutation.protocols)",
                required=False,
            ),
        ),
        sections=(
            Section("evaluate.permutation", keys=("n_permutations", "n_permutations_deep")),
            POSITIVE_LABEL,
            SEED,
        ),
    ),
    Command(
        "pretrain",
        "self-supervised VideoMAE pretraining on one fold's training videos (no label read)",
        args=(
            arg("--fold", type=int, required=True, help="the evaluated fold (-1: none)"),
            SCALED,
            CLIPS,
            FOLDS,
            arg("--out-dir", required=True, help="results/pretrain/<run>"),
            json_arg("--params", "JSON: train.deep.videomae (encoder, frames, size, runtime)"),
            resume_dir("results/.checkpoints/pretrain/<run>"),
        ),
        sections=(Section("pretrain", into="pretraining"), SEED),
    ),
    Command(
        "pretrain-report",
        "every pretraining run's history in one table and one figure",
        sections=(Section("pretrain", keys=("scope",)),),
        args=(
            OUT,
            arg("--plot", required=True, help="figure to write"),
            arg("histories", nargs="+", help="results/pretrain/<run>/history.csv files"),
        ),
    ),
    Command(
        "evaluate",
        "headline metrics on held-out originals, intervals, p-values, robustness per "
        "augmentation type, report plots",
        args=(
            arg("--metrics", required=True, help="metrics table to write"),
            arg("--summary", required=True, help="summary table to write"),
            arg("--report-dir", required=True, help="folder of the report and figures"),
            reads("--clips", "results/clips.csv (augmentation types)"),
            reads("--folds", "results/folds.csv (duplicate groups)"),
            reads("--videos", "results/videos.csv (platforms)", required=False),
            arg(
                "--permutations",
                nargs="*",
                default=[],
                help="results/models/<model>/permutation.csv (kfold), "
                "results/models/<model>/<protocol>/permutation.csv",
            ),
            arg("--splits", nargs="*", default=[], help="results/protocols/*/splits.csv"),
            arg("--robustness", default=None, help="robustness table to write"),
            arg("--platform", default=None, help="per-platform metrics to write"),
            arg("--confusion", default=None, help="confusion matrices to write"),
            json_arg(
                "--config",
                "the resolved config, for the report",
                dest="resolved_config",
            ),
            arg("predictions", nargs="+", help="predictions.csv of every (model, fold)"),
        ),
        sections=(
            Section("evaluate", keys=("bootstrap", "window_aggregation")),
            POSITIVE_LABEL,
            SEED,
        ),
    ),
    Command(
        "protocol-folds",
        "an evaluation protocol's splits as a folds table (leave one group out)",
        args=(
            FOLDS,
            VIDEOS,
            arg("--out", required=True, help="results/protocols/<protocol>/folds.csv"),
            arg(
                "--splits",
                required=True,
                help="results/protocols/<protocol>/splits.csv",
            ),
        ),
        sections=(Section("evaluate.leave_one_group_out"),),
    ),
    Command(
        "data-quality",
        "data-quality table and figure for the report",
        args=(
            MANIFEST,
            DOWNLOADS,
            VIDEOS,
            arg("--table", required=True, help="table to write"),
            arg("--failures", required=True, help="failures to write"),
            arg("--plot", required=True, help="figure to write"),
        ),
    ),
    Command(
        "predict",
        "classify new videos (a folder or a manifest CSV)",
        args=(
            arg(
                "--input",
                dest="source",
                required=True,
                help="folder of videos or CSV with a path column",
            ),
            arg("--model-dir", required=True, help="results/models/<model>/final"),
            arg("--out", required=True, help="one row per video"),
            arg("--windows-out", default=None, help="one row per window"),
        ),
        sections=(
            Section("predict", keys=("window_frames", "stride_frames")),
            Section("features", into="sampling"),
            Section("validate", into="limits"),
            Section("scale", into="scale", prefix="scale_"),  # --scale-model, not --model
        ),
    ),
    # The test corpus (config test_corpus): ingested as the dataset is, by the same function.
    Command(
        "test-corpus-manifest",
        "ingest the test corpus (config test_corpus) into its manifest",
        args=(
            OUT,
            arg("--report", required=True, help="ingest report (markdown) to write"),
        ),
        sections=(Section("test_corpus", keys=TEST_CORPUS_KEYS),),
    ),
    Command(
        "test-corpus-audit",
        "leak audit across corpora: test videos that copy training videos; the test groups",
        args=(
            VIDEOS,
            reads("--signatures", "results/signatures.csv"),
            reads("--test-videos", "results/test_corpus/videos.csv"),
            reads("--test-signatures", "results/test_corpus/signatures.csv"),
            arg("--out", required=True, help="cross-corpus pairs to write"),
            arg(
                "--groups-out",
                required=True,
                help="test videos, groups and matches to write",
            ),
        ),
        sections=(
            Section("near_duplicates", into="match"),
            Section("folds", keys=("group_by",)),
            SEED,
        ),
    ),
    Command(
        "test-corpus-score",
        "score each final model on the test corpus, with intervals; its report section",
        args=(
            reads("--videos", "results/test_corpus/groups.csv"),
            reads("--cross", "results/test_corpus/cross_duplicates.csv"),
            arg("--out", required=True, help="test-corpus summary to write"),
            arg("--report", required=True, help="report section (markdown) to write"),
            reads("--summary", "results/summary.csv (the other protocols)", required=False),
            arg("--plot", default=None, help="generalisation figure to write"),
            arg(
                "--windows",
                nargs="*",
                default=[],
                help="predict's windows table of every model (<model>.windows.csv)",
            ),
            arg(
                "predictions",
                nargs="+",
                help="predict's table of every model on the corpus",
            ),
        ),
        sections=(
            Section("test_corpus", keys=("format", "path", "keep_cross_duplicates")),
            Section("evaluate", keys=("bootstrap", "window_aggregation")),
            POSITIVE_LABEL,
            SEED,
        ),
    ),
)
