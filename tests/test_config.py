"""Hostile configurations and corpora: each stops early with its own message, and nothing
is written or lost.

Three places refuse bad configuration, in the order a run meets them: the start-up check
(``lib.config``, called by ``workflow/rules/common.smk`` before any job), ingest (the
manifest job, before it writes the manifest) and folds (before it writes ``folds.csv``).
Each case below names the exact message. Cases call the lib functions the workflow calls;
a few run Snakemake itself to show the start-up check stops the run before any job, and
what configuration a run resolves to (config.yaml and a corpus file: the schema's defaults;
`make demo`: the demo's shortcuts; `--config` text read as the schema types it).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import re
import shlex
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
import pytest
import yaml

from conftest import DEMO_CONFIG, REPO, copy_workflow, layered_config, resolved_config, snakemake
from conftest import merge_config as _merge
from conftest import write_csv as _write_csv
from lib import schemas
from lib.cli import main as lib_main
from lib.config import (
    ConfigError,
    check_config,
    load_schema,
    typed_config,
    validate_config,
    with_defaults,
)

SCHEMA = load_schema()
BASE = layered_config(REPO, "config.yaml")


# --------------------------------------------------------------------------- start-up

# (case, config layered on config.yaml, exact messages; "{root}" is the working directory)
STARTUP = [
    (
        "unknown key",
        {"augment": {"n_augmentation": 3}},
        ["unknown key augment.n_augmentation; did you mean n_augmentations?"],
    ),
    (
        "unknown nested key",
        {"features": {"fractoin": 0.2}},
        ["unknown key features.fractoin; did you mean fraction?"],
    ),
    ("unknown top-level key", {"shard": 4}, ["unknown key shard; did you mean shards?"]),
    (
        "unknown key, nothing near",
        {"augment": {"zzz": 1}},
        [
            "unknown key augment.zzz; valid keys here: n_augmentations, max_frames, crf, preset, encoder_threads"
        ],
    ),
    (
        "no space after a colon",
        {"augment": {"n_augmentations:3": ""}},
        [
            "unknown key augment.n_augmentations:3; did you mean n_augmentations? (YAML needs a "
            "space after the colon: key: value)"
        ],
    ),
    (
        "wrong type",
        {"augment": {"n_augmentations": "three"}},
        [
            "augment.n_augmentations: expected a whole number, got text 'three'; set "
            "augment.n_augmentations to a whole number (default 10)"
        ],
    ),
    (
        "section of the wrong type",
        {"augment": 3},
        [
            "augment: expected a mapping (key: value lines), got a whole number 3; set augment to a "
            "mapping (key: value lines) (default {})"
        ],
    ),
    (
        "yes/no as text",
        {"local_download": "yes"},
        [
            "local_download: expected true or false, got text 'yes'; set local_download to true or "
            "false (default false)"
        ],
    ),
    (
        "a fraction where a whole number goes",
        {"augment": {"n_augmentations": "3.5"}},
        [
            "augment.n_augmentations: expected a whole number, got text '3.5' (a number, but not a "
            "whole one); set augment.n_augmentations to a whole number (default 10)"
        ],
    ),
    (
        "a section given as text",
        {"augment": "n_augmentations=3"},
        [
            "augment: expected a mapping (key: value lines), got text 'n_augmentations=3' (on the "
            "command line: --config augment='{key: value, ...}'); set augment to a mapping (key: "
            "value lines) (default {})"
        ],
    ),
    (
        "text for a number out of range",
        {"shards": "-2", "folds": {"k": "1"}},
        [
            "folds.k: 1 is below the minimum 2; set folds.k to a whole number >= 2",
            "shards: -2 is below the minimum 1; set shards to a whole number >= 1",
        ],
    ),
    (
        "negative shard count",
        {"shards": -2},
        ["shards: -2 is below the minimum 1; set shards to a whole number >= 1"],
    ),
    (
        "one fold",
        {"folds": {"k": 1}},
        ["folds.k: 1 is below the minimum 2; set folds.k to a whole number >= 2"],
    ),
    (
        "fraction out of range",
        {"features": {"fraction": 1.5}},
        ["features.fraction: 1.5 is above the maximum 1; set features.fraction to a number <= 1"],
    ),
    (
        "unknown dataset.format",
        {"dataset": {"format": "fcv"}},
        [
            "dataset.format: 'fcv' is not one of demo, fvc, csv, folder, wlasl; did you mean fvc? "
            "set dataset.format to one of them"
        ],
    ),
    (
        "unknown model",
        {"train": {"models": ["logreg", "linear-svm"]}},
        [
            "train.models.1: 'linear-svm' is not one of logreg, linear_svm, hist_gbm, dummy, "
            "probe, knn, probe_hc, naive_cnn, vit_gru, vit_transformer, videomae, timesformer; "
            "did you mean linear_svm? "
            "set train.models.1 to one of them"
        ],
    ),
    (
        "min above max",
        {"features": {"min_frames": 60}},
        [
            "features.min_frames (60) is above features.max_frames (50); lower min_frames or raise "
            "max_frames"
        ],
    ),
    (
        "missing corpus file",
        {"dataset": {"format": "csv", "path": "corpora/nope.csv"}},
        [
            "dataset.path: 'corpora/nope.csv' (under {root}) does not exist; format csv reads one "
            "file; fix dataset.path in your config"
        ],
    ),
    (
        "corpus folder without its files",
        {"dataset": {"format": "fvc", "path": "corpora"}},
        [
            "dataset.path: 'corpora' (under {root}) has no FVC.csv; format fvc needs FVC.csv and "
            "FVC_dup.csv; fix dataset.path in your config",
            "dataset.path: 'corpora' (under {root}) has no FVC_dup.csv; format fvc needs FVC.csv "
            "and FVC_dup.csv; fix dataset.path in your config",
        ],
    ),
    (
        "several mistakes at once",
        {"shards": 0, "seeed": 1},
        [
            "unknown key seeed; did you mean seed?",
            "shards: 0 is below the minimum 1; set shards to a whole number >= 1",
        ],
    ),
]


@pytest.mark.parametrize("case,override,messages", STARTUP, ids=[c[0] for c in STARTUP])
def test_startup_check_names_the_key_and_the_fix(tmp_path, case, override, messages):
    (tmp_path / "corpora").mkdir()
    config = _merge(BASE, override)
    before = copy.deepcopy(config)
    assert check_config(config, schema=SCHEMA, root=tmp_path) == [
        m.replace("{root}", str(tmp_path)) for m in messages
    ]
    assert config == before, "the check never changes the config"
    with pytest.raises(ConfigError, match="nothing was run"):
        validate_config(config, schema=SCHEMA, root=tmp_path)


# Each shipped config as its usage line layers it.
SHIPPED = {
    "configs/demo.yaml": DEMO_CONFIG,
    "configs/fvc.yaml": ("config.yaml", "configs/fvc.yaml"),
    "configs/all_families.yaml": (*DEMO_CONFIG, "configs/all_families.yaml"),
}


def test_every_shipped_config_passes():
    assert check_config(BASE, schema=SCHEMA, root=REPO) == []
    assert sorted(SHIPPED) == sorted(f"configs/{p.name}" for p in (REPO / "configs").glob("*.yaml"))
    for name, files in SHIPPED.items():
        assert f"--configfile {' '.join(files)}" in (REPO / name).read_text(), name
        problems = check_config(layered_config(REPO, *files), schema=SCHEMA, root=REPO)
        # configs/fvc.yaml points at ../shared/data/fvc, which only some checkouts have.
        assert [p for p in problems if "dataset.path" not in p] == [], name


def test_config_yaml_holds_no_setting_a_corpus_would_inherit():
    """config.yaml names the corpus and nothing else, so every other key a user's corpus
    file leaves out takes the schema's default; train.models may be any list (no model's
    parameters are set there to clash with it)."""
    assert set(BASE) == {"dataset"}
    mine = _merge(BASE, {"train": {"models": ["logreg", "naive_cnn"]}})
    assert check_config(mine, schema=SCHEMA, root=REPO) == []


# --------------------------------------------------------------------------- --config text

# (case, config layered on config.yaml as Snakemake's --config gives it: nested values as
# text, what the config holds once read as the schema types it)
TYPED = [
    ("whole number", {"augment": {"n_augmentations": "3"}}, {"augment": {"n_augmentations": 3}}),
    (
        "whole number in a number's spelling",
        {"augment": {"max_frames": "1e3", "crf": "20.0"}},
        {"augment": {"max_frames": 1000, "crf": 20}},
    ),
    (
        "number",
        {"features": {"fraction": "0.25"}, "download": {"options": {"socket_timeout": "30"}}},
        {"features": {"fraction": 0.25}, "download": {"options": {"socket_timeout": 30}}},
    ),
    (
        "true/false",
        {"download": {"retry_failed": "false"}, "local_download": "True"},
        {"download": {"retry_failed": False}, "local_download": True},
    ),
    (
        "deep model settings ($ref)",
        {"train": {"deep": {"naive_cnn": {"lr": "1e-3", "epochs": "2", "micro_batch": "null"}}}},
        {"train": {"deep": {"naive_cnn": {"lr": 0.001, "epochs": 2, "micro_batch": None}}}},
    ),
    (
        "null where text is allowed",
        {"download": {"options": {"retry_sleep": "null"}}},
        {"download": {"options": {"retry_sleep": None}}},
    ),
    (
        "text stays text",
        {"predict": {"input": "2024"}, "train": {"positive_label": "1"}},
        {"predict": {"input": "2024"}, "train": {"positive_label": "1"}},
    ),
    (
        "a model's free-form arguments",
        {"train": {"params": {"logreg": {"C": "0.5", "solver": "saga"}}}},
        {"train": {"params": {"logreg": {"C": 0.5, "solver": "saga"}}}},
    ),
    (
        "label map",
        {"dataset": {"label_map": {"fake": "fake", "debunked": "null"}}},
        {"dataset": {"label_map": {"fake": "fake", "debunked": None}}},
    ),
]


@pytest.mark.parametrize("case,given,typed", TYPED, ids=[c[0] for c in TYPED])
def test_text_is_read_as_the_schema_types_it(case, given, typed):
    config = _merge(BASE, given)
    before = copy.deepcopy(config)
    assert typed_config(config, schema=SCHEMA) == _merge(BASE, typed)
    assert config == before, "typed_config returns a copy"
    assert check_config(config, schema=SCHEMA, root=REPO) == []
    assert validate_config(config, schema=SCHEMA, root=REPO) == _merge(BASE, typed)


def test_numbers_given_with_config_on_the_command_line(tmp_path):
    """Snakemake reads nested --config values as text; the run gets numbers, the schema's
    range checks apply to them, and text that is no number is refused naming the key."""
    wf = copy_workflow(tmp_path / "wf")
    resolved = resolved_config(
        wf,
        "--config",
        "augment={n_augmentations: 3}",
        "shards=3",
        "evaluate={permutation: {n_permutations: 7}}",
    )
    assert resolved["augment"]["n_augmentations"] == 3 and resolved["shards"] == 3
    assert resolved["evaluate"]["permutation"]["n_permutations"] == 7
    assert isinstance(resolved["augment"]["n_augmentations"], int)
    proc = snakemake(
        wf, "-n", "--config", "augment={n_augmentations: three}", "folds={k: 1}", check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert (
        "augment.n_augmentations: expected a whole number, got text 'three'; set "
        "augment.n_augmentations to a whole number (default 10)"
    ) in output
    assert "folds.k: 1 is below the minimum 2; set folds.k to a whole number >= 2" in output


# --------------------------------------------------------------------------- resolved


def test_a_bare_corpus_file_resolves_to_the_schema_defaults(tmp_path):
    """`--configfile config.yaml my.yaml`, my.yaml naming only the corpus: every other key is
    the schema's default for real work, none of the demo's shortcuts."""
    wf = copy_workflow(tmp_path / "wf")
    _write_csv(
        wf / "corpus" / "index.csv", ["path", "label"], [["a.mp4", "fake"], ["b.mp4", "real"]]
    )
    corpus = {"format": "csv", "path": "corpus/index.csv"}
    (wf / "my.yaml").write_text(yaml.safe_dump({"dataset": corpus}))
    resolved = resolved_config(wf, "--configfile", "config.yaml", "my.yaml")
    assert resolved == with_defaults({"dataset": corpus}, SCHEMA)
    # The defaults the demo shortcuts (configs/demo.yaml) would have changed:
    assert (
        resolved["augment"]["n_augmentations"] == 10 and resolved["augment"]["encoder_threads"] == 2
    )
    assert resolved["folds"]["k"] == 5 and resolved["scale"]["size"] == 256
    assert resolved["train"]["models"] == ["logreg", "linear_svm", "hist_gbm", "dummy"]
    assert resolved["train"]["params"] == {
        "logreg": {},
        "linear_svm": {},
        "hist_gbm": {},
        "dummy": {},
        "probe": {},
        "knn": {},
        "probe_hc": {},
    }
    assert resolved["embeddings"]["model"] == "openai/clip-vit-large-patch14"
    assert resolved["embeddings"]["tiny"] is None
    deep = resolved["train"]["deep"]["naive_cnn"]
    assert (deep["num_frames"], deep["image_size"], deep["epochs"], deep["cache_mb"]) == (
        16,
        224,
        10,
        0,
    )
    assert resolved["evaluate"]["permutation"]["n_permutations"] == 100
    assert resolved["predict"]["input"] == ""


def test_make_demo_resolves_to_the_demo_settings(tmp_path):
    recipe = re.search(
        r"^demo:.*\n\t\$\(BIN\)/snakemake (.*)$", (REPO / "Makefile").read_text(), re.M
    )
    args = shlex.split(recipe.group(1))
    assert args[-3:] == ["--configfile", *DEMO_CONFIG]
    wf = copy_workflow(tmp_path / "wf")
    resolved = resolved_config(wf, *args)
    assert resolved == with_defaults(layered_config(wf, *DEMO_CONFIG), SCHEMA)
    assert (resolved["augment"]["n_augmentations"], resolved["augment"]["encoder_threads"]) == (
        1,
        1,
    )
    assert (resolved["folds"]["k"], resolved["scale"]["size"]) == (3, 128)
    assert resolved["train"]["models"] == [
        "logreg",
        "linear_svm",
        "hist_gbm",
        "dummy",
        "probe",
        "knn",
        "naive_cnn",
        "videomae",
        "timesformer",
    ]
    assert resolved["train"]["params"]["hist_gbm"] == {"max_bins": 16}
    assert (resolved["embeddings"]["tiny"], resolved["embeddings"]["model"]) == (
        "clip",
        "results/encoder/tiny-clip",
    )
    for model in ("naive_cnn", "videomae", "timesformer"):  # the tiny CPU recipe
        deep = resolved["train"]["deep"][model]
        assert (deep["num_frames"], deep["image_size"], deep["train_clips"]) == (
            4,
            32,
            "originals",
        ), model
    assert resolved["evaluate"]["permutation"]["n_permutations"] == 50
    assert resolved["predict"]["input"] == "data/demo"


def test_every_schema_object_refuses_unknown_keys():
    def walk(node, path):
        if node.get("type") == "object" or "properties" in node:
            if "properties" in node:
                assert node.get("additionalProperties") is False, path or "(top level)"
            for key, sub in node.get("properties", {}).items():
                where = f"{path}.{key}" if path else key
                assert "description" in sub or "properties" in sub, f"{where}: no description"
                walk(sub, where)

    walk(SCHEMA, "")
    for name, definition in SCHEMA.get("$defs", {}).items():  # shared blocks ($ref)
        walk(definition, f"$defs.{name}")


@pytest.mark.parametrize(
    "config_text,message",
    [
        (
            "augment:\n  n_augmentation: 3\n",
            "unknown key augment.n_augmentation; did you mean n_augmentations?",
        ),
        (
            "dataset:\n  format: csv\n  path: missing.csv\n",
            "dataset.path: 'missing.csv' (under {root}) does not exist",
        ),
    ],
)
def test_snakemake_stops_before_any_job(tmp_path, config_text, message):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "bad.yaml").write_text(config_text)
    proc = snakemake(wf, "--cores", "1", "--configfile", "config.yaml", "bad.yaml", check=False)
    assert proc.returncode == 1
    assert message.replace("{root}", str(wf)) in proc.stderr
    for written in ("results", "logs", "data"):
        assert not (wf / written).exists(), f"{written}/ was written"
    assert [p.name for p in (wf / ".snakemake").iterdir()] == ["log"], "no job metadata"


# --------------------------------------------------------------------------- ingest


def _manifest_run(tmp_path, caplog, fmt, path, *extra):
    """``python -m lib manifest`` as the manifest rule runs it, over an earlier manifest."""
    out = tmp_path / "results/manifest.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("the previous manifest\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        rc = lib_main(
            [
                "manifest",
                "--format",
                fmt,
                "--path",
                str(path),
                "--out",
                str(out),
                "--report",
                str(tmp_path / "results/reports/ingest.md"),
                *extra,
            ]
        )
    return rc, out


INGEST = [
    (
        "empty corpus",
        ["path", "label"],
        [],
        "the corpus yields no video (0 rows read, dropped by reason: none); check dataset.path "
        "and dataset.format, the label column and dataset.label_map (a label mapped to null "
        "drops its rows); the ingest report lists examples",
        (),
    ),
    (
        "corpus of one class",
        ["path", "label", "group"],
        [["a.mp4", "fake", "g1"], ["b.mp4", "fake", "g2"], ["c.mp4", "fake", "g3"]],
        "the corpus has one class only (fake: 3 videos; 3 rows read, dropped by reason: none); "
        "a classifier needs at least two: add videos of another class or fix dataset.label_map",
        (),
    ),
    (
        "CSV missing its label column",
        ["path", "group"],
        [["a.mp4", "g1"]],
        "corpus.csv: missing column(s) ['label'] (found ['path', 'group']); add or rename the "
        "column(s) in the header, or check dataset.format",
        (),
    ),
    (
        "CSV with neither url nor path",
        ["file", "label"],
        [["a.mp4", "fake"]],
        "corpus.csv: needs a 'url' or a 'path' column (found ['file', 'label']); add or rename "
        "the column in the header, or check dataset.format",
        (),
    ),
    (
        "label map dropping every row",
        ["path", "label"],
        [["a.mp4", "fake"], ["b.mp4", "real"]],
        "the corpus yields no video (2 rows read, dropped by reason: label_dropped_by_map: 2); "
        "check dataset.path and dataset.format, the label column and dataset.label_map (a label "
        "mapped to null drops its rows); the ingest report lists examples",
        ("--label-map", '{"fake": null, "real": null}'),
    ),
    (
        "every path escapes the corpus folder",
        ["path", "label"],
        [["../a.mp4", "fake"], ["/etc/passwd", "real"]],
        "the corpus yields no video (2 rows read, dropped by reason: path_outside_corpus: 2); "
        "check dataset.path and dataset.format, the label column and dataset.label_map (a label "
        "mapped to null drops its rows); the ingest report lists examples",
        (),
    ),
]


@pytest.mark.parametrize("case,header,rows,message,extra", INGEST, ids=[c[0] for c in INGEST])
def test_ingest_refuses_before_writing(tmp_path, caplog, case, header, rows, message, extra):
    corpus = _write_csv(tmp_path / "corpus" / "corpus.csv", header, rows)
    rc, out = _manifest_run(tmp_path, caplog, "csv", corpus, *extra)
    assert rc == 1
    assert message in caplog.text
    assert out.read_text() == "the previous manifest\n", "the old manifest is not lost"
    assert not (tmp_path / "results/reports/ingest.md").exists()


def test_unreadable_corpus_file_names_the_fix(tmp_path, caplog):
    corpus = tmp_path / "corpus.csv"
    corpus.write_bytes(b"path,label\na.mp4,caf\xe9\n")  # Latin-1, not UTF-8
    rc, out = _manifest_run(tmp_path, caplog, "csv", corpus)
    assert rc == 1
    assert (
        f"{corpus}: not UTF-8 text (invalid continuation byte at byte 20); save the corpus "
        "file as UTF-8 (CSV) or JSON"
    ) in caplog.text
    assert out.read_text() == "the previous manifest\n"
    (tmp_path / "list.json").write_text('[{"gloss": ')
    rc, _ = _manifest_run(tmp_path, caplog, "wlasl", tmp_path / "list.json")
    assert rc == 1 and "list.json: not valid JSON (Expecting value" in caplog.text


def test_bad_rows_are_dropped_with_a_reason_and_the_rest_kept(tmp_path, caplog):
    """Escaping paths, refused file:// URLs, the same video listed twice, labels with commas
    and non-ASCII characters: the run goes on, every row accounted for."""
    outside = tmp_path / "elsewhere.mp4"
    rows = [
        ["media/a.mp4", "", "Straße, Nord", "g1"],
        ["media/b.mp4", "", 'café "au lait"', "g2"],
        ["media/a.mp4", "", "Straße, Nord", "g3"],  # the same video again
        ["../elsewhere.mp4", "", 'café "au lait"', "g4"],
        ["", outside.as_uri(), 'café "au lait"', "g5"],
    ]
    corpus = _write_csv(tmp_path / "corpus" / "corpus.csv", ["path", "url", "label", "group"], rows)
    rc, out = _manifest_run(tmp_path, caplog, "csv", corpus)
    assert rc == 0, caplog.text
    manifest = schemas.read_table(out, "manifest")
    assert sorted(manifest["label"]) == ["Straße, Nord", 'café "au lait"']
    assert manifest.filter(pl.col("label") == "Straße, Nord")["dup_group"].item() == "g1+g3"
    report = yaml.safe_load((tmp_path / "results/reports/ingest.json").read_text())
    assert report["dropped"] == {"file_url_refused": 1, "path_outside_corpus": 1}
    assert report["duplicates_merged"] == 1 and report["rows_read_total"] == 5
    # The corpus opts in: its file:// URL is kept.
    rc, out = _manifest_run(tmp_path, caplog, "csv", corpus, "--allow-file-urls")
    assert rc == 0 and outside.as_uri() in set(schemas.read_table(out, "manifest")["url"])


# --------------------------------------------------------------------------- folds


def _videos_table(path: Path, groups) -> Path:
    rows = [
        {
            "video_id": f"{g}_{i}",
            "path": f"data/videos/{g}_{i}.mp4",
            "label": label,
            "dup_group": g,
            "platform": "local",
            "is_original": i == 0,
            "frames": 10,
            "fps": 25.0,
            "duration_s": 0.4,
            "width": 64,
            "height": 48,
            "codec": "h264",
            "valid": True,
            "reason": "",
        }
        for g, label, n in groups
        for i in range(n)
    ]
    table = pl.DataFrame(rows)
    for column in schemas.columns("videos"):
        if column not in table.columns:
            kind = schemas.TABLES["videos"][column]
            table = table.with_columns(
                pl.lit({"str": "", "int": 0, "float": 0.0, "bool": False}[kind]).alias(column)
            )
    schemas.write_table(table, path, "videos")
    return path


FOLDS = [
    (
        "fewer groups than folds",
        [("g1", "fake", 2), ("g2", "real", 2)],
        3,
        "2 duplicate groups among 4 valid videos cannot fill 3 folds (2 groups, 4 videos; fake: "
        "2 videos in 1 groups, real: 2 videos in 1 groups): lower folds.k in the config to at "
        "most 2 or add videos from more groups.",
    ),
    (
        "a class in one group",
        [("r1", "real", 4), ("f1", "fake", 3), ("f2", "fake", 5)],
        2,
        "training set holds one class only",
    ),
]


@pytest.mark.parametrize("case,groups,k,message", FOLDS, ids=[c[0] for c in FOLDS])
def test_folds_refuse_before_writing(tmp_path, caplog, case, groups, k, message):
    videos = _videos_table(tmp_path / "videos.csv", groups)
    with caplog.at_level(logging.ERROR):
        rc = lib_main(
            [
                "folds",
                "--videos",
                str(videos),
                "--k",
                str(k),
                "--group-by",
                "annotated",
                "--out",
                str(tmp_path / "folds.csv"),
            ]
        )
    assert rc == 1 and message in caplog.text
    assert not (tmp_path / "folds.csv").exists()


# --------------------------------------------------------------------------- rerun


def test_rerun_after_editing_the_corpus(tmp_path):
    """The user adds a row to the corpus: ingest reruns, the old videos keep their ids, and
    download skips the files it already has (nothing fetched twice, nothing lost)."""
    from lib.shards import Shard
    from lib.stages.download import download_shard

    wf = copy_workflow(tmp_path / "wf")
    media = wf / "corpus" / "media"
    media.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (media / f"{name}.mp4").write_bytes(name.encode() * 100)
    rows = [["media/a.mp4", "fake", "g1"], ["media/b.mp4", "real", "g2"]]
    _write_csv(wf / "corpus" / "index.csv", ["path", "label", "group"], rows)
    (wf / "my.yaml").write_text("dataset:\n  format: csv\n  path: corpus/index.csv\n")
    args = ("--cores", "1", "--configfile", "config.yaml", "my.yaml")
    snakemake(wf, "results/manifest.csv", *args)
    first = schemas.read_table(wf / "results/manifest.csv", "manifest")
    download_shard(
        wf / "results/manifest.csv",
        wf / "first.csv",
        Shard(0, 1),
        videos_dir=wf / "data/videos",
        progress_dir=wf / "progress",
        previous=None,
        recheck=None,
        **with_defaults({}, SCHEMA)["download"],
    )

    assert "Nothing to be done" in snakemake(wf, "-n", "results/manifest.csv", *args).stdout
    _write_csv(
        wf / "corpus" / "index.csv",
        ["path", "label", "group"],
        rows + [["media/c.mp4", "real", "g3"]],
    )
    plan = snakemake(wf, "-n", "results/manifest.csv", *args).stdout
    assert re.search(r"^manifest\s+1$", plan, re.M), plan
    snakemake(wf, "results/manifest.csv", *args)
    second = schemas.read_table(wf / "results/manifest.csv", "manifest")
    assert_frame_equal(second.filter(pl.col("video_id").is_in(first["video_id"].implode())), first)
    download_shard(
        wf / "results/manifest.csv",
        wf / "second.csv",
        Shard(0, 1),
        videos_dir=wf / "data/videos",
        progress_dir=wf / "progress",
        previous=None,
        recheck=None,
        **with_defaults({}, SCHEMA)["download"],
    )
    status = dict(
        schemas.read_table(wf / "second.csv", "download").select("video_id", "status").iter_rows()
    )
    assert all(status[v] == "skipped" for v in first["video_id"])
    assert sum(s == "ok" for s in status.values()) == 1


def test_every_model_is_named_once_by_its_settings_entry():
    """train.models and evaluate.permutation.models take their choices from the models'
    settings entries: a feature model's train.params.<name> (which the feature registry must
    build) and a deep model's train.deep.<name> (which the deep registry builds)."""
    from lib.config import model_names
    from lib.train.feature_models import MODELS as FEATURE_MODELS
    from lib.train.settings import DEEP_MODELS

    schema = load_schema()
    assert model_names(schema) == [*FEATURE_MODELS, *DEEP_MODELS]
    train = schema["properties"]["train"]["properties"]
    permutation = schema["properties"]["evaluate"]["properties"]["permutation"]["properties"]
    for listing in (train["models"], permutation["models"]):
        assert listing["items"]["enum"] == model_names(schema)


# --------------------------------------------------------------------------- pretrained checkpoints

FAKE_HUB_ID = "vidstage-tests/no-such-model"


def _deep(model: str, **settings) -> dict:
    return {"models": [model], "deep": {model: settings}}


def _config_json(folder: Path, **values) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(values))
    return folder


@pytest.mark.parametrize("model", ["vit_gru", "videomae"])
def test_a_hub_id_found_nowhere_stops_at_start_up_naming_the_key(tmp_path, monkeypatch, model):
    """Offline, not in the cache: a ConfigError naming the key and both fixes (no request)."""
    from huggingface_hub import constants

    from lib.train.check import check_train_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ConfigError) as error:
        check_train_config(_deep(model, pretrained=FAKE_HUB_ID, num_frames=16, image_size=224))
    key = f"train.deep.{model}.pretrained"
    assert error.value.problems == [
        f"{key}={FAKE_HUB_ID!r} cannot be found: not in the Hugging Face cache "
        f"{tmp_path / 'empty-cache'}, and HF_HUB_OFFLINE is set; download it on a machine with "
        f"internet (`hf download {FAKE_HUB_ID} --local-dir models/{FAKE_HUB_ID}`; older "
        f"clients: `huggingface-cli download`), copy the folder here and set "
        f"{key}: models/{FAKE_HUB_ID}, or set HF_HOME to a Hugging Face cache that holds it"
    ]


def test_a_hub_id_in_the_cache_passes_offline(tmp_path, monkeypatch):
    """The cache answers first (no network): a videomae checkpoint's clip length is read
    from the cached config.json."""
    from huggingface_hub import constants

    from lib.train.check import check_train_config, locate_pretrained

    repo = tmp_path / "cache" / "models--vidstage-tests--cached-videomae"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    config = _config_json(repo / "snapshots" / "0123abcd", num_frames=16, image_size=224)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    hub_id = "vidstage-tests/cached-videomae"
    assert locate_pretrained(hub_id) == config / "config.json"
    check_train_config(_deep("videomae", pretrained=hub_id, num_frames=16, image_size=224))
    with pytest.raises(
        ConfigError, match=r"num_frames=8 but the checkpoint .* fixes num_frames=16"
    ):
        check_train_config(_deep("videomae", pretrained=hub_id, num_frames=8, image_size=224))


def test_a_local_folder_passes_and_a_bad_one_is_named(tmp_path, monkeypatch):
    from lib.train.check import check_train_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    good = _config_json(tmp_path / "models" / "vit", model_type="vit", image_size=32)
    check_train_config(_deep("vit_transformer", pretrained=str(good), image_size=32))
    empty = tmp_path / "models" / "empty"
    empty.mkdir()
    missing = str(tmp_path / "models" / "not" / "there")
    for pretrained, reason in (
        (
            str(empty),
            f"the folder {empty} has no config.json (save_pretrained and `hf download` "
            "write one)",
        ),
        (missing, "no such folder, and not a hub id"),
    ):
        with pytest.raises(ConfigError) as error:
            check_train_config(_deep("naive_cnn", pretrained=pretrained))
        assert error.value.problems == [
            f"train.deep.naive_cnn.pretrained={pretrained!r} cannot be found: {reason}; set "
            "train.deep.naive_cnn.pretrained to a folder written by save_pretrained or `hf "
            "download --local-dir` (relative paths start from the working directory), or to a "
            "hub id"
        ]


def _tiny_checkpoints(folder: Path, deep: dict) -> dict:
    """A tiny model saved with save_pretrained for each hub id of ``deep`` (``train.deep``;
    ``ssl``, the project's own pretraining, is none),
    with the architecture and clip length the hub's checkpoint has; returns the overlay that
    points each family's ``pretrained`` at its folder (relative to the working directory)."""
    from transformers import (
        TimesformerConfig,
        TimesformerForVideoClassification,
        VideoMAEConfig,
        VideoMAEForVideoClassification,
        ViTConfig,
        ViTModel,
    )

    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    tiny["intermediate_size"] = 64
    overlay = {}
    for model, settings in deep.items():
        hub_id = settings.get("pretrained")
        if hub_id in (None, "ssl"):
            continue
        clip = {"image_size": settings["image_size"], "patch_size": 16, **tiny}
        if model == "videomae":
            net = VideoMAEForVideoClassification(
                VideoMAEConfig(num_frames=settings["num_frames"], **clip)
            )
        elif model == "timesformer":
            net = TimesformerForVideoClassification(
                TimesformerConfig(num_frames=settings["num_frames"], **clip)
            )
        else:  # a ViT frame encoder
            net = ViTModel(ViTConfig(**clip), add_pooling_layer=False)
        net.save_pretrained(folder / "models" / hub_id)
        overlay[model] = {"pretrained": f"models/{hub_id}"}
    return {"train": {"deep": overlay}}


def test_fvc_deep_settings_plan_their_jobs_and_unreachable_hub_ids_stop_at_start_up(
    tmp_path, monkeypatch
):
    """configs/fvc.yaml's deep models, local folders standing in for its hub ids (no network
    here): the dry run plans a train_deep job per model and fold, the final model's export, and
    a pretraining per fold and for the final model where a family starts from `ssl`. As
    shipped, offline with an empty cache, the run stops at start-up naming each hub id's key."""
    wf = copy_workflow(tmp_path / "wf")
    fvc = tmp_path / "shared" / "data" / "fvc"  # configs/fvc.yaml's ../shared/data/fvc
    _write_csv(fvc / "FVC.csv", ["cascade_id", "video_url", "label"], [])
    _write_csv(fvc / "FVC_dup.csv", ["cascade_id", "video_url", "label"], [])
    shipped = yaml.safe_load((REPO / "configs/fvc.yaml").read_text())["train"]
    deep_models = [m for m in shipped["models"] if m in shipped["deep"]]
    assert sorted(deep_models) == sorted(shipped["deep"]) and len(deep_models) == 5
    overlay = _tiny_checkpoints(wf, shipped["deep"])
    # the embedding models' encoder (a hub id too): a folder with its config.json stands in
    (wf / "models/encoder").mkdir(parents=True)
    (wf / "models/encoder/config.json").write_text('{"model_type": "clip"}')
    overlay["embeddings"] = {"model": "models/encoder"}
    (wf / "local.yaml").write_text(yaml.safe_dump(overlay))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))

    files = ("--configfile", "config.yaml", "configs/fvc.yaml", "local.yaml")
    plan = snakemake(wf, "-n", "all", "results/models/videomae/final/export", *files).stdout
    k = with_defaults({}, SCHEMA)["folds"]["k"]
    assert re.search(rf"^train_deep\s+{len(deep_models) * k}$", plan, re.M), plan[-3000:]
    assert re.search(r"^train_final_deep\s+1$", plan, re.M), plan[-3000:]
    ssl = [m for m in deep_models if shipped["deep"][m].get("pretrained") == "ssl"]
    assert ssl == ["videomae"], "configs/fvc.yaml's videomae starts from its own pretraining"
    assert re.search(rf"^pretrain\s+{k + 1}$", plan, re.M), plan[-3000:]

    proc = snakemake(wf, "-n", *files[:-1], check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in said, said[-3000:]
    for model in deep_models:
        hub_id = shipped["deep"][model].get("pretrained")
        if hub_id not in (None, "ssl"):
            key = f"train.deep.{model}.pretrained"
            assert f"{key}={hub_id!r} cannot be found" in said, model
            assert f"hf download {hub_id} --local-dir models/{hub_id}" in said
    assert not (wf / "results").exists()


def _hub_error(name: str) -> Exception:
    """An instance of huggingface_hub.errors.<name> without an HTTP response to build."""
    from huggingface_hub import errors

    cls = getattr(errors, name)
    error = cls.__new__(cls)
    Exception.__init__(error, name)
    return error


@pytest.mark.parametrize(
    "raised,reason",
    [
        (
            ConnectionError("no route to host"),
            "not in the Hugging Face cache {cache}, and the hub cannot be reached "
            "(ConnectionError: no route to host)",
        ),
        ("RepositoryNotFoundError", "no such model on the hub (or a private one: `hf auth login`)"),
        ("GatedRepoError", "gated on the hub: accept its terms on its page, then `hf auth login`"),
        (
            "RemoteEntryNotFoundError",
            "the hub has it but without config.json: not a transformers checkpoint",
        ),
        (None, None),  # the hub has it
    ],
    ids=["unreachable", "no such model", "gated", "no config.json", "found"],
)
def test_a_hub_id_not_in_the_cache_is_asked_of_the_hub_once(tmp_path, monkeypatch, raised, reason):
    """Online, not cached: one metadata request with the short timeout, no retries; its
    answer decides (the hub is faked: no network here)."""
    import huggingface_hub
    from huggingface_hub import constants

    from lib.train.check import HUB_TIMEOUT_S, PretrainedNotFound, check_train_config
    from lib.train.check import locate_pretrained

    calls = []

    def metadata(url, timeout):
        calls.append((url, timeout))
        if raised is not None:
            raise _hub_error(raised) if isinstance(raised, str) else raised

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    url = f"https://huggingface.co/{FAKE_HUB_ID}/resolve/main/config.json"
    if reason is None:
        assert locate_pretrained(FAKE_HUB_ID) is None
        check_train_config(_deep("vit_gru", pretrained=FAKE_HUB_ID, image_size=224))
        assert calls == [(url, HUB_TIMEOUT_S)] * 2
        return
    with pytest.raises(PretrainedNotFound) as error:
        locate_pretrained(FAKE_HUB_ID)
    assert str(error.value) == reason.format(cache=tmp_path)
    assert error.value.hub_id and calls == [(url, HUB_TIMEOUT_S)]
