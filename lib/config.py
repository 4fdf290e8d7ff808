"""Start-up check of the configuration: every mistake named by its key, with the fix.

Bad *configuration* stops the run before any job starts (bad *input* never does). The
schema (``workflow/schemas/config.schema.yaml``) says what is allowed; this module turns
each violation into one line a user can act on, e.g.::

    unknown key augment.n_augmentation; did you mean n_augmentations?
    shards: -1 is below the minimum 1; set shards to an integer >= 1
    dataset.path: no such file 'my.csv' (format csv reads a CSV file) ...

:func:`check_config` returns every problem at once (a user fixes them in one go);
:func:`validate_config` raises :class:`ConfigError` holding them. Both are plain functions
of a dict, testable without Snakemake; ``workflow/rules/common.smk`` calls
:func:`validate_config` before Snakemake's own ``validate`` fills in the defaults.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Iterable

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"

#: Keys that moved: old dotted path -> what to write instead.
MOVED_KEYS = {
    "download.options.allow_file_urls": "dataset.allow_file_urls (a corpus opts in to file:// "
    "URLs in its own config; a CSV's path column and class folders never need it)",
}

#: What each dataset.format reads at dataset.path: (kind, files inside a folder).
DATASET_PATHS = {
    "fvc": ("folder", ("FVC.csv", "FVC_dup.csv")),
    "csv": ("file", ()),
    "wlasl": ("file", ()),
    "folder": ("folder", ()),
    "demo": ("generated", ()),
}

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "a text value",
    "boolean": "true or false",
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "null": "null",
}


class ConfigError(ValueError):
    """The configuration cannot run; ``problems`` holds one message per mistake."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"the configuration has {len(self.problems)} problem(s); nothing was run:\n{lines}\n"
            "Every key, its type and default: workflow/schemas/config.schema.yaml."
        )


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    import yaml

    # libyaml's loader where PyYAML has it: 10x faster on the schema, read at every start
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {
        int: "a whole number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nearest(word: str, choices: Iterable[str]) -> str | None:
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _describe_error(error) -> list[str]:
    """One message per problem in a jsonschema ``ValidationError``."""
    path = list(error.absolute_path)
    key = _dotted(path)
    schema, value = error.schema, error.instance
    kind = error.validator
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        messages = []
        for extra in sorted(set(value) - set(allowed), key=str):
            full = _dotted([*path, extra])
            if full in MOVED_KEYS:
                messages.append(f"unknown key {full}; it moved: use {MOVED_KEYS[full]}")
                continue
            near = _nearest(str(extra), allowed)
            hint = f"did you mean {near}?" if near else f"valid keys here: {', '.join(allowed)}"
            messages.append(f"unknown key {full}; {hint}")
        return messages
    if kind == "type":
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in wanted)
        default = schema.get("default")
        example = f" (default {_shown(default)})" if "default" in schema else ""
        return [
            f"{key}: expected {words}, got {_type_name(value)} {_shown(value)}; "
            f"set {key} to {words}{example}"
        ]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = schema[kind]
        relation = {
            "minimum": ("below the minimum", ">="),
            "exclusiveMinimum": ("not above", ">"),
            "maximum": ("above the maximum", "<="),
            "exclusiveMaximum": ("not below", "<"),
        }[kind]
        words = _TYPE_WORDS.get(schema.get("type", "number"), "a number")
        return [
            f"{key}: {_shown(value)} is {relation[0]} {bound}; "
            f"set {key} to {words} {relation[1]} {bound}"
        ]
    if kind == "enum":
        choices = [str(c) for c in schema["enum"]]
        near = _nearest(str(value), choices)
        hint = f"did you mean {near}? " if near else ""
        return [
            f"{key}: {_shown(value)} is not one of {', '.join(choices)}; {hint}"
            f"set {key} to one of them"
        ]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [
            f"missing key {_dotted([*path, missing])}; add it to your config "
            f"({schema.get('properties', {}).get(missing, {}).get('description', 'see the schema')})"
        ]
    if kind in ("minLength", "minItems"):
        return [f"{key}: must not be empty; give it a value"]
    if kind == "uniqueItems":
        return [f"{key}: lists an entry twice ({_shown(value)}); list each once"]
    return [f"{key}: {error.message}"]


def with_defaults(config: dict, schema: dict) -> dict:
    """A copy of ``config`` with the schema's defaults filled in where keys are left out."""
    filled = copy.deepcopy(config)
    _fill(filled, schema)
    return filled


def _fill(node: Any, schema: dict) -> None:
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill(node[key], sub)


def _schema_problems(config: dict, schema: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    problems: list[str] = []
    for error in errors:
        for message in _describe_error(error):
            if message not in problems:
                problems.append(message)
    return problems


def _section(config: dict, *keys: str) -> dict:
    node: Any = config
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _semantic_problems(config: dict, *, root: Path) -> list[str]:
    """What the schema cannot say: files that must exist, keys that must agree."""
    problems = []
    dataset = _section(config, "dataset")
    fmt, path = dataset.get("format"), dataset.get("path")
    if fmt in DATASET_PATHS and isinstance(path, str) and path:
        kind, inside = DATASET_PATHS[fmt]
        where = root / path
        shown = f"{path!r}" + ("" if Path(path).is_absolute() else f" (under {root})")
        fix = "fix dataset.path in your config"
        if kind == "file" and not where.is_file():
            what = "is a folder, not a file" if where.is_dir() else "does not exist"
            problems.append(f"dataset.path: {shown} {what}; format {fmt} reads one file; {fix}")
        elif kind == "folder" and not where.is_dir():
            problems.append(
                f"dataset.path: {shown} is not a folder; format {fmt} reads a folder; {fix}"
            )
        elif kind == "folder":
            for name in inside:
                if not (where / name).is_file():
                    problems.append(
                        f"dataset.path: {shown} has no {name}; format {fmt} needs "
                        f"{' and '.join(inside)}; {fix}"
                    )
    features = _section(config, "features")
    lo, hi = features.get("min_frames"), features.get("max_frames")
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        problems.append(
            f"features.min_frames ({lo}) is above features.max_frames ({hi}); "
            "lower min_frames or raise max_frames"
        )
    options = _section(config, "download", "options")
    low, high = options.get("sleep_interval", 0), options.get("max_sleep_interval", 0)
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high:
        if not low:
            problems.append(
                "download.options.max_sleep_interval needs sleep_interval (the lower "
                "bound of the random pause); set download.options.sleep_interval"
            )
        elif high < low:
            problems.append(
                f"download.options.max_sleep_interval ({high}) is below sleep_interval "
                f"({low}); raise max_sleep_interval"
            )
    train = _section(config, "train")
    models = train.get("models")
    positive = train.get("positive_label")
    if isinstance(positive, str) and not positive.strip():
        problems.append(
            "train.positive_label: must not be empty; name the positive class (e.g. fake)"
        )
    for model, params in _section(config, "train", "params").items():
        if isinstance(models, list) and model not in models and isinstance(params, dict) and params:
            problems.append(
                f"train.params.{model} is set but {model} is not in train.models; "
                f"add it to train.models or remove train.params.{model}"
            )
    return problems


def check_config(
    config: dict, *, schema: dict | None = None, root: str | os.PathLike = "."
) -> list[str]:
    """Every problem of ``config`` as one message each ([] when it can run).

    ``root`` is the working directory relative paths resolve against (Snakemake's).
    """
    schema = load_schema() if schema is None else schema
    if not isinstance(config, dict):
        return [f"the configuration must be a mapping of keys, got {_type_name(config)}"]
    problems = _schema_problems(config, schema)
    if not problems:  # cross-key checks assume the types are right
        problems = _semantic_problems(with_defaults(config, schema), root=Path(root).resolve())
    return problems


def validate_config(
    config: dict, *, schema: dict | None = None, root: str | os.PathLike = "."
) -> dict:
    """Return ``config`` unchanged when it can run; raise :class:`ConfigError` otherwise."""
    problems = check_config(config, schema=schema, root=root)
    if problems:
        raise ConfigError(problems)
    return config
