"""Why a download failed, as a short reason a table can be grouped by.

:func:`classify_error` reads yt-dlp's and the sites' messages; where their words say
nothing, :func:`reason_from_exception` reads yt-dlp's exception types. :data:`REASONS`
lists every reason a ``download.csv`` row may carry.
"""

from __future__ import annotations

import re

from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import ContentTooShortError, GeoRestrictedError, UnsupportedError

#: Every value a download row may put in ``reason`` ("" when the download worked).
REASONS = (
    "unavailable",
    "private",
    "removed",
    "geo",
    "network",
    "http_404",
    "unsupported",
    "file_urls_disabled",
    "empty",
    "missing",
    "unreadable",
    "not_a_file",
    "other",
)

_MAX_ERROR_CHARS = 500

_EMPTY_RE = re.compile(r"did not get any data blocks|downloaded file is empty")
_FILE_URLS_RE = re.compile(r"file:// urls are disabled|enable[-_ ]file[-_ ]urls")
_UNSUPPORTED_RE = re.compile(
    r"unsupported url|is not a valid url|no suitable (?:extractor|info ?extractor)"
)
_HTTP_404_RE = re.compile(r"http error 404\b|\b404:? not found\b")
_HTTP_410_RE = re.compile(r"http error 410\b|\b410:? gone\b")
_NETWORK_RE = re.compile(
    r"timed? ?out|timeout"
    r"|connection (?:refused|reset|aborted|broken|closed)"
    r"|remote end closed connection|remotedisconnected|failed to establish a new connection"
    r"|name or service not known|temporary failure in name resolution|nodename nor servname"
    r"|getaddrinfo failed|name resolution|network is unreachable|no route to host|broken pipe"
    r"|\[errno (?:101|104|110|111|113|-2|-3)\]"
    r"|bytes read, \d+ more expected|downloaded \d+ bytes, expected \d+ bytes|incompleteread"
    r"|eof occurred in violation of protocol|unexpected eof"
    r"|http error (?:5\d\d|429)\b|too many requests|try again later|rate.?limit"
)
# yt-dlp's own format selection failing is not the site withdrawing the video.
_FORMAT_RE = re.compile(r"requested format is not available|no video formats found")
_PRIVATE_RE = re.compile(
    r"\bprivate (?:video|post|tweet|account|content)\b|\b(?:video|account|post|content) is private\b"
    r"|\bset to private\b|\bthis video is private\b|\bprotected (?:tweet|account)"
)
_REMOVED_RE = re.compile(
    r"has been removed|been deleted|was deleted|removed by|removed for violating|removed from"
    r"|no longer available|has been terminated|account (?:\w+ )?terminated|copyright claim"
    r"|has been suspended|account suspended|\bsuspended account"
)
_GEO_RE = re.compile(
    r"available (?:in|from) your (?:country|location|region|area)"
    r"|geo[- ]?restrict|geo[- ]?block|blocked in your country|not available in your country"
)
_UNAVAILABLE_RE = re.compile(
    r"unavailable|not available|isn't available|is not available|does not exist|doesn't exist"
    r"|no video could be found|no video found|no media (?:links )?found|this live event will begin"
    r"|premieres in|video not found|content not found"
)
# "ERROR: [youtube] abc123: " -- the extractor and id prefix. The id comes from the URL
# and may contain any word ("private_clip"), so it must not take part in classification.
_PREFIX_RE = re.compile(r"^\s*(?:error:\s*)?(?:\[[^\]]*\]\s*(?:[^\s:]+:\s+)?)?")
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")


def classify_error(message: str) -> str:
    """Map a yt-dlp / HTTP error message to one of :data:`REASONS` (never "").

    Checked from the most technical to the most descriptive: file:// refused, unsupported
    URL, an empty source (no data at all), HTTP 404, HTTP 410 (removed), network trouble (timeouts, refused/reset
    connections, DNS, cut transfers, HTTP 5xx/429 and "try again later" rate limits: all
    worth retrying later), then the site's own words: private, removed, geo-blocked,
    unavailable. Anything else (403, sign-in/age gates, no matching format) is "other". The extractor/id prefix and URLs are ignored so that a video named
    "private_clip" does not read as private.
    """
    text = _URL_RE.sub(" ", _PREFIX_RE.sub("", (message or "").lower(), count=1))
    return next((reason for pattern, reason in _REASON_RULES if pattern.search(text)), "other")


# First match wins: the order above (transport problems before the site's own words).
_REASON_RULES = (
    (_FILE_URLS_RE, "file_urls_disabled"),
    (_EMPTY_RE, "empty"),
    (_UNSUPPORTED_RE, "unsupported"),
    (_HTTP_404_RE, "http_404"),
    (_HTTP_410_RE, "removed"),
    (_NETWORK_RE, "network"),
    (_FORMAT_RE, "other"),
    (_PRIVATE_RE, "private"),
    (_REMOVED_RE, "removed"),
    (_GEO_RE, "geo"),
    (_UNAVAILABLE_RE, "unavailable"),
)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it: yt-dlp's ``exc_info``/``cause`` and Python's chaining."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        exc_info = getattr(current, "exc_info", None)
        if (
            isinstance(exc_info, tuple)
            and len(exc_info) >= 2
            and isinstance(exc_info[1], BaseException)
        ):
            pending.append(exc_info[1])
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException):
            pending.append(cause)
        pending.extend([current.__cause__, current.__context__])
    return seen


def reason_from_exception(exc: BaseException) -> str:
    """A reason from yt-dlp's exception types, for messages whose words say nothing."""
    for item in _exception_chain(exc):
        if isinstance(item, GeoRestrictedError):
            return "geo"
        if isinstance(item, UnsupportedError):
            return "unsupported"
        if isinstance(item, HTTPError):
            status = getattr(item, "status", None)
            if status == 404:
                return "http_404"
            if status == 410:
                return "removed"
            if status == 429 or (isinstance(status, int) and status >= 500):
                return "network"
        if isinstance(item, (TransportError, ContentTooShortError, TimeoutError, ConnectionError)):
            return "network"
    return "other"


def one_line(message: str, *, max_chars: int = _MAX_ERROR_CHARS) -> str:
    """``message`` as one trimmed line without colour codes or the "ERROR: " tag."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", message or "")
    text = " ".join(text.split())
    text = re.sub(r"^ERROR:\s*", "", text)
    if len(text) > max_chars:
        text = text[: max_chars - 3].rstrip() + "..."
    return text
