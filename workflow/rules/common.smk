# Config validation, sharding and the input functions every rule file uses.
import json
import os
import sys

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")


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
FOLDS = list(range(config["folds"]["k"]))
# Models with a permutation test: one job each (all permutations inside it).
PERMUTED = [m for m in config["evaluate"]["permutation"]["models"] if m in MODELS]


def mem_mb(base):
    """Memory request that grows with each retry of a failed job."""
    return lambda wildcards, attempt: base * attempt


def runtime(base):
    """Runtime request (minutes) that grows with each retry of a failed job."""
    return lambda wildcards, attempt: base * attempt


def as_json(section):
    """A config section as one JSON argument for the `python -m lib` command line."""
    return json.dumps(section, sort_keys=True)


def dataset_inputs(wildcards):
    """Files the manifest is built from, so that editing them reruns ingest."""
    fmt, path = config["dataset"]["format"], config["dataset"]["path"]
    if fmt == "demo":
        return [f"{path}/index.csv"]
    if fmt == "fvc":
        return [f"{path}/FVC.csv", f"{path}/FVC_dup.csv"]
    if fmt in ("csv", "wlasl"):
        return [path]
    return []


def prediction_files():
    return expand(
        "results/models/{model}/fold-{fold}/predictions.csv", model=MODELS, fold=FOLDS
    )


def permutation_files():
    return expand("results/models/{model}/permutation.csv", model=PERMUTED)


def predict_model_dir(wildcards):
    model = config["predict"]["model"]
    if model not in MODELS:
        raise ValueError(
            f"predict.model {model!r} is not in train.models {MODELS}: add it there or "
            "choose one of them"
        )
    if not config["predict"]["input"]:
        raise ValueError(
            "predict.input is empty: set it to a folder of videos or a CSV"
        )
    return f"results/models/{model}/final/model.joblib"


def get_final_output():
    return [
        "results/manifest.csv",
        "results/download.csv",
        "results/videos.csv",
        "results/clips.csv",
        "results/scaled.csv",
        "results/features.parquet",
        "results/folds.csv",
        *prediction_files(),
        "results/metrics.csv",
        "results/summary.csv",
        "results/reports/evaluation.md",
        "results/robustness.csv",
        "results/reports/data_quality.csv",
        "results/reports/completeness.md",
    ]


# Compute nodes without internet: run the download stage on the host that runs Snakemake
# (`local_download: true` in a config file; see docs/CLUSTER.md).
if config["local_download"]:

    localrules:
        download,
        gather_download,
