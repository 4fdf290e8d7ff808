"""Which tables each feature model reads, and the start-up check of the ``embeddings`` section.

The models on frozen-encoder embeddings (``probe``, ``knn``, ``probe_hc``; built in
:mod:`lib.train.feature_models`) are feature models: same train, permutation, evaluate and
predict contracts; only their input tables differ. This module imports neither torch nor
scikit-learn: the Snakefile reads it on every run (``workflow/rules/common.smk``).
"""

from __future__ import annotations

from lib.config import ConfigError
from lib.train.check import PretrainedNotFound, locate_pretrained, unresolvable_message

#: model -> the tables it reads, joined on clip_id in this order (the others: features only).
MODEL_INPUTS: dict[str, tuple[str, ...]] = {
    "probe": ("embeddings",),
    "knn": ("embeddings",),
    "probe_hc": ("features", "embeddings"),
}


def model_inputs(name: str) -> tuple[str, ...]:
    """The tables feature model ``name`` reads: ``features`` and/or ``embeddings``."""
    return MODEL_INPUTS.get(name, ("features",))


def reads_embeddings(name: str) -> bool:
    """Whether model ``name`` needs the embeddings stage."""
    return "embeddings" in model_inputs(name)


def embeddings_problems(config: dict) -> list[str]:
    """Start-up problems of the ``embeddings`` section when a listed model reads it: an
    encoder found neither in a folder nor in the Hugging Face cache (nor, online, the hub).
    A ``tiny`` encoder is built by the run (rule tiny_encoder): nothing to find."""
    models = config.get("train", {}).get("models", [])
    section = config.get("embeddings", {})
    if not any(reads_embeddings(m) for m in models) or section.get("tiny"):
        return []
    model = section.get("model", "")
    try:
        locate_pretrained(model)
    except PretrainedNotFound as error:
        return [unresolvable_message("embeddings.model", model, error)]
    return []


def check_embeddings_config(config: dict) -> None:
    """Raise :class:`ConfigError` naming every problem of :func:`embeddings_problems`."""
    problems = embeddings_problems(config)
    if problems:
        raise ConfigError(problems)
