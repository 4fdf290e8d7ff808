"""Per-video probe for the validate stage: what a video file is, and whether it is usable.

``probe_video`` opens a file with PyAV, reads the container/stream header, demuxes every
packet of the video stream (fast: no decoding) to count frames, measure the duration and
detect variable frame rate and truncation, then decodes only three frames (first, middle,
last) to check that the stream actually decodes. It never raises: any problem becomes a
``reason`` code, so one bad download cannot stop the validate stage.

Reason codes, in the order they are checked (the first failure wins):

``missing``
    the path does not exist (a broken symlink counts as missing; so does ``None``).
``empty_file``
    the file has 0 bytes.
``too_large``
    file size over ``max_bytes``, or width/height/duration over the limits (the header
    duration is checked before demuxing, so an absurdly long file is never read through).
``not_a_video``
    not a regular file (a directory, FIFO, device), or FFmpeg cannot open it as a media
    container (text, random bytes, ...).
``no_video_stream``
    it opens but has no video stream (audio only; a cover picture does not count).
``zero_frames``
    a video stream that neither promises nor contains a single frame.
``truncated``
    the header promises more frames (or, when it gives no frame count, a longer duration)
    than can be demuxed; or the file starts like an mp4/mov (``ftyp``) but its ``moov``
    index is missing or cut (an mp4 cut short with the index at the end cannot be opened at
    all, one cut inside the index reports end-of-file).
``decode_error``
    the first, middle or last frame fails to decode (the decoder raises, or produces no
    frame at or after the target before the end of the stream).
``bad_fps``
    the video is usable (``valid`` stays True) but no frame rate was within
    ``[min_fps, max_fps]``: ``fps`` is set to ``default_fps`` and ``fps_fixed`` is True,
    which is what the FVC seed system did with missing/absurd rates.

``rotation`` is the display rotation PyAV reports on a decoded frame (``frame.rotation``,
counter-clockwise degrees) normalised to one of 0, 90, 180, 270 by the rule the reader uses
too (:func:`lib.io.demux.normalise_rotation`). ``width``/``height`` are the DISPLAY size:
swapped for a 90/270° rotation. Sample aspect ratio is not applied. The packets are counted
and the frame rate and duration chosen by the probe's rules of :mod:`lib.io.demux` (its
docstring says how they differ from the reader's).
"""

from __future__ import annotations

import logging
import math
import os
import struct
from fractions import Fraction
from typing import Any

import av
import numpy as np

from lib.io.demux import (
    PacketTable,
    demux_packets,
    display_size,
    ffmpeg_url,
    main_video_stream,
    normalise_rotation,
    probe_timing,
)

log = logging.getLogger(__name__)

#: The keys of the dict ``probe_video`` returns, in the order of the videos.csv columns.
PROBE_KEYS = (
    "frames",
    "fps",
    "duration_s",
    "width",
    "height",
    "codec",
    "valid",
    "reason",
    "container",
    "pix_fmt",
    "bit_depth",
    "rotation",
    "avg_fps",
    "real_fps",
    "vfr",
    "fps_fixed",
    "has_audio",
)


def empty_probe(reason: str = "") -> dict[str, Any]:
    """A probe result with every value unknown (0 / NaN / "") and ``valid=False``."""
    return {
        "frames": 0,
        "fps": math.nan,
        "duration_s": math.nan,
        "width": 0,
        "height": 0,
        "codec": "",
        "valid": False,
        "reason": reason,
        "container": "",
        "pix_fmt": "",
        "bit_depth": 0,
        "rotation": 0,
        "avg_fps": math.nan,
        "real_fps": math.nan,
        "vfr": False,
        "fps_fixed": False,
        "has_audio": False,
    }


def probe_video(
    path: str | os.PathLike,
    *,
    max_width: int = 7680,
    max_height: int = 4320,
    max_duration_s: float = 4 * 3600.0,
    max_bytes: int = 20 * 2**30,
    default_fps: float = 25.0,
    min_fps: float = 1.0,
    max_fps: float = 300.0,
    max_decode_frames: int = 300,
) -> dict[str, Any]:
    """Describe one video file and decide whether the pipeline can use it.

    Parameters
    ----------
    path : the video file.
    max_width, max_height : display size limits in pixels (``too_large`` above them).
    max_duration_s : duration limit in seconds (``too_large`` above it).
    max_bytes : file size limit (``too_large`` above it; checked before opening).
    default_fps : the frame rate used when none of the file's rates is plausible.
    min_fps, max_fps : the plausible frame-rate range (``bad_fps`` outside it).
    max_decode_frames : to check the last frame, decode forward from the last keyframe at
        most this many frames; if the last frame is not reached by then (a GOP longer than
        this) the check passes on the frames that did decode. Bounds the probe time.

    Returns
    -------
    dict with exactly the keys in ``PROBE_KEYS`` (see the module docstring for the reason
    codes). Never raises; an unexpected internal error (a bug here) gives reason
    ``probe_error: <exception type>`` rather than an exception.
    """
    try:
        path_text = os.fsdecode(path) if path is not None else ""
    except TypeError:
        return empty_probe("missing")
    try:
        return _probe(
            path_text,
            max_width=max_width,
            max_height=max_height,
            max_duration_s=max_duration_s,
            max_bytes=max_bytes,
            default_fps=default_fps,
            min_fps=min_fps,
            max_fps=max_fps,
            max_decode_frames=max_decode_frames,
        )
    except Exception as exc:  # a bug in this module must not stop the stage
        log.exception("probe of %s failed unexpectedly", path)
        return empty_probe(f"probe_error: {type(exc).__name__}")


def _probe(
    path: str,
    *,
    max_width: int,
    max_height: int,
    max_duration_s: float,
    max_bytes: int,
    default_fps: float,
    min_fps: float,
    max_fps: float,
    max_decode_frames: int,
) -> dict[str, Any]:
    out = empty_probe()

    def fail(reason: str) -> dict[str, Any]:
        out["valid"] = False
        out["reason"] = reason
        return out

    # --- the file itself -----------------------------------------------------------------
    if not path or not os.path.exists(path):
        return fail("missing")
    if not os.path.isfile(path):
        return fail("not_a_video")  # a directory, FIFO or device: opening a FIFO would block
    n_bytes = os.path.getsize(path)
    if n_bytes == 0:
        return fail("empty_file")
    if n_bytes > max_bytes:
        return fail("too_large")

    url = ffmpeg_url(path)

    # --- header ----------------------------------------------------------------------------
    try:
        container = av.open(url, mode="r")
    except Exception as exc:
        log.debug("cannot open %s: %s", path, exc)
        return fail("truncated" if mp4_index_missing(path) else "not_a_video")

    try:
        out["container"] = container.format.name or ""
        out["has_audio"] = len(container.streams.audio) > 0
        stream = main_video_stream(container)
        if stream is None:
            container.close()
            return fail("no_video_stream")
        header = _read_header(container, stream)
    except Exception as exc:
        container.close()
        log.debug("cannot read the header of %s: %s", path, exc)
        return fail("not_a_video")

    out.update(
        codec=header["codec"],
        pix_fmt=header["pix_fmt"],
        bit_depth=header["bit_depth"],
        avg_fps=header["avg_fps"],
        real_fps=header["real_fps"],
        width=header["width"],
        height=header["height"],
    )
    # The rotation is only known once a frame is decoded: reject here only what is too large
    # in both orientations; the display size is checked again after decoding.
    if _over_size_limits(
        header["width"], header["height"], max_width, max_height
    ) and _over_size_limits(header["height"], header["width"], max_width, max_height):
        container.close()
        return fail("too_large")
    header_duration_s = _finite_or(header["stream_duration_s"], header["container_duration_s"])
    if header_duration_s > max_duration_s:
        container.close()
        return fail("too_large")

    # --- demux every packet of the video stream (no decode) -------------------------------
    try:
        packets = demux_packets(container, stream)
        time_base = float(stream.time_base) if stream.time_base is not None else math.nan
    finally:
        container.close()
    timing = probe_timing(
        stream_duration_s=header["stream_duration_s"],
        avg_fps=header["avg_fps"],
        real_fps=header["real_fps"],
        packets=packets,
        time_base=time_base,
        min_fps=min_fps,
        max_fps=max_fps,
    )

    out["frames"] = header["frames"] if header["frames"] > 0 else packets.count
    out["duration_s"] = timing.duration_s
    out["vfr"] = timing.vfr
    if _finite_or(timing.span_s, 0.0) > max_duration_s:
        return fail("too_large")
    if header["frames"] == 0 and packets.count == 0:
        return fail("zero_frames")
    if _is_truncated(header, packets, span_s=timing.span_s, time_base=time_base):
        return fail("truncated")

    # --- decode the first, middle and last frame ------------------------------------------
    try:
        first_frame_info = _decode_checks(
            url, header["index"], packets, max_decode_frames=max_decode_frames
        )
    except Exception as exc:
        log.debug("decode check of %s failed: %s", path, exc)
        first_frame_info = None
    if first_frame_info is None:
        return fail("decode_error")

    rotation = first_frame_info["rotation"]
    out["rotation"] = rotation
    width = header["width"] or first_frame_info["width"]
    height = header["height"] or first_frame_info["height"]
    out["width"], out["height"] = display_size(int(width), int(height), rotation)
    if _over_size_limits(out["width"], out["height"], max_width, max_height):
        return fail("too_large")

    # --- frame rate (the probe's rule, lib.io.demux.probe_timing) ------------------------
    out["valid"] = True
    if math.isnan(timing.fps):
        out["fps"] = float(default_fps)
        out["fps_fixed"] = True
        out["reason"] = "bad_fps"
    else:
        out["fps"] = timing.fps
    return out


# ----------------------------------------------------------------------------------------
# header
# ----------------------------------------------------------------------------------------


def _rate(value: Fraction | None) -> float:
    """A stream rate as float; NaN when FFmpeg does not know it (None or 0)."""
    if value is None:
        return math.nan
    try:
        as_float = float(value)
    except (ZeroDivisionError, TypeError, ValueError):
        return math.nan
    return as_float if as_float > 0 and math.isfinite(as_float) else math.nan


def _read_header(container: Any, stream: Any) -> dict[str, Any]:
    """What the container and stream headers say, before reading any packet."""
    codec_context = stream.codec_context
    pix_format = codec_context.format
    bit_depth = 0
    if pix_format is not None and pix_format.components:
        bit_depth = max(int(component.bits) for component in pix_format.components)

    stream_duration_s = math.nan
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        stream_duration_s = float(stream.duration * stream.time_base)
    elif "DURATION" in stream.metadata:  # matroska/webm per-stream tag, e.g. 00:00:10.0
        stream_duration_s = _parse_hms(stream.metadata["DURATION"])

    # The container duration covers every stream: trust it for the video only when the
    # video is the only stream (audio can be longer than the video).
    container_duration_s = math.nan
    if container.duration is not None and container.duration > 0 and len(container.streams) == 1:
        container_duration_s = container.duration / av.time_base

    return {
        "index": stream.index,
        "codec": codec_context.name or "",
        "pix_fmt": pix_format.name if pix_format is not None else "",
        "bit_depth": bit_depth,
        "width": int(codec_context.width or 0),
        "height": int(codec_context.height or 0),
        "frames": int(stream.frames or 0),
        "avg_fps": _rate(stream.average_rate),
        "real_fps": _rate(stream.base_rate),
        "stream_duration_s": stream_duration_s,
        "container_duration_s": container_duration_s,
    }


def _parse_hms(text: str) -> float:
    """'HH:MM:SS.fraction' to seconds; NaN when it does not parse."""
    try:
        hours, minutes, seconds = str(text).strip().split(":")
        value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return math.nan
    return value if value > 0 and math.isfinite(value) else math.nan


def _finite_or(value: float, fallback: float) -> float:
    return value if value is not None and math.isfinite(value) else fallback


def _over_size_limits(width: int, height: int, max_width: int, max_height: int) -> bool:
    return width > max_width or height > max_height


def mp4_index_missing(path: str | os.PathLike, *, max_boxes: int = 100_000) -> bool:
    """True when a file starts like an mp4/mov (an ``ftyp`` box) but has no complete ``moov``.

    Walks the top-level boxes (8-byte headers, 64-bit sizes, size 0 = to end of file) by
    seeking, so it reads a few bytes per box, not the media data. A file cut short with the
    index at the end has no ``moov``; one cut inside the index has a ``moov`` box whose
    size runs past the end of the file. Either way the download was truncated.
    """
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8 or head[4:8] != b"ftyp":
                return False
            offset = 0
            for _ in range(max_boxes):
                handle.seek(offset)
                box_header = handle.read(8)
                if len(box_header) < 8:
                    return True  # ran out of boxes without a moov
                size, box_type = struct.unpack(">I4s", box_header)
                header_len = 8
                if size == 1:
                    large = handle.read(8)
                    if len(large) < 8:
                        return True
                    size = struct.unpack(">Q", large)[0]
                    header_len = 16
                elif size == 0:
                    size = file_size - offset
                if size < header_len:
                    return True  # a corrupt box header: there is no usable index
                if box_type == b"moov":
                    return offset + size > file_size
                offset += size
                if offset >= file_size:
                    return True
    except OSError:
        return False
    return False


# ----------------------------------------------------------------------------------------
# truncation
# ----------------------------------------------------------------------------------------


def _is_truncated(
    header: dict[str, Any], packets: PacketTable, *, span_s: float, time_base: float
) -> bool:
    """The header promises more than the demuxer could read."""
    if header["frames"] > 0:
        return packets.count < header["frames"]
    promised_s = _finite_or(header["stream_duration_s"], header["container_duration_s"])
    if not math.isfinite(promised_s) or not math.isfinite(span_s):
        return False
    deltas = np.diff(packets.distinct_timestamps())
    frame_s = float(np.median(deltas)) * time_base if deltas.size else 0.0
    tolerance_s = max(2.0 * frame_s, 0.02 * promised_s)
    return span_s < promised_s - tolerance_s


# ----------------------------------------------------------------------------------------
# decode
# ----------------------------------------------------------------------------------------


def _decode_checks(
    url: str, stream_index: int, packets: PacketTable, *, max_decode_frames: int
) -> dict[str, Any] | None:
    """Decode the first, middle and last frame; None when any of them fails.

    Seeking lands on the keyframe at or before the target, so each check seeks to a
    keyframe known from the demux pass and decodes forward:
    - first: the first frame the stream yields;
    - middle: the first frame after seeking to the keyframe at or before the middle
      packet (frame accuracy is not needed to know the middle of the file decodes, and
      this costs one frame instead of up to a GOP);
    - last: decode forward from the last keyframe to the last timestamp, because the tail
      is where a cut or damaged download breaks (at most ``max_decode_frames`` frames).
    Returns the first frame's rotation and size when all three decode.
    """
    pts = packets.distinct_timestamps()
    key_pts = packets.keyframe_timestamps()
    with av.open(url, mode="r") as container:
        stream = container.streams[stream_index]
        stream.thread_type = "AUTO"  # before the first decode, or PyAV raises
        first = _decode_forward(container, stream, target=None, max_frames=max_decode_frames)
        if first is None:
            return None
        info = {
            "rotation": normalise_rotation(first.rotation),
            "width": first.width,
            "height": first.height,
        }
        if pts.size == 0:
            return info  # no timestamps to seek by: the first frame is all we can check
        for seek_target, decode_target in (
            (int(pts[pts.size // 2]), None),
            (int(pts[-1]), int(pts[-1])),
        ):
            earlier_keys = key_pts[key_pts <= seek_target]
            seek_to = int(earlier_keys[-1]) if earlier_keys.size else int(pts[0])
            container.seek(seek_to, stream=stream, backward=True, any_frame=False)
            frame = _decode_forward(
                container, stream, target=decode_target, max_frames=max_decode_frames
            )
            if frame is None:
                return None
        return info


def _decode_forward(container: Any, stream: Any, *, target: int | None, max_frames: int) -> Any:
    """Decode from the current position until a frame at/after ``target`` (any frame if None).

    Returns that frame, or the last decoded frame once ``max_frames`` frames were decoded
    without reaching the target; None when the stream ends first. Decoder errors propagate.
    """
    decoded = 0
    for packet in container.demux(stream):
        for frame in packet.decode():
            decoded += 1
            if target is None or frame.pts is None or frame.pts >= target:
                return frame
            if decoded >= max_frames:
                return frame
    return None
