"""One entry point for every deep model: ``create_model(name, settings, num_classes)``.

Shaped like timm's ``create_model`` over a registry filled by ``@register_model``: a model
family is one builder function; the rule, the training loop and the evaluation never
change when a family is added. The feature (scikit-learn) models keep their own registry
in :mod:`lib.train.feature_models`; :func:`is_deep` tells the two apart.

This module imports neither torch nor transformers at import time: Snakemake imports it at
start-up (:func:`check_train_config`) to turn a bad deep-model configuration into a config
error before any job runs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from lib.config import ConfigError

__all__ = [
    "ConfigError",
    "DeepSettings",
    "register_model",
    "create_model",
    "deep_model_names",
    "is_deep",
    "settings_for",
    "check_train_config",
]


@dataclass(frozen=True)
class DeepSettings:
    """Every setting of one deep model (config ``train.deep.<model>``).

    The defaults are the schema's (workflow/schemas/config.schema.yaml, ``$defs.deep_model``;
    a test keeps the two equal). ``None`` means "choose from the hardware" for
    ``micro_batch`` and ``workers``.
    """

    pretrained: str | None = None
    model_config: dict = field(default_factory=dict)
    num_frames: int = 16
    image_size: int = 224
    freeze: str = "none"
    min_trainable_share: float = 0.01
    allow_low_trainable: bool = False
    epochs: int = 10
    patience: int = 3
    select_on: str = "val_loss"
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    batch_size: int = 8
    micro_batch: int | None = None
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    class_balance: str = "loss_weights"
    val_fraction: float = 0.2
    augment: bool = True
    train_clips: str = "all"
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    cache_mb: float = 0.0

    @classmethod
    def from_dict(cls, values: dict | None, model: str = "<model>") -> "DeepSettings":
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"train.deep.{model}: unknown key(s) {unknown}; " f"valid keys are {sorted(known)}"
            )
        return cls(**values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_FREEZE = re.compile(r"^(none|backbone|all_but_last_(\d+))$")


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., Any]
    fixed_clip_length: (
        bool  # the checkpoint fixes num_frames and image_size (VideoMAE, TimeSformer)
    )
    doc: str


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, fixed_clip_length: bool = False):
    """Decorator: register ``build(settings, num_classes) -> VideoClassifier`` as ``name``."""

    def wrap(fn):
        _REGISTRY[name] = _Entry(fn, fixed_clip_length, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return wrap


def _ensure_builders() -> None:
    if not _REGISTRY:
        import lib.train.models  # noqa: F401  (registers the families)


def deep_model_names() -> list[str]:
    """Names of the registered deep models (imports the model module on first call)."""
    _ensure_builders()
    return sorted(_REGISTRY)


# The names, without importing torch: the start-up check and the CLI need them cheaply.
DEEP_MODELS = ("naive_cnn", "vit_gru", "vit_transformer", "videomae", "timesformer")


def is_deep(name: str) -> bool:
    return name in DEEP_MODELS


def settings_for(train_config: dict, model: str) -> DeepSettings:
    """The resolved settings of deep ``model`` from the config's ``train`` section."""
    return DeepSettings.from_dict((train_config.get("deep") or {}).get(model), model)


def check_settings(model: str, s: DeepSettings, *, load_pretrained_config: bool = True) -> None:
    """Raise :class:`ConfigError` for settings that would fail mid-run.

    Checks the freeze spelling, sizes, and, for families whose checkpoint fixes the clip
    length (VideoMAE, TimeSformer), that ``num_frames``/``image_size`` match the
    checkpoint's config (read with ``AutoConfig.from_pretrained``: config.json only) or the
    ``model_config`` overrides.
    """
    key = f"train.deep.{model}"
    if not is_deep(model):
        raise ConfigError(f"{model!r} is not a deep model; deep models are {list(DEEP_MODELS)}")
    if not _FREEZE.match(s.freeze):
        raise ConfigError(
            f"{key}.freeze={s.freeze!r}: use none, backbone or all_but_last_N "
            "(N = trainable last blocks, e.g. all_but_last_2)"
        )
    if s.num_frames < 1 or s.image_size < 8:
        raise ConfigError(f"{key}: num_frames must be >= 1 and image_size >= 8")
    if s.micro_batch is not None and s.micro_batch > s.batch_size:
        raise ConfigError(
            f"{key}.micro_batch={s.micro_batch} exceeds batch_size="
            f"{s.batch_size}: lower micro_batch or raise batch_size"
        )
    if model in ("videomae", "timesformer"):
        expected = {}
        if s.pretrained and load_pretrained_config:
            from transformers import AutoConfig

            try:
                cfg = AutoConfig.from_pretrained(s.pretrained)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"{key}.pretrained={s.pretrained!r} cannot be read ({exc}); "
                    "give a hub id reachable from here or a local folder "
                    "written by save_pretrained"
                ) from exc
            expected = {"num_frames": cfg.num_frames, "image_size": cfg.image_size}
            source = f"the checkpoint {s.pretrained!r}"
        else:
            expected = {
                k: s.model_config[k] for k in ("num_frames", "image_size") if k in s.model_config
            }
            source = f"{key}.model_config"
        for name, value in expected.items():
            if value != getattr(s, name):
                raise ConfigError(
                    f"{key}.{name}={getattr(s, name)} but {source} fixes "
                    f"{name}={value}: {model} takes exactly that many "
                    f"{'frames' if name == 'num_frames' else 'pixels'}; set "
                    f"{key}.{name}: {value}"
                )
        if model == "videomae":
            tubelet = s.model_config.get("tubelet_size", 2)
            if not s.pretrained and s.num_frames % tubelet:
                raise ConfigError(
                    f"{key}.num_frames={s.num_frames} is not a multiple of the "
                    f"tubelet size {tubelet}: choose an even num_frames"
                )


def check_train_config(train_config: dict, *, load_pretrained_config: bool = True) -> None:
    """Start-up check of every deep model the config lists (called from common.smk)."""
    deep = train_config.get("deep") or {}
    unknown = sorted(set(deep) - set(DEEP_MODELS))
    if unknown:
        raise ConfigError(
            f"train.deep has settings for {unknown}, which are not deep models; "
            f"deep models are {list(DEEP_MODELS)}"
        )
    for model in train_config.get("models", []):
        if is_deep(model):
            check_settings(
                model,
                settings_for(train_config, model),
                load_pretrained_config=load_pretrained_config,
            )


def create_model(name: str, settings: DeepSettings | dict | None = None, *, num_classes: int = 2):
    """Build deep model ``name`` (a :class:`lib.train.models.VideoClassifier`).

    From ``settings.pretrained`` (hub id or local folder) through ``from_pretrained`` when
    given, else from a small config (``settings.model_config`` overrides its fields).
    """
    if not isinstance(settings, DeepSettings):
        settings = DeepSettings.from_dict(settings, name)
    _ensure_builders()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown deep model {name!r}; choose from {sorted(_REGISTRY)}")
    check_settings(name, settings)
    return _REGISTRY[name].build(settings, num_classes)
