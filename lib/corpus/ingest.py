"""Ingest: every corpus format becomes one manifest table (the pipeline's first table).

``build_manifest(fmt, path)`` reads a corpus in one of the formats below and returns the
manifest (columns ``MANIFEST_COLUMNS``) plus an :class:`IngestReport` that accounts for
every input row: each row read is either kept, merged into another row (the same video
listed twice) or dropped with a counted reason. Nothing is dropped silently.

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
    class. ``folder_group="video"`` (default) puts each file in its own group;
    ``folder_group="parent"`` groups the files of one folder together (for clips cut from
    one source video that were stored side by side).
``wlasl``
    The WLASL JSON (a list of ``{gloss, instances: [...]}``); label = gloss, group =
    ``signer_<signer_id>``, video_id = WLASL's ``video_id``, plus the segment to keep and
    the extra column ``segment_fps`` (the frame rate the segment's frame numbers count in).

Conventions shared by all formats
---------------------------------
- ``video_id`` is always :func:`safe_id`-clean (``[A-Za-z0-9_-]``, at most 100 chars):
  the download stage writes ``<data dir>/<video_id>.<ext>``, so ids must never escape it.
  Web URLs: YouTube -> ``yt_<id>``, Facebook -> ``fb_<video number>``, Twitter/X ->
  ``tw_<status id>``, anything else -> a slug of host and path + 10 hex of sha256 of the
  URL. Local files: slug of the file stem + 8 hex of sha256 of the path *relative to the
  corpus file's folder*, so ids do not depend on where the checkout lives (the ``url``
  column of local files is an absolute ``file://`` URL and does).
- Segments: ``frame_start`` is 0-based, ``frame_end`` is 0-based *exclusive* (Python
  slicing ``frames[frame_start:frame_end]``); ``frame_end == -1`` means "to the end".
  ``0, -1`` is the whole video.
- A video (same ``video_id``) listed more than once becomes one row. Its label, when the
  listings disagree, comes from :func:`resolve_label`: an original's listing wins, else
  the majority, ties broken by ``label_precedence`` (default ``fake`` before ``real``,
  then other labels alphabetically: for fake-video detection a repost that one source
  calls fake and one calls real is most likely a copy of the debunked video). Its URL is
  the one of the first original listing, else of the first listing in input order.
- Duplicate groups are closed under shared videos: groups that list the same video (same
  ``video_id`` or same URL) become ONE group (union-find), named by its member group
  names in natural sort order joined by ``+`` (e.g. ``f138+f139+f140+f142``). Joining uses
  every listing with a usable URL *before* labels are mapped, so a video's group does not
  depend on the label map, and a video listed under a dropped label still joins groups.
- Rows are sorted by ``(dup_group, video_id)`` in plain code-point order, so the same
  input gives the identical table on every machine.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import polars as pl

from lib.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

MANIFEST_COLUMNS: tuple[str, ...] = (
    "video_id",
    "url",
    "label",
    "dup_group",
    "platform",
    "is_original",
    "frame_start",
    "frame_end",
)
FORMATS: tuple[str, ...] = ("fvc", "csv", "folder", "wlasl", "demo")
VIDEO_EXTENSIONS: frozenset[str] = frozenset({"mp4", "webm", "avi", "mov", "mkv", "m4v", "flv"})
FVC_DEFAULT_LABEL_MAP: dict[str, str | None] = {
    "fake": "fake",
    "real": "real",
    "uncertain": None,
    "debunked": None,
    "parody": None,
}
DEFAULT_LABEL_PRECEDENCE: tuple[str, ...] = ("fake", "real")
DROPPED = "(dropped)"
MAX_ID_LENGTH = 100
MAX_URL_LENGTH = 4096
EXAMPLES_PER_REASON = 5

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")
_UNDERSCORE_RUN = re.compile(r"_{2,}")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YOUTUBE_PATH_ID = re.compile(r"^/(?:shorts|embed|v|e|live)/([A-Za-z0-9_-]{11})(?:[/?#]|$)")
_FACEBOOK_PATH_NUMBER = re.compile(r"/(?:videos|reel|watch)/(?:[^/]+/)*?(\d+)/?$")
_TWITTER_STATUS = re.compile(r"/status(?:es)?/(\d+)")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t"})
_FALSE_TEXT = frozenset({"false", "0", "no", "n", "f"})


# --------------------------------------------------------------------------- ids and URLs


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _slug(text: str, max_len: int) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9_-]`` replaced by ``_``.

    Runs of ``_`` collapse and leading/trailing ``_``/``-`` go (a leading ``-`` reads as
    an option to command-line tools). May be empty.
    """
    slug = _UNDERSCORE_RUN.sub("_", _UNSAFE_RUN.sub("_", text)).strip("_-")
    return slug[:max_len].rstrip("_-")


def safe_id(text: object, *, max_len: int = MAX_ID_LENGTH) -> str:
    """An identifier that is safe as a file name: only ``[A-Za-z0-9_-]``, 1..``max_len`` chars.

    Text that is already safe comes back unchanged. Otherwise the text is slugged
    (unsafe runs -> ``_``, trimmed, shortened) and ``_`` + 8 hex of sha256 of the
    *original* text is appended, so two different inputs that slug alike (``a b`` and
    ``a/b``) still get different ids, and none of them can equal a safe input's id unless
    that input spells out the hash. The result is never empty and never ``.``/``..``
    (dots are not allowed at all), so ``<dir>/<safe_id>.<ext>`` always stays in ``<dir>``:
    ``../../etc/passwd`` -> ``etc_passwd_<hash>``, ``$(reboot)`` -> ``reboot_<hash>``.
    """
    text = str(text)
    if max_len < 12:
        raise ValueError("max_len must be at least 12 (room for the hash suffix)")
    slug = _slug(text, max_len)
    if slug == text and slug:
        return slug
    digest = _sha256_hex(text)[:8]
    body = slug[: max_len - 9].rstrip("_-")
    return f"{body}_{digest}" if body else f"id_{digest}"


def _host(url_parts) -> str:
    host = (url_parts.hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def platform_from_url(url: str) -> str:
    """``youtube``, ``facebook``, ``twitter``, ``local`` (``file://``) or ``other``."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() == "file":
        return "local"
    host = _host(parts)
    if (
        host in {"youtu.be"}
        or host == "youtube.com"
        or host.endswith(".youtube.com")
        or host in {"youtube-nocookie.com"}
    ):
        return "youtube"
    if host in {"facebook.com", "fb.com", "fb.watch"} or host.endswith(".facebook.com"):
        return "facebook"
    if host in {"twitter.com", "x.com"} or host.endswith(".twitter.com") or host.endswith(".x.com"):
        return "twitter"
    return "other"


def _youtube_id(parts) -> str | None:
    host = _host(parts)
    if host == "youtu.be":
        candidate = parts.path.strip("/").split("/")[0]
        return candidate if _YOUTUBE_ID.match(candidate) else None
    match = _YOUTUBE_PATH_ID.match(parts.path)
    if match:
        return match.group(1)
    if parts.path.rstrip("/") in {"/watch", ""}:
        for candidate in parse_qs(parts.query).get("v", []):
            if _YOUTUBE_ID.match(candidate):
                return candidate
    return None


def _facebook_number(parts) -> str | None:
    for key in ("v", "video_id"):
        for candidate in parse_qs(parts.query).get(key, []):
            if candidate.isdigit():
                return candidate
    match = _FACEBOOK_PATH_NUMBER.search(parts.path)
    return match.group(1) if match else None


def video_id_from_url(url: str) -> str:
    """A stable, file-name-safe id for a web URL (see the module docstring for the forms).

    The same video reached through different URL forms (``youtu.be/X``,
    ``youtube.com/watch?v=X&t=3``, ``/shorts/X``) gets the same id, so it is ingested once.
    """
    url = url.strip()
    parts = urlsplit(url)
    platform = platform_from_url(url)
    if platform == "youtube":
        found = _youtube_id(parts)
        if found:
            return f"yt_{found}"
    elif platform == "facebook":
        found = _facebook_number(parts)
        if found:
            return f"fb_{found}"
    elif platform == "twitter":
        match = _TWITTER_STATUS.search(parts.path)
        if match:
            return f"tw_{match.group(1)}"
    # Anything else: readable slug + hash of the URL (scheme/host lower-cased, no fragment).
    canonical = parts._replace(
        scheme=parts.scheme.lower(), netloc=parts.netloc.lower(), fragment=""
    )
    slug = _slug(f"{_host(parts)}_{unquote(parts.path)}", 60) or "url"
    return f"{slug}_{_sha256_hex(canonical.geturl())[:10]}"


def file_video_id(file_path: str | os.PathLike, *, base_dir: str | os.PathLike) -> str:
    """Id of a local file: slug of its stem + ``_`` + 8 hex of sha256 of its path relative to
    ``base_dir`` (POSIX form), so the id does not depend on where ``base_dir`` lives."""
    absolute = Path(os.path.abspath(file_path))
    relative = Path(os.path.relpath(absolute, os.path.abspath(base_dir))).as_posix()
    stem = _slug(absolute.stem, 60) or "file"
    return f"{stem}_{_sha256_hex(relative)[:8]}"


def _url_problem(url: str, *, allow_file: bool) -> str | None:
    """Why ``url`` cannot be used (a drop reason), or None when it can."""
    if not url:
        return "empty_url"
    if len(url) > MAX_URL_LENGTH or _CONTROL_OR_SPACE.search(url):
        return "bad_url"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "bad_url"
    scheme = parts.scheme.lower()
    if scheme in {"http", "https"} and parts.hostname:
        return None
    if allow_file and scheme == "file" and parts.path:
        return None
    return "bad_url"


# --------------------------------------------------------------------------- labels


def resolve_label(
    labels: Sequence[str],
    *,
    is_original: Sequence[bool] | None = None,
    label_precedence: Sequence[str] = DEFAULT_LABEL_PRECEDENCE,
) -> str:
    """One label for a video listed several times with ``labels`` (already mapped).

    Rule: only the original listings count when there are any (the corpus authors checked
    those); among the counted listings the most frequent label wins; a tie goes to the
    label listed first in ``label_precedence``, then to the alphabetically first label.
    """
    if not labels:
        raise ValueError("resolve_label needs at least one label")
    flags = list(is_original) if is_original is not None else [False] * len(labels)
    counted = [label for label, original in zip(labels, flags) if original] or list(labels)
    counts = Counter(counted)
    best = max(counts.values())
    tied = sorted(label for label, n in counts.items() if n == best)
    rank = {label: i for i, label in enumerate(label_precedence)}
    return min(tied, key=lambda label: (rank.get(label, len(rank)), label))


def _natural_key(text: str) -> tuple:
    """Sort key that orders ``f2`` before ``f10``; deterministic for any strings."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)
    )


# --------------------------------------------------------------------------- report


@dataclass
class IngestReport:
    """What ingest did with every input row; ``to_markdown`` for people, ``to_dict`` for JSON.

    Accounting identity: ``sum(rows_read.values()) == rows_kept + duplicates_merged +
    sum(dropped.values())``.
    """

    fmt: str
    source: str
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_kept: int = 0
    duplicates_merged: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)
    label_mapping: dict[str, dict[str, int]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    label_conflicts: int = 0
    label_conflict_examples: list[dict] = field(default_factory=list)
    groups: int = 0
    groups_joined: dict[str, list[str]] = field(default_factory=dict)
    groups_joined_by: dict[str, list[str]] = field(default_factory=dict)
    groups_multi_label: list[str] = field(default_factory=list)
    platforms: dict[str, int] = field(default_factory=dict)
    originals: int = 0
    case_insensitive_id_clashes: list[list[str]] = field(default_factory=list)
    ignored_files: int = 0

    @property
    def rows_read_total(self) -> int:
        return int(sum(self.rows_read.values()))

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (keys as in the dataclass, plus the totals)."""
        data = asdict(self)
        data["rows_read_total"] = self.rows_read_total
        data["dropped_total"] = self.dropped_total
        return data

    def to_markdown(self) -> str:
        """A short human-readable report: totals, drops, label map, groups, platforms."""
        lines = [
            f"# Ingest report ({self.fmt}: {self.source})",
            "",
            "| rows read | kept | duplicates merged | dropped | groups | originals |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {self.rows_read_total} | {self.rows_kept} | {self.duplicates_merged} | "
            f"{self.dropped_total} | {self.groups} | {self.originals} |",
            "",
            "## Rows read per source",
            "",
            "| source | rows |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {n} |" for name, n in self.rows_read.items()]
        if self.ignored_files:
            lines += ["", f"Non-video files ignored: {self.ignored_files}"]
        lines += ["", "## Dropped rows", ""]
        if self.dropped:
            lines += ["| reason | rows | examples |", "|---|---:|---|"]
            for reason, n in self.dropped.items():
                examples = "; ".join(self.dropped_examples.get(reason, []))
                lines.append(f"| {reason} | {n} | {_md_cell(examples)} |")
        else:
            lines.append("None.")
        lines += ["", "## Label mapping (rows)", "", "| label | target | rows |", "|---|---|---:|"]
        for label, targets in self.label_mapping.items():
            for target, n in targets.items():
                lines.append(f"| {_md_cell(label)} | {_md_cell(target)} | {n} |")
        lines += ["", "## Labels kept (videos)", "", "| label | videos |", "|---|---:|"]
        lines += [f"| {_md_cell(label)} | {n} |" for label, n in self.labels.items()]
        lines += [
            "",
            "## Label conflicts",
            "",
            f"Videos listed with more than one (mapped) label: {self.label_conflicts}.",
        ]
        for example in self.label_conflict_examples:
            lines.append(
                f"- `{example['video_id']}`: {', '.join(example['labels'])} -> **{example['chosen']}**"
            )
        lines += [
            "",
            "## Duplicate groups",
            "",
            f"Groups: {self.groups}. Groups joined by shared videos: {len(self.groups_joined)}. "
            f"Groups holding more than one label: {len(self.groups_multi_label)}.",
        ]
        for name, members in self.groups_joined.items():
            shared = ", ".join(f"`{v}`" for v in self.groups_joined_by.get(name, []))
            lines.append(f"- `{name}` = {' + '.join(members)} (shared: {shared})")
        if self.groups_multi_label:
            shown = ", ".join(self.groups_multi_label[:30])
            more = " ..." if len(self.groups_multi_label) > 30 else ""
            lines += ["", f"Multi-label groups: {shown}{more}"]
        lines += ["", "## Platforms (videos)", "", "| platform | videos |", "|---|---:|"]
        lines += [f"| {name} | {n} |" for name, n in self.platforms.items()]
        if self.case_insensitive_id_clashes:
            lines += [
                "",
                "**Warning**: video_ids that differ only in case (they clash on case-insensitive "
                "file systems): "
                + "; ".join(", ".join(ids) for ids in self.case_insensitive_id_clashes),
            ]
        return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_ingest_report(report: IngestReport, md_path: str | os.PathLike) -> None:
    """Write ``report`` as markdown to ``md_path`` and as JSON beside it (same stem, .json).

    Both writes are atomic (temporary file + rename).
    """
    md_path = Path(md_path)
    atomic_write_text(md_path, report.to_markdown())
    json_text = json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_text(md_path.with_suffix(".json"), json_text)


# --------------------------------------------------------------------------- reading


@dataclass
class _Listing:
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
class _Collector:
    """Gathers listings, row counts and drop reasons while a format is read."""

    rows_read: dict[str, int] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    listings: list[_Listing] = field(default_factory=list)
    ignored_files: int = 0

    def count_read(self, source: str, n: int = 1) -> None:
        self.rows_read[source] = self.rows_read.get(source, 0) + n

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(where)

    def add(self, **values) -> None:
        self.listings.append(_Listing(order=len(self.listings), **values))


def _read_csv_rows(
    csv_path: Path, collector: _Collector, required: Iterable[str]
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


def _read_fvc(folder: Path, collector: _Collector) -> None:
    for file_name, is_original in (("FVC.csv", True), ("FVC_dup.csv", False)):
        csv_path = folder / file_name
        if not csv_path.is_file():
            raise FileNotFoundError(f"FVC format needs {csv_path}")
        _, rows = _read_csv_rows(csv_path, collector, ("cascade_id", "video_url", "label"))
        for where, row in rows:
            url = row["video_url"]
            problem = _url_problem(url, allow_file=False)
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


def _read_table(csv_path: Path, collector: _Collector, *, allow_file_urls: bool = False) -> None:
    """The ``csv``/``demo`` format: url or path, label, optional group and is_original.

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
            problem = _url_problem(url, allow_file=True)
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
            platform=platform_from_url(url),
            group=row.get("group", "") or video_id,
            raw_label=row["label"],
            is_original=is_original,
        )


def _read_folder(root: Path, collector: _Collector, *, folder_group: str) -> None:
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


def _read_wlasl(json_path: Path, collector: _Collector, *, allow_file_urls: bool = False) -> None:
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
            problem = _url_problem(url, allow_file=True)
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


# --------------------------------------------------------------------------- assembling


class UnionFind:
    """Disjoint sets of names; each set is named by its smallest member (deterministic)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def _group_names(
    listings: list[_Listing],
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """Map each input group to its merged group name (groups closed under shared videos).

    Returns (group -> merged name, merged name -> members (only joined ones), merged name
    -> the shared video_ids that caused the join).
    """
    union = UnionFind()
    groups_of_key: dict[str, set[str]] = defaultdict(set)
    for listing in listings:
        union.find(listing.group)
        groups_of_key["id:" + listing.video_id].add(listing.group)
        groups_of_key["url:" + listing.url].add(listing.group)
    for groups in groups_of_key.values():
        ordered = sorted(groups)
        for other in ordered[1:]:
            union.union(ordered[0], other)
    members: dict[str, list[str]] = defaultdict(list)
    for group in union.parent:
        members[union.find(group)].append(group)
    name_of_root = {root: "+".join(sorted(ms, key=_natural_key)) for root, ms in members.items()}
    name_of_group = {group: name_of_root[union.find(group)] for group in union.parent}
    joined = {
        name_of_root[root]: sorted(ms, key=_natural_key)
        for root, ms in members.items()
        if len(ms) > 1
    }
    evidence: dict[str, set[str]] = defaultdict(set)
    groups_of_video: dict[str, set[str]] = defaultdict(set)
    for listing in listings:
        groups_of_video[listing.video_id].add(listing.group)
    for video_id, groups in groups_of_video.items():
        if len(groups) > 1:
            evidence[name_of_group[next(iter(groups))]].add(video_id)
    joined_by = {name: sorted(evidence.get(name, set())) for name in joined}
    return name_of_group, dict(sorted(joined.items())), dict(sorted(joined_by.items()))


def _map_labels(
    collector: _Collector,
    *,
    label_map: dict[str, str | None] | None,
    keep_labels: Sequence[str] | None,
) -> tuple[list[tuple[_Listing, str]], dict[str, dict[str, int]]]:
    """Apply ``label_map`` then ``keep_labels``; count label -> target; drop the rest."""
    keep = set(keep_labels) if keep_labels is not None else None
    mapping_counts: dict[str, Counter] = defaultdict(Counter)
    kept: list[tuple[_Listing, str]] = []
    for listing in collector.listings:
        raw = listing.raw_label
        if label_map is None:
            target: str | None = raw
        elif raw in label_map:
            target = label_map[raw]
        else:
            mapping_counts[raw]["(unknown label)"] += 1
            collector.drop("unknown_label", listing.source)
            continue
        if target is None or (isinstance(target, str) and not target.strip()):
            mapping_counts[raw][DROPPED] += 1
            collector.drop("label_dropped_by_map", listing.source)
            continue
        target = str(target).strip()
        if keep is not None and target not in keep:
            mapping_counts[raw][f"{target} (not in keep_labels)"] += 1
            collector.drop("label_not_kept", listing.source)
            continue
        mapping_counts[raw][target] += 1
        kept.append((listing, target))
    ordered = {
        label: dict(sorted(mapping_counts[label].items()))
        for label in sorted(
            mapping_counts, key=lambda lab: (-sum(mapping_counts[lab].values()), lab)
        )
    }
    return kept, ordered


def build_manifest(
    fmt: str,
    path: str | os.PathLike,
    *,
    label_map: dict[str, str | None] | None = None,
    keep_labels: list[str] | None = None,
    label_precedence: Sequence[str] = DEFAULT_LABEL_PRECEDENCE,
    folder_group: str = "video",
    allow_file_urls: bool | None = None,
) -> tuple[pl.DataFrame, IngestReport]:
    """Read a corpus in format ``fmt`` at ``path`` into the manifest table and its report.

    Parameters
    ----------
    fmt : one of :data:`FORMATS` (see the module docstring for what ``path`` is in each).
    path : the corpus folder (``fvc``, ``folder``, ``demo``) or file (``csv``, ``wlasl``).
    label_map : raw label -> target label, or None to drop that label. Labels missing from
        the map are dropped as ``unknown_label``. Default: :data:`FVC_DEFAULT_LABEL_MAP`
        for ``fvc``, identity (keep every label) for the other formats.
    keep_labels : keep only rows whose mapped label is in this list (None: keep all).
    label_precedence : tie-break order for videos listed with different labels
        (see :func:`resolve_label`).
    folder_group : ``folder`` format only: ``"video"`` or ``"parent"``.
    allow_file_urls : accept ``file://`` URLs in a ``url`` column / WLASL ``url`` (they can
        name any local file, so a corpus opts in); None = the format's default (only
        ``demo`` opts in by itself). A ``path`` column and class folders never need it.

    Returns
    -------
    (manifest, report): manifest columns :data:`MANIFEST_COLUMNS` (``wlasl`` adds
    ``segment_fps``), one row per distinct video_id, sorted by (dup_group, video_id).

    Raises ``ValueError``/``FileNotFoundError`` only for a wrong corpus (unknown format,
    missing file or column); bad rows are dropped and counted instead.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown ingest format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    collector = _Collector()
    allow = fmt == "demo" if allow_file_urls is None else bool(allow_file_urls)
    try:
        if fmt == "fvc":
            _read_fvc(path, collector)
            if label_map is None:
                label_map = dict(FVC_DEFAULT_LABEL_MAP)
        elif fmt == "csv":
            _read_table(path, collector, allow_file_urls=allow)
        elif fmt == "demo":
            _read_table(path / "index.csv", collector, allow_file_urls=allow)
        elif fmt == "folder":
            _read_folder(path, collector, folder_group=folder_group)
        else:
            _read_wlasl(path, collector, allow_file_urls=allow)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the "
            "corpus file as UTF-8 (CSV) or JSON"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix the file") from None
    except PermissionError as exc:
        raise ValueError(f"cannot read the corpus: {exc}; give this user read access") from None

    group_name, groups_joined, groups_joined_by = _group_names(collector.listings)
    kept, mapping_counts = _map_labels(collector, label_map=label_map, keep_labels=keep_labels)

    by_video: dict[str, list[tuple[_Listing, str]]] = defaultdict(list)
    for listing, label in kept:
        by_video[listing.video_id].append((listing, label))

    records = []
    conflicts: list[dict] = []
    duplicates_merged = 0
    for video_id, entries in by_video.items():
        duplicates_merged += len(entries) - 1
        labels = [label for _, label in entries]
        flags = [listing.is_original for listing, _ in entries]
        label = resolve_label(labels, is_original=flags, label_precedence=label_precedence)
        if len(set(labels)) > 1:
            conflicts.append({"video_id": video_id, "labels": sorted(labels), "chosen": label})
        originals = [listing for listing, _ in entries if listing.is_original]
        first = min(originals or [listing for listing, _ in entries], key=lambda item: item.order)
        record = {
            "video_id": video_id,
            "url": first.url,
            "label": label,
            "dup_group": group_name[first.group],
            "platform": first.platform,
            "is_original": bool(originals),
            "frame_start": int(first.frame_start),
            "frame_end": int(first.frame_end),
        }
        record.update(first.extra)
        records.append(record)

    records.sort(key=lambda record: (record["dup_group"], record["video_id"]))
    columns = list(MANIFEST_COLUMNS) + (["segment_fps"] if fmt == "wlasl" else [])
    types = {c: pl.String for c in columns} | {
        "is_original": pl.Boolean,
        "frame_start": pl.Int64,
        "frame_end": pl.Int64,
        **({"segment_fps": pl.Int64} if fmt == "wlasl" else {}),
    }
    manifest = pl.DataFrame({c: [r.get(c) for r in records] for c in columns}, schema=types)

    kept_groups = set(manifest["dup_group"])
    labels_per_group = manifest.group_by("dup_group").agg(pl.col("label").n_unique())
    multi_label = labels_per_group.filter(pl.col("label") > 1)["dup_group"].to_list()
    lowered: dict[str, list[str]] = defaultdict(list)
    for video_id in manifest["video_id"]:
        lowered[video_id.lower()].append(video_id)
    report = IngestReport(
        fmt=fmt,
        source=path.name,
        rows_read=dict(collector.rows_read),
        rows_kept=len(manifest),
        duplicates_merged=duplicates_merged,
        dropped=dict(sorted(collector.dropped.items())),
        dropped_examples={
            reason: list(collector.examples[reason]) for reason in sorted(collector.dropped)
        },
        label_mapping=mapping_counts,
        labels=_count_desc(manifest["label"]),
        label_conflicts=len(conflicts),
        label_conflict_examples=sorted(conflicts, key=lambda c: c["video_id"])[:20],
        groups=len(kept_groups),
        groups_joined={name: ms for name, ms in groups_joined.items() if name in kept_groups},
        groups_joined_by={name: vs for name, vs in groups_joined_by.items() if name in kept_groups},
        groups_multi_label=sorted(multi_label, key=_natural_key),
        platforms=_count_desc(manifest["platform"]),
        originals=int(manifest["is_original"].sum()),
        case_insensitive_id_clashes=sorted(sorted(ids) for ids in lowered.values() if len(ids) > 1),
        ignored_files=collector.ignored_files,
    )
    log.info(
        "ingest %s: read %d, kept %d, merged %d, dropped %d, groups %d",
        fmt,
        report.rows_read_total,
        report.rows_kept,
        report.duplicates_merged,
        report.dropped_total,
        report.groups,
    )
    return manifest, report


def check_trainable(manifest: pl.DataFrame, report: IngestReport) -> None:
    """Raise ValueError (naming the numbers and the fix) when no classifier can be trained on
    ``manifest``: no video kept, or a single class. Called before the manifest is written."""
    drops = ", ".join(f"{reason}: {n}" for reason, n in report.dropped.items()) or "none"
    read = f"{report.rows_read_total} rows read, dropped by reason: {drops}"
    if manifest.is_empty():
        fix = (
            "check dataset.path and dataset.format, the label column and dataset.label_map "
            "(a label mapped to null drops its rows); the ingest report lists examples"
        )
        raise ValueError(f"the corpus yields no video ({read}); {fix}")
    labels = report.labels
    if len(labels) < 2:
        raise ValueError(
            f"the corpus has one class only ({', '.join(f'{k}: {v} videos' for k, v in labels.items())}; "
            f"{read}); a classifier needs at least two: add videos of another class "
            "or fix dataset.label_map"
        )


def _count_desc(values: pl.Series) -> dict[str, int]:
    counts = Counter(values.to_list())
    return {key: int(n) for key, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))}


# --------------------------------------------------------------------------- CLI


def _parse_label_map(items: Sequence[str] | None) -> dict[str, str | None] | None:
    if not items:
        return None
    mapping: dict[str, str | None] = {}
    for item in items:
        raw, sep, target = item.partition("=")
        if not sep:
            raise SystemExit(f"--map expects LABEL=TARGET (empty TARGET drops), got {item!r}")
        mapping[raw.strip()] = target.strip() or None
    return mapping


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lib.corpus.ingest FMT PATH --out manifest.csv [--report report.md] [--map a=b]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.corpus.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("fmt", choices=FORMATS)
    parser.add_argument("path")
    parser.add_argument("--out", required=True, help="manifest CSV to write")
    parser.add_argument("--report", help="markdown report (a .json goes beside it)")
    parser.add_argument("--map", action="append", help="LABEL=TARGET; empty TARGET drops LABEL")
    parser.add_argument("--keep", action="append", help="keep only this mapped label (repeatable)")
    parser.add_argument("--folder-group", default="video", choices=("video", "parent"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest, report = build_manifest(
        args.fmt,
        args.path,
        label_map=_parse_label_map(args.map),
        keep_labels=args.keep,
        folder_group=args.folder_group,
    )
    with atomic_path(args.out) as tmp:
        manifest.write_csv(tmp)
    if args.report:
        write_ingest_report(report, args.report)
    print(report.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
