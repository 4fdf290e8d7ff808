"""What each ``python -m lib`` command runs and which configuration it takes.

One row per subcommand: its inputs and outputs (per-job arguments: files, shard, model,
fold) and the config sections its parameters come from; :func:`stage_function` names the
function of ``lib/stages/`` it calls. The parameters themselves are not spelled here: every
key of a section in ``workflow/schemas/config.schema.yaml`` (its type, default, description,
bounds) becomes a command-line flag (``augment.n_augmentations`` -> ``--n-augmentations``),
a key of the JSON a rule passes (``--config-json``) and a keyword of the function called
(:mod:`lib.cli` builds all three from the schema). Adding a key to a section therefore
reaches the stage's function with nothing else to edit; the function must take it, as a
required keyword (the schema holds its default), which ``tests/test_cli.py`` checks for
every command.

The workflow's rules pass each command its sections with :func:`config_fragment` (in
``workflow/rules/common.smk``), so a rule never lists parameters one by one either. The
Snakefile imports this module on every job: it imports no stage module at its top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from lib.config import load_schema

#: Where sharded stages keep their progress (the ``--progress-dir`` default).
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
    flag of each key and, without ``into``, its keyword (``scale_`` -> ``--scale-size``,
    ``scale_size``), where a command reads several sections whose keys would clash or
    mislead (predict's ``--model-dir`` and the scale section's ``--scale-model``).
    """

    path: str
    keys: tuple[str, ...] | None = None
    into: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Command:
    """One subcommand. Its function (:func:`stage_function`) is called with keywords only:
    each :class:`Arg`'s ``dest``, ``shard`` and ``progress_dir`` when ``sharded``, and the
    parameters of ``sections``."""

    name: str
    help: str
    args: tuple[Arg, ...] = ()
    sections: tuple[Section, ...] = ()
    sharded: bool = False
    description: str | None = None


SEED = Section("", keys=("seed",))
POSITIVE_LABEL = Section("train", keys=("positive_label",))


def _reads(flag: str, path: str, **options: Any) -> Arg:
    """A table the command reads (required unless ``options`` say otherwise)."""
    return arg(flag, **{"required": True, "help": path, **options})


def _folder(flag: str, default: str, what: str) -> Arg:
    """A folder the command writes files into."""
    return arg(flag, default=default, help=f"where {what} are written (default: %(default)s)")


_OUT = arg("--out", dest="output", required=True, help="table to write")
_MANIFEST = _reads("--manifest", "results/manifest.csv")
_DOWNLOADS = _reads("--downloads", "results/download.csv")
_VIDEOS = _reads("--videos", "results/videos.csv")
_CLIPS = _reads("--clips", "results/clips.csv")
_SCALED = _reads("--scaled", "results/scaled.csv")
_FOLDS = _reads("--folds", "results/folds.csv")


def _sampling_stage(name: str, help: str, reads: Arg, section: str) -> Command:
    """A sharded stage that samples frames of every video or clip of ``reads``: the keys of
    config ``section`` say how, passed as one mapping, ``sampling``."""
    sections = (Section(section, into="sampling"),)
    return Command(name, help, args=(reads, _OUT), sections=sections, sharded=True)


def _training_args(output: Arg, checkpoints: str, *extra: Arg) -> tuple[Arg, ...]:
    """The arguments of train, train-final and permutation (:mod:`lib.stages.train`,
    :mod:`lib.stages.permutation`): ``output`` and ``extra`` differ, and where a deep model's
    finished work is kept by default (``results/.checkpoints/<model>/<checkpoints>``)."""
    return (
        _reads("--features", "results/features.parquet (feature models)", required=False),
        _reads("--scaled", "results/scaled.csv (deep models)", required=False),
        _CLIPS,
        _FOLDS,
        output,
        arg("--model", required=True, help="model name (train.models)"),
        *extra,
        _json(
            "--params",
            "JSON: keyword arguments of the feature model (config train.params.<model>) or "
            "the deep model's settings (train.deep.<model>)",
        ),
        _resume_dir(f"results/.checkpoints/<model>/{checkpoints}", "deep models: "),
    )


def _json(flag: str, help: str, **options: Any) -> Arg:
    """An argument given as JSON text (``{}`` when left out)."""
    return arg(flag, type="json", default={}, help=help, **options)


def _resume_dir(default: str, who: str = "") -> Arg:
    """``--checkpoint-dir``: where a job keeps what a killed run resumes from."""
    resume = "where finished work survives a killed job, for a resume"
    return arg("--checkpoint-dir", default=None, help=f"{who}{resume} (default {default})")


COMMANDS: tuple[Command, ...] = (
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
        args=(_OUT, arg("--report", required=True, help="ingest report (markdown) to write")),
        sections=(Section("dataset"),),
    ),
    Command(
        "download",
        "fetch one shard of the manifest (yt-dlp; local files linked)",
        sharded=True,
        args=(
            _MANIFEST,
            _OUT,
            _folder("--videos-dir", "data/videos", "videos"),
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
        args=(_DOWNLOADS, _OUT),
        sections=(Section("validate", into="limits"),),
        sharded=True,
    ),
    Command(
        "augment",
        "write augmented clips of one shard of valid videos",
        sharded=True,
        args=(_VIDEOS, _OUT, _folder("--clips-dir", "data/clips", "clips")),
        sections=(Section("augment"), SEED),
    ),
    _sampling_stage("features", "handcrafted features of one shard of clips", _CLIPS, "features"),
    _sampling_stage(
        "scaled-features", "features of one shard of scaled clips", _SCALED, "features"
    ),
    _sampling_stage(
        "signatures", "perceptual-hash signatures of one shard of videos", _VIDEOS, "signatures"
    ),
    Command(
        "near-duplicates",
        "leak audit: match all signatures, report leaks",
        args=(
            _VIDEOS,
            _reads("--signatures", "results/signatures.csv"),
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
        args=(_CLIPS, _OUT, _folder("--scaled-dir", "data/scaled", "scaled clips")),
        sections=(Section("scale"),),
    ),
    Command(
        "gather",
        "concatenate shard tables in shard order",
        args=(
            arg("--kind", required=True, help="table kind (lib/schemas.py)"),
            arg("--stage", default=None, help="stage name, to log its failures by reason"),
            _OUT,
            arg("inputs", nargs="+", help="shard tables, in shard order"),
        ),
    ),
    Command(
        "completeness",
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
        "join both feature tables into one parquet",
        args=(
            _reads("--handcrafted", "results/features_handcrafted.csv"),
            _reads("--scaled", "results/features_scaled.csv"),
            _OUT,
        ),
    ),
    Command(
        "folds",
        "grouped, stratified k-fold assignment of videos",
        args=(
            _VIDEOS,
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
        "fit one model on all folds but one, predict that one",
        description="Feature models (train.params) read --features; deep models "
        "(train.deep) read the scaled clips (--scaled), choose their epoch on an inner split "
        "of the training folds, checkpoint every epoch under --checkpoint-dir and resume "
        "from it when rerun.",
        args=_training_args(
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
        args=_training_args(
            arg("--out-dir", required=True, help="results/models/<model>/final"), "final"
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
        args=_training_args(_OUT, "permutation"),
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
            _SCALED,
            _CLIPS,
            _FOLDS,
            arg("--out-dir", required=True, help="results/pretrain/<run>"),
            _json("--params", "JSON: train.deep.videomae (encoder, frames, size, runtime)"),
            _resume_dir("results/.checkpoints/pretrain/<run>"),
        ),
        sections=(Section("pretrain", into="pretraining"), SEED),
    ),
    Command(
        "pretrain-report",
        "every pretraining run's history in one table and one figure",
        sections=(Section("pretrain", keys=("scope",)),),
        args=(
            _OUT,
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
            _reads("--clips", "results/clips.csv (augmentation types)"),
            _reads("--folds", "results/folds.csv (duplicate groups)"),
            _reads("--videos", "results/videos.csv (platforms)", required=False),
            arg("--permutations", nargs="*", default=[], help="results/models/*/permutation.csv"),
            arg("--robustness", default=None, help="robustness table to write"),
            arg("--platform", default=None, help="per-platform metrics to write"),
            arg("--confusion", default=None, help="confusion matrices to write"),
            _json("--config", "the resolved config, for the report", dest="resolved_config"),
            arg("predictions", nargs="+", help="predictions.csv of every (model, fold)"),
        ),
        sections=(Section("evaluate", keys=("bootstrap",)), POSITIVE_LABEL, SEED),
    ),
    Command(
        "data-quality",
        "data-quality table and figure for the report",
        args=(
            _MANIFEST,
            _DOWNLOADS,
            _VIDEOS,
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


# --------------------------------------------------------------- the function each command calls
#: The commands whose stage module imports scikit-learn, torch or transformers.
HEAVY_COMMANDS = frozenset(
    {"near-duplicates", "folds", "train", "train-final", "permutation", "evaluate"}
    | {"data-quality", "predict", "pretrain", "pretrain-report"}
)


def stage_function(name: str) -> Callable[..., Any]:
    """The function that command ``name`` calls, importing its stage module and no other.

    The one place where the command line imports a stage, on purpose: importing every stage
    module takes seconds (scikit-learn, torch, transformers; docs/BENCHMARKS.md, section
    "Start-up of a stage process"), which every light job (one shard of validate, features,
    scale...) would pay, and the Snakefile, which imports this table for
    :func:`config_fragment` on every job, would pay even for the light stages.
    """
    match name:
        case "demo-corpus":
            from lib.stages.corpus import run_demo_corpus as function
        case "manifest":
            from lib.stages.corpus import run_manifest as function
        case "download":
            from lib.stages.download import download_shard as function
        case "validate":
            from lib.stages.validate import validate_shard as function
        case "augment":
            from lib.stages.augment import augment_shard as function
        case "features":
            from lib.stages.features import features_shard as function
        case "scaled-features":
            from lib.stages.features import scaled_features_shard as function
        case "merge-features":
            from lib.stages.features import merge_features as function
        case "signatures":
            from lib.stages.signatures import signatures_shard as function
        case "scale":
            from lib.stages.scale import scale_shard as function
        case "gather":
            from lib.stages.gather import run_gather as function
        case "completeness":
            from lib.stages.gather import run_completeness as function
        case "near-duplicates":
            from lib.stages.near_duplicates import run_near_duplicates as function
        case "folds":
            from lib.stages.folds import run_folds as function
        case "train":
            from lib.stages.train import run_train as function
        case "train-final":
            from lib.stages.train import run_train_final as function
        case "permutation":
            from lib.stages.permutation import run_permutation as function
        case "pretrain":
            from lib.stages.pretrain import run_pretrain as function
        case "pretrain-report":
            from lib.stages.pretrain import run_pretrain_report as function
        case "evaluate":
            from lib.stages.evaluate import run_evaluate as function
        case "data-quality":
            from lib.stages.evaluate import run_data_quality as function
        case "predict":
            # its driver takes the command line's keywords as they are: no glue
            from lib.predict import predict_videos as function
        case _:
            raise KeyError(f"no stage function for command {name!r}")
    return function
