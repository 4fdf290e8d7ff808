"""What each ``python -m lib`` command runs and which configuration it takes.

One entry per subcommand: the function it calls, its inputs and outputs (per-job arguments:
files, shard, model, fold), and the config sections its parameters come from. The
parameters themselves are not spelled here: every key of a section in
``workflow/schemas/config.schema.yaml`` (its type, default, description, bounds) becomes a
command-line flag (``augment.n_augmentations`` -> ``--n-augmentations``), a key of the
JSON a rule passes (``--config-json``) and a keyword of the function called
(:mod:`lib.cli` builds all three from the schema). Adding a key to a section therefore
reaches the stage's function with nothing else to edit; the function must take it, which
``tests/test_cli.py`` checks for every command.

The workflow's rules pass each command its sections with :func:`config_fragment` (in
``workflow/rules/common.smk``), so a rule never lists parameters one by one either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: Where sharded stages keep their progress (lib.stages uses this default too).
PROGRESS_DIR = "results/.progress"


@dataclass(frozen=True)
class Arg:
    """A per-job argument of a command (a file, a folder, a model name): ``add_argument``'s."""

    flags: tuple[str, ...]
    options: dict[str, Any]

    @property
    def dest(self) -> str:
        """The keyword it is passed as (argparse's dest: ``--out-dir`` -> ``out_dir``)."""
        return self.options.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Section:
    """The parameters a command takes from one config section.

    ``path``: dotted path of the section in the config (``""`` = the top level, e.g.
    ``seed``). ``keys``: the keys taken; ``None`` takes every key the schema lists, so a key
    added there arrives by itself. ``into``: pass the section as one mapping under this
    keyword (e.g. ``limits``) instead of one keyword per key. ``prefix``: put before the
    flag and keyword of each key (``scale_`` -> ``--scale-size``, ``scale_size``), where a
    command reads several sections whose keys would clash or mislead.
    """

    path: str
    keys: tuple[str, ...] | None = None
    into: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Command:
    """One subcommand: ``handler`` (``"module:function"``, imported when it runs) is called
    with keywords only: each :class:`Arg`'s ``dest``, ``shard`` and ``progress_dir`` when
    ``sharded``, and the parameters of ``sections``."""

    name: str
    handler: str
    help: str
    args: tuple[Arg, ...] = ()
    sections: tuple[Section, ...] = ()
    sharded: bool = False
    description: str | None = None


SEED = Section("", keys=("seed",))
POSITIVE_LABEL = Section("train", keys=("positive_label",))
_OUT = arg("--out", dest="output", required=True, help="table to write")
_TRAIN_TABLES = (
    arg("--clips", required=True, help="results/clips.csv"),
    arg("--folds", required=True, help="results/folds.csv"),
)
_MODEL_PARAMS = arg(
    "--params",
    type="json",
    default={},
    help="JSON: keyword arguments of the feature model (config "
    "train.params.<model>) or the deep model's settings (train.deep.<model>)",
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "demo-corpus",
        "lib.corpus.demo:generate_demo_corpus",
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
        "lib.commands:run_manifest",
        "ingest a corpus into results/manifest.csv",
        args=(
            arg("--out", required=True, help="manifest CSV to write"),
            arg("--report", required=True, help="ingest report (markdown) to write"),
        ),
        sections=(Section("dataset"),),
    ),
    Command(
        "download",
        "lib.stages:download_shard",
        "fetch one shard of the manifest (yt-dlp; local files linked)",
        sharded=True,
        args=(
            arg("--manifest", required=True, help="results/manifest.csv"),
            _OUT,
            arg("--videos-dir", default="data/videos", help="where videos are written"),
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
        "lib.stages:validate_shard",
        "probe one shard of the downloads with PyAV",
        args=(arg("--downloads", required=True, help="results/download.csv"), _OUT),
        sections=(Section("validate", into="limits"),),
        sharded=True,
    ),
    Command(
        "augment",
        "lib.stages:augment_shard",
        "write augmented clips of one shard of valid videos",
        sharded=True,
        args=(
            arg("--videos", required=True, help="results/videos.csv"),
            _OUT,
            arg("--clips-dir", default="data/clips", help="where clips are written"),
        ),
        sections=(Section("augment"), SEED),
    ),
    Command(
        "features",
        "lib.stages:features_shard",
        "handcrafted features of one shard of clips",
        sharded=True,
        args=(arg("--clips", required=True, help="results/clips.csv"), _OUT),
        sections=(Section("features", into="sampling"),),
    ),
    Command(
        "scaled-features",
        "lib.stages:scaled_features_shard",
        "features of one shard of scaled clips",
        sharded=True,
        args=(arg("--scaled", required=True, help="results/scaled.csv"), _OUT),
        sections=(Section("features", into="sampling"),),
    ),
    Command(
        "signatures",
        "lib.stages:signatures_shard",
        "perceptual-hash signatures of one shard of videos",
        sharded=True,
        args=(arg("--videos", required=True, help="results/videos.csv"), _OUT),
        sections=(Section("signatures", into="sampling"),),
    ),
    Command(
        "near-duplicates",
        "lib.commands:run_near_duplicates",
        "leak audit: match all signatures, report leaks",
        args=(
            arg("--videos", required=True, help="results/videos.csv"),
            arg("--signatures", required=True, help="results/signatures.csv"),
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
        "lib.stages:scale_shard",
        "scale one shard of clips onto a square canvas",
        sharded=True,
        args=(
            arg("--clips", required=True, help="results/clips.csv"),
            _OUT,
            arg("--scaled-dir", default="data/scaled", help="where scaled clips are written"),
        ),
        sections=(Section("scale"),),
    ),
    Command(
        "gather",
        "lib.commands:run_gather",
        "concatenate shard tables in shard order",
        args=(
            arg("--kind", required=True, help="table kind (lib/schemas.py)"),
            arg("--stage", default=None, help="stage name, to log its failures by reason"),
            arg("--out", required=True, help="table to write"),
            arg("inputs", nargs="+", help="shard tables, in shard order"),
        ),
    ),
    Command(
        "completeness",
        "lib.evaluate.completeness:write_completeness",
        "expected vs present rows per stage, and why",
        args=(
            arg("--root", default=".", help="folder holding results/ (default: .)"),
            arg("--md", dest="md_path", required=True, help="markdown report to write"),
            arg("--csv", dest="csv_path", required=True, help="per-stage counts to write"),
        ),
        sections=(Section("augment", keys=("n_augmentations",)),),
    ),
    Command(
        "merge-features",
        "lib.stages:merge_features",
        "join both feature tables into one parquet",
        args=(
            arg("--handcrafted", required=True, help="results/features_handcrafted.csv"),
            arg("--scaled", required=True, help="results/features_scaled.csv"),
            _OUT,
        ),
    ),
    Command(
        "folds",
        "lib.commands:run_folds",
        "grouped, stratified k-fold assignment of videos",
        args=(
            arg("--videos", required=True, help="results/videos.csv"),
            arg("--out", required=True, help="folds table to write"),
            arg(
                "--near-duplicates",
                default=None,
                help="results/near_duplicates.csv (needed unless --group-by annotated)",
            ),
        ),
        sections=(Section("folds"), SEED),
    ),
    Command(
        "train",
        "lib.commands:run_train",
        "fit one model on all folds but one, predict that one",
        description="Feature models (logreg, ...) read --features; deep models "
        "(naive_cnn, vit_gru, vit_transformer, videomae, timesformer) read the scaled "
        "clips (--scaled), choose their epoch on an inner split of the training folds, "
        "checkpoint every epoch under --checkpoint-dir and resume from it when rerun.",
        args=(
            arg("--features", default=None, help="features table (feature models)"),
            arg("--scaled", default=None, help="scaled clips table (deep models)"),
            *_TRAIN_TABLES,
            arg("--out-dir", required=True, help="the model's fold folder"),
            arg("--model", required=True, help="model name (train.models)"),
            arg("--fold", type=int, required=True, help="the held-out fold"),
            _MODEL_PARAMS,
            arg(
                "--checkpoint-dir",
                default=None,
                help="deep models: where checkpoints survive a killed job "
                "(default results/.checkpoints/<model>/fold-<k>)",
            ),
        ),
        sections=(POSITIVE_LABEL, SEED),
    ),
    Command(
        "train-final",
        "lib.commands:run_train_final",
        "fit one model on every fold (for predict)",
        description="The cross-validation's settings on every labelled clip, nothing held "
        "out. Feature models read --features and write model.joblib; deep models read "
        "--scaled, still choose their epoch on an inner split (grouped as in "
        "cross-validation), checkpoint under --checkpoint-dir and write model.pt. Both "
        "write train_info.json (classes, settings; deep: normalisation), what predict reads.",
        args=(
            arg("--features", default=None, help="results/features.parquet (feature models)"),
            arg("--scaled", default=None, help="results/scaled.csv (deep models)"),
            *_TRAIN_TABLES,
            arg("--out-dir", required=True, help="results/models/<model>/final"),
            arg("--model", required=True, help="model name (train.models)"),
            _MODEL_PARAMS,
            arg(
                "--checkpoint-dir",
                default=None,
                help="deep models: where checkpoints survive a killed job "
                "(default results/.checkpoints/<model>/final)",
            ),
        ),
        sections=(POSITIVE_LABEL, SEED),
    ),
    Command(
        "permutation",
        "lib.commands:run_permutation",
        "permutation test of one model: null distribution of the headline ROC-AUC "
        "under permuted group labels",
        description="Feature models read --features; deep models read --scaled and "
        "retrain every fold for every permutation (permutations x folds trainings: ask "
        "for few), keeping finished fits under --checkpoint-dir so a killed job resumes.",
        args=(
            arg("--features", default=None, help="results/features.parquet (feature models)"),
            arg("--scaled", default=None, help="results/scaled.csv (deep models)"),
            *_TRAIN_TABLES,
            _OUT,
            arg("--model", required=True, help="model name (train.models)"),
            _MODEL_PARAMS,
            arg(
                "--checkpoint-dir",
                default=None,
                help="deep models: finished fits kept for a resume (default "
                "results/.checkpoints/<model>/permutation)",
            ),
        ),
        sections=(
            Section("evaluate.permutation", keys=("n_permutations", "n_permutations_deep")),
            POSITIVE_LABEL,
            SEED,
        ),
    ),
    Command(
        "evaluate",
        "lib.commands:run_evaluate",
        "headline metrics on held-out originals, intervals, p-values, robustness per "
        "augmentation type, report plots",
        args=(
            arg("--metrics", required=True, help="metrics table to write"),
            arg("--summary", required=True, help="summary table to write"),
            arg("--report-dir", required=True, help="folder of the report and figures"),
            arg("--clips", required=True, help="results/clips.csv (augmentation types)"),
            arg("--folds", required=True, help="results/folds.csv (duplicate groups)"),
            arg("--videos", default=None, help="results/videos.csv (platforms)"),
            arg(
                "--permutations",
                nargs="*",
                default=[],
                help="results/models/<model>/permutation.csv files",
            ),
            arg("--robustness", default=None, help="robustness table to write"),
            arg("--platform", default=None, help="per-platform metrics to write"),
            arg("--confusion", default=None, help="confusion matrices to write"),
            arg(
                "--config",
                dest="resolved_config",
                type="json",
                default={},
                help="the resolved config, recorded in the report",
            ),
            arg("predictions", nargs="+", help="predictions.csv of every (model, fold)"),
        ),
        sections=(Section("evaluate", keys=("bootstrap",)), POSITIVE_LABEL, SEED),
    ),
    Command(
        "data-quality",
        "lib.evaluate.report:data_quality",
        "data-quality table and figure for the report",
        args=(
            arg("--manifest", dest="manifest_path", required=True, help="results/manifest.csv"),
            arg("--downloads", dest="download_path", required=True, help="results/download.csv"),
            arg("--videos", dest="videos_path", required=True, help="results/videos.csv"),
            arg("--table", dest="out_table", required=True, help="table to write"),
            arg("--failures", dest="out_failures", required=True, help="failures to write"),
            arg("--plot", dest="out_plot", required=True, help="figure to write"),
        ),
    ),
    Command(
        "predict",
        "lib.commands:run_predict",
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
            Section("scale", keys=("size", "crf", "preset"), prefix="scale_"),
        ),
    ),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}


# ------------------------------------------------------------------ section values of a config
def section_schema(schema: dict, path: str) -> dict:
    """The schema of the section at dotted ``path`` (``""``: the whole config)."""
    node = schema
    for part in filter(None, path.split(".")):
        node = node["properties"][part]
    return node


def section_keys(section: Section, schema: dict) -> list[str]:
    """The keys ``section`` takes: its own list, or every key the schema gives it."""
    if section.keys is not None:
        return list(section.keys)
    return list(section_schema(schema, section.path).get("properties", {}))


def config_fragment(command: str, config: dict, schema: dict | None = None) -> dict:
    """The part of ``config`` that ``command`` reads, in the config's own shape.

    What a rule passes as ``--config-json``: e.g. for augment ``{"augment": {...},
    "seed": 42}``. Keys absent from ``config`` are left out (the command takes the
    schema's default).
    """
    from lib.config import load_schema

    schema = load_schema() if schema is None else schema
    fragment: dict = {}
    for section in BY_NAME[command].sections:
        source: Any = config
        for part in filter(None, section.path.split(".")):
            source = source.get(part, {}) if isinstance(source, dict) else {}
        target = fragment
        for part in filter(None, section.path.split(".")):
            target = target.setdefault(part, {})
        for key in section_keys(section, schema):
            if isinstance(source, dict) and key in source:
                target[key] = source[key]
    return fragment


def resolve_handler(command: Command) -> Callable:
    import importlib

    module, _, name = command.handler.partition(":")
    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------- commands that are not a driver
# Each is the glue between the command line and the library: tables read and written, and
# keywords renamed to the library's (seed -> random_state).
def run_manifest(*, out, report, format, path, label_map, allow_file_urls) -> None:
    from lib import schemas
    from lib.corpus.ingest import build_manifest, check_trainable, write_ingest_report

    # false = the format's own choice: the demo opts in by itself, every other corpus refuses.
    manifest, ingest_report = build_manifest(
        format, path, label_map=label_map, allow_file_urls=allow_file_urls or None
    )
    check_trainable(manifest, ingest_report)
    schemas.write_table(manifest, out, "manifest")
    write_ingest_report(ingest_report, report)


def run_near_duplicates(*, videos, signatures, out, report, match, k, group_by, seed) -> None:
    from lib import schemas
    from lib.audit.near_duplicates import audit
    from lib.utils import atomic_write_text

    pairs, text = audit(
        schemas.read_table(videos, "videos"),
        schemas.read_table(signatures, "signatures"),
        n_folds=k,
        random_state=seed,
        group_by=group_by,
        match=match,
    )
    schemas.write_table(pairs, out, "near_duplicates")
    atomic_write_text(report, text)


def run_gather(*, kind, stage, out, inputs) -> None:
    from lib import schemas
    from lib.shards import concat_tables

    table = schemas.write_table(concat_tables(inputs, kind), out, kind)
    if stage:
        from lib.evaluate.completeness import log_stage_summary

        log_stage_summary(stage, table)


def run_folds(*, videos, out, near_duplicates, k, group_by, seed) -> None:
    from lib import schemas
    from lib.evaluate.folds import assign_folds, check_folds

    table = schemas.read_table(videos, "videos")
    if group_by != "annotated":  # groups joined by the leak audit's matches
        from lib.audit.near_duplicates import regroup

        table = regroup(table, near_duplicates, group_by)
    folds = assign_folds(table, n_folds=k, random_state=seed)
    check_folds(folds)
    schemas.write_table(folds, out, "folds")


def run_train(
    *,
    features,
    scaled,
    clips,
    folds,
    out_dir,
    model,
    fold,
    params,
    checkpoint_dir,
    positive_label,
    seed,
) -> None:
    from lib.train.registry import is_deep
    from lib.utils import imports_without_gc

    if is_deep(model):
        with imports_without_gc():
            from lib.train.loop import train_deep_fold

        if not scaled:
            raise ValueError(f"{model} is a deep model: give --scaled results/scaled.csv")
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
    with imports_without_gc():
        from lib.train.feature_models import train_fold

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


def run_train_final(
    *, features, scaled, clips, folds, out_dir, model, params, checkpoint_dir, positive_label, seed
) -> None:
    # fold=-1: no fold has it, so every fold trains and nothing is held out.
    run_train(
        features=features,
        scaled=scaled,
        clips=clips,
        folds=folds,
        out_dir=out_dir,
        model=model,
        fold=-1,
        params=params,
        checkpoint_dir=checkpoint_dir,
        positive_label=positive_label,
        seed=seed,
    )


def run_permutation(
    *,
    features,
    scaled,
    clips,
    folds,
    output,
    model,
    params,
    checkpoint_dir,
    n_permutations,
    n_permutations_deep,
    positive_label,
    seed,
) -> None:
    from lib.train.registry import is_deep
    from lib.utils import imports_without_gc

    with imports_without_gc():
        from lib.train.feature_models import run_permutation_test

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
    )


def run_evaluate(
    *,
    metrics,
    summary,
    report_dir,
    clips,
    folds,
    videos,
    permutations,
    robustness,
    platform,
    confusion,
    resolved_config,
    predictions,
    bootstrap,
    positive_label,
    seed,
) -> None:
    from lib.utils import imports_without_gc

    with imports_without_gc():
        from lib.evaluate import report  # noqa: F401  (scikit-learn; evaluate imports it when plotting)
        from lib.evaluate.metrics import evaluate

    evaluate(
        predictions,
        metrics,
        summary,
        report_dir,
        clips_path=clips,
        folds_path=folds,
        videos_path=videos,
        permutation_paths=permutations,
        robustness_path=robustness,
        platform_path=platform,
        confusion_path=confusion,
        positive_label=positive_label,
        n_bootstrap=bootstrap,
        random_state=seed,
        config=resolved_config,
    )


def run_predict(
    *,
    source,
    model_dir,
    out,
    windows_out,
    window_frames,
    stride_frames,
    sampling,
    limits,
    scale_size,
    scale_crf,
    scale_preset,
) -> None:
    from lib.predict import predict_videos

    predict_videos(
        source,
        model_dir,
        out,
        windows_out=windows_out,
        window_frames=window_frames,
        stride_frames=stride_frames,
        sampling=sampling,
        scale_size=scale_size,
        crf=scale_crf,
        preset=scale_preset,
        limits=limits,
    )
