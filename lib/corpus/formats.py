"""Corpus formats: one reader per ``dataset.format``, registered in :data:`FORMATS`.

A reader ``read_<format>(path, collector, options)`` reads the corpus at ``path`` and hands
every input row to the :class:`Collector`: a usable row as a :class:`Listing`
(``collector.add``), an unusable one as a counted drop reason (``collector.drop``), so nothing
is dropped silently. A reader may also set its format's own defaults on the collector:
``default_label_map`` (used when ``dataset.label_map`` is null) and ``extra_columns`` (manifest
columns beyond the common ones, with their types). Adding a format is one reader and one entry
in :data:`FORMATS`, then its name in the schema's ``dataset.format`` enum and what it reads at
``dataset.path`` in ``lib.config.DATASET_PATHS`` (the start-up check); a test keeps the three
lists equal.

Formats
-------
``fvc``
    The Fake Video Corpus: a folder holding ``FVC.csv`` (originals) and ``FVC_dup.csv``
    (reposts), columns ``cascade_id,video_url,label``. ``cascade_id`` is the duplicate
    group. Labels go through ``label_map`` (default :data:`FVC_DEFAULT_LABEL_MAP`: keep
    ``fake`` and ``real``, drop ``uncertain``, ``debunked``, ``parody``).
``csv``
    A table with ``url`` or ``path`` (a row uses ``url`` when that column exists and the
    cell is not empty, otherwise ``path``), ``label``, optional ``group`` (default: each
    video is its own group) and optional ``is_original`` (default true). Relative paths
    resolve against the CSV's folder, must stay inside it (else ``path_outside_corpus``)
    and become absolute ``file://`` URLs (the download stage links those files). A
    ``file://`` URL in the ``url`` column can name any file, so it is dropped
    (``file_url_refused``) unless the corpus opts in (``allow_file_urls``).
``demo``
    ``csv`` read from ``<path>/index.csv`` (what the demo generator writes); opts in to
    ``file://`` URLs by itself.
``folder``
    One subfolder per class below ``path``; every video file (by extension,
    :data:`VIDEO_EXTENSIONS`) anywhere below a class folder is a row labelled with that
    class. ``folder_group="video"`` puts each file in its own group;
    ``folder_group="parent"`` groups the files of one folder together (for clips cut from
    one source video that were stored side by side).
``wlasl``
    The WLASL JSON (a list of ``{gloss, instances: [...]}``); label = gloss, group =
    ``signer_<signer_id>``, video_id = WLASL's ``video_id``, plus the segment to keep and
    the extra column ``segment_fps`` (the frame rate the segment's frame numbers count in).

Segments: ``frame_start`` is 0-based, ``frame_end`` is 0-based *exclusive* (Python slicing
``frames[frame_start:frame_end]``); ``frame_end == -1`` means "to the end". ``0, -1`` is the
whole video.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlsplit

import polars as pl

from lib.corpus.ids import (
    MAX_URL_LENGTH,
    file_video_id,
    platform_from_url,
    safe_id,
    url_problem,
    video_id_from_url,
)

VIDEO_EXTENSIONS: frozenset[str] = frozenset({"mp4", "webm", "avi", "mov", "mkv", "m4v", "flv"})
FVC_DEFAULT_LABEL_MAP: dict[str, str | None] = {
    "fake": "fake",
    "real": "real",
    "uncertain": None,
    "debunked": None,
    "parody": None,
}
EXAMPLES_PER_REASON = 5

_TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t"})
_FALSE_TEXT = frozenset({"false", "0", "no", "n", "f"})


@dataclass(frozen=True)
class ReadOptions:
    """The ``dataset`` options a reader may use; each reader takes what applies to it.

    ``allow_file_urls``: accept ``file://`` URLs (None: the format's own choice, which only
    ``demo`` makes). ``folder_group``: ``"video"`` or ``"parent"`` (``folder`` only).
    """

    allow_file_urls: bool | None
    folder_group: str


@dataclass
class Listing:
    """One usable input row, before label mapping and merging."""

    order: int
    source: str
    url: str
    video_id: str
    platform: str
    group: str
    raw_label: str
    is_original: bool
    frame_start: int = 0
    frame_end: int = -1
    extra: dict = field(default_factory=dict)


@dataclass
class Collector:
    """Gathers listings, row counts and drop reasons while a format is read, and the format's
    own defaults: the label map used when ``dataset.label_map`` is null (None: keep every
    label) and extra manifest columns with their types."""

    rows_read: dict[str, int] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    listings: list[Listing] = field(default_factory=list)
    ignored_files: int = 0
    default_label_map: dict[str, str | None] | None = None
    extra_columns: dict[str, pl.DataType] = field(default_factory=dict)

    def count_read(self, source: str, n: int = 1) -> None:
        self.rows_read[source] = self.rows_read.get(source, 0) + n

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(where)

    def add(self, **values) -> None:
        self.listings.append(Listing(order=len(self.listings), **values))


def _read_csv_rows(
    csv_path: Path, collector: Collector, required: Iterable[str]
) -> tuple[list[str], list]:
    """Rows of a CSV as (line number, dict) with stripped cells; broken rows are dropped.

    Raises ``ValueError`` when required columns are missing (a wrong file, not a bad row).
    """
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            header = []
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(
                f"{csv_path.name}: missing column(s) {missing} (found {header}); "
                "add or rename the column(s) in the header, or check dataset.format"
            )
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank line: not a row
            collector.count_read(csv_path.name)
            where = f"{csv_path.name}:{reader.line_num}"
            if len(cells) != len(header):
                collector.drop("unparsable", where)
                continue
            rows.append((where, {name: cell.strip() for name, cell in zip(header, cells)}))
    return header, rows


def _parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE_TEXT:
        return True
    if lowered in _FALSE_TEXT:
        return False
    return None


def read_fvc(folder: Path, collector: Collector, options: ReadOptions) -> None:
    """The ``fvc`` format; its default label map is :data:`FVC_DEFAULT_LABEL_MAP`."""
    collector.default_label_map = dict(FVC_DEFAULT_LABEL_MAP)
    for file_name, is_original in (("FVC.csv", True), ("FVC_dup.csv", False)):
        csv_path = folder / file_name
        if not csv_path.is_file():
            raise FileNotFoundError(f"FVC format needs {csv_path}")
        _, rows = _read_csv_rows(csv_path, collector, ("cascade_id", "video_url", "label"))
        for where, row in rows:
            url = row["video_url"]
            problem = url_problem(url, allow_file=False)
            if problem:
                collector.drop(problem, where)
                continue
            if not row["cascade_id"]:
                collector.drop("empty_group", where)
                continue
            if not row["label"]:
                collector.drop("empty_label", where)
                continue
            collector.add(
                source=where,
                url=url,
                video_id=video_id_from_url(url),
                platform=platform_from_url(url),
                group=row["cascade_id"],
                raw_label=row["label"],
                is_original=is_original,
            )


def read_csv(path: Path, collector: Collector, options: ReadOptions) -> None:
    """The ``csv`` format: a CSV file at ``path``; ``file://`` URLs only when the corpus opts in."""
    _read_table(path, collector, allow_file_urls=bool(options.allow_file_urls))


def read_demo(path: Path, collector: Collector, options: ReadOptions) -> None:
    """The ``demo`` format: ``<path>/index.csv``; accepts ``file://`` URLs unless refused."""
    allow = True if options.allow_file_urls is None else bool(options.allow_file_urls)
    _read_table(path / "index.csv", collector, allow_file_urls=allow)


def _read_table(csv_path: Path, collector: Collector, *, allow_file_urls: bool) -> None:
    """The ``csv``/``demo`` format: url or path, label, optional group, is_original and
    platform (else the URL's, :func:`platform_from_url`).

    A ``path`` must stay inside the CSV's folder (else ``path_outside_corpus``); a
    ``file://`` URL in the ``url`` column can name any file and is refused
    (``file_url_refused``) unless ``allow_file_urls``.
    """
    if not csv_path.is_file():
        raise FileNotFoundError(f"no such CSV: {csv_path}")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        header = [name.strip() for name in next(csv.reader(handle), [])]
    if "url" not in header and "path" not in header:
        raise ValueError(
            f"{csv_path.name}: needs a 'url' or a 'path' column (found {header}); "
            "add or rename the column in the header, or check dataset.format"
        )
    _, rows = _read_csv_rows(csv_path, collector, ("label",))
    base_dir = Path(os.path.abspath(csv_path.parent))
    for where, row in rows:
        url = row.get("url", "")
        if url:
            problem = url_problem(url, allow_file=True)
            if problem:
                collector.drop(problem, where)
                continue
            if urlsplit(url).scheme.lower() == "file" and not allow_file_urls:
                collector.drop("file_url_refused", where)
                continue
            if urlsplit(url).scheme.lower() == "file":
                local = Path(unquote(urlsplit(url).path))
                video_id = file_video_id(local, base_dir=base_dir)
            else:
                video_id = video_id_from_url(url)
        else:
            path_text = row.get("path", "")
            if not path_text:
                collector.drop("empty_url", where)
                continue
            if len(path_text) > MAX_URL_LENGTH or "\x00" in path_text:
                collector.drop("bad_path", where)
                continue
            local = Path(os.path.abspath(base_dir / path_text))
            if not local.is_relative_to(base_dir):
                collector.drop("path_outside_corpus", where)
                continue
            url = local.as_uri()
            video_id = file_video_id(local, base_dir=base_dir)
        if not row["label"]:
            collector.drop("empty_label", where)
            continue
        original_text = row.get("is_original", "")
        is_original = True if not original_text else _parse_bool(original_text)
        if is_original is None:
            collector.drop("bad_is_original", where)
            continue
        collector.add(
            source=where,
            url=url,
            video_id=video_id,
            platform=row.get("platform", "") or platform_from_url(url),  # the demo's column
            group=row.get("group", "") or video_id,
            raw_label=row["label"],
            is_original=is_original,
        )


def read_folder(root: Path, collector: Collector, options: ReadOptions) -> None:
    """The ``folder`` format: one subfolder per class; groups by ``options.folder_group``."""
    folder_group = options.folder_group
    if folder_group not in {"video", "parent"}:
        raise ValueError(f"folder_group must be 'video' or 'parent', not {folder_group!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    root = Path(os.path.abspath(root))
    source = root.name or "."
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative_dir = Path(os.path.relpath(directory, root))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower().lstrip(".") not in VIDEO_EXTENSIONS:
                collector.ignored_files += 1
                continue
            collector.count_read(source)
            relative = (relative_dir / name).as_posix()
            if relative_dir == Path("."):
                collector.drop("no_class_folder", relative)
                continue
            file_path = Path(directory) / name
            video_id = file_video_id(file_path, base_dir=root)
            group = relative_dir.as_posix() if folder_group == "parent" else video_id
            collector.add(
                source=relative,
                url=file_path.as_uri(),
                video_id=video_id,
                platform="local",
                group=group,
                raw_label=relative_dir.parts[0],
                is_original=True,
            )


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    return None


def wlasl_segment(frame_start: object, frame_end: object) -> tuple[int, int] | None:
    """WLASL's 1-based inclusive ``[frame_start, frame_end]`` as our 0-based ``[start, end)``.

    WLASL (README and ``start_kit/preprocess.py``) counts frames from 1 and keeps
    ``frames[frame_start - 1 : frame_end]``; ``frame_end`` -1 (or any value <= 0) means
    "to the last frame". So start -> ``frame_start - 1`` (at least 0) and end stays
    ``frame_end`` (now exclusive), or -1. None when the numbers are unusable.
    """
    start, end = _as_int(frame_start), _as_int(frame_end)
    if start is None or end is None:
        return None
    start0 = max(start - 1, 0)
    if end <= 0:
        return start0, -1
    if end <= start0:
        return None
    return start0, end


def read_wlasl(json_path: Path, collector: Collector, options: ReadOptions) -> None:
    """The ``wlasl`` format; adds the manifest column ``segment_fps``."""
    allow_file_urls = bool(options.allow_file_urls)
    collector.extra_columns = {"segment_fps": pl.Int64}
    if not json_path.is_file():
        raise FileNotFoundError(f"no such WLASL JSON: {json_path}")
    entries = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{json_path.name}: expected a JSON list of {{gloss, instances}}")
    source = json_path.name
    for entry_index, entry in enumerate(entries):
        instances = entry.get("instances") if isinstance(entry, dict) else None
        if not isinstance(instances, list):
            collector.count_read(source)
            collector.drop("unparsable", f"{source}[{entry_index}]")
            continue
        gloss = entry.get("gloss")
        gloss = gloss.strip() if isinstance(gloss, str) else ""
        for instance_index, instance in enumerate(instances):
            collector.count_read(source)
            where = f"{source}[{entry_index}].instances[{instance_index}]"
            if not isinstance(instance, dict):
                collector.drop("unparsable", where)
                continue
            url = str(instance.get("url") or "").strip()
            problem = url_problem(url, allow_file=True)
            if not problem and urlsplit(url).scheme.lower() == "file" and not allow_file_urls:
                problem = "file_url_refused"
            if problem:
                collector.drop(problem, where)
                continue
            raw_id = str(instance.get("video_id") or "").strip()
            if not raw_id:
                collector.drop("empty_video_id", where)
                continue
            if not gloss:
                collector.drop("empty_label", where)
                continue
            segment = wlasl_segment(instance.get("frame_start", 1), instance.get("frame_end", -1))
            if segment is None:
                collector.drop("bad_segment", where)
                continue
            video_id = safe_id(raw_id)
            signer = instance.get("signer_id")
            group = f"signer_{signer}" if _as_int(signer) is not None else video_id
            fps = _as_int(instance.get("fps"))
            collector.add(
                source=where,
                url=url,
                video_id=video_id,
                platform=platform_from_url(url),
                group=group,
                raw_label=gloss,
                is_original=True,
                frame_start=segment[0],
                frame_end=segment[1],
                extra={"segment_fps": fps if fps is not None else 25},
            )


#: ``dataset.format`` -> its reader.
FORMATS: dict[str, Callable[[Path, Collector, ReadOptions], None]] = {
    "fvc": read_fvc,
    "csv": read_csv,
    "folder": read_folder,
    "wlasl": read_wlasl,
    "demo": read_demo,
}
