"""Download stage against a real HTTP server on 127.0.0.1 and real yt-dlp.

The server (http.server in a thread, ephemeral port) serves a small H.264 mp4 made with
PyAV: complete, cut short (Content-Length larger than the body), missing (404), an HTML
page without a video; a second socket accepts connections and never answers; a closed
port refuses them. Every request is counted, so "skipped" is shown to touch no network.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import yt_dlp

from lib.config import load_schema, with_defaults
from lib.corpus.download import (
    RetrySleep,
    build_ydl_options,
    download_video,
    fetch_local_file,
    find_complete_download,
)
from lib.corpus.download_errors import REASONS, classify_error, one_line

#: The config's download.options section as the schema fills it in.
SCHEMA_OPTIONS = with_defaults({}, load_schema())["download"]["options"]

N_FRAMES = 24
WIDTH, HEIGHT = 96, 64


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    """A real H.264 mp4 of noise frames (noise keeps it large enough to be cut mid-body)."""
    path = tmp_path_factory.mktemp("media") / "source.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for _ in range(N_FRAMES):
            pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    assert len(data) > 64 * 1024, "the cut-short test needs a body larger than one read"
    return data


class _Server:
    """Serves the routes below and records (path, Range header) for every request."""

    def __init__(self, video: bytes):
        self.video = video
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append((self.path, self.headers.get("Range")))
                if self.path.startswith("/good"):
                    self._send(server.video, "video/mp4")
                elif self.path == "/cut.mp4":
                    # Announce the whole file, send 40 % of it in chunks, then hang up.
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(len(server.video)))
                    self.end_headers()
                    sent = int(len(server.video) * 0.4)
                    for start in range(0, sent, 8192):
                        self.wfile.write(server.video[start : min(start + 8192, sent)])
                    self.wfile.flush()
                    self.close_connection = True
                elif self.path == "/page.html":
                    self._send(
                        b"<html><head><title>t</title></head><body>no video</body></html>",
                        "text/html",
                    )
                else:
                    self.send_error(404)

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(video_bytes):
    srv = _Server(video_bytes)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def silent_port():
    """A port that accepts connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture()
def refused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """Run from tmp_path so relative paths in rows are short and checkable."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fast_options(out_dir, **overrides) -> dict:
    """Options for tests: no retries, short timeouts, tiny backoff."""
    settings = dict(
        SCHEMA_OPTIONS,
        out_dir=out_dir,
        retries=0,
        fragment_retries=0,
        extractor_retries=0,
        socket_timeout=2.0,
        retry_sleep="0.05",
    )
    settings.update(overrides)
    return build_ydl_options(**settings)


def schema_options(**overrides) -> dict:
    """build_ydl_options with the schema's defaults where ``overrides`` says nothing."""
    return build_ydl_options(**{**SCHEMA_OPTIONS, **overrides})


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- downloads against the local server ------------------------------------------------------


def test_good_url_downloads_decodable_file_then_skips_without_a_request(
    workdir, server, video_bytes
):
    out_dir = workdir / "videos"
    options = fast_options(out_dir)  # the default format string, as the pipeline uses it
    url = server.url("/good.mp4")

    row = download_video(url, "vid_good", out_dir, ydl_options=options)

    assert row == {"status": "ok", "path": "videos/vid_good.mp4", "reason": "", "error": ""}
    file = workdir / row["path"]
    assert file.read_bytes() == video_bytes
    frames = decoded_frames(file)
    assert len(frames) == N_FRAMES
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    assert files_in(out_dir) == ["vid_good.mp4"]
    assert (
        "logger" not in options and "outtmpl" not in options
    ), "the shared options must not be mutated"

    requests_before = server.count("/good.mp4")
    assert requests_before >= 1
    again = download_video(url, "vid_good", out_dir, ydl_options=options)
    assert again == {"status": "skipped", "path": "videos/vid_good.mp4", "reason": "", "error": ""}
    assert server.count("/good.mp4") == requests_before, "a skip must not touch the network"


def test_404_fails_with_http_404_and_leaves_nothing(workdir, server):
    out_dir = workdir / "videos"
    row = download_video(
        server.url("/missing.mp4"), "vid_404", out_dir, ydl_options=fast_options(out_dir)
    )
    assert row["status"] == "failed"
    assert row["reason"] == "http_404"
    assert row["path"] == ""
    assert "HTTP Error 404" in row["error"]
    assert "\n" not in row["error"] and not row["error"].startswith("ERROR:")
    assert files_in(out_dir) == []


def test_connection_refused_fails_with_network(workdir, refused_port):
    out_dir = workdir / "videos"
    url = f"http://127.0.0.1:{refused_port}/video.mp4"
    row = download_video(url, "vid_refused", out_dir, ydl_options=fast_options(out_dir))
    assert (row["status"], row["reason"], row["path"]) == ("failed", "network", "")
    assert "refused" in row["error"].lower()
    assert find_complete_download(out_dir, "vid_refused") is None


def test_server_that_never_answers_times_out_as_network(workdir, silent_port):
    out_dir = workdir / "videos"
    url = f"http://127.0.0.1:{silent_port}/video.mp4"
    started = time.monotonic()
    row = download_video(
        url, "vid_silent", out_dir, ydl_options=fast_options(out_dir, socket_timeout=1.0)
    )
    elapsed = time.monotonic() - started
    assert (row["status"], row["reason"]) == ("failed", "network")
    assert "timed out" in row["error"].lower()
    assert elapsed < 8.0, f"socket_timeout=1 s must bound the wait, took {elapsed:.1f} s"
    assert files_in(out_dir) == []


def test_cut_short_body_fails_retries_with_range_and_leaves_no_complete_file(workdir, server):
    out_dir = workdir / "videos"
    before = server.count("/cut.mp4")
    options = fast_options(out_dir, retries=1, retry_sleep="0.05")
    row = download_video(server.url("/cut.mp4"), "vid_cut", out_dir, ydl_options=options)

    assert row["status"] == "failed"
    assert row["reason"] == "network"
    assert row["path"] == ""
    assert "more expected" in row["error"] or "expected" in row["error"]
    assert find_complete_download(out_dir, "vid_cut") is None
    leftovers = files_in(out_dir)
    assert all(name.endswith(".part") for name in leftovers), leftovers
    # One extraction request, then the download and its one retry, which resumes (Range).
    cut_requests = [rng for path, rng in server.requests[before:] if path == "/cut.mp4"]
    assert len(cut_requests) == 3
    assert cut_requests[-1] is not None and cut_requests[-1].startswith("bytes=")


def test_html_page_without_video_is_unsupported(workdir, server):
    out_dir = workdir / "videos"
    row = download_video(
        server.url("/page.html"), "vid_page", out_dir, ydl_options=fast_options(out_dir)
    )
    assert (row["status"], row["reason"]) == ("failed", "unsupported")
    assert row["error"].startswith("Unsupported URL")


# --- file:// URLs ---------------------------------------------------------------------------


def test_file_url_refused_unless_allowed(workdir, video_bytes):
    source = workdir / "source" / "clip.mp4"
    source.parent.mkdir()
    source.write_bytes(video_bytes)
    out_dir = workdir / "videos"

    refused = download_video(
        source.as_uri(), "vid_file", out_dir, ydl_options=fast_options(out_dir)
    )
    assert (refused["status"], refused["reason"], refused["path"]) == (
        "failed",
        "file_urls_disabled",
        "",
    )
    assert "file://" in refused["error"]
    assert find_complete_download(out_dir, "vid_file") is None

    allowed = download_video(
        source.as_uri(),
        "vid_file",
        out_dir,
        ydl_options=fast_options(out_dir, allow_file_urls=True),
    )
    assert allowed == {"status": "ok", "path": "videos/vid_file.mp4", "reason": "", "error": ""}
    assert (workdir / allowed["path"]).read_bytes() == video_bytes


def test_file_url_zero_byte_fails_as_empty_and_text_file_is_downloaded_for_validate(workdir):
    """What the demo corpus's planted files do: documents yt-dlp's behaviour."""
    source = workdir / "source"
    source.mkdir()
    (source / "empty.mp4").write_bytes(b"")
    (source / "notes.mp4").write_text("this is text, not a video\n", encoding="utf-8")
    out_dir = workdir / "videos"
    options = fast_options(out_dir, allow_file_urls=True)

    empty = download_video(
        (source / "empty.mp4").as_uri(), "vid_empty", out_dir, ydl_options=options
    )
    assert (empty["status"], empty["reason"], empty["path"]) == ("failed", "empty", "")
    assert "did not get any data blocks" in empty["error"].lower()
    assert find_complete_download(out_dir, "vid_empty") is None

    text = download_video((source / "notes.mp4").as_uri(), "vid_text", out_dir, ydl_options=options)
    assert text["status"] == "ok"
    assert text["path"] == "videos/vid_text.mp4"
    assert (workdir / text["path"]).read_text(encoding="utf-8") == "this is text, not a video\n"


def test_failed_postprocessing_removes_the_complete_looking_file(workdir):
    """The file arrives, then ffmpeg fails on it: the row fails and no finished file stays."""
    source = workdir / "source"
    source.mkdir()
    (source / "notes.mp4").write_text("not a video at all\n", encoding="utf-8")
    out_dir = workdir / "videos"
    options = fast_options(out_dir, allow_file_urls=True)
    options["postprocessors"] = [{"key": "FFmpegVideoConvertor", "preferedformat": "mkv"}]

    row = download_video((source / "notes.mp4").as_uri(), "vid_pp", out_dir, ydl_options=options)
    assert (row["status"], row["reason"], row["path"]) == ("failed", "other", "")
    assert row["error"].startswith("Postprocessing")
    assert find_complete_download(out_dir, "vid_pp") is None


def test_download_archive_entry_without_file_fails_with_a_clear_error(workdir, video_bytes):
    source = workdir / "clip.mp4"
    source.write_bytes(video_bytes)
    out_dir = workdir / "videos"
    options = fast_options(out_dir, allow_file_urls=True, download_archive=workdir / "archive.txt")
    assert (
        download_video(source.as_uri(), "vid_arch", out_dir, ydl_options=options)["status"] == "ok"
    )
    assert (workdir / "archive.txt").read_text().strip() != ""
    (out_dir / "vid_arch.mp4").unlink()  # the file is lost, the archive still lists the video
    row = download_video(source.as_uri(), "vid_arch", out_dir, ydl_options=options)
    assert (row["status"], row["reason"], row["path"]) == ("failed", "other", "")
    assert "download archive" in row["error"]


def test_video_id_with_path_separator_is_rejected(workdir):
    with pytest.raises(ValueError):
        download_video(
            "http://127.0.0.1:9/x.mp4", "../escape", workdir, ydl_options=fast_options(workdir)
        )


# --- skip detection ---------------------------------------------------------------------------


def test_find_complete_download_ignores_work_files_and_other_ids(tmp_path):
    for name in [
        "vid.mp4.part",
        "vid.mp4.ytdl",
        "vid.f137.mp4",
        "vid.f137.mp4.part-Frag3",
        "vid.temp.mp4",
        "vid.part",
        "vid.tmp",
        ".tmp-vid-abc123.mp4",
        "vid2.mp4",
        "vid_other.mp4",
    ]:
        (tmp_path / name).write_bytes(b"x")
    assert find_complete_download(tmp_path, "vid") is None
    assert find_complete_download(tmp_path / "absent", "vid") is None

    (tmp_path / "vid.webm").write_bytes(b"done")
    assert find_complete_download(tmp_path, "vid") == tmp_path / "vid.webm"
    assert find_complete_download(tmp_path, "vid2") == tmp_path / "vid2.mp4"


def test_existing_file_is_skipped_even_for_an_unreachable_url(workdir, refused_port):
    out_dir = workdir / "videos"
    out_dir.mkdir()
    (out_dir / "vid_have.mkv").write_bytes(b"already here")
    (out_dir / "vid_half.mp4.part").write_bytes(b"half")
    url = f"http://127.0.0.1:{refused_port}/video.mp4"
    options = fast_options(out_dir)
    assert download_video(url, "vid_have", out_dir, ydl_options=options) == {
        "status": "skipped",
        "path": "videos/vid_have.mkv",
        "reason": "",
        "error": "",
    }
    # A .part is not a finished file: yt-dlp is asked (and here fails).
    assert download_video(url, "vid_half", out_dir, ydl_options=options)["status"] == "failed"


# --- options --------------------------------------------------------------------------------


def test_options_use_yt_dlp_names_and_values_from_its_own_cli_parser(tmp_path):
    options = build_ydl_options(
        out_dir=tmp_path,
        format="bv*+ba/b",
        retries=5,
        fragment_retries=7,
        extractor_retries=4,
        socket_timeout=12.5,
        sleep_interval=1.5,
        max_sleep_interval=4.0,
        sleep_requests=0.75,
        cookiefile=tmp_path / "cookies.txt",
        download_archive=tmp_path / "archive.txt",
        allow_file_urls=True,
        rate_limit="2M",
        retry_sleep=SCHEMA_OPTIONS["retry_sleep"],
        ffmpeg_location="/opt/ffmpeg",
    )
    cli = yt_dlp.parse_options(
        [
            "-f", "bv*+ba/b",
            "--retries", "5",
            "--fragment-retries", "7",
            "--extractor-retries", "4",
            "--socket-timeout", "12.5",
            "--min-sleep-interval", "1.5",
            "--max-sleep-interval", "4",
            "--sleep-requests", "0.75",
            "--cookies", str(tmp_path / "cookies.txt"),
            "--download-archive", str(tmp_path / "archive.txt"),
            "--enable-file-urls",
            "--limit-rate", "2M",
            "--ffmpeg-location", "/opt/ffmpeg",
            "--no-playlist",
            "--merge-output-format", "mp4",
            "--no-progress",
            "--quiet",
        ]
    ).ydl_opts  # fmt: skip
    for key in [
        "format",
        "retries",
        "fragment_retries",
        "extractor_retries",
        "socket_timeout",
        "sleep_interval",
        "max_sleep_interval",
        "sleep_interval_requests",
        "cookiefile",
        "download_archive",
        "enable_file_urls",
        "ratelimit",
        "ffmpeg_location",
        "noplaylist",
        "merge_output_format",
        "noprogress",
        "quiet",
    ]:
        assert key in options, key
        assert options[key] == cli[key], (key, options[key], cli[key])
    assert options["ratelimit"] == 2 * 1024 * 1024
    assert options["paths"] == {"home": os.fspath(tmp_path)}


def test_retry_sleep_matches_yt_dlp_backoff():
    for expr in ["exp=1:30", "exp=0.5:10:3", "linear=1::2", "linear=2:9", "5"]:
        ours = schema_options(out_dir=".", retry_sleep=expr)["retry_sleep_functions"]
        theirs = yt_dlp.parse_options(["--retry-sleep", expr]).ydl_opts["retry_sleep_functions"][
            "http"
        ]
        assert set(ours) == {"http", "fragment", "extractor"}
        for n in range(8):
            assert ours["http"](n) == pytest.approx(theirs(n)), (expr, n)
    backoff = RetrySleep.parse("exp=1:30")
    assert [backoff(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]

    per_kind = schema_options(out_dir=".", retry_sleep={"fragment": "linear=1::2"})[
        "retry_sleep_functions"
    ]
    assert set(per_kind) == {"fragment"} and per_kind["fragment"](3) == 7
    assert schema_options(out_dir=".", retry_sleep=None)["retry_sleep_functions"] == {}


def test_options_defaults_and_validation(tmp_path):
    import pickle

    import imageio_ffmpeg

    options = schema_options(out_dir=tmp_path)
    assert options["ffmpeg_location"] == imageio_ffmpeg.get_ffmpeg_exe()
    assert options["format"] == "bv*[height<=1080]+ba/b[height<=1080]/b"
    assert "enable_file_urls" not in options
    assert (options["retries"], options["fragment_retries"], options["extractor_retries"]) == (
        3,
        3,
        2,
    )
    assert options["noplaylist"] is True and options["nopart"] is False
    assert (
        "sleep_interval" not in options
        and "ratelimit" not in options
        and "cookiefile" not in options
    )
    assert pickle.loads(pickle.dumps(options))["retry_sleep_functions"]["http"](2) == 4

    for bad in [
        dict(retries=-1),
        dict(socket_timeout=0),
        dict(max_sleep_interval=3.0),
        dict(sleep_interval=5.0, max_sleep_interval=2.0),
        dict(retry_sleep="fast"),
        dict(retry_sleep={"ftp": "1"}),
        dict(rate_limit="lots"),
    ]:
        with pytest.raises(ValueError):
            schema_options(out_dir=tmp_path, **bad)


# --- error classification on real yt-dlp / site messages ---------------------------------------

REAL_MESSAGES = [
    ("ERROR: [youtube] dQw4w9WgXc0: Video unavailable", "unavailable"),
    ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is not available", "unavailable"),
    (
        "ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video. "
        "Use --cookies-from-browser or --cookies for the authentication.",
        "private",
    ),
    ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is private", "private"),
    ("ERROR: [vk] -1_2: Video unavailable, set to private", "private"),
    (
        "ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader",
        "removed",
    ),
    (
        "ERROR: [youtube] abcdefghijk: This video has been removed for violating YouTube's Terms of Service",
        "removed",
    ),
    (
        "ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available because the "
        "YouTube account associated with this video has been terminated.",
        "removed",
    ),
    (
        "ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available due to a "
        "copyright claim by Some Label",
        "removed",
    ),
    (
        "ERROR: [youtube] abcdefghijk: The uploader has not made this video available in your country. "
        "You might want to use a VPN or a proxy server (with --proxy) to workaround.",
        "geo",
    ),
    (
        "ERROR: [generic] x: This video is not available from your location due to geo restriction",
        "geo",
    ),
    ("ERROR: [dailymotion] x7abc: Sorry, this content is not available in your country.", "geo"),
    (
        "ERROR: [generic] nope: Unable to download webpage: HTTP Error 404: Not Found "
        "(caused by <HTTPError 404: Not Found>)",
        "http_404",
    ),
    (
        "ERROR: [generic] private_clip: Unable to download webpage: HTTP Error 404: Not Found",
        "http_404",
    ),
    ("ERROR: [generic] gone: Unable to download webpage: HTTP Error 410: Gone", "removed"),
    ("ERROR: Unsupported URL: https://example.com/private/video-unavailable", "unsupported"),
    (
        "ERROR: 'not a url' is not a valid URL. Set --default-search \"ytsearch\" (or run  yt-dlp "
        '"ytsearch:not a url" ) to search YouTube',
        "unsupported",
    ),
    (
        "file:// URLs are disabled by default in yt-dlp for security reasons. Use --enable-file-urls to "
        "enable at your own risk.",
        "file_urls_disabled",
    ),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTPConnection(host='127.0.0.1', port=1): Failed "
        "to establish a new connection: [Errno 111] Connection refused",
        "network",
    ),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTPConnectionPool(host='127.0.0.1', port=4): "
        "Read timed out. (read timeout=1.0)",
        "network",
    ),
    (
        "ERROR: [download] Got error: 163840 bytes read, 136160 more expected. Giving up after 1 retries",
        "network",
    ),
    ("ERROR: Downloaded 1000 bytes, expected 5000 bytes", "network"),
    ("ERROR: [youtube] abcdefghijk: Unable to download API page: ('Connection aborted.', "
     "ConnectionResetError(104, 'Connection reset by peer'))", "network"),  # fmt: skip
    ("ERROR: [generic] x: Unable to download webpage: <urlopen error [Errno -3] Temporary failure in "
     "name resolution>", "network"),  # fmt: skip
    (
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable",
        "network",
    ),
    ("ERROR: [youtube] abcdefghijk: HTTP Error 429: Too Many Requests", "network"),
    (
        "ERROR: [youtube] abcdefghijk: This content isn't available, try again later. The current session "
        "has been rate-limited by YouTube for up to an hour.",
        "network",
    ),
    ("ERROR: [twitter] 1234567890: No video could be found in this tweet", "unavailable"),
    ("ERROR: [twitter] 1234567890: Requested tweet is unavailable", "unavailable"),
    ("ERROR: [twitter] 1234567890: User has been suspended", "removed"),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 403: Forbidden", "other"),
    (
        "ERROR: [youtube] abcdefghijk: Sign in to confirm you're not a bot. Use --cookies-from-browser or "
        "--cookies for the authentication.",
        "other",
    ),
    (
        "ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate",
        "other",
    ),
    ("ERROR: Did not get any data blocks", "empty"),
    (
        "ERROR: [youtube] abcdefghijk: Requested format is not available. Use --list-formats",
        "other",
    ),
    ("", "other"),
]


@pytest.mark.parametrize(("message", "expected"), REAL_MESSAGES)
def test_classify_error_on_real_messages(message, expected):
    assert expected in REASONS
    assert classify_error(message) == expected


def test_one_line_trims_colour_tag_and_length():
    assert (
        one_line("\x1b[0;31mERROR:\x1b[0m  [generic] x:\n  Unable\tto  go ")
        == "[generic] x: Unable to go"
    )
    long = one_line("word " * 400)
    assert len(long) == 500 and long.endswith("...")


# --- local files a corpus names (no yt-dlp) ------------------------------------------------


def test_local_file_is_linked_or_copied_with_download_rows(tmp_path, monkeypatch):
    import builtins
    import errno

    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "Clip.MP4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 100)
    (corpus / "empty.mp4").write_bytes(b"")
    (corpus / "dir.mp4").mkdir()
    (corpus / "locked.mp4").write_bytes(b"data")

    row = fetch_local_file(corpus / "Clip.MP4", "v1", "videos")
    assert row == {"status": "ok", "path": "videos/v1.mp4", "reason": "", "error": ""}
    assert os.path.samefile("videos/v1.mp4", corpus / "Clip.MP4"), "hard link, no copy"
    assert fetch_local_file(corpus / "Clip.MP4", "v1", "videos")["status"] == "skipped"
    for name, reason in (
        ("nope.mp4", "missing"),
        ("empty.mp4", "empty"),
        ("dir.mp4", "not_a_file"),
    ):
        got = fetch_local_file(corpus / name, f"v_{reason}", "videos")
        assert (got["status"], got["reason"], got["path"]) == ("failed", reason, ""), name
        assert f"corpus/{name}" in got["error"] and str(tmp_path) not in got["error"]

    real_open = builtins.open

    def refuse(path, *args, **kwargs):  # root reads anything: play a permission error
        if str(path).endswith("locked.mp4"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    got = fetch_local_file(corpus / "locked.mp4", "v_locked", "videos")
    assert (got["status"], got["reason"]) == (
        "failed",
        "unreadable",
    ) and "Permission denied" in got["error"]
    monkeypatch.setattr(builtins, "open", real_open)

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    row = fetch_local_file(corpus / "Clip.MP4", "v2", "videos")
    assert row["status"] == "ok" and not os.path.samefile(row["path"], corpus / "Clip.MP4")
    assert Path(row["path"]).read_bytes() == (corpus / "Clip.MP4").read_bytes()
    assert sorted(p.name for p in Path("videos").iterdir()) == [
        "v1.mp4",
        "v2.mp4",
    ], "no stray files"
