"""The one frame reader of vidstage (PyAV): every stage reads frames through :class:`FrameReader`,
so frame accuracy, rotation, pixel formats and memory bounds are handled in one place.

Frame index ``i`` always means the ``i``-th frame in *presentation* order. The reader
builds the table of presentation timestamps (``pts``) and keyframes once, by demuxing the
packets (cheap: no decoding; :mod:`lib.io.demux`), and then finds frames by timestamp,
never by counting decoded frames, so variable-frame-rate files are sampled correctly.

Why not ``container.seek`` and take the first frame: a seek lands on the *preceding
keyframe*; the first decoded frame is that keyframe, not the target (and PyAV's
``any_frame=True`` returns wrong frames for H.264 and errors for VP9). The reader seeks to
the target's keyframe only when that keyframe lies ahead of what it has already decoded,
and otherwise decodes forward; either way it decodes up to the target's pts. That decodes
exactly the frames a frame-accurate reader must (from each target's keyframe, or from the
previous target in the same GOP), and while decoding towards a target it skips frames no
other frame references (``skip_frame="NONREF"``), so sparse reads cost less than that
bound (see docs/BENCHMARKS.md, section "Frame reader").

Files that cannot be opened (missing, not a video, no video stream, index cut off) raise
on ``FrameReader(...)``; callers that must not raise (``lib.io.probe``) catch it. Once open,
corrupt or truncated data never raises: undecodable frames are skipped and counted.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from lib.io.demux import (
    demux_packets,
    display_size,
    ffmpeg_url,
    main_video_stream,
    normalise_rotation,
    playback_timing,
)

log = logging.getLogger(__name__)

__all__ = ["FrameReader"]


def _frame_to_rgb(
    frame: av.VideoFrame, rotation: int, reformatter: VideoReformatter | None = None
) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a decoded frame with its display rotation applied.

    The conversion is ``frame.to_ndarray(format="rgb24")`` (every pixel format, 10-bit
    included, to 8-bit RGB), pixel for pixel; passing a long-lived ``reformatter`` reuses
    its swscale context instead of building one per frame (see docs/BENCHMARKS.md, section
    "Frame reader"). ``rotation`` is the counter-clockwise display rotation in degrees.

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


class FrameReader:
    """Frame-accurate, streaming reader for the video stream of a file.

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
        Container metadata, cached at open (readable after ``close()``); ``fps``,
        ``duration_s`` and ``bit_rate`` follow :func:`lib.io.demux.playback_timing`.
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
        self._skip_state: str | None = None
        self._last_wanted = -1  # last target of the current read(): no skipping after it
        self._reformatter = VideoReformatter()  # one swscale context for all conversions
        self._url = ffmpeg_url(self.path)
        self._container = av.open(self._url)
        try:
            self._stream = main_video_stream(self._container)
            if self._stream is None:
                raise ValueError(f"{self.path}: no video stream")
            self._stream.thread_type = threads
            packets = demux_packets(self._container, self._stream)
            if packets.error is not None:
                raise packets.error  # the index is cut off: the file does not open
            self.time_base: Fraction = self._stream.time_base or Fraction(1, 1)
            self._index = packets.frame_index(self.time_base)
            if not self._index.timestamps_complete:
                log.warning("%s: packets lack unique timestamps; reading sequentially", self.path)
            self._rewind()  # the index pass consumed the file
            self._read_metadata()
        except BaseException:
            self._container.close()
            raise

    # -- metadata ------------------------------------------------------------------------

    def _read_metadata(self) -> None:
        """Cache the container's metadata so it stays readable after ``close()``."""
        ctx = self._stream.codec_context
        self.codec: str = ctx.name  # decoder name, e.g. h264, vp9, mpeg4
        self.pix_fmt: str | None = ctx.pix_fmt  # coded pixel format, e.g. yuv420p10le
        self.coded_width: int = int(ctx.width)
        self.coded_height: int = int(ctx.height)
        timing = playback_timing(self._container, self._stream, self._index, self.path)
        self.duration_s, self.fps, self.bit_rate = timing.duration_s, timing.fps, timing.bit_rate

    @property
    def n_frames(self) -> int:
        """Exact number of frames (demuxed packets that carry a frame)."""
        return len(self._index)

    @property
    def pts(self) -> np.ndarray:
        """Sorted presentation timestamps of all frames, in ``time_base`` units."""
        return self._index.pts.copy()

    @property
    def frame_times_s(self) -> np.ndarray:
        """Presentation time of each frame in seconds, relative to the first frame."""
        return self._index.times_s()

    @property
    def keyframe_indices(self) -> np.ndarray:
        """Presentation indices of the frames whose packets are flagged as keyframes."""
        return self._index.keyframe_indices.copy()

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
        return display_size(self.coded_width, self.coded_height, self.rotation)[0]

    @property
    def height(self) -> int:
        """Display height (after rotation)."""
        return display_size(self.coded_width, self.coded_height, self.rotation)[1]

    def _probe_rotation(self) -> int:
        try:
            with av.open(self._url) as container:
                stream = main_video_stream(container)
                stream.thread_type = "NONE"
                for frame in container.decode(stream):
                    return normalise_rotation(frame.rotation)
        except av.error.FFmpegError as exc:  # corrupt first frames: report no rotation
            log.warning("%s: could not probe rotation: %s", self.path, exc)
        return 0

    # -- decoding machinery --------------------------------------------------------------

    def _rewind(self) -> None:
        """Demuxer and decoder at the first packet (a fresh container if seeking fails)."""
        try:
            self._container.seek(0, backward=True, any_frame=False)  # AV_TIME_BASE units
        except av.error.FFmpegError:
            self._reopen()
        self._reset_decode_state()
        self._rewound = True  # until the next packet is read: a seek to 0 is not needed

    def _reopen(self) -> None:
        """A fresh container and decoder positioned at the start (fallback for seeks)."""
        self._container.close()
        self._container = av.open(self._url)
        self._stream = main_video_stream(self._container)
        self._stream.thread_type = self.threads
        self._skip_state = None

    def _seek_to_index(self, index: int) -> None:
        """Seek the demuxer to the keyframe at presentation index ``index``."""
        if index <= 0 and self._rewound:
            return  # already at the first packet with a fresh decoder
        self.seeks += 1
        if index <= 0:
            self._rewind()
            return
        try:
            self._container.seek(
                int(self._index.pts[index]), backward=True, any_frame=False, stream=self._stream
            )
        except av.error.FFmpegError as exc:  # unseekable: decode from the start instead
            log.debug("%s: seek failed (%s); decoding from the start", self.path, exc)
            self._reopen()
        self._reset_decode_state()

    def _reset_decode_state(self) -> None:
        self._rewound = False
        self._packets: Iterator[av.Packet] | None = None  # demux iterator of the decode pass
        self._pending: list[av.VideoFrame] = []  # decoded frames not yet consumed
        self._position = -1  # presentation index of the last frame taken from the decoder
        self._at_eof = False

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
        complete = self._index.timestamps_complete
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
            elif self.skip_nonref and complete:
                # Skip only packets known (by their pts) to lie before the last wanted frame
                # and not to be wanted; frames after it are decoded in full, so that a later
                # read() that continues forward finds them in the decoder's pipeline.
                skip = False
                if wanted and packet.pts is not None:
                    index = self._index.index_of(packet.pts)
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
            self._rotation = normalise_rotation(frame.rotation)
        if complete and frame.pts is not None:
            self._position = self._index.index_of(frame.pts)
        else:
            self._position += 1
        return self._position, frame

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return _frame_to_rgb(frame, self.rotation, self._reformatter)

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
        if not self._index.timestamps_complete:
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
            yield target, self._rgb(frame)

    def _decode_to(self, target: int, wanted: set[int]) -> av.VideoFrame | None:
        """Position the decoder at ``target`` (seek or decode forward) and return its frame.

        Safety nets, each logged: a seek that lands after the target is retried from an
        earlier keyframe (finally from the start); a target the decoder passed over while
        skipping unreferenced frames is decoded again from its keyframe without skipping.
        """
        keyframe = self._index.keyframe_at_or_before(target)
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
                seek_from = self._index.keyframe_at_or_before(seek_from - 1)
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
        self._rewind()
        wanted = set(targets)
        last = targets[-1]
        while wanted:
            item = self._next_frame(None)
            if item is None:
                return
            index, frame = item
            if index in wanted:
                wanted.discard(index)
                yield index, self._rgb(frame)
            if index >= last:
                return

    def indices_for_times(self, times_s: Iterable[float]) -> list[int]:
        """Presentation index of the frame nearest to each time (seconds from the first
        frame, via the pts table), in the order given (duplicates kept; ties go to the
        earlier frame)."""
        return self._index.nearest(times_s)

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
