"""Sharded, resumable processing of a table, one unit (video or clip) at a time.

A shard is a slice of the input table in its order: job ``i`` of ``n`` (0-based) takes rows
``[i*rows//n, (i+1)*rows//n)``, so the shard count never changes what a row produces.

Resume: Snakemake deletes the declared outputs of a failed job, so progress is kept in a
file it does not know about: ``<progress_dir>/<stage>/<i+1>-of-<n>-<fingerprint>.csv``,
one block of CSV rows per finished unit, appended with a single ``write(2)`` and fsynced
the moment the unit is done. kill -9 cannot split one write to a regular file, so after a
crash the file holds whole units plus, at worst (power loss), a torn last line, which is
cut off. A rerun skips the units already there and redoes at most the one in flight. The
fingerprint covers the stage's parameters and the shard's input rows, so progress made
under other settings or other inputs is never reused. When the shard's output is safely
written, the progress file is removed: a later forced rerun recomputes from scratch.

Faults of the machine are not faults of a unit, so they stop the shard instead of becoming a
row with a reason (docs/CLUSTER.md, "When a job fails"): a full disk or quota (ENOSPC, EDQUOT,
EROFS) or ``MemoryError`` raises :class:`ShardStopped`, naming the unit and the path; SIGTERM
(SLURM's time limit, preemption, ``scancel``) ends the job with exit status 143 after logging
why, never inside a progress write. Either way the finished units stay in the progress file
and the rerun resumes after them. Each unit is logged before its work starts, so the log of a
job killed outright (SIGKILL by an out-of-memory killer) names the unit it was in.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import polars as pl
from tqdm import tqdm

from lib import schemas
from lib.memory import release

log = logging.getLogger(__name__)

_SHARD_RE = re.compile(r"^(\d+)-of-(\d+)$")
# Column of the progress file marking a finished unit that produced no output rows.
_EMPTY = "__no_output__"
# Errors of the machine, not of a unit: a rerun succeeds once they are fixed (space freed).
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEM}


class ShardStopped(RuntimeError):
    """A shard stopped by a fault of the machine (disk full, out of memory); its finished
    units are kept and the rerun resumes after them."""


class _Terminated(BaseException):
    """SIGTERM, raised between the statements of a unit (never inside a progress write)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def machine_fault(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain that is the machine's fault (a full disk or quota, a
    read-only file system, no memory), or None when the unit itself failed."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError):
            return exc
        if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class _SigtermStop:
    """Turns SIGTERM into :class:`_Terminated` in the main thread, held back while a
    progress write is under way (:meth:`held`) and raised right after it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._holding = False

    @contextmanager
    def installed(self) -> Iterator["_SigtermStop"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach the main thread only; nothing to install
            return
        previous = signal.signal(signal.SIGTERM, self._handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _handler(self, signum, frame) -> None:
        self.signum = signum
        if not self._holding:
            raise _Terminated(signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self.signum is not None:
            raise _Terminated(self.signum)


@dataclass(frozen=True)
class Shard:
    """Job ``index`` (0-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """Parse Snakemake's scatter item ``"2-of-4"`` (1-based) into ``Shard(1, 4)``."""
        m = _SHARD_RE.match(text.strip())
        if not m:
            raise ValueError(f"shard {text!r} is not of the form 'I-of-N' (e.g. 1-of-4)")
        i, n = int(m.group(1)), int(m.group(2))
        if not 1 <= i <= n:
            raise ValueError(f"shard {text!r}: I must be between 1 and N")
        return cls(i - 1, n)

    @property
    def name(self) -> str:
        return f"{self.index + 1}-of-{self.count}"

    def bounds(self, n_rows: int) -> tuple[int, int]:
        """Row range ``[start, end)`` of this shard over a table of ``n_rows`` rows."""
        return self.index * n_rows // self.count, (self.index + 1) * n_rows // self.count

    def slice(self, table: pl.DataFrame) -> pl.DataFrame:
        start, end = self.bounds(len(table))
        return table.slice(start, end - start)


def fingerprint(params: dict, rows: pl.DataFrame) -> str:
    """A short hash of a job's parameters and its input rows."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(rows.write_csv().encode())
    return h.hexdigest()[:12]


class ProgressFile:
    """Append-only CSV of finished units for one shard; survives the job's failure."""

    def __init__(self, path: Path, fieldnames: list[str]):
        self.path = path
        self.fieldnames = list(fieldnames) + [_EMPTY]

    def load(self, kind: str, key: str) -> tuple[pl.DataFrame, set]:
        """Finished rows and the keys of every finished unit, after cutting a torn last line."""
        empty = pl.DataFrame(schema={c: pl.String for c in self.fieldnames[:-1]})
        if not self.path.exists():
            return empty, set()
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning("%s: cutting a torn last line (%d bytes)", self.path, len(data) - cut)
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        header = data.split(b"\n", 1)[0].decode()
        if header != ",".join(self.fieldnames):
            log.warning("%s: columns changed since it was written; starting over", self.path)
            self.path.unlink()
            return empty, set()
        text = pl.read_csv(io.BytesIO(data), infer_schema=False, empty_string_is_null=False)
        keys = set(text[key].to_list())
        rows = text.filter(pl.col(_EMPTY).fill_null("") == "").drop(_EMPTY)
        return schemas.type_text(rows, kind, source=self.path), keys

    def append(self, rows: list[dict]) -> None:
        """Append one unit's rows in a single write, then fsync."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fieldnames, lineterminator="\n")
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new:
            writer.writeheader()
        writer.writerows(rows)
        data = buf.getvalue().encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def run_shard(
    table: pl.DataFrame,
    shard: Shard,
    *,
    stage: str,
    key: str,
    process: Callable[[dict], list[dict]],
    on_error: Callable[[dict, Exception], list[dict]],
    out_kind: str,
    out_columns: list[str],
    output: str | Path,
    progress_dir: str | Path,
    params: dict,
    skip: Callable[[dict], list[dict] | None] | None = None,
    finish: Callable[[], None] | None = None,
) -> pl.DataFrame:
    """Process one shard of ``table`` unit by unit, resumably, and write its output table.

    ``process(row)`` returns the output rows of one input row (possibly none); it should not
    raise, but if it does, ``on_error(row, exc)`` turns the exception into rows with a
    reason, so one bad video never stops the shard. ``skip(row)``, when given, may return
    rows for a unit that needs no work (e.g. an invalid video) without counting as work.
    The output is the union of resumed and new rows in input order, written atomically.
    ``finish()``, when given, runs after the output is written and before the progress file
    goes (e.g. removing input files every unit has read): a job killed inside it resumes
    with every unit done and runs it again.
    """
    rows = shard.slice(table)
    progress_path = _progress_path(progress_dir, stage, shard, params, rows)
    progress = ProgressFile(progress_path, out_columns)
    _, done_keys = progress.load(out_kind, key)
    todo = [r for r in rows.iter_rows(named=True) if r[key] not in done_keys]
    log.info(
        "%s shard %s: %d rows, %d already done (resumed from %s), %d to do",
        stage,
        shard.name,
        len(rows),
        len(rows) - len(todo),
        progress_path,
        len(todo),
    )
    stop, done, unit = _SigtermStop(), len(rows) - len(todo), "no unit yet"
    with stop.installed():
        try:
            for row in tqdm(
                todo, desc=f"{stage} {shard.name}", unit=key.split("_")[0], **_tqdm_kw()
            ):
                unit = f"{key}={row[key]}"
                # Logged before the work, so that the log of a job killed mid-unit names it.
                log.info("%s %s: start", stage, unit)
                out = skip(row) if skip is not None else None
                if out is None:
                    try:
                        out = process(row)
                    except Exception as exc:  # one bad unit must not stop the shard
                        _stop_on_machine_fault(exc, stage, shard, unit, done, progress_path)
                        log.exception("%s %s failed", stage, unit)
                        out = on_error(row, exc)
                # A unit always leaves a row in the progress file, even with no output, so
                # that a rerun knows it was finished: the marker row carries only the key.
                with stop.held():
                    try:
                        progress.append(out if out else [{key: row[key], _EMPTY: 1}])
                    except OSError as exc:  # a full disk where the progress file lives
                        _stop_on_machine_fault(exc, stage, shard, unit, done, progress_path)
                        raise
                done += 1
                release(log, f"{unit}: done", collect=False)
        except _Terminated as term:
            log.error(
                "%s shard %s: stopped by signal %s (SLURM's time limit, preemption or scancel)"
                " during %s; %d of %d units are saved in %s; the rerun resumes after them",
                stage,
                shard.name,
                signal.Signals(term.signum).name,
                unit,
                done,
                len(rows),
                progress_path,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            raise SystemExit(128 + term.signum) from None
    result = _ordered(progress.load(out_kind, key)[0], rows[key], key)
    written = schemas.write_table(result, output, out_kind)
    if finish is not None:
        finish()
    progress_path.unlink(missing_ok=True)
    log.info("%s shard %s: wrote %d rows to %s", stage, shard.name, len(written), output)
    return written


def _stop_on_machine_fault(exc, stage, shard, unit, done, progress_path) -> None:
    """Raise :class:`ShardStopped` when ``exc`` is the machine's fault, not the unit's."""
    if isinstance(exc, ShardStopped):
        raise exc
    fault = machine_fault(exc)
    if fault is None:
        return
    where = getattr(fault, "filename", None) or (
        progress_path if isinstance(fault, OSError) else None
    )
    raise ShardStopped(
        f"{stage} shard {shard.name} stopped during {unit}: {fault}"
        + (f" (path {where})" if where else "")
        + f"; {done} finished units are saved in {progress_path}. Free space or memory (or"
        " move the data folder) and rerun: the shard resumes after them"
    ) from exc


def _ordered(done: pl.DataFrame, keys: pl.Series, key: str) -> pl.DataFrame:
    """Rows of ``done`` in the order of the input ``keys`` (stable within a unit)."""
    order = {k: i for i, k in enumerate(keys.to_list())}
    position = done[key].replace_strict(order, return_dtype=pl.Int64)
    return (
        done.with_columns(position.alias("__order__"))
        .sort("__order__", maintain_order=True)
        .drop("__order__")
    )


def _progress_path(progress_dir, stage: str, shard: Shard, params: dict, rows) -> Path:
    folder = Path(progress_dir) / stage
    fp = fingerprint(params, rows)
    path = folder / f"{shard.name}-{fp}.csv"
    # Progress of this shard made under other parameters or inputs is stale: drop it.
    for stale in folder.glob(f"{shard.name}-*.csv"):
        if stale != path:
            log.info("removing stale progress %s", stale)
            stale.unlink()
    return path


def _tqdm_kw() -> dict:
    """Progress bars: lively on a terminal, one line every 30 s in a log file."""
    if sys.stderr.isatty():
        return {}
    return {"mininterval": 30.0, "ascii": True}


def concat_tables(paths: Iterable[str | Path], kind: str) -> pl.DataFrame:
    """Concatenate shard tables in shard order (the order their paths are given in).

    An extra column typed differently in two shards (integers in one, floats with a NaN
    in another) takes the type that holds both.
    """
    frames = [schemas.read_table(p, kind) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return schemas.empty(kind)
    return pl.concat(frames, how="vertical_relaxed")
