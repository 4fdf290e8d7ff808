"""``python -m lib``: every stage parameter is defined once, in the config schema.

The flags, their defaults and help, the JSON a rule passes and the keywords a stage's
function receives all come from ``workflow/schemas/config.schema.yaml`` (docs/DEVELOPING.md, "Adding a
stage parameter"); these tests hold that promise for every command.
"""

from __future__ import annotations

import copy
import inspect
import json
import re

import pytest
import yaml

from conftest import REPO
from lib import cli
from lib.stages.commands import BY_NAME, COMMANDS, config_fragment, section_keys, section_schema
from lib.stages.commands import stage_function
from lib.config import load_schema, with_defaults

SCHEMA = load_schema()
WITH_SECTIONS = [c.name for c in COMMANDS if c.sections]


def _help(name: str, capsys, schema: dict = SCHEMA) -> str:
    with pytest.raises(SystemExit):
        cli.build_parser(schema).parse_args([name, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


@pytest.mark.parametrize("name", WITH_SECTIONS)
def test_every_schema_key_of_a_stage_is_in_its_help(name, capsys):
    text = _help(name, capsys)
    for section in BY_NAME[name].sections:
        node = section_schema(SCHEMA, section.path)
        for key in section_keys(section, SCHEMA):
            prop = node["properties"][key]
            dotted = f"{section.path}.{key}" if section.path else key
            flag = cli.flag_of(section, key)
            assert f"{flag} " in text, (name, flag)
            assert f"config: {dotted}" in text, (name, dotted)
            description = " ".join(prop["description"].split())
            assert description[:40] in text, (name, dotted, description)
            if "default" in prop:
                shown = prop["default"]
                shown = shown if isinstance(shown, str) else json.dumps(shown)
                assert f"default: {shown}" in text, (name, dotted, shown)


def test_handlers_take_exactly_the_keywords_the_command_line_passes():
    """A key added to a section must be taken by the stage's function (and nothing is
    left unfilled): the CLI calls it with keywords only."""
    for command in COMMANDS:
        passed = {a.dest for a in command.args}
        if command.sharded:
            passed |= {"shard", "progress_dir"}
        for section in command.sections:
            keys = section_keys(section, SCHEMA)
            passed |= {section.into} if section.into else {section.prefix + k for k in keys}
        signature = inspect.signature(stage_function(command.name))
        accepted = set(signature.parameters)
        assert passed <= accepted, (command.name, sorted(passed - accepted))
        needed = {n for n, p in signature.parameters.items() if p.default is p.empty}
        assert needed <= passed, (command.name, sorted(needed - passed))


def test_stage_functions_take_every_config_key_without_a_default_of_their_own():
    """A config key's default lives in the schema only: a stage function that gave the key a
    default of its own would hold a second default, free to disagree with the schema's."""
    for command in COMMANDS:
        parameters = inspect.signature(stage_function(command.name)).parameters
        for section in command.sections:
            for key in section_keys(section, SCHEMA):
                keyword = section.into or section.prefix + key
                dotted = f"{section.path}.{key}" if section.path else key
                default = parameters[keyword].default
                assert default is inspect.Parameter.empty, (
                    f"{command.name}: {stage_function(command.name).__qualname__} gives "
                    f"{keyword} (config {dotted}) the default {default!r}; the schema holds it"
                )


def test_a_light_job_imports_neither_torch_nor_scikit_learn():
    """The command table (the Snakefile reads it on every job) imports no stage module, and a
    command outside HEAVY_COMMANDS imports none of the libraries that take seconds to load."""
    import subprocess
    import sys

    from lib.stages.commands import HEAVY_COMMANDS

    light = [c.name for c in COMMANDS if c.name not in HEAVY_COMMANDS]
    table = {
        f"lib.stages.{m}" for m in ("commands", "command_spec", "data_commands", "model_commands")
    }
    code = (
        "import sys\n"
        "from lib.stages.commands import stage_function\n"
        f"assert not [m for m in sys.modules if m.startswith('lib.stages.') and m not in {table}]"
        ", sorted(sys.modules)\n"
        f"for name in {light!r}:\n"
        "    stage_function(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'sklearn'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"a light stage imports {done.stdout.strip()}"


@pytest.fixture
def recorder(monkeypatch):
    """Replace a stage's function by one that records its keywords."""
    calls = []

    def install(module, name):
        monkeypatch.setattr(module, name, lambda **kw: calls.append(kw))
        return calls

    return install


def test_section_json_reaches_the_driver_and_a_flag_overrides_it(recorder):
    import lib.stages.augment

    calls = recorder(lib.stages.augment, "augment_shard")
    given = {"augment": {"n_augmentations": 3, "crf": 20}, "seed": 7}
    argv = ["augment", "--videos", "v.csv", "--out", "o.csv", "--config-json", json.dumps(given)]
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--crf", "30", "--seed", "8"]) == 0
    assert cli.main(["augment", "--videos", "v.csv", "--out", "o.csv"]) == 0
    from_json, overridden, defaults = (
        {k: c[k] for k in ("n_augmentations", "crf", "max_frames", "preset", "seed")} for c in calls
    )  # fmt: skip
    assert from_json == {"n_augmentations": 3, "crf": 20, "max_frames": 250,
                         "preset": "veryfast", "seed": 7}  # fmt: skip
    assert overridden == {**from_json, "crf": 30, "seed": 8}
    assert defaults == {"n_augmentations": 10, "crf": 18, "max_frames": 250,
                        "preset": "veryfast", "seed": 42}  # fmt: skip
    assert calls[0]["videos"] == "v.csv" and calls[0]["output"] == "o.csv"


def test_a_section_passed_as_one_mapping_and_nested_mappings_merge_key_by_key(recorder):
    import lib.stages.download
    import lib.stages.validate

    calls = recorder(lib.stages.validate, "validate_shard")
    assert cli.main(["validate", "--downloads", "d.csv", "--out", "v.csv", "--config-json",
                     '{"validate": {"max_width": 100}}', "--default-fps", "30"]) == 0  # fmt: skip
    assert calls[-1]["limits"] == {"max_width": 100, "max_height": 4320,
                                   "max_duration_s": 14400, "default_fps": 30.0}  # fmt: skip
    calls = recorder(lib.stages.download, "download_shard")
    given = {"download": {"retry_failed": False, "options": {"socket_timeout": 10}}}
    assert cli.main(["download", "--manifest", "m.csv", "--out", "d.csv", "--config-json",
                     json.dumps(given), "--options", '{"retries": 5}']) == 0  # fmt: skip
    options = calls[-1]["options"]
    assert (options["socket_timeout"], options["retries"]) == (10, 5)
    assert options["format"] == SCHEMA["properties"]["download"]["properties"]["options"][
        "properties"]["format"]["default"]  # fmt: skip
    assert calls[-1]["retry_failed"] is False
    assert cli.main(["download", "--manifest", "m.csv", "--out", "d.csv", "--config-json",
                     json.dumps(given), "--retry-failed"]) == 0  # fmt: skip
    assert calls[-1]["retry_failed"] is True


def test_a_key_added_to_the_schema_reaches_the_driver_with_nothing_else_edited(recorder, capsys):
    """What docs/DEVELOPING.md's "Adding a stage parameter" promises: one schema entry, then use it."""
    import lib.stages.augment

    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["augment"]["properties"]["new_knob"] = {
        "type": "integer",
        "minimum": 1,
        "default": 4,
        "description": "a knob added for this test",
    }
    calls = recorder(lib.stages.augment, "augment_shard")
    base = ["augment", "--videos", "v.csv", "--out", "o.csv"]
    assert cli.main(base, schema=schema) == 0
    assert cli.main([*base, "--new-knob", "9"], schema=schema) == 0
    config = with_defaults({"augment": {"new_knob": 6}}, schema)
    fragment = config_fragment("augment", config, schema)
    assert fragment["augment"]["new_knob"] == 6  # what the rule passes
    assert cli.main([*base, "--config-json", json.dumps(fragment)], schema=schema) == 0
    assert [c["new_knob"] for c in calls] == [4, 9, 6]
    capsys.readouterr()
    assert "--new-knob N a knob added for this test; >= 1; default: 4" in _help(
        "augment", capsys, schema
    )
    assert cli.main([*base, "--new-knob", "0"], schema=schema) == 2
    assert "augment.new_knob: 0 is below the minimum 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--crf", "99"], "augment.crf: 99 is above the maximum 51; set augment.crf to a whole number <= 51"),
    (["--config-json", '{"augment": {"n_augmentation": 3}}'],
     "unknown key augment.n_augmentation; did you mean n_augmentations?"),
    (["--config-json", '{"augmnet": {}}'], "unknown key augmnet; did you mean augment?"),
    (["--config-json", "[1]"], "--config-json must be a JSON object of config sections"),
    (["--config-json", '{"augment": 5}'], "augment in --config-json: expected a mapping of keys, got 5"),
])  # fmt: skip
def test_bad_values_stop_the_command_naming_the_config_key(recorder, capsys, argv, message):
    import lib.stages.augment

    calls = recorder(lib.stages.augment, "augment_shard")
    assert cli.main(["augment", "--videos", "v.csv", "--out", "o.csv", *argv]) == 2
    assert message in capsys.readouterr().err
    assert calls == [], "nothing runs on a bad parameter"


def test_a_key_without_default_must_be_given(recorder, capsys):
    import lib.stages.corpus

    calls = recorder(lib.stages.corpus, "run_manifest")
    assert cli.main(["manifest", "--out", "m.csv", "--report", "r.md", "--format", "demo"]) == 2
    assert "missing dataset.path: give --path or set it in --config-json" in capsys.readouterr().err
    given = json.dumps({"dataset": {"format": "demo", "path": "data/demo"}})
    assert cli.main(["manifest", "--out", "m.csv", "--report", "r.md", "--config-json", given]) == 0
    dataset = with_defaults(json.loads(given), SCHEMA)["dataset"]  # the rest: schema defaults
    assert calls[-1] == {"output": "m.csv", "report": "r.md", **dataset}
    assert (calls[-1]["label_map"], calls[-1]["allow_file_urls"]) == (None, False)


def test_every_rule_passes_its_commands_sections_whole():
    """A rule hands its command the config sections at once (``stage_config``), never one
    parameter at a time, so a new key needs no rule edit."""
    seen = set()
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        for rule in re.split(r"\n\s*(?:rule|checkpoint)\b", text)[1:]:  # a loop's rules too
            found = re.search(r"-m lib ([a-z-]+)", rule)
            if not found or not BY_NAME[found.group(1)].sections:
                continue
            name = found.group(1)
            seen.add(name)
            assert f'config_json=stage_config("{name}")' in rule, (path.name, name)
            assert "--config-json {params.config_json:q}" in rule, (path.name, name)
            for section in BY_NAME[name].sections:
                for key in section_keys(section, SCHEMA):
                    flag = cli.flag_of(section, key)
                    assert not re.search(rf"{flag}(?![\w-])", rule), (name, key)
    assert seen == set(WITH_SECTIONS)


def test_the_fragment_of_the_demo_config_resolves_to_its_values(recorder):
    import lib.stages.scale

    config = with_defaults(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)
    calls = recorder(lib.stages.scale, "scale_shard")
    fragment = config_fragment("scale", config)
    assert fragment == {"scale": config["scale"]}
    assert cli.main(["scale", "--clips", "c.csv", "--out", "s.csv",
                     "--config-json", json.dumps(fragment)]) == 0  # fmt: skip
    assert {k: calls[-1][k] for k in config["scale"]} == config["scale"]
    assert config_fragment("near-duplicates", config) == {
        "near_duplicates": config["near_duplicates"],
        "seed": config["seed"],
        "folds": {"k": config["folds"]["k"], "group_by": config["folds"]["group_by"]},
    }


def test_the_command_line_exits_with_the_stage_status(tmp_path):
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "lib", "--help"], cwd=REPO, capture_output=True)
    failed = subprocess.run([sys.executable, "-m", "lib", "train", "--model", "dummy", "--fold", "0",
                             "--features", "nope.parquet", "--clips", "nope.csv", "--folds",
                             "nope.csv", "--out-dir", str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0
    assert failed.returncode == 1, failed.stderr
    assert "nope.parquet: missing" in failed.stderr
