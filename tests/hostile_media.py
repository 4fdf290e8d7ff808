"""Generators for small good and hostile media files, for any test that reads video.

Every ``make_*`` function writes one file into ``folder`` (with PyAV or by cutting and
overwriting bytes) and returns ``(path, expected_valid, expected_reason)``: the verdict
``lib.io.probe.probe_video`` must give with its default limits. ``hostile_set(folder)`` writes
all of them. Media are tiny (64×48, a few frames) so the whole set is written in a few
seconds; content is deterministic (seeded noise / ramps), never downloaded.

What PyAV (18, FFmpeg 8) can write here, and so what the set exercises:
- display rotation: ``VideoStream.set_display_rotation(degrees)`` writes a display matrix
  that reads back as ``frame.rotation`` (the old ``rotate`` metadata tag is ignored);
- variable frame rate: millisecond time base and explicit irregular ``frame.pts``;
- an mp4 with no frames cannot be written (the muxer drops the empty track, leaving a
  container without streams); an avi keeps its empty video stream, so ``zero_frames`` uses
  avi; an empty webm/mkv does not reopen at all.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np

Case = tuple[Path, bool, str]

#: A file name full of characters a shell would interpret.
SHELL_NAME = "a b;$(x)'\"&`|<>*?!#~.mp4"
#: A file name FFmpeg would read as a protocol if it were passed bare.
PROTOCOL_NAME = "concat:x|y.mp4"


def write_video(
    path: str | Path,
    *,
    frames: int = 10,
    width: int = 64,
    height: int = 48,
    fps: int | Fraction = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    pts_ms: Sequence[int] | None = None,
    rotation: int | None = None,
    noise: bool = False,
    seed: int = 0,
) -> Path:
    """Encode a small synthetic video and return its path.

    Frames are a horizontal ramp whose brightness moves with the frame index (``noise``:
    seeded uniform noise instead, which does not compress, to give truncation tests a large
    media payload to cut into). ``pts_ms`` gives each frame an explicit presentation time
    in milliseconds (variable frame rate); ``rotation`` writes a display matrix
    (counter-clockwise degrees). ``container_options`` go to the muxer, e.g.
    ``{"movflags": "+faststart"}``.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    container = av.open(
        str(path), mode="w", format=container_format, options=container_options or {}
    )
    try:
        stream = container.add_stream(codec, rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt
        if codec == "mpeg4":
            stream.bit_rate = 400_000
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        ramp = np.linspace(0, 160, width, dtype=np.float32)[None, :, None]
        for index in range(frames):
            if noise:
                rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            else:
                rgb = np.broadcast_to(ramp + (index * 9) % 90, (height, width, 3)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts_ms is not None:
                frame.pts = int(pts_ms[index])
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return path


def write_audio(
    path: str | Path, *, codec: str = "aac", seconds: float = 0.5, sample_rate: int = 48000
) -> Path:
    """Encode a short mono sine tone with no video stream."""
    path = Path(path)
    container = av.open(str(path), mode="w")
    try:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = "mono"
        chunk = 960 if codec == "libopus" else 1024
        n_chunks = int(seconds * sample_rate / chunk) + 1
        t = np.arange(n_chunks * chunk, dtype=np.float32) / sample_rate
        tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        for index in range(n_chunks):
            samples = tone[index * chunk : (index + 1) * chunk][None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = index * chunk
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return path


def cut_file(source: Path, target: Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``source``'s bytes to ``target`` (a cut download)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


# ---------------------------------------------------------------------------------------
# good files (valid, reason "")
# ---------------------------------------------------------------------------------------


def make_good_mp4(folder: Path) -> Case:
    """H.264 in mp4, 64×48, 10 frames at 25 fps."""
    return write_video(folder / "good.mp4"), True, ""


def make_good_webm(folder: Path) -> Case:
    """VP9 in webm, 64×48, 12 frames at 30 fps: the header has no frame count."""
    return write_video(folder / "good.webm", frames=12, fps=30, codec="libvpx-vp9"), True, ""


def make_good_avi(folder: Path) -> Case:
    """MPEG-4 part 2 in avi, 64×48, 8 frames at 15 fps."""
    return write_video(folder / "good.avi", frames=8, fps=15, codec="mpeg4"), True, ""


def make_vfr(folder: Path) -> Case:
    """Irregular frame times (40 ms, then 120, 10, 190, ... ms steps)."""
    pts_ms = [0, 40, 80, 200, 210, 400, 430, 700, 720, 1000]
    return write_video(folder / "vfr.mp4", frames=len(pts_ms), pts_ms=pts_ms), True, ""


def make_rotated(folder: Path, degrees: int = 90) -> Case:
    """64×48 coded, with a display matrix rotating it by ``degrees`` (48×64 displayed)."""
    return write_video(folder / f"rotated{degrees}.mp4", frames=5, rotation=degrees), True, ""


def make_10bit(folder: Path) -> Case:
    """H.264 High 10 (yuv420p10le)."""
    return write_video(folder / "tenbit.mp4", frames=5, pix_fmt="yuv420p10le"), True, ""


def make_tiny(folder: Path) -> Case:
    """A 2×2 video."""
    return write_video(folder / "tiny_2x2.mp4", frames=3, width=2, height=2), True, ""


def make_odd_size(folder: Path) -> Case:
    """33×17: odd width and height (4:4:4, which H.264 allows at odd sizes)."""
    return (
        write_video(folder / "odd_33x17.mp4", frames=3, width=33, height=17, pix_fmt="yuv444p"),
        True,
        "",
    )


def make_large(folder: Path) -> Case:
    """4000×3000, 2 frames (within the default 7680×4320 limit)."""
    return write_video(folder / "large_4000x3000.mp4", frames=2, width=4000, height=3000), True, ""


def make_one_frame(folder: Path) -> Case:
    """A single frame."""
    return write_video(folder / "one_frame.mp4", frames=1), True, ""


def make_wrong_extension(folder: Path) -> Case:
    """An mp4 named .avi: the container is probed from its bytes, not its name."""
    return write_video(folder / "really_mp4.avi", container_format="mp4"), True, ""


def make_shell_name(folder: Path) -> Case:
    """A valid mp4 whose name is full of shell metacharacters, quotes and spaces."""
    return write_video(folder / SHELL_NAME, frames=4), True, ""


def make_protocol_name(folder: Path) -> Case:
    """A valid mp4 named like an FFmpeg protocol URL ("concat:...")."""
    return write_video(folder / PROTOCOL_NAME, frames=4), True, ""


def make_absurd_fps(folder: Path) -> Case:
    """1000 fps in every header: usable, but the fps is replaced by the default."""
    return write_video(folder / "fps1000.mp4", frames=10, fps=1000), True, "bad_fps"


# ---------------------------------------------------------------------------------------
# hostile files (invalid)
# ---------------------------------------------------------------------------------------


def make_missing(folder: Path) -> Case:
    """A path that does not exist."""
    return folder / "does_not_exist.mp4", False, "missing"


def make_zero_bytes(folder: Path) -> Case:
    """An empty file."""
    path = folder / "zero_bytes.mp4"
    path.write_bytes(b"")
    return path, False, "empty_file"


def make_text_as_mp4(folder: Path) -> Case:
    """A text file renamed .mp4."""
    path = folder / "text.mp4"
    path.write_text("This is not a video, just some text.\n" * 20, encoding="utf-8")
    return path, False, "not_a_video"


def make_random_bytes(folder: Path, seed: int = 0) -> Case:
    """4 KiB of seeded random bytes named .mp4."""
    path = folder / f"random_{seed}.mp4"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path, False, "not_a_video"


def make_directory(folder: Path) -> Case:
    """A directory named like a video."""
    path = folder / "folder.mp4"
    path.mkdir(exist_ok=True)
    return path, False, "not_a_video"


def make_audio_only_m4a(folder: Path) -> Case:
    """AAC in an m4a (mp4) container, no video."""
    return write_audio(folder / "audio_only.m4a", codec="aac"), False, "no_video_stream"


def make_audio_only_webm(folder: Path) -> Case:
    """Opus in webm, no video."""
    return write_audio(folder / "audio_only.webm", codec="libopus"), False, "no_video_stream"


def make_zero_frames(folder: Path) -> Case:
    """An avi with a video stream and no frames."""
    path = folder / "zero_frames.avi"
    container = av.open(str(path), mode="w")
    try:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    finally:
        container.close()
    return path, False, "zero_frames"


def make_truncated_moov_at_end(folder: Path) -> Case:
    """An mp4 with its index (moov) at the end, cut in half: the index is gone."""
    source = write_video(folder / "source_moov_end.mp4", frames=20, noise=True, seed=1)
    target = cut_file(source, folder / "cut_moov_end_50.mp4", 0.5)
    source.unlink()
    return target, False, "truncated"


def make_truncated_faststart(folder: Path, fraction: float) -> Case:
    """A faststart mp4 (moov at the front) cut at ``fraction`` of its bytes."""
    source = folder / f"source_faststart_{int(fraction * 100)}.mp4"
    write_video(source, frames=30, noise=True, seed=2, container_options={"movflags": "+faststart"})
    target = cut_file(source, folder / f"cut_faststart_{int(fraction * 100)}.mp4", fraction)
    source.unlink()
    return target, False, "truncated"


def make_truncated_in_moov(folder: Path) -> Case:
    """A faststart mp4 cut inside its index: FFmpeg reports end-of-file on open."""
    source = write_video(
        folder / "source_in_moov.mp4",
        frames=30,
        noise=True,
        seed=3,
        container_options={"movflags": "+faststart"},
    )
    data = source.read_bytes()
    moov_at = data.find(b"moov") - 4
    moov_size = struct.unpack(">I", data[moov_at : moov_at + 4])[0]
    target = folder / "cut_in_moov.mp4"
    target.write_bytes(data[: moov_at + moov_size // 2])
    source.unlink()
    return target, False, "truncated"


def make_truncated_webm(folder: Path) -> Case:
    """A webm (no frame count; duration in the header) cut at 60%."""
    source = write_video(folder / "source.webm", frames=30, codec="libvpx-vp9", noise=True, seed=4)
    target = cut_file(source, folder / "cut_60.webm", 0.6)
    source.unlink()
    return target, False, "truncated"


def make_corrupt_payload(folder: Path) -> Case:
    """A complete mp4 whose media data (mdat payload) is zeroed: it demuxes, never decodes."""
    path = write_video(folder / "zeroed_mdat.mp4", frames=10, noise=True, seed=5)
    data = bytearray(path.read_bytes())
    mdat_at = data.find(b"mdat") - 4
    mdat_size = struct.unpack(">I", data[mdat_at : mdat_at + 4])[0]
    data[mdat_at + 8 : mdat_at + mdat_size] = bytes(mdat_size - 8)
    path.write_bytes(bytes(data))
    return path, False, "decode_error"


GOOD_MAKERS: tuple[Callable[[Path], Case], ...] = (
    make_good_mp4,
    make_good_webm,
    make_good_avi,
    make_vfr,
    make_rotated,
    make_10bit,
    make_tiny,
    make_odd_size,
    make_large,
    make_one_frame,
    make_wrong_extension,
    make_shell_name,
    make_protocol_name,
    make_absurd_fps,
)

HOSTILE_MAKERS: tuple[Callable[[Path], Case], ...] = (
    make_missing,
    make_zero_bytes,
    make_text_as_mp4,
    make_random_bytes,
    make_directory,
    make_audio_only_m4a,
    make_audio_only_webm,
    make_zero_frames,
    make_truncated_moov_at_end,
    lambda folder: make_truncated_faststart(folder, 0.3),
    lambda folder: make_truncated_faststart(folder, 0.6),
    lambda folder: make_truncated_faststart(folder, 0.9),
    make_truncated_in_moov,
    make_truncated_webm,
    make_corrupt_payload,
)


def hostile_set(folder: str | Path) -> list[Case]:
    """Write every good and hostile file into ``folder``; return their expected verdicts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [maker(folder) for maker in GOOD_MAKERS + HOSTILE_MAKERS]
