"""The parts a row of :data:`lib.stages.commands.COMMANDS` is made of: a command, its
per-job arguments and the config sections its parameters come from, and the arguments that
many commands share (the tables they read, the table they write, training's arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arg:
    """A per-job argument of a command (a file, a folder, a model name): ``add_argument``'s."""

    flags: tuple[str, ...]
    options: dict[str, Any]

    @property
    def dest(self) -> str:
        """The keyword it is passed as (argparse's dest: ``--out-dir`` -> ``out_dir``)."""
        return self.options.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Section:
    """The parameters a command takes from one config section.

    ``path``: dotted path of the section in the config (``""`` = the top level, e.g.
    ``seed``). ``keys``: the keys taken; ``None`` takes every key the schema lists, so a key
    added there arrives by itself. ``into``: pass the section as one mapping under this
    keyword (e.g. ``limits``) instead of one keyword per key. ``prefix``: put before the
    flag of each key and, without ``into``, its keyword (``scale_`` -> ``--scale-size``,
    ``scale_size``), where a command reads several sections whose keys would clash or
    mislead (predict's ``--model-dir`` and the scale section's ``--scale-model``).
    """

    path: str
    keys: tuple[str, ...] | None = None
    into: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Command:
    """One subcommand. Its function (:func:`lib.stages.commands.stage_function`) is called with keywords only:
    each :class:`Arg`'s ``dest``, ``shard`` and ``progress_dir`` when ``sharded``, and the
    parameters of ``sections``."""

    name: str
    help: str
    args: tuple[Arg, ...] = ()
    sections: tuple[Section, ...] = ()
    sharded: bool = False
    description: str | None = None


SEED = Section("", keys=("seed",))


POSITIVE_LABEL = Section("train", keys=("positive_label",))


def reads(flag: str, path: str, **options: Any) -> Arg:
    """A table the command reads (required unless ``options`` say otherwise)."""
    return arg(flag, **{"required": True, "help": path, **options})


def folder(flag: str, default: str, what: str) -> Arg:
    """A folder the command writes files into."""
    return arg(flag, default=default, help=f"where {what} are written (default: %(default)s)")


OUT = arg("--out", dest="output", required=True, help="table to write")


MANIFEST = reads("--manifest", "results/manifest.csv")


DOWNLOADS = reads("--downloads", "results/download.csv")


VIDEOS = reads("--videos", "results/videos.csv")


CLIPS = reads("--clips", "results/clips.csv")


SCALED = reads("--scaled", "results/scaled.csv")


FOLDS = reads("--folds", "results/folds.csv")


def sampling_stage(name: str, help: str, reads: Arg, section: str) -> Command:
    """A sharded stage that samples frames of every video or clip of ``reads``: the keys of
    config ``section`` say how, passed as one mapping, ``sampling``."""
    sections = (Section(section, into="sampling"),)
    return Command(name, help, args=(reads, OUT), sections=sections, sharded=True)


def training_args(output: Arg, checkpoints: str, *extra: Arg) -> tuple[Arg, ...]:
    """The arguments of train, train-final and permutation (:mod:`lib.stages.train`,
    :mod:`lib.stages.permutation`): ``output`` and ``extra`` differ, and where a deep model's
    finished work is kept by default (``results/.checkpoints/<model>/<checkpoints>``).
    """
    return (
        reads(
            "--features",
            "results/features.parquet and/or results/embeddings.parquet (feature models; "
            "several are joined on clip_id)",
            required=False,
            nargs="+",
        ),
        reads("--scaled", "results/scaled.csv (deep models)", required=False),
        CLIPS,
        FOLDS,
        output,
        arg("--model", required=True, help="model name (train.models)"),
        *extra,
        json_arg(
            "--params",
            "JSON: keyword arguments of the feature model (config train.params.<model>) or "
            "the deep model's settings (train.deep.<model>)",
        ),
        resume_dir(f"results/.checkpoints/<model>/{checkpoints}", "deep models: "),
    )


def json_arg(flag: str, help: str, **options: Any) -> Arg:
    """An argument given as JSON text (``{}`` when left out)."""
    return arg(flag, type="json", default={}, help=help, **options)


def resume_dir(default: str, who: str = "") -> Arg:
    """``--checkpoint-dir``: where a job keeps what a killed run resumes from."""
    resume = "where finished work survives a killed job, for a resume"
    return arg("--checkpoint-dir", default=None, help=f"{who}{resume} (default {default})")
