"""The one video writer of vidstage (PyAV): every clip, and every file of the demo corpus, is
encoded through :class:`VideoWriter`, so atomic publishing and repeatable bytes are handled
in one place."""

from __future__ import annotations

import contextlib
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lib.io.demux import ffmpeg_url
from lib.utils import atomic_path

__all__ = ["VideoWriter"]

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

#: Container format for an extension (atomic temp files keep the extension).
_FORMATS = {".mkv": "matroska", ".webm": "webm", ".mp4": "mp4", ".avi": "avi", ".mov": "mov"}


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
    options: extra encoder options (strings, FFmpeg's names such as ``b`` for the
        bitrate or ``g`` for the GOP size), override the above.
    threads: encoder thread count (fixed for determinism).
    deterministic: libx264 only: disable mbtree (see above) unless ``options`` set it.
    container_options: muxer options, e.g. ``{"fflags": "+bitexact"}`` (no muxer version
        or random ids in the file, so the bytes do not depend on the FFmpeg build's muxer
        version or on chance).
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
        container_options: dict[str, str] | None = None,
    ):
        self.path = Path(path)
        self.rate = _as_rate(fps)
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.threads = int(threads)
        self.container_options = dict(container_options or {})
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
            # memory: repeated in-process encodes of small frames gave different outputs;
            # with mbtree=0 every run was identical.
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
        self._container = av.open(
            ffmpeg_url(tmp),
            mode="w",
            format=_FORMATS.get(self.path.suffix.lower()),
            container_options=self.container_options,
        )
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
