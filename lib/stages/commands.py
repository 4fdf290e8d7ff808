"""What each ``python -m lib`` command runs and which configuration it takes.

One row per subcommand: its inputs and outputs (per-job arguments: files, shard, model,
fold) and the config sections its parameters come from; :data:`FUNCTIONS` names the function
of ``lib/stages/`` it calls; the parts of a row are :mod:`lib.stages.command_spec`'s. The parameters themselves are not spelled here: every
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

import importlib
from typing import Any, Callable

from lib.config import load_schema
from lib.stages.command_spec import Command, Section
from lib.stages.data_commands import DATA_COMMANDS
from lib.stages.model_commands import MODEL_COMMANDS

#: Where sharded stages keep their progress (the ``--progress-dir`` default).
PROGRESS_DIR = "results/.progress"

COMMANDS: tuple[Command, ...] = DATA_COMMANDS + MODEL_COMMANDS


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
    | {
        "data-quality",
        "predict",
        "test-corpus-audit",
        "test-corpus-score",
        "pretrain",
        "pretrain-report",
        "embeddings",
        "tiny-encoder",
    }
)


#: The function each command calls, as ``module:name`` (imported by :func:`stage_function`).
FUNCTIONS: dict[str, str] = {
    "demo-corpus": "lib.stages.corpus:run_demo_corpus",
    "manifest": "lib.stages.corpus:run_manifest",
    "download": "lib.stages.download:download_shard",
    "validate": "lib.stages.validate:validate_shard",
    "augment": "lib.stages.augment:augment_shard",
    "features": "lib.stages.features:features_shard",
    "scaled-features": "lib.stages.features:scaled_features_shard",
    "merge-features": "lib.stages.features:merge_features",
    "signatures": "lib.stages.signatures:signatures_shard",
    "scale": "lib.stages.scale:scale_shard",
    "embeddings": "lib.stages.embeddings:embeddings_shard",
    "tiny-encoder": "lib.stages.embeddings:run_tiny_encoder",
    "gather": "lib.stages.gather:run_gather",
    "completeness": "lib.stages.gather:run_completeness",
    "near-duplicates": "lib.stages.near_duplicates:run_near_duplicates",
    "folds": "lib.stages.folds:run_folds",
    "train": "lib.stages.train:run_train",
    "train-final": "lib.stages.train:run_train_final",
    "permutation": "lib.stages.permutation:run_permutation",
    "pretrain": "lib.stages.pretrain:run_pretrain",
    "pretrain-report": "lib.stages.pretrain:run_pretrain_report",
    "evaluate": "lib.stages.evaluate:run_evaluate",
    "protocol-folds": "lib.stages.protocols:run_protocol_folds",
    "data-quality": "lib.stages.evaluate:run_data_quality",
    "test-corpus-manifest": "lib.stages.corpus:run_test_corpus_manifest",
    "test-corpus-audit": "lib.stages.test_corpus:run_test_corpus_audit",
    "test-corpus-score": "lib.stages.test_corpus:run_test_corpus_score",
    "predict": "lib.predict:predict_videos",
}


def stage_function(name: str) -> Callable[..., Any]:
    """The function that command ``name`` calls (:data:`FUNCTIONS`), importing its stage
    module and no other.

    The one place where the command line imports a stage, on purpose: importing every stage
    module takes seconds (scikit-learn, torch, transformers; docs/BENCHMARKS.md, section
    "Start-up of a stage process"), which every light job (one shard of validate, features,
    scale...) would pay, and the Snakefile, which imports this table for
    :func:`config_fragment` on every job, would pay even for the light stages.
    """
    if name not in FUNCTIONS:
        raise KeyError(f"no stage function for command {name!r}")
    module, attribute = FUNCTIONS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
