"""The tables that cross stage boundaries: one column spec each, checked on write and on read.

A table's spec lists its required columns in order with a kind (``str``, ``int``, ``float``,
``bool``); the Pandera schema, the CSV dtypes and the column order all come from it, so a
stage can never write a table its successor reads differently. Extra columns are allowed
after the required ones (a corpus may carry its own), and keep their inferred types.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from lib.utils import atomic_path

log = logging.getLogger(__name__)

_DTYPES = {"str": "str", "int": "int64", "float": "float64", "bool": "bool"}

DOWNLOAD_STATUSES = ("ok", "skipped", "failed")
CLIP_STATUSES = ("ok", "failed")

# Columns in order, with their kind. Checks beyond the dtype live in _CHECKS.
TABLES: dict[str, dict[str, str]] = {
    "manifest": {
        "video_id": "str",
        "url": "str",
        "label": "str",
        "dup_group": "str",
        "platform": "str",
        "is_original": "bool",
    },
    "download": {
        "video_id": "str",
        "url": "str",
        "label": "str",
        "dup_group": "str",
        "platform": "str",
        "status": "str",
        "path": "str",
        "reason": "str",
        "error": "str",
        "is_original": "bool",
    },
    "videos": {
        "video_id": "str",
        "path": "str",
        "label": "str",
        "dup_group": "str",
        "platform": "str",
        "frames": "int",
        "fps": "float",
        "duration_s": "float",
        "width": "int",
        "height": "int",
        "codec": "str",
        "valid": "bool",
        "reason": "str",
        "is_original": "bool",
        "container": "str",
        "pix_fmt": "str",
        "bit_depth": "int",
        "rotation": "int",
        "avg_fps": "float",
        "real_fps": "float",
        "vfr": "bool",
        "fps_fixed": "bool",
        "has_audio": "bool",
    },
    "clips": {
        "clip_id": "str",
        "video_id": "str",
        "path": "str",
        "aug_idx": "int",
        "augmentation": "str",
        "label": "str",
        "dup_group": "str",
        "status": "str",
        "reason": "str",
    },
    "scaled": {
        "clip_id": "str",
        "video_id": "str",
        "path": "str",
        "scale_method": "str",
        "orig_width": "int",
        "orig_height": "int",
        "scaled_width": "int",
        "scaled_height": "int",
        "status": "str",
        "reason": "str",
    },
    # Feature tables: clip_id, status, reason, then one float column per feature (extras).
    "features_stage": {"clip_id": "str", "status": "str", "reason": "str"},
    "features": {"clip_id": "str"},
    "folds": {"video_id": "str", "dup_group": "str", "label": "str", "fold": "int"},
    "predictions": {
        "clip_id": "str",
        "video_id": "str",
        "label": "str",
        "score": "float",
        "pred": "str",
        "aug_idx": "int",
    },
    # Headline metrics: out-of-fold originals (aug_idx == -1), one row per video.
    "metrics": {"model": "str", "fold": "int", "metric": "str", "value": "float"},
    "summary": {
        "model": "str",
        "metric": "str",
        "mean": "float",
        "std": "float",
        "pooled": "float",
        "ci_low": "float",
        "ci_high": "float",
        "n_folds": "int",
        "n_videos": "int",
        "p_value": "float",
        "null_mean": "float",
        "null_std": "float",
        "n_permutations": "int",
    },
    # Null distribution of the headline metric, one row per permutation of group labels.
    "permutation": {"permutation": "int", "metric": "str", "value": "float"},
    # Augmented held-out clips, per augmentation type: never part of the headline.
    "robustness": {
        "model": "str",
        "augmentation": "str",
        "metric": "str",
        "value": "float",
        "n_clips": "int",
    },
    # Videos classified by `predict`: one row per input video, failures with their reason.
    "predict": {
        "video_id": "str",
        "path": "str",
        "model": "str",
        "n_windows": "int",
        "score": "float",
        "pred": "str",
        "status": "str",
        "reason": "str",
    },
    # Leak audit (lib/signatures.py, lib/near_duplicates.py).
    "signatures": {
        "video_id": "str",
        "status": "str",
        "reason": "str",
        "frames": "int",
        "frame_index": "str",
        "hashes": "str",
    },
    "near_duplicates": {
        "video_a": "str",
        "video_b": "str",
        "distance": "float",
        "matched_frames": "int",
        "same_annotated_group": "bool",
        "same_fold": "bool",
    },
}

# Columns that may hold NaN (unknown measurements, undefined metrics).
_NULLABLE = {"avg_fps", "real_fps", "fps", "duration_s", "value", "mean", "std", "score", "pooled",
             "ci_low", "ci_high", "p_value", "null_mean", "null_std"}

_CHECKS: dict[str, dict[str, list[pa.Check]]] = {
    "download": {"status": [pa.Check.isin(DOWNLOAD_STATUSES)]},
    "clips": {"status": [pa.Check.isin(CLIP_STATUSES)], "aug_idx": [pa.Check.ge(-1)]},
    "scaled": {"status": [pa.Check.isin(CLIP_STATUSES)]},
    "features_stage": {"status": [pa.Check.isin(CLIP_STATUSES)]},
    "folds": {"fold": [pa.Check.ge(0)]},
    "signatures": {"status": [pa.Check.isin(CLIP_STATUSES)], "frames": [pa.Check.ge(0)]},
    "near_duplicates": {"distance": [pa.Check.in_range(0, 64)], "matched_frames": [pa.Check.ge(1)]},
    "predictions": {"aug_idx": [pa.Check.ge(-1)]},
    "predict": {"status": [pa.Check.isin(CLIP_STATUSES)]},
}

# Tables whose key column must be unique (one row per video / clip).
_UNIQUE = {
    "manifest": "video_id",
    "download": "video_id",
    "videos": "video_id",
    "clips": "clip_id",
    "scaled": "clip_id",
    "features_stage": "clip_id",
    "features": "clip_id",
    "folds": "video_id",
    "predictions": "clip_id",
    "signatures": "video_id",
    "predict": "video_id",
}


class TableError(ValueError):
    """A table does not match its contract; the message names the file and the fix."""


def columns(kind: str) -> list[str]:
    """The required columns of table ``kind``, in order."""
    return list(TABLES[kind])


def schema(kind: str) -> pa.DataFrameSchema:
    """The Pandera schema of table ``kind`` (extra columns allowed, required ones ordered)."""
    checks = _CHECKS.get(kind, {})
    cols = {
        name: pa.Column(
            _DTYPES[k], nullable=name in _NULLABLE, checks=checks.get(name), required=True
        )
        for name, k in TABLES[kind].items()
    }
    unique = _UNIQUE.get(kind)
    return pa.DataFrameSchema(cols, strict=False, unique=[unique] if unique else None, name=kind)


def conform(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Order columns (required first), cast them to their kinds, reset the index."""
    spec = TABLES[kind]
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise TableError(f"{kind} table lacks columns {missing}; it has {list(df.columns)}")
    extra = [c for c in df.columns if c not in spec]
    out = df[list(spec) + extra].reset_index(drop=True).copy()
    for name, k in spec.items():
        if k == "str":
            out[name] = out[name].fillna("").astype("str")
        else:
            out[name] = out[name].astype(_DTYPES[k])
    return out


def validate(df: pd.DataFrame, kind: str, source: str | Path = "<memory>") -> pd.DataFrame:
    """Check ``df`` against table ``kind``; raise TableError naming ``source`` on failure."""
    try:
        return schema(kind).validate(df, lazy=True)
    except (SchemaErrors, SchemaError) as exc:
        cases = getattr(exc, "failure_cases", None)
        detail = cases.head(10).to_string() if cases is not None else str(exc)
        raise TableError(
            f"{source}: does not match the '{kind}' table contract (docs/CONTRACTS.md).\n"
            f"{detail}\nFix: rerun the stage that writes it (delete the file first if it "
            f"came from an older vidstage version)."
        ) from exc


def write_table(df: pd.DataFrame, path: str | Path, kind: str) -> pd.DataFrame:
    """Conform, validate and write a table atomically (CSV or Parquet by extension)."""
    out = validate(conform(df, kind), kind, source=path)
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".parquet":
            out.to_parquet(tmp, index=False)
        else:
            out.to_csv(tmp, index=False)
    return out


def read_table(path: str | Path, kind: str) -> pd.DataFrame:
    """Read and validate a table written by :func:`write_table`."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: missing. Run the stage that writes it first.")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = read_csv_typed(path, kind)
    return validate(conform(df, kind), kind, source=path)


def read_csv_typed(source, kind: str) -> pd.DataFrame:
    """Read a CSV (path or buffer) with the kinds of table ``kind``.

    Everything is read as text first, so empty text stays "" and floats are parsed by
    ``float()`` (correctly rounded: a value written with ``repr`` reads back bit for bit,
    which resumed shards rely on). Extra columns become numbers when they all parse.
    """
    text = pd.read_csv(source, dtype=str, keep_default_na=False)
    spec = TABLES[kind]
    out = {}
    for name in text.columns:
        kind_of = spec.get(name)
        col = text[name]
        if kind_of == "str":
            out[name] = col.astype("str")
        elif kind_of == "bool":
            out[name] = col.map(_parse_bool).astype("bool")
        elif kind_of in ("int", "float"):
            out[name] = col.replace("", "nan").astype("float64")
            if kind_of == "int":
                out[name] = out[name].astype("int64")
        elif (col == "").all():  # no value to infer a type from: text, in every shard alike
            out[name] = col.astype("str")
        else:
            try:
                out[name] = col.replace("", "nan").astype("float64")
            except ValueError:
                out[name] = col.astype("str")
    return pd.DataFrame(out, index=text.index)


def _parse_bool(text: str) -> bool:
    if text in ("True", "true", "1"):
        return True
    if text in ("False", "false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")
