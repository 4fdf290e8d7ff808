"""Start-up check of the ``train`` section: the mistakes the schema cannot see, before any job.

``workflow/rules/common.smk`` calls :func:`check_train_config` once per run, in the process
the user started, after :func:`lib.config.validate_config`; each deep job checks its model's
settings again (:func:`lib.train.models.create_model`). Checked: a deep model's freeze
spelling, sizes and micro-batch, the clip length a checkpoint fixes, and the keyword
arguments of the feature models (``train.params``).

The Snakefile imports this module on every read, so two imports wait here until a check
needs them, each named where it stands: scikit-learn (only when ``train.params`` holds
arguments to check) and transformers, which imports torch (only when a family whose
checkpoint fixes the clip length names a checkpoint in ``pretrained``). Each costs seconds
(docs/BENCHMARKS.md, section "Start-up of a Snakemake run").
"""

from __future__ import annotations

import re

from lib.config import ConfigError, _nearest
from lib.train.settings import DEEP_MODELS, DeepSettings, is_deep, settings_for

__all__ = ["check_settings", "check_train_config", "settings_problems", "train_config_problems"]

#: Families whose checkpoint fixes ``num_frames`` and ``image_size`` (their position
#: embeddings span the clip): the settings must equal the checkpoint's.
CHECKPOINT_FIXES_CLIP_LENGTH = ("videomae", "timesformer")

#: ``pretrained: ssl``: start from the fold's own self-supervised pretraining (the
#: ``pretrain`` stage, :mod:`lib.train.pretrain`), which makes VideoMAE encoders only.
SSL = "ssl"
SSL_MODELS = ("videomae",)

_FREEZE = re.compile(r"^(none|backbone|all_but_last_(\d+))$")


def check_train_config(train_config: dict, *, load_pretrained_config: bool = True) -> None:
    """Raise :class:`ConfigError` naming every problem of the config's ``train`` section."""
    problems = train_config_problems(train_config, load_pretrained_config=load_pretrained_config)
    if problems:
        raise ConfigError(problems)


def train_config_problems(train_config: dict, *, load_pretrained_config: bool = True) -> list:
    """Every problem of the ``train`` section, one message each ([] when it can run)."""
    problems = []
    unknown = sorted(set(train_config.get("deep") or {}) - set(DEEP_MODELS))
    if unknown:
        problems.append(
            f"train.deep has settings for {unknown}, which are not deep models; "
            f"deep models are {list(DEEP_MODELS)}"
        )
    for model in train_config.get("models", []):
        if is_deep(model):
            try:
                settings = settings_for(train_config, model)
            except ConfigError as error:
                problems += error.problems
                continue
            problems += settings_problems(
                model, settings, load_pretrained_config=load_pretrained_config
            )
    for model, params in (train_config.get("params") or {}).items():
        if isinstance(params, dict) and params:
            problems += feature_param_problems(model, params)
    return problems


def check_settings(model: str, s: DeepSettings, *, load_pretrained_config: bool = True) -> None:
    """Raise :class:`ConfigError` for deep settings that would fail mid-run."""
    problems = settings_problems(model, s, load_pretrained_config=load_pretrained_config)
    if problems:
        raise ConfigError(problems)


def settings_problems(model: str, s: DeepSettings, *, load_pretrained_config: bool = True) -> list:
    """What would make deep model ``model`` fail mid-run with settings ``s``.

    The freeze spelling, the sizes, and, for families whose checkpoint fixes the clip length
    (:data:`CHECKPOINT_FIXES_CLIP_LENGTH`), that ``num_frames``/``image_size`` equal the
    checkpoint's config (``AutoConfig.from_pretrained``: config.json only, not the weights)
    or the ``model_config`` overrides.
    """
    key = f"train.deep.{model}"
    if not is_deep(model):
        return [f"{model!r} is not a deep model; deep models are {list(DEEP_MODELS)}"]
    problems = []
    if not _FREEZE.match(s.freeze):
        problems.append(
            f"{key}.freeze={s.freeze!r}: use none, backbone or all_but_last_N "
            "(N = trainable last blocks, e.g. all_but_last_2)"
        )
    if s.num_frames < 1 or s.image_size < 8:
        problems.append(f"{key}: num_frames must be >= 1 and image_size >= 8")
    if s.micro_batch is not None and s.micro_batch > s.batch_size:
        problems.append(
            f"{key}.micro_batch={s.micro_batch} exceeds batch_size="
            f"{s.batch_size}: lower micro_batch or raise batch_size"
        )
    if s.pretrained == SSL and model not in SSL_MODELS:
        problems.append(
            f"{key}.pretrained=ssl: the pretrain stage makes {' and '.join(SSL_MODELS)} "
            f"encoders only; give {model} a hub id, a local folder or null"
        )
    if model in CHECKPOINT_FIXES_CLIP_LENGTH:
        problems += _clip_length_problems(model, s, load_pretrained_config=load_pretrained_config)
    return problems


def _clip_length_problems(model: str, s: DeepSettings, *, load_pretrained_config: bool) -> list:
    key = f"train.deep.{model}"
    if s.pretrained and s.pretrained != SSL and load_pretrained_config:
        # Deferred (module docstring): transformers imports torch.
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(s.pretrained)
        except (OSError, ValueError) as exc:
            return [
                f"{key}.pretrained={s.pretrained!r} cannot be read ({exc}); give a hub id "
                "reachable from here or a local folder written by save_pretrained"
            ]
        expected = {"num_frames": config.num_frames, "image_size": config.image_size}
        source = f"the checkpoint {s.pretrained!r}"
    else:
        expected = {
            k: s.model_config[k] for k in ("num_frames", "image_size") if k in s.model_config
        }
        source = f"{key}.model_config"
    problems = [
        f"{key}.{name}={getattr(s, name)} but {source} fixes {name}={value}: {model} takes "
        f"exactly that many {'frames' if name == 'num_frames' else 'pixels'}; set "
        f"{key}.{name}: {value}"
        for name, value in expected.items()
        if value != getattr(s, name)
    ]
    tubelet = s.model_config.get("tubelet_size", 2)
    if model == "videomae" and s.pretrained in (None, SSL) and s.num_frames % tubelet:
        problems.append(
            f"{key}.num_frames={s.num_frames} is not a multiple of the tubelet size "
            f"{tubelet}: choose an even num_frames"
        )
    return problems


def feature_param_problems(model: str, params: dict) -> list:
    """Keys of ``train.params.<model>`` that the feature model does not take."""
    # Deferred (module docstring): scikit-learn, only when there are arguments to check.
    from lib.train.feature_models import MODELS, valid_params

    if model not in MODELS:  # not a feature model: the schema names it
        return []
    valid = valid_params(model)
    problems = []
    for name in params:
        if name not in valid:
            near = _nearest(str(name), valid)
            hint = f"did you mean {near}?" if near else f"valid: {', '.join(valid)}"
            problems.append(f"unknown key train.params.{model}.{name}; {hint}")
    return problems
