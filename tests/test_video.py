"""Tests of lib.io.reader, lib.io.writer and lib.io.sampling: frame accuracy against a full sequential decode, VFR, rotation,
10-bit input, streaming memory bounds, atomic and deterministic writing, sampling helpers.

All media are generated here with PyAV into pytest's tmp folders. Frames carry per-frame
random blocks, so returning a neighbouring frame (or a keyframe instead of the target)
changes the pixels and fails the comparison.
"""

from __future__ import annotations

import gc
import subprocess
import weakref
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from lib.io.reader import FrameReader
from lib.io.sampling import sample_fraction, sample_uniform, sliding_windows
from lib.io.writer import VideoWriter

HEIGHT, WIDTH = 96, 160


# --------------------------------------------------------------------------------------
# media helpers
# --------------------------------------------------------------------------------------


def make_frames(
    n: int, *, height: int = HEIGHT, width: int = WIDTH, seed: int = 0
) -> list[np.ndarray]:
    """Moving gradient plus a per-frame random 8x8-block pattern in one quadrant."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[..., 0] = (xx * 2 + i * 3) % 256
        frame[..., 1] = (yy * 2 + i) % 256
        frame[..., 2] = 128
        blocks = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        frame[: (height // 16) * 8, : (width // 16) * 8] = blocks.repeat(8, 0).repeat(8, 1)
        frames.append(frame)
    return frames


def encode(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str,
    rate: int = 25,
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    gop: int | None = None,
    max_b_frames: int | None = None,
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
) -> Path:
    """Encode RGB frames with PyAV (test-only writer with full control over GOP/pts)."""
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=rate, options=options or {})
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = pix_fmt
    if gop is not None:
        stream.codec_context.gop_size = gop
    if max_b_frames is not None:
        stream.codec_context.max_b_frames = max_b_frames
    if pts_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    if rotation is not None:
        stream.set_display_rotation(rotation)
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if pts_ms is not None:
            frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return path


def full_decode(path: Path) -> list[np.ndarray]:
    """Reference: every frame of a plain sequential PyAV decode, in output order."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def x264(keyint: int, bframes: int = 3) -> dict:
    return {
        "preset": "veryfast",
        "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes={bframes}",
    }


# name -> (file name, n frames, encode kwargs, expected keyframe indices or None)
FORMATS = {
    "h264_gop250": ("long.mp4", 300, dict(codec="libx264", options=x264(250)), [0, 250]),
    "h264_gop30": ("short.mp4", 150, dict(codec="libx264", options=x264(30)), [0, 30, 60, 90, 120]),
    "vp9_webm": (
        "vp9.webm",
        150,
        dict(
            codec="libvpx-vp9",
            gop=50,
            options={"deadline": "realtime", "cpu-used": "8", "keyint_min": "50"},
        ),
        [0, 50, 100],
    ),
    "mpeg4_avi": ("mpeg4.avi", 150, dict(codec="mpeg4", gop=30, max_b_frames=2), None),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Each test format encoded once: name -> (path, reference frames, keyframes)."""
    folder = tmp_path_factory.mktemp("media")
    out = {}
    for name, (file_name, n, kwargs, keyframes) in FORMATS.items():
        path = encode(folder / file_name, make_frames(n, seed=n), **kwargs)
        out[name] = (path, full_decode(path), keyframes)
    return out


def index_sets(n: int, keyframes: list[int]) -> dict[str, list[int]]:
    around_keys = sorted({j for k in keyframes if k > 0 for j in (k - 1, k, k + 1) if j < n})
    return {
        "sparse": sample_uniform(n, 8),
        "dense": list(range(100, 140)),
        "first_last": [0, n - 1],
        "unsorted_duplicates": [n - 1, 7, 7, n + 5, -3, 3, 131, 131, 64, 2],
        "around_keyframes": around_keys,
        "backwards_single": [n - 2],
        "everything": list(range(n)),
    }


# --------------------------------------------------------------------------------------
# frame accuracy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
def test_read_returns_exact_frames(media, name):
    path, reference, keyframes = media[name]
    n = len(reference)
    with FrameReader(path) as reader:
        assert reader.n_frames == n
        if keyframes is not None:
            assert reader.keyframe_indices.tolist() == keyframes
        # One reader across all sets: later reads start wherever the last one left off.
        for label, indices in index_sets(n, reader.keyframe_indices.tolist()).items():
            got = list(reader.read(indices))
            expected = sorted({i for i in indices if 0 <= i < n})
            assert [i for i, _ in got] == expected, label
            for i, rgb in got:
                assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3)
                assert np.array_equal(rgb, reference[i]), f"{name} {label}: frame {i}"


@pytest.mark.parametrize("threads,skip_nonref", [("NONE", False), ("FRAME", True), ("AUTO", False)])
def test_read_exact_with_other_decoder_settings(media, threads, skip_nonref):
    path, reference, _ = media["h264_gop30"]
    indices = [149, 0, 31, 29, 30, 77, 78, 100, 5]
    with FrameReader(path, threads=threads, skip_nonref=skip_nonref) as reader:
        got = dict(reader.read(indices))
    assert sorted(got) == sorted(set(indices))
    for i, rgb in got.items():
        assert np.array_equal(rgb, reference[i]), i


@pytest.mark.parametrize("name", list(FORMATS))
def test_read_random_index_sets(media, name):
    """Seeded random sets on one reader: every mix of seeking and decoding forward."""
    path, reference, _ = media[name]
    n = len(reference)
    rng = np.random.default_rng(42)
    with FrameReader(path) as reader:
        for _ in range(8):
            indices = rng.integers(-5, n + 5, size=int(rng.integers(1, 25))).tolist()
            got = list(reader.read(indices))
            assert [i for i, _ in got] == sorted({i for i in indices if 0 <= i < n})
            for i, rgb in got:
                assert np.array_equal(rgb, reference[i]), (name, i, indices)


def test_read_seeks_instead_of_decoding_everything(media):
    """Far-apart targets: the reader seeks to each target's keyframe (GOP 30 here) rather
    than decoding the ~300 frames in between, and decodes forward within a GOP."""
    path, reference, _ = media["h264_gop30"]
    with FrameReader(path) as reader:
        got = dict(reader.read([5, 95, 145]))
        assert sorted(got) == [5, 95, 145]
        assert reader.frames_decoded <= 3 * 6 + 3 * 8  # at most 6 frames per target + reorder slack
        assert reader.seeks >= 2
        decoded, seeks = reader.frames_decoded, reader.seeks
        list(reader.read([146, 148]))  # same GOP, ahead: no seek
        assert reader.seeks == seeks and reader.frames_decoded - decoded <= 3 + 8


def test_long_gop_file_defeats_naive_seek(media):
    """The test data is discriminative: seek + first frame returns the keyframe, not the target."""
    path, reference, _ = media["h264_gop250"]
    with FrameReader(path) as reader:
        target_pts = int(reader.pts[200])
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(target_pts, stream=stream)
        first = next(container.decode(stream)).to_ndarray(format="rgb24")
    assert not np.array_equal(first, reference[200])
    assert np.array_equal(first, reference[0])  # it is the preceding keyframe


def test_webm_frame_count_comes_from_demux(media):
    path, reference, _ = media["vp9_webm"]
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the header does not say
    with FrameReader(path) as reader:
        assert reader.n_frames == len(reference) == 150
        assert reader.fps == pytest.approx(25.0)
        assert reader.duration_s == pytest.approx(6.0, abs=0.05)
        assert reader.codec == "vp9"
        assert reader.bit_rate > 0


def test_metadata(media):
    path, _, _ = media["h264_gop30"]
    reader = FrameReader(path)
    reader.close()  # metadata stays readable after close
    assert (reader.width, reader.height, reader.rotation) == (WIDTH, HEIGHT, 0)
    assert reader.codec == "h264" and reader.pix_fmt == "yuv420p"
    assert reader.fps == pytest.approx(25.0)
    assert reader.duration_s == pytest.approx(6.0, abs=0.05)
    assert reader.bit_rate == pytest.approx(path.stat().st_size * 8 / 6.0, rel=0.05)
    assert len(reader.pts) == 150 and np.all(np.diff(reader.pts) > 0)
    assert reader.frame_times_s[:3] == pytest.approx([0.0, 0.04, 0.08])


def test_variable_frame_rate_read_times(tmp_path):
    rng = np.random.default_rng(7)
    durations = rng.choice([10, 40, 40, 120, 300], size=60)
    pts_ms = np.concatenate([[0], np.cumsum(durations[:-1])]).astype(int).tolist()
    path = encode(
        tmp_path / "vfr.mkv",
        make_frames(60, seed=3),
        codec="libx264",
        options=x264(20),
        pts_ms=pts_ms,
    )
    reference = full_decode(path)
    times_ms = np.asarray(pts_ms, dtype=float)
    with FrameReader(path) as reader:
        assert reader.n_frames == 60
        assert (reader.frame_times_s * 1000).round().astype(int).tolist() == pts_ms
        query = [0.0, 0.5, 1.234, 2.0, 3.3, times_ms[-1] / 1000 + 5.0, 1.0]
        expected = [int(np.argmin(np.abs(times_ms - t * 1000))) for t in query]
        assert reader.indices_for_times(query) == expected
        # constant-rate arithmetic would pick different frames: the test can tell
        assert expected != [min(int(round(t * reader.fps)), 59) for t in query]
        got = dict(reader.read_times(query))
    assert sorted(got) == sorted(set(expected))
    for i, rgb in got.items():
        assert np.array_equal(rgb, reference[i]), i


def ffmpeg_rgb(path: Path, height: int, width: int) -> np.ndarray:
    """Independent reference: the ffmpeg CLI decodes with its default autorotation."""
    raw = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied(tmp_path, rotation):
    frames = make_frames(4, height=32, width=64, seed=1)
    for frame in frames:
        frame[:8, :8] = 255  # a white top-left corner makes the orientation obvious
    path = encode(tmp_path / f"rot{rotation}.mp4", frames, codec="libx264", rotation=rotation)
    unrotated = full_decode(path)
    with FrameReader(path) as reader:
        assert reader.rotation == rotation
        expected_shape = (64, 32) if rotation in (90, 270) else (32, 64)
        assert (reader.height, reader.width) == expected_shape
        got = [rgb for _, rgb in reader.read(range(4))]
    cli = ffmpeg_rgb(path, *expected_shape)
    assert len(cli) == 4
    for k, rgb in enumerate(got):
        assert rgb.shape == (*expected_shape, 3)
        assert np.array_equal(rgb, np.rot90(unrotated[k], rotation // 90))
        # Same orientation as ffmpeg's own autorotation (small differences: colour conversion)
        diff = np.abs(rgb.astype(int) - cli[k].astype(int)).mean()
        assert diff < 3.0
        if rotation != 180:
            wrong = np.rot90(unrotated[k], (rotation // 90 + 2) % 4)
            assert np.abs(wrong.astype(int) - cli[k].astype(int)).mean() > 10 * max(diff, 1.0)


def test_ten_bit_input_gives_uint8_rgb(tmp_path):
    frames = make_frames(10, seed=5)
    path = encode(
        tmp_path / "ten.mkv", frames, codec="libx264", pix_fmt="yuv420p10le", options=x264(5)
    )
    with FrameReader(path) as reader:
        assert reader.pix_fmt == "yuv420p10le"
        got = dict(reader.read([0, 6, 9]))
    for i, rgb in got.items():
        assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3)
        # Close to the 8-bit source (lossy encode; a raw 16-bit plane would be far off)
        assert np.abs(rgb.astype(int) - frames[i].astype(int)).mean() < 8


# --------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------


def test_iter_chunks_covers_every_frame_once(media):
    path, reference, _ = media["h264_gop30"]
    with FrameReader(path) as reader:
        chunks = list(reader.iter_chunks(40))
        assert [len(c) for c in chunks] == [40, 40, 40, 30]
        assert np.array_equal(np.stack([f for c in chunks for f in c]), np.stack(reference))
        part = [f for c in reader.iter_chunks(16, start=10, stop=95) for f in c]
        assert len(part) == 85
        assert np.array_equal(np.stack(part), np.stack(reference[10:95]))
        frames = list(reader.iter_frames(start=140))
        assert np.array_equal(np.stack(frames), np.stack(reference[140:]))


def test_iter_chunks_holds_one_chunk(media):
    """While the caller holds chunk k, no frame of chunks < k is alive any more.

    Frames are views on FFmpeg's buffers (tracemalloc cannot see them), so liveness is
    checked with weak references: a reader that collected all frames first would keep
    all 300 alive.
    """
    path, _, _ = media["h264_gop250"]
    refs: list[weakref.ref] = []
    max_alive = 0
    with FrameReader(path) as reader:
        for chunk in reader.iter_chunks(10):
            assert 1 <= len(chunk) <= 10
            refs.extend(weakref.ref(frame) for frame in chunk)
            del chunk
            gc.collect()
            max_alive = max(max_alive, sum(ref() is not None for ref in refs))
    assert len(refs) == 300
    assert max_alive <= 10 + 1  # the chunk just yielded (+ the generator's last frame)


def test_frames_are_contiguous_for_padded_widths(tmp_path):
    frames = make_frames(3, height=32, width=90)  # RGB row of 270 bytes: FFmpeg pads rows
    path = encode(tmp_path / "w90.mp4", frames, codec="libx264")
    with FrameReader(path) as reader:
        for _, rgb in reader.read(range(3)):
            assert rgb.shape == (32, 90, 3) and rgb.flags.c_contiguous and rgb.flags.writeable


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


def test_truncated_file_reads_what_is_there(media, tmp_path):
    path, reference, _ = media["vp9_webm"]
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    with FrameReader(cut) as reader:
        n = reader.n_frames
        assert 0 < n < len(reference)
        got = dict(reader.read(range(n)))  # must not raise
    assert len(got) >= n - 2
    for i, rgb in got.items():
        assert np.array_equal(rgb, reference[i])


def test_zero_frame_file(tmp_path):
    path = tmp_path / "empty.avi"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    with FrameReader(path) as reader:
        assert reader.n_frames == 0
        assert list(reader.read([0, 1, 2])) == []
        assert list(reader.iter_chunks(4)) == []
        assert reader.indices_for_times([0.5]) == []


def test_name_that_looks_like_a_protocol(tmp_path, monkeypatch):
    """A relative name such as ``concat:x|y.mp4`` must open the file, not a protocol."""
    name = "concat:x|y.mp4"
    frames = make_frames(3)
    encode(tmp_path / name, frames, codec="libx264")
    monkeypatch.chdir(tmp_path)
    with FrameReader(name) as reader:
        assert reader.n_frames == 3
        assert len(list(reader.read(range(3)))) == 3
    with VideoWriter("concat:a|b.mp4", fps=25) as writer:
        writer.write(frames[0])
    assert (tmp_path / "concat:a|b.mp4").stat().st_size > 0


def test_not_a_video_raises_on_open(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises((av.error.FFmpegError, ValueError)):
        FrameReader(junk)


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def test_writer_round_trip(tmp_path):
    frames = make_frames(30, seed=9)
    path = tmp_path / "out" / "clip.mp4"
    with VideoWriter(path, fps=25) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames_written == 30
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]
    with FrameReader(path) as reader:
        assert (reader.n_frames, reader.width, reader.height) == (30, WIDTH, HEIGHT)
        assert reader.fps == pytest.approx(25.0)
        got = [f for _, f in reader.read(range(30))]
    errors = [np.abs(g.astype(int) - f.astype(int)).mean() for g, f in zip(got, frames)]
    assert max(errors) < 6.0


def test_writer_is_atomic_on_exception(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"previous complete file")
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, fps=25) as writer:
            for frame in make_frames(5):
                writer.write(frame)
            raise RuntimeError("boom")
    assert path.read_bytes() == b"previous complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no temp left
    fresh = tmp_path / "new.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(fresh, fps=25) as writer:
            writer.write(make_frames(1)[0])
            raise RuntimeError("boom")
    assert not fresh.exists()
    with pytest.raises(ValueError):
        with VideoWriter(fresh, fps=25):
            pass  # no frames: nothing is published
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_writer_is_deterministic(tmp_path):
    """Repeated encodes in one process, with the heap stirred between frames, are identical.

    Without the writer's settings (sliced threads, or x264's mbtree) this failed: up to
    8 distinct outputs in 10 runs at this size.
    """
    frames = make_frames(40, seed=11)
    rng = np.random.default_rng(0)
    outputs = []
    for k in range(5):
        path = tmp_path / f"clip{k}.mp4"
        ballast = []
        with VideoWriter(path, fps=Fraction(30000, 1001)) as writer:
            for frame in frames:
                ballast.append(bytearray(rng.bytes(int(rng.integers(1_000, 50_000)))))
                if len(ballast) > 10:
                    ballast.pop(int(rng.integers(0, 10)))
                writer.write(frame)
        outputs.append(path.read_bytes())
    assert all(out == outputs[0] for out in outputs)
    other = tmp_path / "crf30.mp4"
    with VideoWriter(other, fps=Fraction(30000, 1001), crf=30) as writer:
        for frame in frames:
            writer.write(frame)
    assert other.read_bytes() != outputs[0]  # settings matter, so equality above is meaningful


def test_writer_pads_odd_sizes(tmp_path):
    frames = make_frames(3, height=33, width=47, seed=2)
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=25, crf=10) as writer:
        for frame in frames:
            writer.write(frame)
        with pytest.raises(ValueError):
            writer.write(np.zeros((32, 48, 3), dtype=np.uint8))  # size changed mid-clip
    with FrameReader(path) as reader:
        assert (reader.height, reader.width) == (34, 48)
        first = next(reader.read([0]))[1].astype(int)
    # the padding replicates the last row/column
    assert np.abs(first[33] - first[32]).mean() < 6
    assert np.abs(first[:, 47] - first[:, 46]).mean() < 6
    assert np.abs(first[:33, :47] - frames[0].astype(int)).mean() < 6


def test_writer_other_codecs(tmp_path):
    frames = make_frames(12, seed=4)
    for name, codec in [("a.webm", "libvpx-vp9"), ("b.avi", "mpeg4")]:
        path = tmp_path / name
        options = {"deadline": "realtime", "cpu-used": "8"} if codec.startswith("libvpx") else None
        with VideoWriter(path, fps=25, codec=codec, options=options) as writer:
            for frame in frames:
                writer.write(frame)
        with FrameReader(path) as reader:
            assert reader.n_frames == 12


# --------------------------------------------------------------------------------------
# sampling helpers
# --------------------------------------------------------------------------------------


def test_sample_uniform():
    assert sample_uniform(10, 4) == [1, 3, 6, 8]  # centres 1.25, 3.75, 6.25, 8.75
    assert sample_uniform(100, 1) == [50]
    assert sample_uniform(3, 5) == [0, 1, 2]  # fewer frames than asked: all of them
    assert sample_uniform(5, 5) == [0, 1, 2, 3, 4]
    assert sample_uniform(0, 5) == []
    assert sample_uniform(10, 0) == []
    many = sample_uniform(1001, 17)
    assert len(many) == 17 and np.all(np.diff(many) > 0) and 0 <= many[0] and many[-1] < 1001


def test_sample_fraction():
    seeds = {"fraction": 0.1, "min_frames": 5, "max_frames": 50}  # the seed system's sampling
    assert sample_fraction(0, **seeds) == []
    assert sample_fraction(3, **seeds) == [0, 1, 2]
    assert len(sample_fraction(30, **seeds)) == 5  # 10% = 3, raised to the minimum of 5
    assert len(sample_fraction(200, **seeds)) == 20
    assert len(sample_fraction(10_000, **seeds)) == 50  # capped
    assert sample_fraction(200, **seeds) == sample_uniform(200, 20)
    assert len(sample_fraction(100, fraction=0.5, min_frames=1, max_frames=1000)) == 50


def test_sliding_windows():
    assert sliding_windows(10, 4, 3) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert sliding_windows(9, 4, 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert sliding_windows(3, 4, 1) == []
    assert sliding_windows(0, 4, 1) == []
    assert sliding_windows(4, 4, 2) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError):
        sliding_windows(10, 0, 1)
    with pytest.raises(ValueError):
        sliding_windows(10, 2, 0)


# --------------------------------------------------------------------------------------
# benchmark report sections
# --------------------------------------------------------------------------------------


def test_report_sections_are_replaced_in_place(tmp_path):
    from benchmarks.report import replace_section, write_section

    doc = tmp_path / "BENCH.md"
    write_section("reader", "| a |\n|---|\n| 1 |", path=doc)
    write_section("demo", "demo v1", path=doc)
    write_section("reader", "reader v2", path=doc)
    text = doc.read_text()
    assert text.count("<!-- BEGIN reader -->") == 1 and text.count("<!-- END reader -->") == 1
    assert "reader v2" in text and "| 1 |" not in text
    assert text.index("BEGIN reader") < text.index("BEGIN demo")  # order kept
    assert "demo v1" in text
    assert replace_section(text, "demo", "demo v1") == text  # idempotent
    with pytest.raises(ValueError):
        replace_section(text, "bad name -->", "x")
