"""The tables that cross stage boundaries: one column spec each, checked on write and on read.

A table's spec lists its required columns in order with a kind (``str``, ``int``, ``float``,
``bool``); the Pandera schema, the CSV dtypes and the column order all come from it, so a
stage can never write a table its successor reads differently. Extra columns are allowed
after the required ones (a corpus may carry its own), and keep their inferred types.

Tables are polars DataFrames, validated with Pandera's polars backend on collected frames
(a LazyFrame check would see the schema only, not the values). Types are strict: ids are
text, booleans are booleans, an integer column never silently becomes a float, and a
missing float is NaN (never null), so a CSV read back is the frame that was written, bit
for bit (polars and Python both write floats in their shortest round-trip form).

No module of ``lib`` uses pandas: scikit-learn, matplotlib and torch get numpy arrays
(``df["x"].to_numpy()``). pandera's top-level package still imports pandas, which is
installed anyway (the SLURM executor plugin requires it); what that costs a stage process
is in docs/BENCHMARKS.md, section "gc".
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from lib.schemas.tables import CHECKS, NULLABLE, TABLES, UNIQUE
from lib.utils import atomic_path

log = logging.getLogger(__name__)

_DTYPES = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}


class TableError(ValueError):
    """A table does not match its contract; the message names the file and the fix."""


def columns(kind: str) -> list[str]:
    """The required columns of table ``kind``, in order."""
    return list(TABLES[kind])


def schema(kind: str) -> pa.DataFrameSchema:
    """The Pandera schema of table ``kind`` (extra columns allowed, required ones ordered)."""
    checks = CHECKS.get(kind, {})
    cols = {
        name: pa.Column(
            _DTYPES[k], nullable=name in NULLABLE, checks=checks.get(name), required=True
        )
        for name, k in TABLES[kind].items()
    }
    unique = UNIQUE.get(kind)
    return pa.DataFrameSchema(cols, strict=False, unique=[unique] if unique else None, name=kind)


def empty(kind: str) -> pl.DataFrame:
    """A table of ``kind`` with its required columns and no rows."""
    return pl.DataFrame(schema={name: _DTYPES[k] for name, k in TABLES[kind].items()})


def conform(df: pl.DataFrame | pl.LazyFrame, kind: str) -> pl.DataFrame:
    """Order columns (required first) and cast them to their kinds.

    Text columns get "" for missing values and float columns NaN; an integer column given
    as floats must hold whole numbers, and a boolean column given as text must hold
    true/false words, or :class:`TableError` says which column is wrong.
    """
    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    spec = TABLES[kind]
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise TableError(f"{kind} table lacks columns {missing}; it has {list(df.columns)}")
    extra = [c for c in df.columns if c not in spec]
    exprs = [_cast(df[name], k, kind) for name, k in spec.items()]
    # Extra columns keep their type; their missing values become what a CSV reads back.
    for name in extra:
        if df.schema[name].is_float():
            exprs.append(df[name].fill_null(float("nan")))
        elif df.schema[name] == pl.String:
            exprs.append(df[name].fill_null(""))
        else:
            exprs.append(df[name])
    return pl.DataFrame(exprs)


def _cast(col: pl.Series, k: str, kind: str) -> pl.Series:
    name, dtype = col.name, col.dtype
    if k == "str":
        return col.cast(pl.String).fill_null("")
    if k == "float":
        return col.cast(pl.Float64).fill_null(float("nan"))
    if k == "bool":
        if dtype == pl.String:
            return _parse_bool_column(col, kind)
        return col.cast(pl.Boolean, strict=True)
    # int: from text or floats only when every value is a whole number
    if dtype == pl.String:
        return _parse_int_column(col, kind)
    if dtype.is_float():
        whole = col.is_not_nan() & (col == col.floor())
        if not bool(whole.fill_null(True).all()):
            bad = col.filter(~whole.fill_null(True)).head(3).to_list()
            raise TableError(f"{kind} table: column {name!r} must hold integers, not {bad}")
    try:
        return col.cast(pl.Int64, strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise TableError(f"{kind} table: column {name!r} must hold integers ({exc})") from exc


def validate(df: pl.DataFrame, kind: str, source: str | Path = "<memory>") -> pl.DataFrame:
    """Check ``df`` (collected) against table ``kind``; raise TableError naming ``source``."""
    if isinstance(df, pl.LazyFrame):  # a lazy check would skip the values: collect first
        df = df.collect()
    return _checked(schema(kind), df, kind, source)


def _checked(spec: pa.DataFrameSchema, df: pl.DataFrame, kind: str, source) -> pl.DataFrame:
    try:
        return spec.validate(df, lazy=True)
    except (SchemaErrors, SchemaError) as exc:
        cases = getattr(exc, "failure_cases", None)
        detail = str(cases.head(10)) if cases is not None else str(exc)
        raise TableError(
            f"{source}: does not match the '{kind}' table contract (docs/CONTRACTS.md).\n"
            f"{detail}\nFix: rerun the stage that writes it (delete the file first if it "
            f"came from an older vidstage version)."
        ) from exc


def write_table(df: pl.DataFrame, path: str | Path, kind: str) -> pl.DataFrame:
    """Conform, validate and write a table atomically (CSV or Parquet by extension)."""
    out = validate(conform(df, kind), kind, source=path)
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".parquet":
            out.write_parquet(tmp)
        else:
            out.write_csv(tmp)
    return out


def read_table(path: str | Path, kind: str, columns: list[str] | None = None) -> pl.DataFrame:
    """Read and validate a table written by :func:`write_table`.

    ``columns``: read only these extra columns besides the required ones (a lazy scan, so
    a wide table's other columns are never parsed); ``None`` reads them all.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: missing. Run the stage that writes it first.")
    wanted = None
    if columns is not None:
        wanted = list(TABLES[kind]) + [c for c in columns if c not in TABLES[kind]]
    if path.suffix == ".parquet":
        scan = pl.scan_parquet(path)
        df = (scan.select(wanted) if wanted is not None else scan).collect()
    else:
        scan = pl.scan_csv(path, infer_schema=False, empty_string_is_null=False)
        if wanted is not None:
            have = scan.collect_schema().names()
            scan = scan.select([c for c in wanted if c in have])
        df = type_text(scan.collect(), kind, source=path)
    return validate(conform(df, kind), kind, source=path)


def read_columns(path: str | Path, kind: str, names: list[str]) -> pl.DataFrame:
    """Only the columns ``names`` of a CSV table ``kind``, typed and checked as
    :func:`read_table` types and checks them; the others are never parsed. For a stage that
    must not see a column, e.g. ``pretrain``, which reads no label."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: missing. Run the stage that writes it first.")
    text = pl.scan_csv(path, infer_schema=False, empty_string_is_null=False).select(names)
    full = schema(kind)
    part = pa.DataFrameSchema({n: full.columns[n] for n in names}, strict=True, name=kind)
    return _checked(part, type_text(text.collect(), kind, source=path), kind, path)


def type_text(text: pl.DataFrame, kind: str, source="<csv>") -> pl.DataFrame:
    """Give a frame of text columns (a CSV read as text) the kinds of table ``kind``.

    Extra columns become integers when every value is one, else floats when every value
    parses ("" is NaN), else stay text; a column with no value at all stays text (in every
    shard alike).
    """
    spec = TABLES[kind]
    out = []
    for name in text.columns:
        col = text[name].fill_null("")
        kind_of = spec.get(name)
        try:
            if kind_of == "str":
                out.append(col)
            elif kind_of == "bool":
                out.append(_parse_bool_column(col, kind))
            elif kind_of == "int":
                out.append(_parse_int_column(col, kind))
            elif kind_of == "float":
                out.append(_parse_float_column(col))
            else:
                out.append(_infer_column(col))
        except (TableError, pl.exceptions.PolarsError) as exc:
            raise TableError(f"{source}: column {name!r} of the '{kind}' table: {exc}") from exc
    return pl.DataFrame(out) if out else text


def _parse_float_column(col: pl.Series) -> pl.Series:
    return col.replace("", "nan").cast(pl.Float64, strict=True)


def _parse_int_column(col: pl.Series, kind: str) -> pl.Series:
    as_int = col.cast(pl.Int64, strict=False)
    bad = as_int.is_null()
    if bad.any():  # "3.0" from a float-typed value: whole numbers only
        as_float = col.cast(pl.Float64, strict=False)
        whole = as_float.is_not_null() & as_float.is_not_nan() & (as_float == as_float.floor())
        if not bool((whole | ~bad).all()):
            raise TableError(f"{kind}: not integers: {col.filter(bad & ~whole).head(3).to_list()}")
        as_int = pl.select(pl.when(bad).then(as_float).otherwise(as_int).cast(pl.Int64)).to_series()
    return as_int.alias(col.name)


def _parse_bool_column(col: pl.Series, kind: str) -> pl.Series:
    try:
        return col.replace_strict(_BOOL_WORDS, return_dtype=pl.Boolean)
    except pl.exceptions.InvalidOperationError as exc:
        bad = col.filter(~col.is_in(list(_BOOL_WORDS))).head(3).to_list()
        raise TableError(f"{kind} table: column {col.name!r} is not boolean: {bad}") from exc


def _infer_column(col: pl.Series) -> pl.Series:
    if bool((col == "").all()):
        return col  # no value to infer a type from: text, in every shard alike
    if not bool((col == "").any()):
        as_int = col.cast(pl.Int64, strict=False)
        if not as_int.has_nulls():
            return as_int
    as_float = col.replace("", "nan").cast(pl.Float64, strict=False)
    if not as_float.has_nulls():
        return as_float
    return col


_BOOL_WORDS = {"True": True, "true": True, "1": True, "False": False, "false": False, "0": False}
