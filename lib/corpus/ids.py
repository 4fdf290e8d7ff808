"""Video ids and URLs: every ``video_id`` is safe as a file name, and the same video reached
through different URL forms gets the same id.

The download stage writes ``<data dir>/<video_id>.<ext>``, so ids must never escape it:
:func:`safe_id` keeps ``[A-Za-z0-9_-]``, at most 100 characters. Web URLs
(:func:`video_id_from_url`): YouTube -> ``yt_<id>``, Facebook -> ``fb_<video number>``,
Twitter/X -> ``tw_<status id>``, anything else -> a slug of host and path + 10 hex of sha256 of
the URL. Local files (:func:`file_video_id`): slug of the file stem + 8 hex of sha256 of the
path *relative to the corpus file's folder*, so ids do not depend on where the checkout lives
(the ``url`` column of local files is an absolute ``file://`` URL and does).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

MAX_ID_LENGTH = 100
MAX_URL_LENGTH = 4096

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")
_UNDERSCORE_RUN = re.compile(r"_{2,}")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YOUTUBE_PATH_ID = re.compile(r"^/(?:shorts|embed|v|e|live)/([A-Za-z0-9_-]{11})(?:[/?#]|$)")
_FACEBOOK_PATH_NUMBER = re.compile(r"/(?:videos|reel|watch)/(?:[^/]+/)*?(\d+)/?$")
_TWITTER_STATUS = re.compile(r"/status(?:es)?/(\d+)")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


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


def url_problem(url: str, *, allow_file: bool) -> str | None:
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
