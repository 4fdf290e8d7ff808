"""Command line of vidstage: ``python -m lib <stage> ...``, one subcommand per stage.

The Snakemake rules call exactly these commands, so every stage can also be run, rerun or
debugged by hand on one shard, e.g.::

    python -m lib validate --downloads results/download.csv --shard 1-of-4 --out /tmp/v.csv

The subcommands and the functions they call are listed in :mod:`lib.stages.commands`. A stage's
parameters
are not written here: each key of the config sections a command reads becomes a flag whose
type, choices, default and help come from ``workflow/schemas/config.schema.yaml``. Values
are merged as: the schema's defaults < ``--config-json`` (the sections as a rule passes them,
in config.yaml's shape) < flags given on the command line; the result is checked against
the schema (a bad value stops the command, naming the config key) and passed to the
stage's function as keywords.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import sys
import time
from typing import Any

from lib import __version__
from lib.config import ConfigError, check_config, load_schema, with_defaults
from lib.memory import rss_mb
from lib.shards import Shard
from lib.stages.commands import (
    BY_NAME,
    COMMANDS,
    PROGRESS_DIR,
    Command,
    Section,
    section_keys,
    section_schema,
    stage_function,
)

log = logging.getLogger("vidstage")

_MISSING = object()


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text[:80]}") from exc


def _shard(text: str):
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# ------------------------------------------------------------------ flags made from the schema
def _dotted(section: Section, key: str) -> str:
    return f"{section.path}.{key}" if section.path else key


def flag_of(section: Section, key: str) -> str:
    """The command-line flag of a config key: ``n_augmentations`` -> ``--n-augmentations``."""
    return "--" + (section.prefix + key).replace("_", "-")


def _dest(section: Section, key: str) -> str:
    return f"param:{_dotted(section, key)}"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _types(prop: dict) -> list[str]:
    kind = prop.get("type", "object")  # a $ref (a nested settings object) is JSON
    return kind if isinstance(kind, list) else [kind]


def _scalar(kind: str, nullable: bool):
    convert = {"integer": int, "number": float, "string": str}[kind]

    def parse(text: str):
        if nullable and text == "null":
            return None
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None

    parse.__name__ = kind  # argparse names the type in its error message
    return parse


def _flag_options(prop: dict) -> dict:
    """``add_argument`` keywords of one schema property: type, choices, metavar."""
    types = _types(prop)
    nullable = "null" in types
    kind = next((t for t in types if t != "null"), "null")
    if kind == "boolean":
        return {"action": argparse.BooleanOptionalAction}
    if kind in ("object", "array", "null"):
        return {"type": _json, "metavar": "JSON"}
    options: dict = {"type": _scalar(kind, nullable)}
    if "enum" in prop:
        options["choices"] = [*prop["enum"], *(["null"] if nullable else [])]
        options["metavar"] = "{" + ",".join(map(str, prop["enum"])) + "}"
    else:
        options["metavar"] = {"integer": "N", "number": "X", "string": "TEXT"}[kind]
    return options


def _help(section: Section, key: str, prop: dict) -> str:
    parts = [prop.get("description", "").strip()]
    bounds = [
        f"{word} {prop[name]}"
        for name, word in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if name in prop
    ]
    if bounds:
        parts.append(", ".join(bounds))
    nested = prop.get("properties")
    if nested:  # one JSON flag for a nested mapping: name its keys and their defaults
        parts.append(
            "keys: "
            + "; ".join(
                f"{name}={_shown(sub.get('default'))} ({sub.get('description', '')})"
                for name, sub in nested.items()
            )
        )
    if "default" in prop:
        parts.append(f"default: {_shown(prop['default'])}")
    else:
        parts.append("required (or in --config-json)")
    parts.append(f"config: {_dotted(section, key)}")
    return "; ".join(p for p in parts if p).replace("%", "%%")


def _add_sections(parser: argparse.ArgumentParser, command: Command, schema: dict) -> None:
    parser.add_argument(
        "--config-json",
        type=_json,
        default={},
        metavar="JSON",
        help="the config sections this stage reads, in config.yaml's shape (what the workflow "
        "passes), e.g. " + _example(command) + "; the "
        "flags below override it, the schema's defaults fill what is left out",
    )
    for section in command.sections:
        node = section_schema(schema, section.path)
        title = f"config {section.path}" if section.path else "config (top level)"
        if section.into:
            title += f" (passed as {section.into})"
        group = parser.add_argument_group(title, node.get("description") if section.path else None)
        for key in section_keys(section, schema):
            prop = node["properties"][key]
            group.add_argument(
                flag_of(section, key),
                dest=_dest(section, key),
                default=argparse.SUPPRESS,
                help=_help(section, key, prop),
                **_flag_options(prop),
            )


def _example(command: Command) -> str:
    """The shape of ``--config-json``, e.g. ``{"augment": {...}, "seed": ...}``."""
    tree: dict = {}
    for section in command.sections:
        target = tree
        for part in filter(None, section.path.split(".")):
            target = target.setdefault(part, {})
        target.update({k: None for k in section.keys} if section.keys else {"...": None})

    def text(node: dict) -> str:
        if list(node) == ["..."]:
            return "{...}"
        return (
            "{"
            + ", ".join(
                f'"{k}": ' + (text(v) if isinstance(v, dict) else "...") for k, v in node.items()
            )
            + "}"
        )

    return text(tree)


def _add_args(parser: argparse.ArgumentParser, command: Command) -> None:
    for spec in command.args:
        options = dict(spec.options)
        if options.get("type") == "json":
            options.update(type=_json, metavar="JSON")
        parser.add_argument(*spec.flags, **options)
    if command.sharded:
        parser.add_argument(
            "--shard",
            type=_shard,
            default="1-of-1",
            help="which slice of the input table to process, 'I-of-N' (1-based; "
            "job I of N takes rows [(I-1)*rows//N, I*rows//N)); default 1-of-1",
        )
        parser.add_argument(
            "--progress-dir",
            default=PROGRESS_DIR,
            help="where per-shard progress survives a crash (default: %(default)s)",
        )


def build_parser(schema: dict | None = None) -> argparse.ArgumentParser:
    schema = load_schema() if schema is None else schema
    parser = argparse.ArgumentParser(
        prog="python -m lib",
        description="vidstage stages. Each reads a table, processes one shard of it "
        "(resumably: finished videos are skipped on a rerun) and writes a table. "
        "The Snakemake workflow chains them; see README.md. A stage's parameters are the "
        "keys of its config sections (workflow/schemas/config.schema.yaml): "
        "`python -m lib <stage> --help` lists them with their defaults.",
    )
    parser.add_argument("--version", action="version", version=f"vidstage {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for command in COMMANDS:
        p = sub.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        _add_args(p, command)
        if command.sections:
            _add_sections(p, command, schema)
    return parser


# ------------------------------------------------------------ merged values -> keyword arguments
def _merged(base: Any, new: Any, prop: dict) -> Any:
    """``new`` over ``base``; a nested mapping of the schema is merged key by key."""
    if "properties" in prop and isinstance(base, dict) and isinstance(new, dict):
        out = dict(base)
        for key, value in new.items():
            out[key] = _merged(base.get(key, _MISSING), value, prop["properties"].get(key, {}))
        return out
    return new


def _default(prop: dict) -> Any:
    if "default" not in prop:
        return _MISSING
    value = copy.deepcopy(prop["default"])
    if isinstance(value, dict) and "properties" in prop:
        value = with_defaults(value, prop)
    return value


def _dig(node: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def resolve_parameters(command: Command, args: argparse.Namespace, schema: dict) -> dict:
    """Keyword arguments of ``command``'s parameters: schema defaults < ``--config-json`` <
    flags. Raises :class:`lib.config.ConfigError` naming each bad or missing key."""
    given = getattr(args, "config_json", {}) or {}
    if not isinstance(given, dict):
        raise ConfigError(
            f"--config-json must be a JSON object of config sections, e.g. " f"{_example(command)}"
        )
    explicit = vars(args)
    keywords: dict = {}
    checked: dict = {k: v for k, v in given.items() if k not in schema["properties"]}
    missing = []
    for section in command.sections:
        node = section_schema(schema, section.path)
        given_section = _dig(given, section.path)
        if given_section is not None and not isinstance(given_section, dict):
            missing.append(
                f"{section.path or 'the top level'} in --config-json: expected a "
                f"mapping of keys, got {json.dumps(given_section)[:60]}"
            )
        given_section = given_section if isinstance(given_section, dict) else {}
        values = {}
        for key in section_keys(section, schema):
            prop = node["properties"][key]
            value = _default(prop)
            if key in given_section:
                value = _merged(value, given_section[key], prop)
            if _dest(section, key) in explicit:
                value = _merged(value, explicit[_dest(section, key)], prop)
            if value is _MISSING:
                missing.append(
                    f"missing {_dotted(section, key)}: give {flag_of(section, key)} "
                    f"or set it in --config-json"
                )
                continue
            values[key] = value
        # What is checked: the values used, and any key of these sections the schema lacks
        # (a misspelling is named, with the nearest valid key).
        target = checked
        for part in filter(None, section.path.split(".")):
            target = target.setdefault(part, {})
        target.update(
            {k: v for k, v in given_section.items() if k not in node.get("properties", {})}
        )
        target.update(values)
        if section.into:
            keywords[section.into] = values
        else:
            keywords.update({section.prefix + k: v for k, v in values.items()})
    problems = missing + check_config(checked, schema=dict(schema, required=[]))
    if problems:
        raise ConfigError(problems)
    return keywords


def call_keywords(command: Command, args: argparse.Namespace, schema: dict) -> dict:
    """Every keyword ``command``'s function is called with: its arguments and parameters."""
    values = vars(args)
    keywords = {}
    for spec in command.args:
        keywords[spec.dest] = values[spec.dest]
    if command.sharded:
        keywords.update(shard=values["shard"], progress_dir=values["progress_dir"])
    keywords.update(resolve_parameters(command, args, schema))
    return keywords


def default_parameters(name: str, schema: dict | None = None) -> dict:
    """The config keywords command ``name`` passes its function when no value is given: the
    schema's defaults. For calling a stage function directly (tests, benchmarks, a notebook)
    with the values a rule would pass: ``augment_shard(..., **default_parameters("augment"))``.
    """
    schema = load_schema() if schema is None else schema
    return resolve_parameters(BY_NAME[name], argparse.Namespace(), schema)


def main(argv: list[str] | None = None, *, schema: dict | None = None) -> int:
    schema = load_schema() if schema is None else schema
    parser = build_parser(schema)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    command = BY_NAME[args.command]
    try:
        keywords = call_keywords(command, args, schema)
    except ConfigError as error:
        print(f"python -m lib {command.name}: {error}", file=sys.stderr)
        return 2
    log.info(
        "vidstage %s: %s (python %s, pid %d, host %s)",
        __version__,
        " ".join(sys.argv[1:]),
        platform.python_version(),
        os.getpid(),
        platform.node(),
    )
    log.info(
        "%s parameters: %s",
        command.name,
        json.dumps(
            {k: v for k, v in keywords.items() if k not in _io_names(command)},
            default=str,
            sort_keys=True,
        ),
    )
    start = time.perf_counter()
    try:
        stage_function(command.name)(**keywords)
    except Exception:
        log.exception("%s failed after %.1f s", command.name, time.perf_counter() - start)
        return 1
    log.info(
        "%s done in %.1f s (rss %.0f MiB)", command.name, time.perf_counter() - start, rss_mb()
    )
    return 0


def _io_names(command: Command) -> set[str]:
    names = {spec.dest for spec in command.args}
    return names | ({"shard", "progress_dir"} if command.sharded else set())
