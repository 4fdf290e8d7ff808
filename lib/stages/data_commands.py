"""The commands of the data stages, from the corpus to the folds (rows of
:data:`lib.stages.commands.COMMANDS`)."""

from __future__ import annotations

from lib.stages.command_spec import (
    CLIPS,
    Command,
    DOWNLOADS,
    MANIFEST,
    OUT,
    SCALED,
    SEED,
    Section,
    VIDEOS,
    arg,
    folder,
    reads,
    sampling_stage,
)

#: The keys of the ``embeddings`` section the stage reads (``tiny*``: the tiny-encoder rule's).
_EMBEDDING_KEYS = (
    "model",
    "num_frames",
    "batch_size",
    "device",
    "precision",
    "keep_frames",
)


DATA_COMMANDS: tuple[Command, ...] = (
    Command(
        "demo-corpus",
        "generate the bundled demo corpus",
        args=(
            arg("--out-dir", required=True, help="folder for the videos and index.csv"),
            arg(
                "--jobs",
                dest="n_jobs",
                type=int,
                default=1,
                help="groups written at once (the files do not depend on it)",
            ),
        ),
        sections=(Section("demo"),),
    ),
    Command(
        "manifest",
        "ingest a corpus into results/manifest.csv",
        args=(
            OUT,
            arg("--report", required=True, help="ingest report (markdown) to write"),
        ),
        sections=(Section("dataset"),),
    ),
    Command(
        "download",
        "fetch one shard of the manifest (yt-dlp; local files linked)",
        sharded=True,
        args=(
            MANIFEST,
            OUT,
            folder("--videos-dir", "data/videos", "videos"),
            arg(
                "--previous",
                default=None,
                help="an earlier results/download.csv: its failures are kept when "
                "retry_failed is false",
            ),
            arg(
                "--recheck",
                default=None,
                help="an earlier results/videos.csv: files it found broken are fetched "
                "again when retry_failed is true",
            ),
        ),
        sections=(Section("download"),),
    ),
    Command(
        "validate",
        "probe one shard of the downloads with PyAV",
        args=(DOWNLOADS, OUT),
        sections=(Section("validate", into="limits"),),
        sharded=True,
    ),
    Command(
        "augment",
        "write augmented clips of one shard of valid videos",
        sharded=True,
        args=(VIDEOS, OUT, folder("--clips-dir", "data/clips", "clips")),
        sections=(Section("augment"), SEED),
    ),
    sampling_stage("features", "handcrafted features of one shard of clips", CLIPS, "features"),
    sampling_stage("scaled-features", "features of one shard of scaled clips", SCALED, "features"),
    sampling_stage(
        "signatures",
        "perceptual-hash signatures of one shard of videos",
        VIDEOS,
        "signatures",
    ),
    Command(
        "embeddings",
        "frozen image-encoder embeddings of one shard of clips",
        args=(CLIPS, OUT),
        sections=(
            Section("embeddings", keys=_EMBEDDING_KEYS),
            Section("features", into="sampling"),
        ),
        sharded=True,
    ),
    Command(
        "tiny-encoder",
        "save a random-init tiny image encoder (the demo's stand-in for a checkpoint)",
        args=(arg("--out-dir", required=True, help="the folder embeddings.model names"),),
        sections=(
            Section("embeddings", keys=("tiny", "tiny_image_size"), into="settings"),
            SEED,
        ),
    ),
    Command(
        "near-duplicates",
        "leak audit: match all signatures, report leaks",
        args=(
            VIDEOS,
            reads("--signatures", "results/signatures.csv"),
            arg("--out", required=True, help="pairs table (near_duplicates.csv)"),
            arg("--report", required=True, help="leak report (markdown) to write"),
        ),
        sections=(
            Section("near_duplicates", into="match"),
            Section("folds", keys=("k", "group_by")),
            SEED,
        ),
    ),
    Command(
        "scale",
        "scale one shard of clips onto a square canvas",
        sharded=True,
        args=(CLIPS, OUT, folder("--scaled-dir", "data/scaled", "scaled clips")),
        sections=(Section("scale"),),
    ),
    Command(
        "gather",
        "concatenate shard tables in shard order",
        args=(
            arg("--kind", required=True, help="table kind (lib/schemas/tables.py)"),
            arg(
                "--stage",
                default=None,
                help="stage name, to log its failures by reason",
            ),
            OUT,
            arg("inputs", nargs="+", help="shard tables, in shard order"),
        ),
    ),
    Command(
        "completeness",
        "expected vs present rows per stage, and why",
        args=(
            arg("--root", default=".", help="folder holding results/ (default: .)"),
            arg("--md", dest="md_path", required=True, help="markdown report to write"),
            arg(
                "--csv",
                dest="csv_path",
                required=True,
                help="per-stage counts to write",
            ),
        ),
        sections=(Section("augment", keys=("n_augmentations",)),),
    ),
    Command(
        "merge-features",
        "join both feature tables into one parquet",
        args=(
            reads("--handcrafted", "results/features_handcrafted.csv"),
            reads("--scaled", "results/features_scaled.csv"),
            OUT,
        ),
    ),
    Command(
        "folds",
        "grouped, stratified k-fold assignment of videos",
        args=(
            VIDEOS,
            arg("--out", required=True, help="folds table to write"),
            arg(
                "--near-duplicates",
                default=None,
                help="results/near_duplicates.csv (needed unless --group-by annotated)",
            ),
        ),
        sections=(Section("folds"), SEED),
    ),
)
