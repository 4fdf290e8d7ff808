"""Download stage, per video: fetch one URL with yt-dlp the way a careful user runs it.

A careful user of yt-dlp retries with exponential backoff, sleeps between requests, never
follows playlists, keeps partial downloads under ``.part`` names (so a cut download never
looks complete and can resume), skips what is already on disk, and reads the reason of a
failure instead of crashing on it. :func:`build_ydl_options` writes those choices down as
yt-dlp's own params dict (the names ``yt_dlp.parse_options`` produces from command-line
flags); :func:`download_video` runs one URL and :func:`fetch_local_file` takes a local file
the corpus names, and both always return a row for ``results/download.csv``, whose reason
comes from :mod:`lib.corpus.download_errors`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import imageio_ffmpeg
import yt_dlp
from yt_dlp.utils import parse_bytes

from lib.corpus.download_errors import classify_error, one_line, reason_from_exception
from lib.utils import atomic_path, relpath

log = logging.getLogger(__name__)

#: Last suffixes of files that yt-dlp is still writing or that a crash left behind.
INCOMPLETE_SUFFIXES = frozenset({"part", "ytdl", "temp", "tmp"})

#: The retry kinds yt-dlp knows for ``retry_sleep_functions``; a plain expression applies
#: to these three (yt-dlp's command line applies it to ``http`` only, but YouTube serves
#: DASH fragments and extractors hit rate limits, and both deserve the same backoff).
RETRY_SLEEP_KINDS = ("http", "fragment", "file_access", "extractor")
_PLAIN_RETRY_SLEEP_KINDS = ("http", "fragment", "extractor")

_NUMBER = r"\d+(?:\.\d+)?"
_SLEEP_EXPR_RE = re.compile(rf"(?:(linear|exp)=)?({_NUMBER})(?::({_NUMBER})?)?(?::({_NUMBER}))?")


@dataclass(frozen=True)
class RetrySleep:
    """yt-dlp's ``--retry-sleep`` expression as a picklable callable: attempt n -> seconds.

    ``exp=START[:LIMIT[:BASE=2]]`` sleeps ``min(START * BASE**n, LIMIT)``;
    ``linear=START[:LIMIT[:STEP=START]]`` sleeps ``min(START + STEP*n, LIMIT)``; a bare
    number sleeps that long every time. Same semantics as yt-dlp's own parser (which builds
    lambdas that cannot be pickled into worker processes).
    """

    op: str  # "exp", "linear" or "const"
    start: float
    limit: float
    step: float

    @classmethod
    def parse(cls, expr: str) -> "RetrySleep":
        """Parse a yt-dlp retry-sleep expression; ValueError when it is not one."""
        match = _SLEEP_EXPR_RE.fullmatch(expr.strip())
        if match is None:
            raise ValueError(
                f"invalid retry sleep expression {expr!r} (e.g. 'exp=1:30', 'linear=1::2', '5')"
            )
        op, start, limit, step = match.groups()
        limit_value = float(limit) if limit else float("inf")
        if op == "exp":
            return cls("exp", float(start), limit_value, float(step or 2))
        if op or limit:
            return cls("linear", float(start), limit_value, float(step or start))
        return cls("const", float(start), limit_value, 0.0)

    def __call__(self, n: int) -> float:
        if self.op == "exp":
            return min(self.start * self.step**n, self.limit)
        return min(self.start + self.step * n, self.limit)


def _retry_sleep_functions(retry_sleep: str | Mapping[str, str] | None) -> dict[str, RetrySleep]:
    """Map ``retry_sleep`` (one expression, or kind -> expression) to yt-dlp's dict."""
    if not retry_sleep:
        return {}
    if isinstance(retry_sleep, str):
        function = RetrySleep.parse(retry_sleep)
        return {kind: function for kind in _PLAIN_RETRY_SLEEP_KINDS}
    functions = {}
    for kind, expr in retry_sleep.items():
        if kind not in RETRY_SLEEP_KINDS:
            raise ValueError(
                f"unknown retry sleep kind {kind!r}; expected one of {RETRY_SLEEP_KINDS}"
            )
        if expr:
            functions[kind] = RetrySleep.parse(str(expr))
    return functions


def build_ydl_options(
    *,
    out_dir: str | os.PathLike,
    format: str,  # noqa: A002 (yt-dlp's name)
    retries: int,
    fragment_retries: int,
    extractor_retries: int,
    socket_timeout: float,
    sleep_interval: float,
    max_sleep_interval: float,
    sleep_requests: float,
    retry_sleep: str | Mapping[str, str] | None,
    cookiefile: str | os.PathLike | None,
    download_archive: str | os.PathLike | None,
    rate_limit: int | str | None,
    allow_file_urls: bool = False,
    ffmpeg_location: str | os.PathLike | None = None,
) -> dict:
    """The yt-dlp params dict for the download stage, built once and reused per video.

    Every keyword but ``out_dir``, ``allow_file_urls`` and ``ffmpeg_location`` is a key of
    the config's ``download.options`` section (the schema holds their defaults). They use
    yt-dlp's meaning: ``retries``/``fragment_retries``/``extractor_retries``
    are retry counts, ``retry_sleep`` is the backoff between them (``"exp=1:30"`` = 1, 2,
    4, ... s capped at 30 s; a mapping ``{"http": ..., "fragment": ...}`` sets kinds one by
    one; a plain expression applies to http, fragment and extractor retries).
    ``sleep_interval``..``max_sleep_interval`` is a random pause before each download and
    ``sleep_requests`` a pause between the extractor's requests (politeness towards the
    site; yt-dlp draws the random pause itself, it never affects results).
    ``rate_limit`` is bytes per second (an int or yt-dlp's "2M" form). ``ffmpeg_location``
    defaults to imageio-ffmpeg's binary (there is no system ffmpeg; it merges video and
    audio formats). ``file://`` URLs only work with ``allow_file_urls`` (yt-dlp disables
    them for security).

    ``out_dir`` goes in as ``paths["home"]``; :func:`download_video` sets ``outtmpl``
    (``<video_id>.%(ext)s``), ``paths`` and ``logger`` per call. Raises ValueError for
    inconsistent settings (a configuration error, not a bad video).
    """
    for name, value in (
        ("retries", retries),
        ("fragment_retries", fragment_retries),
        ("extractor_retries", extractor_retries),
        ("sleep_interval", sleep_interval),
        ("max_sleep_interval", max_sleep_interval),
        ("sleep_requests", sleep_requests),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if socket_timeout <= 0:
        raise ValueError(f"socket_timeout must be > 0, got {socket_timeout!r}")
    if max_sleep_interval and not sleep_interval:
        raise ValueError(
            "max_sleep_interval needs sleep_interval (the lower bound of the random pause)"
        )
    if max_sleep_interval and max_sleep_interval < sleep_interval:
        raise ValueError("max_sleep_interval must be >= sleep_interval")

    if ffmpeg_location is None:
        ffmpeg_location = imageio_ffmpeg.get_ffmpeg_exe()

    options: dict = {
        "format": format,
        "paths": {"home": os.fspath(out_dir)},
        "quiet": True,
        "no_warnings": False,  # warnings still reach the logger
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "noplaylist": True,
        # A URL that still yields a playlist (a tweet with two videos): take its first entry,
        # so one video_id never becomes several files.
        "playlist_items": "1",
        "merge_output_format": "mp4",
        "ffmpeg_location": os.fspath(ffmpeg_location),
        "retries": int(retries),
        "fragment_retries": int(fragment_retries),
        "extractor_retries": int(extractor_retries),
        "retry_sleep_functions": _retry_sleep_functions(retry_sleep),
        "socket_timeout": float(socket_timeout),
        # Partial downloads stay under .part names (never complete-looking) and resume.
        "nopart": False,
        "continuedl": True,
        # The file's mtime is when it arrived, not the server's Last-Modified: Snakemake
        # compares mtimes.
        "updatetime": False,
    }
    if sleep_interval:
        options["sleep_interval"] = float(sleep_interval)
        if max_sleep_interval:
            options["max_sleep_interval"] = float(max_sleep_interval)
    if sleep_requests:
        options["sleep_interval_requests"] = float(sleep_requests)
    if cookiefile is not None:
        options["cookiefile"] = os.fspath(cookiefile)
    if download_archive is not None:
        options["download_archive"] = os.fspath(download_archive)
    if allow_file_urls:
        options["enable_file_urls"] = True
    if rate_limit is not None:
        limit = parse_bytes(rate_limit) if isinstance(rate_limit, str) else int(rate_limit)
        if limit is None or limit <= 0:
            raise ValueError(f"rate_limit must be a positive byte rate, got {rate_limit!r}")
        options["ratelimit"] = limit
    return options


def find_complete_download(out_dir: str | os.PathLike, video_id: str) -> Path | None:
    """The finished file ``<out_dir>/<video_id>.<ext>``, or None.

    Not complete: yt-dlp's work files (``.part``, ``.ytdl``, ``.temp``, ``.tmp``), its
    per-format files before a merge (``<id>.f137.mp4``: a second dot), and the
    ``.tmp-*`` files of :func:`lib.utils.atomic_path`. Several candidates (a re-run with
    another format) resolve to the first by name, so the answer is deterministic.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        return None
    prefix = f"{video_id}."
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.startswith(prefix):
            continue
        ext = entry.name[len(prefix) :]
        if not ext or "." in ext or not re.fullmatch(r"[A-Za-z0-9_]+", ext):
            continue
        if ext.lower() in INCOMPLETE_SUFFIXES or ext.lower().startswith("tmp"):
            continue
        if entry.is_file():
            return entry
    return None


class _YtDlpLogCapture:
    """The ``logger`` object yt-dlp writes to: keeps errors/warnings, forwards to logging.

    yt-dlp prints ``ERROR:`` lines even when quiet unless it is given a logger; with one,
    every message arrives here and nothing reaches the terminal.
    """

    def __init__(self, video_id: str):
        self.video_id = video_id
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.in_archive = False  # yt-dlp skipped the URL: its download_archive lists it

    def debug(self, message: str) -> None:
        if "already been recorded in the archive" in message:
            self.in_archive = True
        log.debug("%s: %s", self.video_id, message)

    def info(self, message: str) -> None:
        log.debug("%s: %s", self.video_id, message)

    def warning(self, message: str) -> None:
        if message.strip():
            self.warnings.append(message)
            log.info("%s: yt-dlp warning: %s", self.video_id, one_line(message))

    def error(self, message: str) -> None:
        if message.strip():
            self.errors.append(message)
            log.info("%s: yt-dlp error: %s", self.video_id, one_line(message))


def _escape_template(text: str) -> str:
    """``text`` as a literal inside a yt-dlp output template (``%`` starts a field)."""
    return text.replace("%", "%%")


def _row(status: str, path: str = "", reason: str = "", error: str = "") -> dict:
    return {"status": status, "path": path, "reason": reason, "error": error}


def _remove_complete_looking(out_dir: Path, video_id: str) -> None:
    """Delete finished-looking files for ``video_id`` after a failed attempt.

    Only files this attempt made can be there (a finished file makes the call a skip), e.g.
    a direct download whose post-processing failed. ``.part`` files stay: they never look
    complete and let the next attempt resume.
    """
    while (leftover := find_complete_download(out_dir, video_id)) is not None:
        try:
            leftover.unlink()
            log.info("%s: removed %s left by a failed download", video_id, leftover.name)
        except OSError as exc:
            log.warning("%s: could not remove %s: %s", video_id, leftover, exc)
            return


def _check_video_id(video_id: str) -> None:
    if (
        not video_id
        or video_id in {".", ".."}
        or any(sep and sep in video_id for sep in ("/", "\\", os.sep, os.altsep))
    ):
        raise ValueError(f"video_id must be a bare file stem, got {video_id!r}")


def _finished_row(folder: Path, video_id: str, *, unreadable_reason: str) -> dict | None:
    """The row for a video whose finished file is already there ("skipped"), or for a
    folder that cannot be read ("failed" with ``unreadable_reason``); None: fetch it.

    Raises ValueError when ``video_id`` is not a bare file stem (a programming error).
    """
    _check_video_id(video_id)
    try:
        existing = find_complete_download(folder, video_id)
    except OSError as exc:
        error = one_line(f"cannot read {folder}: {exc}")
        return _row("failed", reason=unreadable_reason, error=error)
    if existing is None:
        return None
    log.debug("%s: already there as %s", video_id, existing.name)
    return _row("skipped", path=relpath(existing))


def local_source(url: str) -> Path | None:
    """The local file a ``file://`` URL names, or None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return Path(unquote(parts.path))


def fetch_local_file(source: str | os.PathLike, video_id: str, out_dir: str | os.PathLike) -> dict:
    """Take a local file the corpus names as it is: ``<out_dir>/<video_id>.<ext>``, a
    ``download.csv`` row like :func:`download_video`'s, never raises, no yt-dlp.

    The file is hard-linked (no copy, no extra space; removing the link never touches the
    source), or copied where a link is impossible (another file system). A finished file
    already there is ``skipped``. Failures: ``missing`` (no such file), ``not_a_file`` (a
    folder, FIFO, device), ``empty`` (0 bytes), ``unreadable`` (no permission, I/O error).
    The extension is the source's (lower case), so validate sees the container it names.
    Errors name the source relative to the working directory (the ``url`` column holds the
    absolute path), so the table does not depend on where the checkout lives.
    """
    folder, source = Path(out_dir), Path(source)
    shown = relpath(source)
    done = _finished_row(folder, video_id, unreadable_reason="unreadable")
    if done is not None:
        return done
    try:
        info = source.stat()
    except FileNotFoundError:
        return _row("failed", reason="missing", error=one_line(f"no such file: {shown}"))
    except OSError as exc:
        return _row(
            "failed",
            reason="unreadable",
            error=one_line(f"cannot read {shown}: {exc.strerror or exc}"),
        )
    if not stat.S_ISREG(info.st_mode):
        return _row("failed", reason="not_a_file", error=one_line(f"not a regular file: {shown}"))
    if info.st_size == 0:
        return _row("failed", reason="empty", error=one_line(f"empty file (0 bytes): {shown}"))
    ext = source.suffix[1:].lower()
    if not re.fullmatch(r"[a-z0-9_]+", ext) or ext in INCOMPLETE_SUFFIXES or ext.startswith("tmp"):
        ext = "video"
    target = folder / f"{video_id}.{ext}"
    try:
        with open(source, "rb"):  # readable by this user, or the row says why not
            pass
        with atomic_path(target) as tmp:
            tmp.unlink()
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
    except OSError as exc:
        return _row(
            "failed",
            reason="unreadable",
            error=one_line(f"cannot read {shown}: {exc.strerror or exc}"),
        )
    return _row("ok", path=relpath(target))


def download_video(
    url: str, video_id: str, out_dir: str | os.PathLike, *, ydl_options: dict
) -> dict:
    """Download ``url`` to ``<out_dir>/<video_id>.<ext>``; a ``download.csv`` row, never raises.

    Returns ``{"status", "path", "reason", "error"}``: status "ok" (downloaded now),
    "skipped" (a finished file was already there; no network access at all) or "failed";
    ``path`` relative to the current directory with forward slashes ("" on failure);
    ``reason`` one of :data:`lib.corpus.download_errors.REASONS` ("" unless failed); ``error`` yt-dlp's message on
    one line. ``ydl_options`` comes from :func:`build_ydl_options`; it is copied, and its
    ``outtmpl``, ``paths`` and ``logger`` are set for this call.

    A failed download leaves no finished-looking file (yt-dlp's ``.part`` may stay, to
    resume). ``video_id`` must be a bare file stem (ingest sanitises it); a path separator
    is a programming error and raises ValueError.
    """
    folder = Path(out_dir)
    done = _finished_row(folder, video_id, unreadable_reason="other")
    if done is not None:
        return done

    capture = _YtDlpLogCapture(video_id)
    params = dict(ydl_options)
    params.update(
        {
            "outtmpl": {"default": f"{_escape_template(video_id)}.%(ext)s"},
            "paths": {"home": os.fspath(folder)},
            "logger": capture,
        }
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with yt_dlp.YoutubeDL(params) as ydl:
            ydl.extract_info(url, download=True)
        finished = find_complete_download(folder, video_id)
        if finished is None:
            notes = " ".join(capture.warnings + capture.errors)
            if capture.in_archive:
                message = "listed in the download archive but the file is missing"
            else:
                message = "yt-dlp reported success but no file arrived"
            return _row("failed", reason="other", error=one_line(f"{message} {notes}".strip()))
        return _row("ok", path=relpath(finished))
    except (
        Exception
    ) as exc:  # noqa: BLE001 - per-item function: a bad video must not stop the stage
        message = str(exc) or (capture.errors[-1] if capture.errors else type(exc).__name__)
        reason = classify_error(message)
        if reason == "other":
            reason = reason_from_exception(exc)
        try:
            _remove_complete_looking(folder, video_id)
        except OSError as cleanup_exc:
            log.warning("%s: could not clean up after a failed download: %s", video_id, cleanup_exc)
        return _row("failed", reason=reason, error=one_line(message))
