"""Start-up check of the configuration: every mistake named by its key, with the fix.

Bad *configuration* stops the run before any job starts (bad *input* never does). The
schema (``workflow/schemas/config.schema.yaml``) says what is allowed and holds every
default; this module turns each violation into one line a user can act on, e.g.::

    unknown key augment.n_augmentation; did you mean n_augmentations?
    shards: -1 is below the minimum 1; set shards to a whole number >= 1
    dataset.path: 'my.csv' (under /work) does not exist; format csv reads one file; ...

:func:`typed_config` reads text as the schema types it: Snakemake reads nested ``--config``
values with YAML's base loader, so ``--config augment='{n_augmentations: 3}'`` arrives as
the text ``'3'``. :func:`check_config` returns every problem at once (a user fixes them in
one go); :func:`validate_config` raises :class:`ConfigError` holding them. All are plain
functions of a dict, testable without Snakemake; ``workflow/rules/common.smk`` applies
:func:`typed_config` and :func:`validate_config` before Snakemake's own ``validate`` fills
in the defaults.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"

#: What each dataset.format reads at dataset.path: (kind, files inside a folder). "generated":
#: a folder the workflow writes (the demo corpus; its index.csv is what ingest reads).
DATASET_PATHS = {
    "fvc": ("folder", ("FVC.csv", "FVC_dup.csv")),
    "csv": ("file", ()),
    "wlasl": ("file", ()),
    "folder": ("folder", ()),
    "demo": ("generated", ("index.csv",)),
}


def dataset_files(fmt: str, path: str) -> list[str]:
    """The files ingest reads for a corpus (a folder format's listing is not one): the
    manifest's inputs, so that editing them reruns ingest."""
    kind, inside = DATASET_PATHS[fmt]
    return [path] if kind == "file" else [f"{path}/{name}" for name in inside]


_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "a text value",
    "boolean": "true or false",
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "null": "null",
}


# Text that spells a value of another type, as a YAML config file would read it unquoted.
_WHOLE = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False}
_NULLS = ("null", "Null", "NULL", "~")


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
    """The config schema, with the model names a config may list filled in (:func:`model_names`)."""
    # libyaml's loader where PyYAML has it: much faster on the schema, read at every start
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        schema = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    names = model_names(schema)
    train = schema["properties"]["train"]["properties"]
    permutation = schema["properties"]["evaluate"]["properties"]["permutation"]["properties"]
    test_corpus = schema["properties"]["test_corpus"]["properties"]
    for listing in (train["models"], permutation["models"], test_corpus["models"]):
        listing["items"] = {**listing["items"], "enum": names}
    formats = schema["properties"]["dataset"]["properties"]["format"]["enum"]
    test_corpus["format"] = {**test_corpus["format"], "enum": [*formats, None]}
    return schema


def model_names(schema: dict) -> list[str]:
    """Every model a config may name: the feature models (``train.params``' entries), then the
    deep ones (``train.deep``'s). A model is named once, by its settings entry; the lists
    ``train.models`` and ``evaluate.permutation.models`` take their choices from here."""
    train = schema["properties"]["train"]["properties"]
    return [*train["params"]["properties"], *train["deep"]["properties"]]


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
    """A value as a config file spells it: true/false and null, not Python's words."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
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
            near = _nearest(str(extra), allowed)
            hint = f"did you mean {near}?" if near else f"valid keys here: {', '.join(allowed)}"
            if ":" in str(extra):  # YAML reads `{k:3}` as the key 'k:3'
                hint += " (YAML needs a space after the colon: key: value)"
            messages.append(f"unknown key {full}; {hint}")
        return messages
    if kind == "type":
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in wanted)
        example = f" (default {_shown(schema['default'])})" if "default" in schema else ""
        return [
            f"{key}: expected {words}, got {_type_name(value)} {_shown(value)}"
            f"{_why_text_is_refused(value, wanted, path)}; set {key} to {words}{example}"
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


def _why_text_is_refused(value: Any, wanted: list[str], path: list) -> str:
    """Why text that :func:`typed_config` left as it was is not what ``wanted`` says."""
    if not isinstance(value, str):
        return ""
    if "integer" in wanted and _NUMBER.fullmatch(value.strip()):
        return " (a number, but not a whole one)"
    if "object" in wanted and path:
        return f" (on the command line: --config {path[0]}='{{key: value, ...}}')"
    return ""


def _resolved(schema: dict, root: dict) -> dict:
    """``schema`` with a local ``$ref`` (``#/$defs/name``) replaced by what it names."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def with_defaults(config: dict, schema: dict) -> dict:
    """A copy of ``config`` with the schema's defaults filled in where keys are left out.

    Shared blocks (``$ref``) are filled too, as Snakemake's ``validate`` fills them: the
    result is the configuration the stages receive.
    """
    filled = copy.deepcopy(config)
    _fill(filled, schema, schema)
    return filled


def _fill(node: Any, schema: dict, root: dict) -> None:
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub = _resolved(sub, root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill(node[key], sub, root)


def typed_config(config: dict, *, schema: dict | None = None) -> dict:
    """A copy of ``config`` whose text values are read as the schema types them.

    Snakemake reads nested ``--config`` values with YAML's base loader, which keeps every
    scalar as text: ``--config augment='{n_augmentations: 3}'`` gives ``'3'``. Where the
    schema wants a whole number, a number, true/false or null and the value is text that
    spells one (``3``, ``0.5``, ``1e-3``, ``true``, ``null``), it becomes that value, and
    the schema's range checks then apply as to any other. Text where the schema allows
    text stays text (``null`` becomes null where the schema allows it). Free-form mappings
    (a feature model's arguments, a deep model's ``model_config``) have no types in the
    schema: their text is read as a config file reads an unquoted value. Text that spells
    nothing the schema allows stays as it is, for :func:`check_config` to name.
    """
    schema = load_schema() if schema is None else schema
    return _typed(copy.deepcopy(config), schema, schema)


def _typed(value: Any, schema: dict | None, root: dict) -> Any:
    if schema is None:  # a key the schema does not know: check_config names it
        return value
    schema = _resolved(schema, root)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        free_form = not properties and extra is True  # e.g. a feature model's arguments
        for key, item in value.items():
            sub = (
                {} if free_form else properties.get(key, extra if isinstance(extra, dict) else None)
            )
            value[key] = _typed(item, sub, root)
        return value
    if isinstance(value, list):
        return [_typed(item, schema.get("items", {}), root) for item in value]
    if isinstance(value, str):
        return _text_as(value, schema.get("type", ["integer", "number", "boolean", "null"]))
    return value


def _text_as(text: str, types: str | list[str]) -> Any:
    """``text`` as the first of ``types`` it spells; ``text`` itself when none or text fits."""
    types = [types] if isinstance(types, str) else types
    if "null" in types and text.strip() in _NULLS:
        return None
    if "string" in types:
        return text
    word = text.strip()
    for kind in types:
        if kind in ("integer", "number") and _WHOLE.fullmatch(word):
            return int(word)
        if kind == "integer" and _NUMBER.fullmatch(word) and float(word).is_integer():
            return int(float(word))  # 3.0, 1e3
        if kind == "number" and _NUMBER.fullmatch(word):
            return float(word)
        if kind == "boolean" and word.lower() in _BOOLEANS:
            return _BOOLEANS[word.lower()]
    return text


def _schema_problems(config: dict, schema: dict) -> list[str]:
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
    dataset = _section(config, "dataset")
    problems = _corpus_path_problems("dataset", dataset, root=root)
    problems += _test_corpus_problems(config, root=root)
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


def _corpus_path_problems(name: str, section: dict, *, root: Path) -> list[str]:
    """The corpus file or folder of config section ``name`` (``dataset``, ``test_corpus``)
    missing, or missing the files its format reads; a generated corpus (the demo) is made by
    the workflow for ``dataset`` only, so a test corpus's must exist already."""
    fmt, path = section.get("format"), section.get("path")
    if fmt not in DATASET_PATHS or not isinstance(path, str) or not path:
        return []
    problems = []
    kind, inside = DATASET_PATHS[fmt]
    if kind == "generated" and name != "dataset":
        kind = "folder"
    where = root / path
    shown = f"{path!r}" + ("" if Path(path).is_absolute() else f" (under {root})")
    fix = f"fix {name}.path in your config"
    if kind == "file" and not where.is_file():
        what = "is a folder, not a file" if where.is_dir() else "does not exist"
        problems.append(f"{name}.path: {shown} {what}; format {fmt} reads one file; {fix}")
    elif kind == "folder" and not where.is_dir():
        problems.append(f"{name}.path: {shown} is not a folder; format {fmt} reads a folder; {fix}")
    elif kind == "folder":
        for file in inside:
            if not (where / file).is_file():
                problems.append(
                    f"{name}.path: {shown} has no {file}; format {fmt} needs "
                    f"{' and '.join(inside)}; {fix}"
                )
    return problems


def _test_corpus_problems(config: dict, *, root: Path) -> list[str]:
    """A test corpus set without its format, the training corpus itself, or listing models
    that are not trained."""
    test, dataset = _section(config, "test_corpus"), _section(config, "dataset")
    path = test.get("path")
    if not path:
        return []
    if not test.get("format"):
        formats = ", ".join(DATASET_PATHS)
        return [
            f"test_corpus.path is set but test_corpus.format is not; set it to one of {formats}"
        ]
    problems = _corpus_path_problems("test_corpus", test, root=root)
    if (
        isinstance(dataset.get("path"), str)
        and (root / path).resolve() == (root / dataset["path"]).resolve()
    ):
        problems.append(
            "test_corpus.path is dataset.path: a test corpus must be another corpus, never "
            "trained on; set test_corpus.path to it, or null for none"
        )
    trained = _section(config, "train").get("models")
    listed = test.get("models") or []
    missing = [m for m in listed if isinstance(trained, list) and m not in trained]
    if missing:
        problems.append(
            f"test_corpus.models lists {missing}, not in train.models; add them to "
            "train.models or remove them from test_corpus.models"
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
    config = typed_config(config, schema=schema)
    problems = _schema_problems(config, schema)
    if not problems:  # cross-key checks assume the types are right
        problems = _semantic_problems(with_defaults(config, schema), root=Path(root).resolve())
    return problems


def validate_config(
    config: dict, *, schema: dict | None = None, root: str | os.PathLike = "."
) -> dict:
    """``config`` with its text read as the schema types it (:func:`typed_config`) when it
    can run; raise :class:`ConfigError` otherwise."""
    schema = load_schema() if schema is None else schema
    problems = check_config(config, schema=schema, root=root)
    if problems:
        raise ConfigError(problems)
    return typed_config(config, schema=schema)
