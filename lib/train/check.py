"""Start-up check of the ``train`` section: the mistakes the schema cannot see, before any job.

``workflow/rules/common.smk`` calls :func:`check_train_config` once per run, in the process
the user started, after :func:`lib.config.validate_config`; each deep job checks its model's
settings again (:func:`lib.train.models.create_model`). Checked: a deep model's freeze
spelling, sizes and micro-batch, that its ``pretrained`` checkpoint can be found, the clip
length a checkpoint fixes, and the keyword arguments of the feature models
(``train.params``).

Finding a checkpoint (:func:`locate_pretrained`) never stalls a run that cannot reach the
hub: a local folder must hold ``config.json``; a hub id is looked up in the Hugging Face
cache (``HF_HOME``/``HF_HUB_CACHE``, no network); only when it is not there, and
``HF_HUB_OFFLINE`` is not set, one metadata request asks the hub, with a short timeout
(:data:`HUB_TIMEOUT_S`) and no retries. A checkpoint found nowhere is a start-up error
naming the key and the two fixes (a downloaded folder, or a cache that holds it), not a
traceback in the middle of the first training job.

The Snakefile imports this module on every read, so three imports wait here until a check
needs them, each named where it stands: scikit-learn (only when ``train.params`` holds
arguments to check), huggingface_hub (only when a model names a hub id in ``pretrained``)
and transformers, which imports torch (only when a checkpoint's config.json leaves out
the clip length, so that the family's defaults apply). Each costs time at start-up
(docs/BENCHMARKS.md, section "Start-up of a Snakemake run").
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from lib.config import ConfigError, _nearest
from lib.train.settings import DEEP_MODELS, DeepSettings, is_deep, settings_for

__all__ = [
    "PretrainedNotFound",
    "check_settings",
    "check_train_config",
    "locate_pretrained",
    "settings_problems",
    "train_config_problems",
    "unresolvable_message",
]

#: Families whose checkpoint fixes ``num_frames`` and ``image_size`` (their position
#: embeddings span the clip): the settings must equal the checkpoint's.
CHECKPOINT_FIXES_CLIP_LENGTH = ("videomae", "timesformer")

#: ``pretrained: ssl``: start from the fold's own self-supervised pretraining (the
#: ``pretrain`` stage, :mod:`lib.train.pretrain`), which makes VideoMAE encoders only.
SSL = "ssl"
SSL_MODELS = ("videomae",)
#: The keys of ``train.deep.videomae`` the pretraining reads (the encoder, its input and the
#: runtime choices): changing a fine-tuning key (lr, epochs...) does not redo the pretraining.
SSL_SETTINGS = (
    "num_frames",
    "image_size",
    "model_config",
    "device",
    "precision",
    "micro_batch",
    "workers",
    "cache_mb",
)

#: Seconds the start-up check waits for the hub's answer about a checkpoint that is in
#: neither a local folder nor the cache (one request, no retries).
HUB_TIMEOUT_S = 10.0

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
    fixes_clip = model in CHECKPOINT_FIXES_CLIP_LENGTH
    config_json = None
    if s.pretrained and s.pretrained != SSL and load_pretrained_config:
        try:
            config_json = locate_pretrained(s.pretrained, need_file=fixes_clip)
        except PretrainedNotFound as exc:
            return problems + [unresolvable_message(f"{key}.pretrained", s.pretrained, exc)]
    if fixes_clip:
        problems += _clip_length_problems(model, s, config_json=config_json)
    return problems


def _clip_length_problems(model: str, s: DeepSettings, *, config_json: Path | None) -> list:
    key = f"train.deep.{model}"
    if config_json is not None:
        expected = _clip_length_of(config_json)
        source = f"the checkpoint {s.pretrained!r}"
    elif s.pretrained and s.pretrained != SSL:  # not read (load_pretrained_config=False)
        expected, source = {}, ""
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


class PretrainedNotFound(ValueError):
    """A ``pretrained`` checkpoint found neither in a local folder nor through the hub;
    ``hub_id`` says whether the value was a hub id (the fix differs)."""

    def __init__(self, reason: str, *, hub_id: bool):
        super().__init__(reason)
        self.hub_id = hub_id


def locate_pretrained(
    pretrained: str,
    *,
    need_file: bool = False,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = HUB_TIMEOUT_S,
) -> Path | None:
    """The local ``config.json`` of checkpoint ``pretrained`` (a folder or a hub id).

    In order, stopping at the first answer: a folder (its ``config.json``, which it must
    have); a hub id in the Hugging Face cache (``cache_dir``, default the hub's own under
    ``HF_HOME``; no network); with ``HF_HUB_OFFLINE`` set, not found; else one metadata
    request for the hub's ``config.json`` (``timeout`` seconds, no retries): ``None`` when
    the hub has it, or with ``need_file`` the file downloaded into the cache. Raises
    :class:`PretrainedNotFound` with the reason when none finds it.
    """
    folder = Path(pretrained).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise PretrainedNotFound(
                f"the folder {folder} has no config.json (save_pretrained and `hf download` "
                "write one)",
                hub_id=False,
            )
        return folder / "config.json"
    # Deferred (module docstring): only a hub id needs the hub's client.
    from huggingface_hub import constants, errors, get_hf_file_metadata, hf_hub_download
    from huggingface_hub import hf_hub_url, try_to_load_from_cache
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(pretrained)
    except errors.HFValidationError:
        raise PretrainedNotFound("no such folder, and not a hub id", hub_id=False) from None
    cached = try_to_load_from_cache(pretrained, "config.json", cache_dir=cache_dir)
    if isinstance(cached, str):
        return Path(cached)
    cache = f"the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE}"
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        raise PretrainedNotFound(f"not in {cache}, and HF_HUB_OFFLINE is set", hub_id=True)
    try:
        get_hf_file_metadata(hf_hub_url(pretrained, "config.json"), timeout=timeout)
        if need_file:
            return Path(
                hf_hub_download(
                    pretrained, "config.json", cache_dir=cache_dir, etag_timeout=timeout
                )
            )
    except errors.GatedRepoError:
        reason = "gated on the hub: accept its terms on its page, then `hf auth login`"
        raise PretrainedNotFound(reason, hub_id=True) from None
    except errors.RepositoryNotFoundError:
        reason = "no such model on the hub (or a private one: `hf auth login`)"
        raise PretrainedNotFound(reason, hub_id=True) from None
    except errors.RemoteEntryNotFoundError:
        reason = "the hub has it but without config.json: not a transformers checkpoint"
        raise PretrainedNotFound(reason, hub_id=True) from None
    except Exception as exc:  # noqa: BLE001  (no connection, a timeout, a proxy: one reason)
        reason = f"not in {cache}, and the hub cannot be reached ({type(exc).__name__}: {exc})"
        raise PretrainedNotFound(reason, hub_id=True) from None
    return None


def unresolvable_message(key: str, pretrained: str, error: PretrainedNotFound) -> str:
    """The start-up error for a checkpoint :func:`locate_pretrained` did not find: the key,
    the reason and the fix."""
    if error.hub_id:
        fix = (
            f"download it on a machine with internet (`hf download {pretrained} --local-dir "
            f"models/{pretrained}`; older clients: `huggingface-cli download`), copy the folder "
            f"here and set {key}: models/{pretrained}, or set HF_HOME to a Hugging Face cache "
            "that holds it"
        )
    else:
        fix = (
            f"set {key} to a folder written by save_pretrained or `hf download --local-dir` "
            "(relative paths start from the working directory), or to a hub id"
        )
    return f"{key}={pretrained!r} cannot be found: {error}; {fix}"


def _clip_length_of(config_json: Path) -> dict:
    """``num_frames`` and ``image_size`` a checkpoint's config.json fixes."""
    values = json.loads(Path(config_json).read_text())
    names = ("num_frames", "image_size")
    if all(name in values for name in names):
        return {name: values[name] for name in names}
    # Deferred (module docstring): a config.json that leaves them to the family's defaults.
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(Path(config_json).parent)
    return {name: getattr(config, name) for name in names if hasattr(config, name)}


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
