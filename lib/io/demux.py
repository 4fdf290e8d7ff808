"""What the frame reader, the writer and the probe share: how a file is named to FFmpeg,
which stream is the video, one demux pass over its packets, the frame index built from it,
the rotation rule, and the two frame-rate/duration rules.

One demux pass
    :func:`demux_packets` reads every packet of the video stream once, without decoding,
    into a :class:`PacketTable`. Two views of it, because the two users ask different
    questions of the same packets:

    * :meth:`PacketTable.frame_index` (``lib.io.reader.FrameReader``): the frames a decoder
      will output, so packets without data and packets an edit list discards are left out;
      frames are sorted by presentation timestamp and found by it.
    * the probe (``lib.io.probe``) counts every packet that is not the end-of-stream flush
      (the header's frame count includes discarded samples: counting fewer would read as a
      truncated file) and measures the span of the distinct timestamps
      (:meth:`PacketTable.span_s`).

    A demux error part-way ends the table; :attr:`PacketTable.error` keeps it. The reader
    raises it (a file whose index is cut off does not open); the probe judges what was read.

Rotation
    The display rotation comes from the display matrix FFmpeg attaches to decoded frames
    (``frame.rotation``); :func:`normalise_rotation` makes it one of 0, 90, 180, 270
    (counter-clockwise) and :func:`display_size` swaps width and height for 90 and 270.

Frame rate and duration: two rules, on purpose
    :func:`playback_timing` (``FrameReader.fps``/``duration_s``/``bit_rate``: the rate a
    clip is re-encoded at and the bitrate the handcrafted features report) trusts the
    headers first: the stream's duration, else the container's, else the timestamp span;
    the stream's average rate, else frames / duration; the container's bitrate, else file
    size / duration.

    :func:`probe_timing` (``videos.csv``: what a file is and whether it is usable) checks
    plausibility instead: the stream's duration (or Matroska's per-stream ``DURATION`` tag),
    else the demuxed span including the last frame's duration; the frame rate is the first
    of FFmpeg's real base rate, the average rate and the rate measured from the timestamps
    (average first for variable-rate video) that lies in ``[min_fps, max_fps]``
    (:func:`choose_fps`).

    They agree on ordinary files (the demo corpus and the test media included). They
    differ where a header is implausible or missing: a 1000 fps header is the reader's rate
    but the probe's ``bad_fps`` (``default_fps``), and a file without stream duration gets
    the container's duration from the reader but the demuxed span from the probe. Merging
    them would change either the rate scaled clips are encoded at (the reader's) or the
    ``fps``/``duration_s`` columns of ``videos.csv`` (the probe's) on such files; each is
    used where it is today.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import av
import numpy as np


def ffmpeg_url(path: str | os.PathLike) -> str:
    """An FFmpeg URL that always means the local file ``path``.

    A bare name such as ``concat:x|y.mp4`` or ``http:x.mp4`` would be read as a protocol;
    the ``file:`` prefix with an absolute path disables that. The extension stays visible
    as a format hint.
    """
    return "file:" + str(Path(path).absolute())


def main_video_stream(container: Any) -> Any:
    """The first video stream that is real video, not an attached cover picture; None if none."""
    attached_pic = av.stream.Disposition.attached_pic
    for stream in container.streams.video:
        if not (stream.disposition & attached_pic):
            return stream
    return None


def normalise_rotation(degrees: float | int | None) -> int:
    """A rotation in degrees as one of 0, 90, 180, 270 (nearest quarter turn)."""
    if degrees is None or not math.isfinite(float(degrees)):
        return 0
    quarter_turns = int(round(float(degrees) / 90.0)) % 4
    return (0, 90, 180, 270)[quarter_turns]


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(width, height) as displayed: swapped for a quarter turn (90 or 270 degrees)."""
    return (height, width) if rotation in (90, 270) else (width, height)


# --------------------------------------------------------------------------------------
# The demux pass
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketTable:
    """Every packet of one video stream but the end-of-stream flush, in demux order."""

    timestamps: np.ndarray  # int64: the packet's pts, else its dts (0 where it has neither)
    has_timestamp: np.ndarray  # bool
    keyframe: np.ndarray  # bool: flagged as a keyframe by the demuxer
    carries_frame: np.ndarray  # bool: has data and is not discarded by an edit list
    durations: np.ndarray  # int64, stream ticks; 0 where unknown
    error: Exception | None  # the demux error that ended the pass early, if any

    @property
    def count(self) -> int:
        """Number of packets read."""
        return int(len(self.timestamps))

    def distinct_timestamps(self) -> np.ndarray:
        """Sorted distinct timestamps of the packets that have one."""
        return np.unique(self.timestamps[self.has_timestamp])

    def keyframe_timestamps(self) -> np.ndarray:
        """Sorted distinct timestamps of the keyframe packets that have one."""
        return np.unique(self.timestamps[self.has_timestamp & self.keyframe])

    def span_s(self, time_base: float) -> float:
        """Seconds from the first timestamp to the end of the last frame; NaN when unknown.

        The last frame lasts its packet's duration (the last packet with that timestamp),
        else the median step between distinct timestamps.
        """
        pts = self.distinct_timestamps()
        if pts.size == 0 or not math.isfinite(time_base):
            return math.nan
        deltas = np.diff(pts)
        typical = float(np.median(deltas)) if deltas.size else 0.0
        last = np.flatnonzero(self.has_timestamp & (self.timestamps == pts[-1]))[-1]
        last_duration = int(self.durations[last]) or typical
        return float((pts[-1] - pts[0] + last_duration) * time_base)

    def frame_index(self, time_base: Fraction) -> "FrameIndex":
        """The frames a decoder outputs, in presentation order (see the module docstring).

        A frame without any timestamp takes its position among the frames as one; the
        index then reports its timestamps as incomplete (the reader decodes sequentially).
        """
        stamps = self.timestamps[self.carries_frame]
        stamped = self.has_timestamp[self.carries_frame]
        stamps = np.where(stamped, stamps, np.arange(len(stamps), dtype=np.int64))
        order = np.argsort(stamps, kind="stable")
        pts = stamps[order]
        key_flags = self.keyframe[self.carries_frame][order]
        if len(pts) and not key_flags.any():
            key_flags[0] = True  # no flags at all: treat the start as the only keyframe
        return FrameIndex(
            pts=pts,
            keyframe_indices=np.flatnonzero(key_flags),
            timestamps_complete=bool(stamped.all()) and bool(np.all(np.diff(pts) > 0)),
            time_base=time_base,
        )


def demux_packets(container: Any, stream: Any) -> PacketTable:
    """Read every packet of ``stream`` once, without decoding (see :class:`PacketTable`)."""
    timestamps: list[int] = []
    has_timestamp: list[bool] = []
    keyframe: list[bool] = []
    carries_frame: list[bool] = []
    durations: list[int] = []
    error = None
    try:
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size == 0 and stamp is None:
                continue  # the flush packet PyAV yields at the end of the stream
            timestamps.append(0 if stamp is None else int(stamp))
            has_timestamp.append(stamp is not None)
            keyframe.append(bool(packet.is_keyframe))
            carries_frame.append(packet.size > 0 and not packet.is_discard)
            durations.append(int(packet.duration or 0))
    except Exception as exc:  # corrupt or cut data: the table ends here
        error = exc
    return PacketTable(
        timestamps=np.asarray(timestamps, dtype=np.int64),
        has_timestamp=np.asarray(has_timestamp, dtype=bool),
        keyframe=np.asarray(keyframe, dtype=bool),
        carries_frame=np.asarray(carries_frame, dtype=bool),
        durations=np.asarray(durations, dtype=np.int64),
        error=error,
    )


@dataclass
class FrameIndex:
    """Frames in presentation order: frame ``i`` is the one with the ``i``-th smallest pts."""

    pts: np.ndarray  # sorted presentation timestamps, time_base units
    keyframe_indices: np.ndarray  # presentation indices of the keyframes
    timestamps_complete: bool  # every frame has its own timestamp (else: read sequentially)
    time_base: Fraction
    # pts -> index as a dict: looked up once per packet and per frame (O(1), no numpy call)
    by_pts: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_pts = {ts: i for i, ts in enumerate(self.pts.tolist())}

    def __len__(self) -> int:
        return int(len(self.pts))

    def index_of(self, pts: int) -> int:
        """Presentation index of a timestamp (the nearest entry when it is not in the table)."""
        index = self.by_pts.get(pts)
        if index is not None:
            return index
        i = int(np.searchsorted(self.pts, pts))
        if i == 0:
            return 0
        if i >= len(self.pts):
            return len(self.pts) - 1
        return i if self.pts[i] - pts < pts - self.pts[i - 1] else i - 1

    def keyframe_at_or_before(self, index: int) -> int:
        """Presentation index of the last keyframe at or before ``index``."""
        keys = self.keyframe_indices
        j = int(np.searchsorted(keys, index, side="right")) - 1
        return int(keys[j]) if j >= 0 else 0

    def times_s(self) -> np.ndarray:
        """Presentation time of each frame in seconds, relative to the first frame."""
        if len(self.pts) == 0:
            return np.zeros(0, dtype=np.float64)
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    def nearest(self, times_s: Iterable[float]) -> list[int]:
        """Index of the frame nearest to each time (seconds from the first frame), in the
        order given (duplicates kept; ties go to the earlier frame)."""
        frame_times = self.times_s()
        times = np.asarray(list(times_s), dtype=np.float64)
        if len(frame_times) == 0:
            return []
        if len(frame_times) == 1:
            return [0] * len(times)
        right = np.clip(np.searchsorted(frame_times, times), 1, len(frame_times) - 1)
        left = right - 1
        choose_left = np.abs(times - frame_times[left]) <= np.abs(frame_times[right] - times)
        return np.where(choose_left, left, right).astype(int).tolist()


# --------------------------------------------------------------------------------------
# Frame rate and duration (the two rules of the module docstring)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybackTiming:
    duration_s: float
    fps: float  # average frame rate
    bit_rate: float  # bits per second


def playback_timing(container: Any, stream: Any, index: FrameIndex, path: Path) -> PlaybackTiming:
    """The reader's rule: header values first, then what the frame index and file size say."""
    n_frames = len(index)
    if stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration:
        duration_s = float(container.duration) / av.time_base
    elif n_frames >= 2:
        span = float((index.pts[-1] - index.pts[0]) * index.time_base)
        duration_s = span * n_frames / (n_frames - 1)
    else:
        duration_s = 0.0
    if stream.average_rate:
        fps = float(stream.average_rate)
    else:
        fps = n_frames / duration_s if duration_s > 0 else 0.0
    if container.bit_rate:
        bit_rate = float(container.bit_rate)
    elif duration_s > 0:
        bit_rate = path.stat().st_size * 8 / duration_s
    else:
        bit_rate = 0.0
    return PlaybackTiming(duration_s=duration_s, fps=fps, bit_rate=bit_rate)


@dataclass(frozen=True)
class ProbeTiming:
    span_s: float  # demuxed span (PacketTable.span_s); NaN when unknown
    duration_s: float  # NaN when unknown
    fps: float  # NaN when no candidate rate is plausible
    vfr: bool


def probe_timing(
    *,
    stream_duration_s: float,
    avg_fps: float,
    real_fps: float,
    packets: PacketTable,
    time_base: float,
    min_fps: float,
    max_fps: float,
) -> ProbeTiming:
    """The probe's rule: the stream's duration, else the demuxed span; a plausible rate."""
    span_s = packets.span_s(time_base)
    vfr = math.isfinite(time_base) and is_variable_frame_rate(
        np.diff(packets.distinct_timestamps())
    )
    duration_s = stream_duration_s if math.isfinite(stream_duration_s) else span_s
    fps = choose_fps(
        avg_fps=avg_fps,
        real_fps=real_fps,
        measured_fps=_measured_fps(packets.count, span_s),
        vfr=vfr,
        min_fps=min_fps,
        max_fps=max_fps,
    )
    return ProbeTiming(span_s=span_s, duration_s=duration_s, fps=fps, vfr=vfr)


def _measured_fps(n_packets: int, span_s: float) -> float:
    """Packets per second over the demuxed span; NaN for fewer than two or no span."""
    if n_packets > 1 and math.isfinite(span_s) and span_s > 0:
        return n_packets / span_s
    return math.nan


def is_variable_frame_rate(
    deltas: np.ndarray, *, rel_tolerance: float = 0.1, max_irregular_share: float = 0.01
) -> bool:
    """Whether consecutive presentation-timestamp deltas (in stream ticks) vary.

    An interval is irregular when it differs from the median by more than
    ``rel_tolerance`` of the median and by more than one tick (a 1 ms time base gives
    33/34 ms steps at 29.97 fps: rounding, not VFR). The stream is VFR when more than
    ``max_irregular_share`` of the intervals are irregular, so one dropped frame in a long
    constant-rate recording does not flag it.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.size < 2:
        return False
    typical = float(np.median(deltas))
    tolerance = max(1.0, rel_tolerance * typical)
    irregular = np.abs(deltas - typical) > tolerance
    return bool(irregular.sum() > max_irregular_share * deltas.size)


def choose_fps(
    *,
    avg_fps: float,
    real_fps: float,
    measured_fps: float,
    vfr: bool,
    min_fps: float,
    max_fps: float,
) -> float:
    """The frame rate to use downstream; NaN when none of the candidates is plausible.

    For constant-rate video FFmpeg's real base rate (``r_frame_rate``) is exact (e.g.
    30000/1001); for VFR video it is the finest time step, often absurd (e.g. 90000), so
    the average rate comes first. The rate measured from the demuxed timestamps is the
    last resort.
    """
    order = (avg_fps, real_fps, measured_fps) if vfr else (real_fps, avg_fps, measured_fps)
    for candidate in order:
        if candidate is not None and math.isfinite(candidate) and min_fps <= candidate <= max_fps:
            return float(candidate)
    return math.nan
