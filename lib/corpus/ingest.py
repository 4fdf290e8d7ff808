"""Ingest: every corpus format becomes one manifest table (the pipeline's first table).

``build_manifest(fmt, path, ...)`` reads a corpus with the reader of its format
(:data:`lib.corpus.formats.FORMATS`, where each format is described) and returns the manifest
(columns ``MANIFEST_COLUMNS``) plus an :class:`IngestReport` that accounts for every input
row: each row read is either kept, merged into another row (the same video listed twice) or
dropped with a counted reason. Nothing is dropped silently.

Conventions shared by all formats
---------------------------------
- ``video_id`` is always :func:`lib.corpus.ids.safe_id`-clean (``[A-Za-z0-9_-]``, at most
  100 chars), so a file named after it stays in its folder (:mod:`lib.corpus.ids`).
- A video (same ``video_id``) listed more than once becomes one row. Its label, when the
  listings disagree, comes from :func:`resolve_label`: an original's listing wins, else
  the majority, ties broken by ``label_precedence`` (the schema's default puts ``fake``
  before ``real``, then other labels alphabetically: for fake-video detection a repost that
  one source calls fake and one calls real is most likely a copy of the debunked video). Its
  URL is the one of the first original listing, else of the first listing in input order.
- Duplicate groups are closed under shared videos: groups that list the same video (same
  ``video_id`` or same URL) become ONE group (union-find), named by its member group
  names in natural sort order joined by ``+`` (e.g. ``f138+f139+f140+f142``). Joining uses
  every listing with a usable URL *before* labels are mapped, so a video's group does not
  depend on the label map, and a video listed under a dropped label still joins groups.
- Rows are sorted by ``(dup_group, video_id)`` in plain code-point order, so the same
  input gives the identical table on every machine.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import polars as pl

from lib.audit.groups import UnionFind
from lib.corpus.formats import FORMATS, Collector, Listing, ReadOptions
from lib.utils import atomic_write_text

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
DROPPED = "(dropped)"


# --------------------------------------------------------------------------- labels


def resolve_label(
    labels: Sequence[str],
    *,
    is_original: Sequence[bool] | None = None,
    label_precedence: Sequence[str],
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


# --------------------------------------------------------------------------- assembling


def _group_names(
    listings: list[Listing],
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
    collector: Collector,
    *,
    label_map: dict[str, str | None] | None,
    keep_labels: Sequence[str] | None,
) -> tuple[list[tuple[Listing, str]], dict[str, dict[str, int]]]:
    """Apply ``label_map`` then ``keep_labels``; count label -> target; drop the rest."""
    keep = set(keep_labels) if keep_labels is not None else None
    mapping_counts: dict[str, Counter] = defaultdict(Counter)
    kept: list[tuple[Listing, str]] = []
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
    label_map: dict[str, str | None] | None,
    keep_labels: Sequence[str] | None,
    label_precedence: Sequence[str],
    folder_group: str,
    allow_file_urls: bool | None,
) -> tuple[pl.DataFrame, IngestReport]:
    """Read a corpus in format ``fmt`` at ``path`` into the manifest table and its report.

    The keywords are the ``dataset`` section's keys (their defaults live in the schema).

    Parameters
    ----------
    fmt : a key of :data:`lib.corpus.formats.FORMATS` (its docstring says what ``path`` is in
        each format).
    path : the corpus folder (``fvc``, ``folder``, ``demo``) or file (``csv``, ``wlasl``).
    label_map : raw label -> target label, or None to drop that label. Labels missing from
        the map are dropped as ``unknown_label``. None: the format's own map
        (:data:`lib.corpus.formats.FVC_DEFAULT_LABEL_MAP` for ``fvc``), else identity (keep
        every label).
    keep_labels : keep only rows whose mapped label is in this list (None: keep all).
    label_precedence : tie-break order for videos listed with different labels
        (see :func:`resolve_label`).
    folder_group : ``folder`` format only: ``"video"`` or ``"parent"``.
    allow_file_urls : accept ``file://`` URLs in a ``url`` column / WLASL ``url`` (they can
        name any local file, so a corpus opts in); None = the format's default (only
        ``demo`` opts in by itself). A ``path`` column and class folders never need it.

    Returns
    -------
    (manifest, report): manifest columns :data:`MANIFEST_COLUMNS` and the format's extra
    columns (``wlasl`` adds ``segment_fps``), one row per distinct video_id, sorted by (dup_group, video_id).

    Raises ``ValueError``/``FileNotFoundError`` only for a wrong corpus (unknown format,
    missing file or column); bad rows are dropped and counted instead.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown ingest format {fmt!r}; expected one of {tuple(FORMATS)}")
    path = Path(path)
    collector = Collector()
    options = ReadOptions(allow_file_urls=allow_file_urls, folder_group=folder_group)
    try:
        FORMATS[fmt](path, collector, options)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the "
            "corpus file as UTF-8 (CSV) or JSON"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix the file") from None
    except PermissionError as exc:
        raise ValueError(f"cannot read the corpus: {exc}; give this user read access") from None

    if label_map is None:
        label_map = collector.default_label_map
    group_name, groups_joined, groups_joined_by = _group_names(collector.listings)
    kept, mapping_counts = _map_labels(collector, label_map=label_map, keep_labels=keep_labels)

    by_video: dict[str, list[tuple[Listing, str]]] = defaultdict(list)
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
    columns = list(MANIFEST_COLUMNS) + list(collector.extra_columns)
    types = {c: pl.String for c in columns} | {
        "is_original": pl.Boolean,
        "frame_start": pl.Int64,
        "frame_end": pl.Int64,
        **collector.extra_columns,
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


def check_trainable(
    manifest: pl.DataFrame, report: IngestReport, *, section: str = "dataset"
) -> None:
    """Raise ValueError (naming the numbers and the fix) when no classifier can be trained on
    ``manifest``, or scored on it: no video kept, or a single class. Called before the
    manifest is written. ``section``: the config section of the corpus (``dataset``,
    ``test_corpus``), whose keys the message names."""
    drops = ", ".join(f"{reason}: {n}" for reason, n in report.dropped.items()) or "none"
    read = f"{report.rows_read_total} rows read, dropped by reason: {drops}"
    if manifest.is_empty():
        fix = (
            f"check {section}.path and {section}.format, the label column and "
            f"{section}.label_map (a label mapped to null drops its rows); the ingest report "
            "lists examples"
        )
        raise ValueError(f"the corpus yields no video ({read}); {fix}")
    labels = report.labels
    if len(labels) < 2:
        needs = "a classifier needs" if section == "dataset" else "its scores (ROC-AUC) need"
        raise ValueError(
            f"the corpus has one class only ({', '.join(f'{k}: {v} videos' for k, v in labels.items())}; "
            f"{read}); {needs} at least two: add videos of another class "
            f"or fix {section}.label_map"
        )


def _count_desc(values: pl.Series) -> dict[str, int]:
    counts = Counter(values.to_list())
    return {key: int(n) for key, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))}
