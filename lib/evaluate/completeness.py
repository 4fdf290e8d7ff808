"""What made it through each stage, and why the rest did not.

The FVC seed system learned only after training that 34 of 3,278 clips were missing. Here
every gather logs its stage's failures by reason, and this report puts the whole chain side
by side: per stage, expected vs present rows; originals lost on the way; videos with fewer
augmented clips than configured; failures by reason. It reads whichever tables exist, so
``python -m lib completeness`` works after any stage.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from lib import schemas
from lib.utils import atomic_write_text, markdown_table

log = logging.getLogger(__name__)

# Stage table, its kind, its key, and how a row counts as a success.
STAGES = (
    ("download", "results/download.csv", "download", "video_id"),
    ("validate", "results/videos.csv", "videos", "video_id"),
    ("augment", "results/clips.csv", "clips", "clip_id"),
    ("scale", "results/scaled.csv", "scaled", "clip_id"),
    ("features", "results/features_handcrafted.csv", "features_stage", "clip_id"),
    ("scaled_features", "results/features_scaled.csv", "features_stage", "clip_id"),
)

#: Columns of the per-stage counts: row counts between the stage's name and its table's path.
_SUMMARY_SCHEMA = {
    "stage": pl.String,
    **dict.fromkeys(("expected", "present", "ok", "failed"), pl.Int64),
    "table": pl.String,
}


def ok_mask(stage: str, table: pl.DataFrame) -> pl.Series:
    """Rows that succeeded in ``stage``."""
    if stage == "download":
        return table["status"].is_in(["ok", "skipped"])
    if stage == "validate":
        return table["valid"]
    return table["status"] == "ok"


def failure_reasons(stage: str, table: pl.DataFrame) -> dict[str, int]:
    """Counts of failure reasons, the code before any ':' detail (e.g. ``truncated``), most
    frequent first (ties by name)."""
    failed = table.filter(~ok_mask(stage, table))
    code = failed["reason"].cast(pl.String).str.split(":").list.first().replace("", "unknown")
    counts = code.value_counts(name="count").sort(["count", "reason"], descending=[True, False])
    return dict(counts.iter_rows())


def completeness(root: str | Path = ".", *, n_augmentations: int) -> tuple[pl.DataFrame, str]:
    """Per-stage counts and a markdown report, from the tables present under ``root``."""
    root = Path(root)
    manifest_path = root / "results/manifest.csv"
    manifest = schemas.read_table(manifest_path, "manifest") if manifest_path.exists() else None
    tables = {}
    for stage, rel, kind, _ in STAGES:
        if (root / rel).exists():
            tables[stage] = schemas.read_table(root / rel, kind)
    rows, reasons = [], []
    expected_videos = len(manifest) if manifest is not None else None
    expected = {"download": expected_videos}
    if "download" in tables:
        expected["validate"] = len(tables["download"])
    if "validate" in tables:
        n_valid = int(tables["validate"]["valid"].sum())
        expected["augment"] = n_valid * (n_augmentations + 1)
    if "augment" in tables:
        n_clips = int(ok_mask("augment", tables["augment"]).sum())
        expected.update(scale=n_clips, features=len(tables["augment"]))
    if "scale" in tables:
        expected["scaled_features"] = len(tables["scale"])
    for stage, rel, _, _ in STAGES:
        if stage not in tables:
            rows.append(
                {
                    "stage": stage,
                    "expected": expected.get(stage),
                    "present": None,
                    "ok": None,
                    "failed": None,
                    "table": rel,
                }
            )
            continue
        table = tables[stage]
        ok = int(ok_mask(stage, table).sum())
        rows.append(
            {
                "stage": stage,
                "expected": expected.get(stage),
                "present": len(table),
                "ok": ok,
                "failed": len(table) - ok,
                "table": rel,
            }
        )
        for reason, n in failure_reasons(stage, table).items():
            reasons.append({"stage": stage, "reason": reason, "count": int(n)})
    summary = pl.DataFrame(rows, schema=_SUMMARY_SCHEMA)
    reasons = pl.DataFrame(
        reasons, schema={"stage": pl.String, "reason": pl.String, "count": pl.Int64}
    )
    return summary, _markdown(summary, reasons, manifest, tables, n_augmentations)


def _markdown(summary, reasons, manifest, tables, n_augmentations) -> str:
    lines = [
        "# Completeness",
        "",
        "Rows per stage: `expected` is what the previous stage handed on (the manifest "
        "for download; valid videos × (augmentations + 1) for augment).",
        "",
        markdown_table(summary, missing="—"),
        "",
    ]
    lines += ["## Failures by reason", ""]
    lines += [markdown_table(reasons) if len(reasons) else "None.", ""]
    if manifest is not None and "augment" in tables:
        originals = manifest.filter(pl.col("is_original"))["video_id"].to_list()
        clips = tables["augment"]
        ok_clips = clips.filter(ok_mask("augment", clips))
        with_clips = set(ok_clips.filter(pl.col("aug_idx") == -1)["video_id"])
        lost = sorted(set(originals) - with_clips)
        lines += [
            "## Originals missing from the clips",
            "",
            f"{len(lost)} of {len(originals)} originals have no clip"
            + (": " + ", ".join(lost[:50]) + (" …" if len(lost) > 50 else "") if lost else "."),
            "",
        ]
        aug = ok_clips.filter(pl.col("aug_idx") >= 0)
        valid = tables["validate"] if "validate" in tables else None
        if valid is not None:
            per_video = dict(aug.group_by("video_id").len().iter_rows())
            counts = [(v, per_video.get(v, 0)) for v in valid.filter(pl.col("valid"))["video_id"]]
            short = [(v, n) for v, n in counts if n < n_augmentations]
            lines += [
                "## Videos with fewer augmentations than configured",
                "",
                f"{len(short)} valid videos have fewer than {n_augmentations} augmented clips"
                + (": " + ", ".join(f"{v} ({n})" for v, n in short[:50]) if short else "."),
                "",
            ]
    lines += _left_out_of_training(tables)
    return "\n".join(lines)


def left_out_of_training(tables: dict) -> pl.DataFrame:
    """Clips that augment made but that miss a feature set (train leaves them out):
    ``clip_id`` and which sets failed. Empty until both feature tables exist."""
    schema = {"clip_id": pl.String, "missing": pl.String}
    if not {"augment", "features", "scaled_features"} <= set(tables):
        return pl.DataFrame(schema=schema)
    clips = tables["augment"]
    made = set(clips.filter(ok_mask("augment", clips))["clip_id"])
    missing: dict[str, list[str]] = {}
    for stage in ("features", "scaled_features"):
        table = tables[stage]
        for clip_id in table.filter(~ok_mask(stage, table))["clip_id"]:
            if clip_id in made:
                missing.setdefault(clip_id, []).append(stage)
    return pl.DataFrame(
        {"clip_id": list(missing), "missing": ["+".join(v) for v in missing.values()]},
        schema=schema,
    )


def _left_out_of_training(tables: dict) -> list[str]:
    if not {"augment", "features", "scaled_features"} <= set(tables):
        return []
    left = left_out_of_training(tables)
    text = f"{len(left)} clips miss a feature set and are left out of training (counted per fold in `train_info.json`)"
    if len(left):
        counts = (
            left["missing"].value_counts(name="n").sort(["n", "missing"], descending=[True, False])
        )
        text += ": " + ", ".join(f"{n} missing {which}" for which, n in counts.iter_rows())
        text += "; e.g. " + ", ".join(left["clip_id"].head(20))
    return ["## Clips left out of training", "", text + ".", ""]


def write_completeness(
    root: str | Path, md_path: str | Path, csv_path: str | Path, *, n_augmentations: int
) -> pl.DataFrame:
    """Write the report (markdown) and its per-stage counts (CSV)."""
    summary, text = completeness(root, n_augmentations=n_augmentations)
    atomic_write_text(md_path, text)
    atomic_write_text(csv_path, summary.write_csv())
    for row in summary.iter_rows(named=True):
        log.info(
            "%s: expected %s, present %s, ok %s, failed %s",
            row["stage"],
            row["expected"],
            row["present"],
            row["ok"],
            row["failed"],
        )
    return summary


def log_stage_summary(stage: str, table: pl.DataFrame) -> None:
    """One log line per failure reason, so each gather's log says what was lost and why."""
    ok = int(ok_mask(stage, table).sum())
    log.info("%s: %d rows, %d ok, %d failed", stage, len(table), ok, len(table) - ok)
    for reason, n in failure_reasons(stage, table).items():
        log.info("%s: %d failed with %s", stage, n, reason)
