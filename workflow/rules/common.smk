# Config validation, sharding and the input functions every rule file uses.
import csv
import json
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
from lib.stages.commands import config_fragment
from lib.config import (
    ConfigError,
    dataset_files,
    load_schema,
    typed_config,
    validate_config,
)
from lib.train.check import SSL, SSL_SETTINGS, check_train_config
from lib.train.embedding_models import check_embeddings_config, model_inputs
from lib.train.settings import is_deep

# Bad configuration stops here, before any job: every mistake named by its key, with the
# fix (lib/config.py; the train section's models and their settings: lib/train/check.py,
# e.g. a clip length the checkpoint does not take, a misspelt freeze, an argument a feature
# model does not take). Once, in the process the user started: a cluster job reads this
# file again on its node, and the train check may import scikit-learn or torch.
# Snakemake's own validate then fills in the schema's defaults, everywhere. Before both:
# nested --config values arrive as text (YAML's base loader), read as the schema types
# them, in every process (a cluster job gets the same --config again).
config.update(typed_config(config))
if workflow.is_main_process:
    try:
        validate_config(config)
        check_train_config(config.get("train", {}))
    except ConfigError as error:
        raise WorkflowError(str(error)) from None
validate(config, "../schemas/config.schema.yaml")
# The frozen encoder of the embedding models (lib/train/embedding_models.py), with defaults.
if workflow.is_main_process:
    try:
        check_embeddings_config(config)
    except ConfigError as error:
        raise WorkflowError(str(error)) from None


scattergather:
    shards=config["shards"],


# The one Python environment of every rule, for --software-deployment-method conda.
ENV = "../../envs/vidstage.yaml"

# Every job runs the package as `"$VIDSTAGE_PYTHON" -m lib`: the interpreter that runs
# Snakemake, never whichever `python` comes first on the caller's PATH (a new user's shell
# has not activated the venv; SLURM jobs inherit that PATH). Under conda deployment it is
# the environment's own python. Jobs inherit this process's environment.
os.environ.update(
    VIDSTAGE_PYTHON=(
        "python"
        if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
        else sys.executable
    )
)

MODELS = list(config["train"]["models"])
DEEP_MODELS = [m for m in MODELS if is_deep(m)]
FEATURE_MODELS = [m for m in MODELS if not is_deep(m)]
FOLDS = list(range(config["folds"]["k"]))
# Models with a permutation test: one job each (all permutations inside it).
PERMUTED = [m for m in config["evaluate"]["permutation"]["models"] if m in MODELS]
# Evaluation protocols beside k-fold (protocols.smk): leave_one_<column>_out, whose splits
# (one per value of the column with enough videos) are a folds table the train rules run
# as folds; their runs live under results/models/<model>/<protocol>/fold-<k>.
LOGO = config["evaluate"]["leave_one_group_out"]
PROTOCOL_DIRS = (
    [f"leave_one_{LOGO['column']}_out"]
    if "leave_one_group_out" in config["evaluate"]["protocols"]
    else []
)
# A training run of the cross-validation: fold-<k> (kfold) or <protocol>/fold-<k>.
SPLIT_PATTERN = rf"(?:(?:{'|'.join(PROTOCOL_DIRS) or '(?!)'})/)?fold-\d+"
# The protocols with a permutation test (evaluate.permutation.protocols, those also run): as
# the {protocol_dir} of its files, "" (kfold: results/models/<model>/permutation.csv) or
# "<protocol>/" (its own folds table and splits).
PERMUTED_PROTOCOLS = config["evaluate"]["permutation"]["protocols"]
PERMUTED_DIRS = [
    *([""] if "kfold" in PERMUTED_PROTOCOLS else []),
    *(f"{p}/" for p in PROTOCOL_DIRS if "leave_one_group_out" in PERMUTED_PROTOCOLS),
]
# (a group: an empty pattern would mean none, Snakemake's default that never matches "")
PERMUTED_DIR_PATTERN = f"(?:{'|'.join(PERMUTED_DIRS)})" if PERMUTED_DIRS else "(?!)"

# Self-supervised pretraining (pretrain.smk): the deep models that start from it
# (train.deep.<model>.pretrained: ssl; videomae only, lib/train/check.py) and its runs: one
# per fold and one for train_final, or one on the whole corpus (pretrain.scope: corpus).
SSL_MODELS = [
    m for m in DEEP_MODELS if (config["train"]["deep"].get(m) or {}).get("pretrained") == SSL
]
TRANSDUCTIVE = config["pretrain"]["scope"] == "corpus"
PRETRAIN_RUNS = ["corpus"] if TRANSDUCTIVE else [*(f"fold-{k}" for k in FOLDS), "final"]
# ... and one per split of the other protocols (their number is the data's: a pattern).
PRETRAIN_RUN_PATTERN = "|".join(
    [*PRETRAIN_RUNS, *([] if TRANSDUCTIVE else [rf"(?:{p})/fold-\d+" for p in PROTOCOL_DIRS])]
)
if not SSL_MODELS:
    PRETRAIN_RUNS = []
    PRETRAIN_RUN_PATTERN = "(?!)"
if workflow.is_main_process and set(SSL_MODELS) & set(PERMUTED):
    raise WorkflowError(
        f"evaluate.permutation.models has {sorted(set(SSL_MODELS) & set(PERMUTED))}, whose "
        "train.deep.<model>.pretrained is ssl: the permutation test retrains every fold in "
        "one job and cannot start each fold from its own pretraining. Remove it from "
        "evaluate.permutation.models, or set its pretrained to null"
    )


def model_pattern(names):
    """Wildcard regex matching exactly these model names (none: a pattern that never matches)."""
    return "|".join(names) or "(?!)"


def mem_mb(base):
    """Memory request that grows with each retry of a failed job."""
    return lambda wildcards, attempt: base * attempt


def mem_mb_with_input(base, per_input_mb):
    """Memory request of a job that holds its input in memory: ``base`` MB plus
    ``per_input_mb`` MB per MB of input, growing with each retry (a missing input, as in a
    dry run, counts as empty)."""
    return lambda wildcards, input, attempt: int(base + per_input_mb * input.size_mb) * attempt


def runtime(base):
    """Runtime request (minutes) that grows with each retry of a failed job."""
    return lambda wildcards, attempt: base * attempt


def as_json(section):
    """A config section as one JSON argument for the `python -m lib` command line."""
    return json.dumps(section, sort_keys=True)


CONFIG_SCHEMA = load_schema()


def stage_config(command):
    """The config sections `python -m lib <command>` reads, as its --config-json argument.

    Which sections: lib/stages/commands.py; every key of them reaches the stage as a keyword, so a
    rule never lists parameters one by one (docs/DEVELOPING.md, "Adding a stage parameter").
    """
    return as_json(config_fragment(command, config, CONFIG_SCHEMA))


# The model stages (train, permutation, train_final) each make one rule per kind of model
# from one definition: `<stage>` for the feature models, `<stage>_deep` for the deep ones.
# Their jobs differ only through the functions below; the names differ so that
# profiles/slurm-gpu can give GPUs, memory and threads to the deep jobs only (its
# set-resources and set-threads go by rule name).
MODELS_BY_KIND = {"feature": FEATURE_MODELS, "deep": DEEP_MODELS}


def kind_rule_name(stage, kind):
    """The stage's rule name for this kind of model, e.g. `train` and `train_deep`."""
    return stage if kind == "feature" else f"{stage}_deep"


def model_files(kind, folder):
    """What a fit writes into `folder` besides its predictions and train_info.json."""
    if kind == "deep":
        return {"history": f"{folder}/history.csv", "weights": f"{folder}/model.pt"}
    return {"model": f"{folder}/model.joblib"}


# The disk budget (scale.remove_clips; docs/CLUSTER.md, "Disk"): the readers of data/clips/
# (features, scale) take augment's own shard table instead of the gathered clips.csv, as
# shard 1-of-1 with a progress folder of their own, and scale, which runs after the other
# readers of the shard, removes its clips. The gathered tables are the same either way.
REMOVE_CLIPS = config["scale"]["remove_clips"]


def clip_reader_input(wildcards):
    """The clips table a reader of data/clips/ processes: all of clips.csv (sharded), or,
    under the disk budget, augment's shard table."""
    if REMOVE_CLIPS:
        return f"results/shards/augment/{wildcards.scatteritem}.csv"
    return "results/clips.csv"


def clip_reader_shard(wildcards):
    """The --shard (and, under the disk budget, --progress-dir) of a reader of data/clips/."""
    if REMOVE_CLIPS:
        return f"--shard 1-of-1 --progress-dir results/.progress/{wildcards.scatteritem}"
    return f"--shard {wildcards.scatteritem}"


def clip_readers_before_removal(wildcards):
    """Under the disk budget, what scale's removal of a shard's clips waits for: the other
    readers' results on those clips (features' shard; the embeddings, which read them all)."""
    if not REMOVE_CLIPS:
        return []
    reads = globals().get("model_inputs", lambda model: ("features",))  # embedding models
    embeddings = any("embeddings" in reads(m) for m in FEATURE_MODELS)
    return [f"results/shards/features/{wildcards.scatteritem}.csv"] + (
        ["results/embeddings.parquet"] if embeddings else []
    )


def export_files(kind, folder):
    """A final deep model's copy that opens without this project (lib/train/export.py)."""
    return {"export": directory(f"{folder}/export")} if kind == "deep" else {}


def encoder_files():
    """What the embedding jobs wait for: the tiny encoder the run builds (embeddings.tiny;
    rule tiny_encoder), or nothing (a checkpoint found at start-up)."""
    if not config["embeddings"]["tiny"]:
        return []
    folder = config["embeddings"]["model"].rstrip("/")
    files = ("config.json", "model.safetensors", "preprocessor_config.json")
    return [f"{folder}/{name}" for name in files]


def model_data(wildcards):
    """What a model learns from: a deep model's scaled clips, or the feature table and/or the
    embeddings (lib/train/embedding_models.py)."""
    if is_deep(wildcards.model):
        return "results/scaled.csv"
    return [f"results/{table}.parquet" for table in model_inputs(wildcards.model)]


def model_data_option(wildcards):
    """The `python -m lib` option that passes model_data's file."""
    return "--scaled" if is_deep(wildcards.model) else "--features"


def model_settings(wildcards):
    """The model's --params: train.deep.<model> for a deep model, else train.params.<model>;
    `pretrained: ssl` becomes the folder of its run's pretraining (pretrained_input)."""
    section = "deep" if is_deep(wildcards.model) else "params"
    settings = dict(config["train"][section].get(wildcards.model, {}))
    if wildcards.model in SSL_MODELS:
        settings["pretrained"] = pretrain_folder(training_run(wildcards))
    return as_json(settings)


def training_run(wildcards):
    """The split of a train job (fold-<k>, <protocol>/fold-<k>), final for train_final
    (permutation is refused above)."""
    return wildcards.split if "split" in wildcards.keys() else "final"


def run_fold(run):
    """The fold a run holds out: <k> of fold-<k> and <protocol>/fold-<k>; -1 for final."""
    return int(run.rsplit("fold-", 1)[1]) if "fold-" in run else -1


def run_folds_table(run):
    """The folds table a run's fold refers to: a protocol's own, or results/folds.csv."""
    protocol = os.path.dirname(run)
    return f"results/protocols/{protocol}/folds.csv" if protocol else "results/folds.csv"


def split_folds_table(wildcards):
    """The folds table of a train job (its split's) or a pretraining run."""
    return run_folds_table(wildcards.split if "split" in wildcards.keys() else wildcards.run)


def pretrain_folder(run):
    """The pretraining a training run starts from: its own, or the corpus-wide one."""
    return f"results/pretrain/{'corpus' if TRANSDUCTIVE else run}"


def pretrain_settings():
    """The pretraining's --params: the keys of train.deep.videomae it reads (SSL_SETTINGS)."""
    settings = config["train"]["deep"].get("videomae") or {}
    return as_json({k: v for k, v in settings.items() if k in SSL_SETTINGS})


def pretrain_files(folder):
    """What a pretraining run writes: a save_pretrained folder, its history and info."""
    return {
        "config": f"{folder}/config.json",
        "weights": f"{folder}/model.safetensors",
        "processor": f"{folder}/preprocessor_config.json",
        "history": f"{folder}/history.csv",
        "info": f"{folder}/pretrain_info.json",
    }


def pretrained_input(wildcards):
    """A model with pretrained: ssl waits for its run's pretraining; the others for nothing."""
    if wildcards.model not in SSL_MODELS:
        return []
    folder = pretrain_folder(training_run(wildcards))
    return [f"{folder}/config.json", f"{folder}/model.safetensors"]


def pretrain_report_inputs():
    """The history of every pretraining the cross-validation uses (not train_final's)."""
    return sorted({f"{pretrain_folder(f'fold-{k}')}/history.csv" for k in FOLDS})


def checkpoint_option(run):
    """A deep model's --checkpoint-dir, results/.checkpoints/{model}/<run> (none for others).

    Snakemake does not know about that folder, so it survives a failed or killed job, whose
    rerun resumes from the last finished epoch (lib/train/checkpoint.py).
    """

    def option(wildcards):
        if not is_deep(wildcards.model):
            return ""
        run_dir = run.format(**dict(wildcards.items()))
        return f"--checkpoint-dir results/.checkpoints/{wildcards.model}/{run_dir}"

    return option


def by_kind(feature, deep):
    """A resource request (mem_mb, runtime) by the model's kind, growing with each retry."""
    return lambda wildcards, attempt: (deep if is_deep(wildcards.model) else feature) * attempt


def dataset_inputs(wildcards):
    """Files the manifest is built from, so that editing them reruns ingest."""
    return dataset_files(config["dataset"]["format"], config["dataset"]["path"])


def near_duplicates_input():
    """The leak audit's pairs, which folds need unless they use annotated groups only."""
    if config["folds"]["group_by"] == "annotated":
        return []
    return "results/near_duplicates.csv"


# The report's sections, by caption (workflow/report/<caption>.rst).
REPORT_CATEGORIES = {
    "summary": "1. Headline (originals)",
    "platform": "1. Headline (originals)",
    "curves": "1. Headline (originals)",
    "generalisation": "1. Headline (originals)",
    "confusion": "1. Headline (originals)",
    "null": "2. Permutation test",
    "robustness": "3. Robustness (augmented clips)",
    "training": "4. Training curves",
    "pretrain": "4. Training curves",
    "data_quality": "5. Data quality",
    "test_corpus": "6. Test corpus",
}


def in_report(path, caption, **label):
    """An output shown in Snakemake's report (`snakemake --report`), under its caption's
    section; its label says what it is (table=... or figure=...)."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=REPORT_CATEGORIES[caption],
        labels=label,
    )


def prediction_files():
    return expand("results/models/{model}/fold-{fold}/predictions.csv", model=MODELS, fold=FOLDS)


def protocol_prediction_files(wildcards):
    """Predictions of every model on every used split of the other protocols (their folds
    tables come from the protocol_folds checkpoint, which says how many splits there are)."""
    files = []
    for protocol in PROTOCOL_DIRS:
        splits = checkpoints.protocol_folds.get(protocol=protocol).output.splits
        with open(splits) as handle:
            rows = list(csv.DictReader(handle))
        folds = sorted(int(r["fold"]) for r in rows if r["status"] == "used")
        files += expand(
            "results/models/{model}/{protocol}/fold-{fold}/predictions.csv",
            model=MODELS,
            protocol=protocol,
            fold=folds,
        )
    return files


def protocol_split_files():
    return expand("results/protocols/{protocol}/splits.csv", protocol=PROTOCOL_DIRS)


def permutation_files():
    return expand(
        "results/models/{model}/{protocol_dir}permutation.csv",
        model=PERMUTED,
        protocol_dir=PERMUTED_DIRS,
    )


def permutation_folds(wildcards):
    """The folds table a permutation test holds out: k-fold's or its protocol's."""
    return run_folds_table(f"{wildcards.protocol_dir}permutation")


def permutation_splits(wildcards):
    """Another protocol's splits table (the splits its permutation test holds out)."""
    protocol = wildcards.protocol_dir.rstrip("/")
    return [f"results/protocols/{protocol}/splits.csv"] if protocol else []


def permutation_splits_option(wildcards):
    """The permutation command's --splits (another protocol's), nothing for kfold."""
    return " ".join(f"--splits {path}" for path in permutation_splits(wildcards))


def predict_model_dir(wildcards):
    model = config["predict"]["model"]
    if model not in MODELS:
        raise ValueError(
            f"predict.model {model!r} is not in train.models {MODELS}: add it there or "
            "choose one of them"
        )
    if not config["predict"]["input"]:
        raise ValueError("predict.input is empty: set it to a folder of videos or a CSV")
    weights = "model.pt" if is_deep(model) else "model.joblib"
    return f"results/models/{model}/final/{weights}"


# The test corpus (test_corpus.smk): on when test_corpus.path is set; the models whose
# final fit scores it.
TEST_CORPUS = config["test_corpus"]
TEST_MODELS = (TEST_CORPUS["models"] or MODELS) if TEST_CORPUS["path"] else []
TEST_DIR = "results/test_corpus"


def test_corpus_files():
    """What `all` builds of the test corpus (nothing when there is none)."""
    if not TEST_MODELS:
        return []
    return [f"{TEST_DIR}/summary.csv", "results/reports/test_corpus.md"]


def test_corpus_inputs(wildcards):
    """The files the test corpus's manifest is read from, so that editing them reruns it."""
    return dataset_files(TEST_CORPUS["format"], TEST_CORPUS["path"])


def get_final_output():
    return [
        "results/manifest.csv",
        "results/download.csv",
        "results/videos.csv",
        "results/clips.csv",
        "results/scaled.csv",
        "results/features.parquet",
        "results/folds.csv",
        "results/near_duplicates.csv",
        "results/reports/leaks.md",
        *prediction_files(),
        "results/metrics.csv",
        "results/summary.csv",
        "results/reports/evaluation.md",
        "results/robustness.csv",
        "results/reports/data_quality.csv",
        "results/reports/completeness.md",
        *(["results/reports/pretrain_history.png"] if SSL_MODELS else []),
        *test_corpus_files(),
    ]


# Compute nodes without internet: run the download stage on the host that runs Snakemake
# (`local_download: true` in a config file; see docs/CLUSTER.md).
if config["local_download"]:

    localrules:
        download,
        gather_download,
