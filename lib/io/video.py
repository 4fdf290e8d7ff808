"""The one frame reader and writer of vidstage (PyAV), plus frame-sampling helpers.

Every stage reads frames through :class:`FrameReader` and writes clips through
:class:`VideoWriter`, so frame accuracy, rotation, pixel formats and memory bounds are
handled in exactly one place.

Frame index ``i`` always means the ``i``-th frame in *presentation* order. The reader
builds the table of presentation timestamps (``pts``) and keyframes once, by demuxing the
packets (cheap: no decoding), and then finds frames by timestamp, never by counting
decoded frames, so variable-frame-rate files are sampled correctly.

Why not ``container.seek`` and take the first frame: a seek lands on the *preceding
keyframe*; the first decoded frame is that keyframe, not the target (and PyAV's
``any_frame=True`` returns wrong frames for H.264 and errors for VP9). The reader seeks to
the target's keyframe only when that keyframe lies ahead of what it has already decoded,
and otherwise decodes forward; either way it decodes up to the target's pts. That decodes
exactly the frames a frame-accurate reader must (from each target's keyframe, or from the
previous target in the same GOP), and while decoding towards a target it skips frames no
other frame references (``skip_frame="NONREF"``), so sparse reads cost less than that
bound (see docs/BENCHMARKS.md, section ``reader``).

Files that cannot be opened (missing, not a video, no video stream, index cut off) raise
on ``FrameReader(...)``; callers that must not raise (``lib.io.probe``) catch it. Once open,
corrupt or truncated data never raises: undecodable frames are skipped and counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from lib.utils import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "FrameReader",
    "VideoWriter",
    "sample_uniform",
    "sample_fraction",
    "sliding_windows",
]


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _frame_to_rgb(
    frame: av.VideoFrame, rotation: int, reformatter: VideoReformatter | None = None
) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a decoded frame with its display rotation applied.

    The conversion is ``frame.to_ndarray(format="rgb24")`` (every pixel format, 10-bit
    included, to 8-bit RGB), pixel for pixel; passing a long-lived ``reformatter`` reuses
    its swscale context, which is 2-4x faster at 1080p than building one per frame.
    ``rotation`` is the counter-clockwise display rotation in degrees.

    PyAV returns a writable view on the converted frame's own buffer (no copy); it is
    made C-contiguous (copied) only when FFmpeg padded the rows (widths whose RGB row is
    not a multiple of 16 bytes), so every frame handed out is C-contiguous.
    """
    if reformatter is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        # threads=1: swscale's automatic thread pool cost more than it saved at 1080p
        rgb = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
    quarter_turns = (rotation // 90) % 4
    if quarter_turns:
        rgb = np.rot90(rgb, k=quarter_turns)
    if not rgb.flags.c_contiguous:
        rgb = np.ascontiguousarray(rgb)
    return rgb


def _ffmpeg_url(path: Path) -> str:
    """An FFmpeg URL that always means the local file ``path``.

    A bare name such as ``concat:x|y.mp4`` would be read as a protocol; the ``file:``
    prefix with an absolute path disables that.
    """
    return "file:" + str(Path(path).absolute())


def _normalise_rotation(degrees: float | int | None) -> int:
    """Display rotation rounded to a multiple of 90 in [0, 360)."""
    if degrees is None or not np.isfinite(degrees):
        return 0
    return int(round(float(degrees) / 90.0)) * 90 % 360


class FrameReader:
    """Frame-accurate, streaming reader for the first video stream of a file.

    Parameters
    ----------
    path:
        The video file.
    threads:
        PyAV ``thread_type`` of the decoder (``"AUTO"``, ``"FRAME"``, ``"SLICE"``,
        ``"NONE"``); set before the first decode, as FFmpeg requires.
    skip_nonref:
        While decoding *towards* a target, ask the decoder to skip frames that no other
        frame references (``skip_frame="NONREF"``, typically B-frames: about half the
        frames of x264's default output). Only packets that lie before the last target
        of the current ``read`` and are not targets are skipped, so returned pixels are
        unchanged (tests compare them with a full decode); a target passed over anyway
        is decoded again from its keyframe without skipping.

    Attributes
    ----------
    n_frames, pts, keyframe_indices, frame_times_s:
        Exact frame count, sorted presentation timestamps (``time_base`` units),
        keyframe positions and frame times, from one demux pass over the packets at open
        time (no decoding; works for webm, whose header has no frame count).
    fps, duration_s, bit_rate, codec, pix_fmt, time_base, coded_width, coded_height:
        Container metadata, cached at open (readable after ``close()``). ``fps`` is the
        average rate; ``bit_rate`` is the container's, else size x 8 / duration.
    width, height, rotation:
        Display size after rotation; rotation in degrees counter-clockwise.
    decode_errors:
        Number of packets the decoder rejected so far (corrupt data is skipped, never
        raised).
    frames_decoded, seeks:
        Work counters: frames the decoder produced and seeks made so far (diagnostics
        for benchmarks and tests).
    """

    def __init__(self, path: str | os.PathLike, *, threads: str = "AUTO", skip_nonref: bool = True):
        self.path = Path(path)
        self.threads = threads
        self.skip_nonref = skip_nonref
        self.decode_errors = 0
        self.frames_decoded = 0  # frames the decoder produced (skipped ones not counted)
        self.seeks = 0
        self._rotation: int | None = None
        self._url = _ffmpeg_url(self.path)
        self._container = av.open(self._url)
        try:
            if not self._container.streams.video:
                raise ValueError(f"{self.path}: no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = threads
            self._build_index()
            self._read_metadata()
        except BaseException:
            self._container.close()
            raise
        self._packets: Iterator[av.Packet] | None = None  # demux iterator of the decode pass
        self._pending: list[av.VideoFrame] = []  # decoded frames not yet consumed
        self._position = -1  # presentation index of the last frame taken from the decoder
        self._at_eof = False
        self._skip_state: str | None = None
        self._last_wanted = -1  # last target of the current read(): no skipping after it
        self._reformatter = VideoReformatter()  # one swscale context for all conversions

    # -- index ---------------------------------------------------------------------------

    def _build_index(self) -> None:
        """Demux every packet once: presentation timestamps and keyframe flags."""
        pts_list: list[int] = []
        key_list: list[bool] = []
        timestamps_complete = True
        for packet in self._container.demux(self._stream):
            if packet.size == 0 or packet.is_discard:
                continue  # PyAV's end-of-stream flush packet; edit-list-discarded samples
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                timestamps_complete = False
                ts = len(pts_list)
            pts_list.append(int(ts))
            key_list.append(bool(packet.is_keyframe))
        pts = np.asarray(pts_list, dtype=np.int64)
        keys = np.asarray(key_list, dtype=bool)
        order = np.argsort(pts, kind="stable")
        self._pts = pts[order]
        self._key_flags = keys[order]
        self._timestamps_complete = timestamps_complete and bool(
            len(self._pts) == 0 or np.all(np.diff(self._pts) > 0)
        )
        if len(self._pts) and not self._key_flags.any():
            self._key_flags[0] = True  # no flags at all: treat the start as the only keyframe
        self._keyframe_indices = np.flatnonzero(self._key_flags)
        # pts -> index as a dict: looked up once per packet and per frame (O(1), no numpy call)
        self._index_by_pts = {int(ts): i for i, ts in enumerate(self._pts.tolist())}
        if not self._timestamps_complete:
            log.warning("%s: packets lack unique timestamps; reading sequentially", self.path)
        # The index pass consumed the file: rewind for decoding.
        self._seek_to_start()
        self._rewound = True

    # -- metadata ------------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """Exact number of frames (demuxed packets that carry a frame)."""
        return int(len(self._pts))

    @property
    def pts(self) -> np.ndarray:
        """Sorted presentation timestamps of all frames, in ``time_base`` units."""
        return self._pts.copy()

    def _read_metadata(self) -> None:
        """Cache the container's metadata so it stays readable after ``close()``."""
        stream, container = self._stream, self._container
        ctx = stream.codec_context
        self.time_base: Fraction = stream.time_base or Fraction(1, 1)
        self.codec: str = ctx.name  # decoder name, e.g. h264, vp9, mpeg4
        self.pix_fmt: str | None = ctx.pix_fmt  # coded pixel format, e.g. yuv420p10le
        self.coded_width: int = int(ctx.width)
        self.coded_height: int = int(ctx.height)
        # Duration: the stream's, else the container's, else the pts span.
        if stream.duration and stream.time_base:
            self.duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            self.duration_s = float(container.duration) / av.time_base
        elif self.n_frames >= 2:
            span = float((self._pts[-1] - self._pts[0]) * self.time_base)
            self.duration_s = span * self.n_frames / (self.n_frames - 1)
        else:
            self.duration_s = 0.0
        # Average frame rate: the stream's average_rate, else frames / duration.
        if stream.average_rate:
            self.fps = float(stream.average_rate)
        else:
            self.fps = self.n_frames / self.duration_s if self.duration_s > 0 else 0.0
        # Bits per second: the container's, else file size x 8 / duration.
        if container.bit_rate:
            self.bit_rate = float(container.bit_rate)
        elif self.duration_s > 0:
            self.bit_rate = self.path.stat().st_size * 8 / self.duration_s
        else:
            self.bit_rate = 0.0

    @property
    def frame_times_s(self) -> np.ndarray:
        """Presentation time of each frame in seconds, relative to the first frame."""
        if self.n_frames == 0:
            return np.zeros(0, dtype=np.float64)
        return (self._pts - self._pts[0]).astype(np.float64) * float(self.time_base)

    @property
    def keyframe_indices(self) -> np.ndarray:
        """Presentation indices of the frames whose packets are flagged as keyframes."""
        return self._keyframe_indices.copy()

    @property
    def rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0, 90, 180, 270).

        FFmpeg attaches the display matrix to decoded frames, so it is learned from the
        first frame the reader decodes (a single-threaded decode of one frame in a
        separate container when asked before any read).
        """
        if self._rotation is None:
            self._rotation = self._probe_rotation()
        return self._rotation

    @property
    def width(self) -> int:
        """Display width (after rotation)."""
        w, h = self.coded_width, self.coded_height
        return h if self.rotation in (90, 270) else w

    @property
    def height(self) -> int:
        """Display height (after rotation)."""
        w, h = self.coded_width, self.coded_height
        return w if self.rotation in (90, 270) else h

    def _probe_rotation(self) -> int:
        try:
            with av.open(self._url) as container:
                stream = container.streams.video[0]
                stream.thread_type = "NONE"
                for frame in container.decode(stream):
                    return _normalise_rotation(frame.rotation)
        except av.error.FFmpegError as exc:  # corrupt first frames: report no rotation
            log.warning("%s: could not probe rotation: %s", self.path, exc)
        return 0

    # -- decoding machinery --------------------------------------------------------------

    def _seek_to_start(self) -> None:
        """Rewind the demuxer and decoder to the first packet (reopen if seeking fails)."""
        try:
            self._container.seek(0, backward=True, any_frame=False)  # AV_TIME_BASE units
        except av.error.FFmpegError:
            self._reopen()
        self._reset_decode_state()

    def _reopen(self) -> None:
        """A fresh container and decoder positioned at the start (fallback for seeks)."""
        self._container.close()
        self._container = av.open(self._url)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = self.threads
        self._skip_state = None

    def _seek_to_index(self, index: int) -> None:
        """Seek the demuxer to the keyframe at presentation index ``index``."""
        if index <= 0 and self._rewound:
            return  # already at the first packet with a fresh decoder
        self.seeks += 1
        if index <= 0:
            self._seek_to_start()
            self._rewound = True
            return
        try:
            self._container.seek(
                int(self._pts[index]), backward=True, any_frame=False, stream=self._stream
            )
        except av.error.FFmpegError as exc:  # unseekable: decode from the start instead
            log.debug("%s: seek failed (%s); decoding from the start", self.path, exc)
            self._reopen()
        self._reset_decode_state()

    def _reset_decode_state(self) -> None:
        self._rewound = False  # set by callers that know the demuxer is at the start
        self._packets = None
        self._pending = []
        self._position = -1
        self._at_eof = False

    def _index_of_pts(self, pts: int | None) -> int:
        """Presentation index of a decoded frame's pts (nearest table entry)."""
        if pts is None:
            return self._position + 1
        index = self._index_by_pts.get(pts)
        if index is not None:
            return index
        i = int(np.searchsorted(self._pts, pts))
        if i < len(self._pts) and self._pts[i] == pts:
            return i
        # Not in the table (should not happen): take the nearest entry.
        if i == 0:
            return 0
        if i >= len(self._pts):
            return len(self._pts) - 1
        return i if self._pts[i] - pts < pts - self._pts[i - 1] else i - 1

    def _set_skip(self, skip: bool) -> None:
        state = "NONREF" if skip else "DEFAULT"
        if state != self._skip_state:
            self._stream.codec_context.skip_frame = state
            self._skip_state = state

    def _next_frame(self, wanted: set[int] | None) -> tuple[int, av.VideoFrame] | None:
        """Next decoded frame and its presentation index, or None at end of stream.

        ``wanted``: presentation indices that must be fully decoded; other packets may be
        decoded with ``skip_frame=NONREF`` (no frame comes out for skipped ones). ``None``
        decodes everything.
        """
        while not self._pending:
            if self._at_eof:
                return None
            if self._packets is None:
                self._packets = self._container.demux(self._stream)
            self._rewound = False
            packet = next(self._packets, None)
            if packet is None or packet.size == 0:
                packet = None  # flush the decoder
                self._at_eof = True
            elif self.skip_nonref and self._timestamps_complete:
                # Skip only packets known (by their pts) to lie before the last wanted frame
                # and not to be wanted; frames after it are decoded in full, so that a later
                # read() that continues forward finds them in the decoder's pipeline.
                skip = False
                if wanted and packet.pts is not None:
                    index = self._index_of_pts(packet.pts)
                    skip = index < self._last_wanted and index not in wanted
                self._set_skip(skip)
            try:
                self._pending = list(self._stream.decode(packet))
            except av.error.EOFError:
                self._pending = []
                self._at_eof = True
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                log.debug("%s: decode error skipped: %s", self.path, exc)
                self._pending = []
        frame = self._pending.pop(0)
        self.frames_decoded += 1
        if self._rotation is None:
            self._rotation = _normalise_rotation(frame.rotation)
        if self._timestamps_complete:
            index = self._index_of_pts(frame.pts)
        else:
            index = self._position + 1
        self._position = index
        return index, frame

    def _keyframe_at_or_before(self, index: int) -> int:
        """Presentation index of the last keyframe at or before ``index``."""
        keys = self._keyframe_indices
        j = int(np.searchsorted(keys, index, side="right")) - 1
        return int(keys[j]) if j >= 0 else 0

    # -- public reading API --------------------------------------------------------------

    def read(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, rgb)`` for exactly the frames at those presentation indices.

        Indices are sorted and de-duplicated; out-of-range ones are ignored. Frames are
        RGB uint8 ``(H, W, 3)`` with rotation applied. For each target the reader either
        decodes forward from where it is, or — when the target's keyframe lies ahead of
        the current position — seeks to that keyframe; then it decodes up to the target's
        pts. A target the decoder cannot produce (corrupt data) is skipped, not raised.

        The reader has one decoder: consume one ``read``/``iter_*`` generator before
        starting the next (calls in sequence may go forwards or backwards freely).
        """
        n = self.n_frames
        targets = sorted({int(i) for i in indices if 0 <= int(i) < n})
        if not targets:
            return
        if not self._timestamps_complete:
            yield from self._read_sequential(targets)
            return
        wanted = set(targets)
        self._last_wanted = targets[-1]
        for target in targets:
            frame = self._decode_to(target, wanted)
            if frame is None:
                if self._at_eof and not self._pending:
                    # Decoding from the target's keyframe to the end gave nothing at or
                    # after it: later targets cannot appear either (corrupt/truncated data).
                    log.warning("%s: %d requested frames not decodable", self.path, len(wanted))
                    return
                continue
            wanted.discard(target)
            yield target, _frame_to_rgb(frame, self.rotation, self._reformatter)

    def _decode_to(self, target: int, wanted: set[int]) -> av.VideoFrame | None:
        """Position the decoder at ``target`` (seek or decode forward) and return its frame.

        Safety nets, each logged: a seek that lands after the target is retried from an
        earlier keyframe (finally from the start); a target the decoder passed over while
        skipping unreferenced frames is decoded again from its keyframe without skipping.
        """
        keyframe = self._keyframe_at_or_before(target)
        exhausted = self._at_eof and not self._pending
        just_seeked = self._position >= target or keyframe > self._position or exhausted
        if just_seeked:
            self._seek_to_index(keyframe)
        seek_from, allow_skip = keyframe, True
        while True:
            item = self._next_frame(wanted if allow_skip else None)
            if item is None:
                return None  # end of stream before the target: undecodable
            index, frame = item
            if index == target:
                return frame
            if index < target:
                just_seeked = False
                continue
            if just_seeked:  # the seek landed after the target: start earlier
                if seek_from <= 0:
                    log.warning("%s: frame %d not reachable", self.path, target)
                    return None
                seek_from = self._keyframe_at_or_before(seek_from - 1)
            elif allow_skip and self.skip_nonref:
                log.info(
                    "%s: frame %d passed over; decoding again without skipping", self.path, target
                )
                allow_skip = False
            else:
                log.warning("%s: decoder never produced frame %d", self.path, target)
                return None
            self._seek_to_index(seek_from)
            just_seeked = True

    def _read_sequential(self, targets: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Fallback for files without usable timestamps: decode from the start, count."""
        self._seek_to_start()
        wanted = set(targets)
        last = targets[-1]
        while wanted:
            item = self._next_frame(None)
            if item is None:
                return
            index, frame = item
            if index in wanted:
                wanted.discard(index)
                yield index, _frame_to_rgb(frame, self.rotation, self._reformatter)
            if index >= last:
                return

    def indices_for_times(self, times_s: Iterable[float]) -> list[int]:
        """Presentation index of the frame nearest to each time (seconds from the first
        frame, via the pts table), in the order given (duplicates kept; ties go to the
        earlier frame)."""
        frame_times = self.frame_times_s
        times = np.asarray(list(times_s), dtype=np.float64)
        if len(frame_times) == 0:
            return []
        if len(frame_times) == 1:
            return [0] * len(times)
        right = np.clip(np.searchsorted(frame_times, times), 1, len(frame_times) - 1)
        left = right - 1
        choose_left = np.abs(times - frame_times[left]) <= np.abs(frame_times[right] - times)
        return np.where(choose_left, left, right).astype(int).tolist()

    def read_times(self, times_s: Iterable[float]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, rgb)`` for the frames nearest to those times (seconds from the
        first frame, via the pts table); like :meth:`read`, each frame once, in order."""
        return self.read(self.indices_for_times(times_s))

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Stream frames ``start..stop-1`` (presentation order) one at a time."""
        stop = self.n_frames if stop is None else min(int(stop), self.n_frames)
        for _, rgb in self.read(range(max(int(start), 0), stop)):
            yield rgb

    def iter_chunks(
        self, chunk_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[list[np.ndarray]]:
        """Stream frames in lists of at most ``chunk_size``; memory holds one chunk."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        chunk: list[np.ndarray] = []
        for rgb in self.iter_frames(start, stop):
            chunk.append(rgb)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the container (idempotent)."""
        self._packets = None
        self._pending = []
        self._container.close()

    def __enter__(self) -> "FrameReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrameReader({str(self.path)!r}, n_frames={self.n_frames}, codec={self.codec!r})"


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_SUBSAMPLED_PREFIXES = (
    "yuv420",
    "yuvj420",
    "yuv422",
    "yuvj422",
    "nv12",
    "nv21",
    "nv16",
    "p010",
    "yuv411",
)


def _needs_even(pix_fmt: str) -> bool:
    return pix_fmt.startswith(_SUBSAMPLED_PREFIXES)


def _as_rate(fps: float | Fraction | int) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


class VideoWriter:
    """Atomic, deterministic encoder of RGB uint8 frames (PyAV).

    Frames go to a temporary file beside ``path`` (``lib.utils.atomic_path``) that is
    renamed onto ``path`` only when the writer closes without an exception; on an
    exception the temporary file is deleted, so ``path`` is either complete or absent.

    Odd frame sizes are padded to even (edge replicate) for chroma-subsampled pixel
    formats such as ``yuv420p``. The same frames and settings give the same bytes: the
    encoder runs frame-threaded with a fixed thread count (``threads``; x264's sliced
    threads, PyAV's default, are not repeatable), and for libx264 ``deterministic=True``
    adds ``x264-params=mbtree=0`` (macroblock-tree rate control read uninitialised memory
    in measurements here: repeated encodes of the same frames in one process differed).

    Parameters
    ----------
    path: output file; the container format follows its extension.
    fps: frame rate (float or Fraction).
    codec, crf, preset, pix_fmt: encoder settings; ``crf``/``preset`` are passed to
        x264/x265 (and ``crf`` to libvpx*), ignored for other encoders.
    options: extra encoder options (strings), override the above.
    threads: encoder thread count (fixed for determinism).
    deterministic: libx264 only: disable mbtree (see above) unless ``options`` set it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float | Fraction,
        codec: str = "libx264",
        crf: int | None = 18,
        preset: str | None = "veryfast",
        pix_fmt: str = "yuv420p",
        options: dict[str, str] | None = None,
        threads: int = 2,
        deterministic: bool = True,
    ):
        self.path = Path(path)
        self.rate = _as_rate(fps)
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.threads = int(threads)
        encoder_options: dict[str, str] = {}
        if codec in ("libx264", "libx265"):
            if crf is not None:
                encoder_options["crf"] = str(crf)
            if preset is not None:
                encoder_options["preset"] = str(preset)
        elif codec.startswith("libvpx") and crf is not None:
            encoder_options.update({"crf": str(crf), "b": "0"})
        encoder_options.update({k: str(v) for k, v in (options or {}).items()})
        if codec == "libx264" and deterministic:
            # x264's macroblock-tree rate control (with its asm) reads uninitialised
            # memory: repeated in-process encodes of small frames gave up to 8 different
            # outputs in 10 runs; with mbtree=0 every run was identical.
            params = encoder_options.get("x264-params", "")
            if "mbtree" not in params:
                encoder_options["x264-params"] = ":".join(p for p in (params, "mbtree=0") if p)
        self.options = encoder_options
        self.frames_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None  # (height, width) of input frames

    def __enter__(self) -> "VideoWriter":
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._container = av.open(_ffmpeg_url(tmp), mode="w", format=_format_for(self.path))
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB uint8 ``(H, W, 3)`` frame; all frames must share one size."""
        if self._container is None:
            raise RuntimeError("VideoWriter must be used as a context manager")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        if self._stream is None:
            self._open_stream(frame.shape[0], frame.shape[1])
        elif frame.shape[:2] != self._size:
            raise ValueError(
                f"frame size {frame.shape[:2]} differs from the first frame's {self._size}"
            )
        padded = self._pad(frame)
        video_frame = av.VideoFrame.from_ndarray(padded, format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.rate
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _open_stream(self, height: int, width: int) -> None:
        self._size = (height, width)
        even = _needs_even(self.pix_fmt)
        stream = self._container.add_stream(self.codec, rate=self.rate, options=self.options)
        stream.width = width + (width % 2 if even else 0)
        stream.height = height + (height % 2 if even else 0)
        stream.pix_fmt = self.pix_fmt
        stream.codec_context.time_base = 1 / self.rate
        # x264's sliced threads (PyAV's default thread_type for encoders) give different
        # bytes from run to run; frame threads with a fixed count are repeatable.
        stream.codec_context.thread_type = "FRAME"
        stream.codec_context.thread_count = self.threads
        self._stream = stream

    def _pad(self, frame: np.ndarray) -> np.ndarray:
        if not _needs_even(self.pix_fmt):
            return frame
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return frame

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        container, self._container = self._container, None
        if exc_type is not None:  # discard: close, then let atomic_path delete the temp
            with contextlib.suppress(Exception):
                container.close()
            stack.__exit__(exc_type, exc, tb)
            return False
        try:
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames written; nothing published")
            for packet in self._stream.encode(None):
                container.mux(packet)
            container.close()
        except BaseException:
            with contextlib.suppress(Exception):
                container.close()
            stack.__exit__(*sys.exc_info())
            raise
        stack.__exit__(None, None, None)  # renames the temp onto path
        return False


def _format_for(path: Path) -> str | None:
    """Container format for the extension (atomic temp files keep the extension)."""
    return {".mkv": "matroska", ".webm": "webm", ".mp4": "mp4", ".avi": "avi", ".mov": "mov"}.get(
        path.suffix.lower()
    )


# --------------------------------------------------------------------------------------
# Sampling helpers
# --------------------------------------------------------------------------------------


def sample_uniform(n_frames: int, k: int) -> list[int]:
    """``k`` evenly spaced frame indices, each centred in its bin of ``n_frames / k``.

    Returns every frame when ``k >= n_frames`` and ``[]`` for ``n_frames <= 0`` or
    ``k <= 0``. Deterministic and strictly increasing.
    """
    n_frames, k = int(n_frames), int(k)
    if n_frames <= 0 or k <= 0:
        return []
    if k >= n_frames:
        return list(range(n_frames))
    positions = (np.arange(k, dtype=np.float64) + 0.5) * (n_frames / k)
    return np.floor(positions).astype(int).tolist()


def sample_fraction(
    n_frames: int, fraction: float = 0.1, min_frames: int = 5, max_frames: int = 50
) -> list[int]:
    """The seed's sampling: ``fraction`` of the frames (rounded down), clipped to
    ``[min_frames, max_frames]`` and to ``n_frames``, spaced by :func:`sample_uniform`."""
    n_frames = int(n_frames)
    if n_frames <= 0:
        return []
    k = int(np.floor(n_frames * float(fraction)))
    k = min(max(k, int(min_frames)), int(max_frames), n_frames)
    return sample_uniform(n_frames, k)


def sliding_windows(n_frames: int, size: int, stride: int) -> list[list[int]]:
    """Windows of ``size`` consecutive indices starting every ``stride`` frames.

    Only full windows are returned (``[]`` when ``n_frames < size``): a clip model sees
    a fixed number of frames.
    """
    if size <= 0 or stride <= 0:
        raise ValueError("size and stride must be positive")
    n_frames = int(n_frames)
    return [list(range(s, s + size)) for s in range(0, max(n_frames - size + 1, 0), stride)]
