"""The deep models' names and settings, read from the schema: nothing here imports torch.

The schema (``workflow/schemas/config.schema.yaml``) is where both are defined, once:

- a deep model family is named by its settings entry ``train.deep.<name>``:
  :data:`DEEP_MODELS` lists those entries, in the schema's order. The Snakefile imports this
  module (every job re-reads the Snakefile, so it must stay cheap) and
  :func:`lib.train.models.register_model` refuses a builder whose name has no entry;
- one model's settings are ``$defs.deep_model``: :class:`DeepSettings` is a frozen
  dataclass made from its properties, with their defaults (``None`` for ``micro_batch`` and
  ``workers`` means "choose from the hardware").
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import operator

from lib.config import ConfigError, load_schema

__all__ = ["DEEP_MODELS", "DeepSettings", "as_settings", "is_deep", "settings_for"]

_SCHEMA = load_schema()

#: Names of the deep model families: the schema's ``train.deep`` entries.
DEEP_MODELS: tuple[str, ...] = tuple(
    _SCHEMA["properties"]["train"]["properties"]["deep"]["properties"]
)

_PYTHON_TYPES = {
    "integer": int,
    "number": float,
    "string": str,
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


def _field(name: str, prop: dict) -> tuple:
    """``(name, type, field)`` of one ``$defs.deep_model`` property, its default the schema's."""
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    annotation = functools.reduce(operator.or_, (_PYTHON_TYPES[k] for k in kinds))
    default = prop["default"]
    if "number" in kinds and type(default) is int:  # YAML reads `0` as a whole number
        default = float(default)
    if isinstance(default, (dict, list)):  # a fresh copy for every instance
        return (
            name,
            annotation,
            dataclasses.field(default_factory=functools.partial(copy.deepcopy, default)),
        )
    return name, annotation, dataclasses.field(default=default)


class _SettingsMethods:
    @classmethod
    def from_dict(cls, values: dict | None, model: str = "<model>") -> "DeepSettings":
        """Settings from a ``train.deep.<model>`` mapping; keys left out take the defaults."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"train.deep.{model}: unknown key(s) {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


DeepSettings = dataclasses.make_dataclass(
    "DeepSettings",
    [_field(name, prop) for name, prop in _SCHEMA["$defs"]["deep_model"]["properties"].items()],
    bases=(_SettingsMethods,),
    namespace={
        "__doc__": "Every setting of one deep model (config ``train.deep.<model>``); its fields "
        "and their defaults are the schema's ``$defs.deep_model``."
    },
    frozen=True,
)
DeepSettings.__module__ = __name__  # where it is defined, not the dataclasses module


def is_deep(name: str) -> bool:
    return name in DEEP_MODELS


def as_settings(settings: DeepSettings | dict | None, model: str) -> DeepSettings:
    """``settings`` as :class:`DeepSettings` (a ``train.deep.<model>`` mapping is read)."""
    if isinstance(settings, DeepSettings):
        return settings
    return DeepSettings.from_dict(settings, model)


def settings_for(train_config: dict, model: str) -> DeepSettings:
    """The resolved settings of deep ``model`` from the config's ``train`` section."""
    return DeepSettings.from_dict((train_config.get("deep") or {}).get(model), model)
