"""Small helpers shared by every stage: stable seeds, atomic writes, safe relative paths."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, identical on every machine and every run.

    Python's ``hash()`` is salted per process, so it must never seed anything. Parts are
    joined by their ``str()``: pass ids and integers, never absolute paths (results must not
    depend on where the checkout lives).
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash (or kill -9) leaves at most a stray ``.tmp-*`` file, never a half-written
    ``path``: a reader that finds ``path`` finds a complete file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.stem}-", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def relpath(path: str | os.PathLike, start: str | os.PathLike = ".") -> str:
    """``path`` relative to ``start`` with forward slashes, for storing in tables."""
    return Path(os.path.relpath(Path(path), Path(start))).as_posix()


def markdown_table(table, missing: str = "") -> str:
    """A polars DataFrame as a GitHub markdown table; None and NaN cells show ``missing``."""

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return missing
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join(lines)
