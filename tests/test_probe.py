"""Tests for lib.io.probe.probe_video on the good and hostile media of tests/hostile_media.py."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile_media as hm  # noqa: E402

from lib.io.demux import choose_fps, is_variable_frame_rate, normalise_rotation  # noqa: E402
from lib.io.probe import PROBE_KEYS, mp4_index_missing, probe_video  # noqa: E402

ALL_MAKERS = hm.GOOD_MAKERS + hm.HOSTILE_MAKERS
VALID_REASONS = {
    "",
    "missing",
    "empty_file",
    "too_large",
    "not_a_video",
    "no_video_stream",
    "zero_frames",
    "truncated",
    "decode_error",
    "bad_fps",
}


def _maker_id(maker) -> str:
    doc = (maker.__doc__ or "").strip().split("\n")[0]
    return maker.__name__ if maker.__name__ != "<lambda>" else doc or "lambda"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, hm.Case]:
    """Every good and hostile file, written once for the module, by file name."""
    folder = tmp_path_factory.mktemp("hostile")
    return {path.name: (path, valid, reason) for path, valid, reason in hm.hostile_set(folder)}


def _case(media, name: str) -> hm.Case:
    return media[name]


def _assert_well_formed(result: dict) -> None:
    """Exactly the contract's keys, with the contract's types."""
    assert tuple(result) == PROBE_KEYS
    assert isinstance(result["frames"], int)
    for key in ("fps", "duration_s", "avg_fps", "real_fps"):
        assert isinstance(result[key], float), key
    for key in ("width", "height", "bit_depth", "rotation"):
        assert isinstance(result[key], int), key
    for key in ("codec", "reason", "container", "pix_fmt"):
        assert isinstance(result[key], str), key
    for key in ("valid", "vfr", "fps_fixed", "has_audio"):
        assert isinstance(result[key], bool), key
    assert result["reason"] in VALID_REASONS


# ----------------------------------------------------------------------------------------
# one verdict per file, the right reason
# ----------------------------------------------------------------------------------------


def test_every_file_gets_its_expected_verdict(media):
    wrong = {}
    for name, (path, expected_valid, expected_reason) in media.items():
        result = probe_video(path)
        _assert_well_formed(result)
        if (result["valid"], result["reason"]) != (expected_valid, expected_reason):
            wrong[name] = (
                result["valid"],
                result["reason"],
                "expected",
                expected_valid,
                expected_reason,
            )
    assert not wrong, wrong
    reasons = {reason for _, _, reason in media.values()}
    # the set exercises every reason except too_large (which needs limits: tested below)
    assert reasons == VALID_REASONS - {"too_large"}


def test_invalid_files_report_no_fps_and_valid_files_report_everything(media):
    for name, (path, expected_valid, _) in media.items():
        result = probe_video(path)
        if expected_valid:
            assert result["frames"] >= 1, name
            assert result["fps"] > 0 and result["duration_s"] > 0, name
            assert result["width"] > 0 and result["height"] > 0, name
            assert result["codec"] and result["container"] and result["pix_fmt"], name
            assert result["bit_depth"] in (8, 10), name
        else:
            assert math.isnan(result["fps"]), name


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_faststart_mp4_cut_reports_the_promised_frames_but_is_truncated(tmp_path, fraction):
    path, _, _ = hm.make_truncated_faststart(tmp_path, fraction)
    result = probe_video(path)
    assert (result["valid"], result["reason"]) == (False, "truncated")
    assert result["frames"] == 30  # the index at the front still promises all 30
    assert result["codec"] == "h264"


def test_mp4_cut_before_its_index_is_truncated_not_garbage(tmp_path):
    cut, _, _ = hm.make_truncated_moov_at_end(tmp_path)
    in_moov, _, _ = hm.make_truncated_in_moov(tmp_path)
    text, _, _ = hm.make_text_as_mp4(tmp_path)
    good, _, _ = hm.make_good_mp4(tmp_path)
    assert mp4_index_missing(cut) and mp4_index_missing(in_moov)
    assert not mp4_index_missing(text) and not mp4_index_missing(good)
    assert probe_video(cut)["reason"] == "truncated"
    assert probe_video(in_moov)["reason"] == "truncated"


# ----------------------------------------------------------------------------------------
# good files: the numbers
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, frames, fps, codec, container_part",
    [
        ("good.mp4", 10, 25.0, "h264", "mp4"),
        ("good.webm", 12, 30.0, "vp9", "webm"),
        ("good.avi", 8, 15.0, "mpeg4", "avi"),
        ("really_mp4.avi", 10, 25.0, "h264", "mp4"),
    ],
)
def test_good_files_report_frames_fps_size_codec(media, name, frames, fps, codec, container_part):
    result = probe_video(_case(media, name)[0])
    assert result["valid"] and result["reason"] == ""
    assert result["frames"] == frames
    assert result["fps"] == pytest.approx(fps)
    assert result["duration_s"] == pytest.approx(frames / fps, abs=1e-3)
    assert (result["width"], result["height"]) == (64, 48)
    assert result["codec"] == codec
    assert container_part in result["container"]
    assert result["pix_fmt"] == "yuv420p" and result["bit_depth"] == 8
    assert result["rotation"] == 0 and not result["vfr"] and not result["fps_fixed"]
    assert not result["has_audio"]


@pytest.mark.parametrize(
    "name, size",
    [("tiny_2x2.mp4", (2, 2)), ("odd_33x17.mp4", (33, 17)), ("large_4000x3000.mp4", (4000, 3000))],
)
def test_odd_sizes(media, name, size):
    result = probe_video(_case(media, name)[0])
    assert result["valid"]
    assert (result["width"], result["height"]) == size


def test_one_frame_video(media):
    result = probe_video(_case(media, "one_frame.mp4")[0])
    assert result["valid"] and result["frames"] == 1 and result["fps"] == pytest.approx(25.0)


def test_ten_bit_depth(media):
    result = probe_video(_case(media, "tenbit.mp4")[0])
    assert result["valid"]
    assert result["bit_depth"] == 10
    assert result["pix_fmt"] == "yuv420p10le"


@pytest.mark.parametrize(
    "degrees, expected, display", [(90, 90, (48, 64)), (-90, 270, (48, 64)), (180, 180, (64, 48))]
)
def test_rotation_is_read_and_display_size_swapped(tmp_path, degrees, expected, display):
    path, _, _ = hm.make_rotated(tmp_path, degrees)
    result = probe_video(path)
    assert result["valid"]
    assert result["rotation"] == expected
    assert (result["width"], result["height"]) == display


def test_vfr_is_flagged_and_uses_the_average_rate(media):
    result = probe_video(_case(media, "vfr.mp4")[0])
    assert result["valid"] and result["vfr"]
    assert result["frames"] == 10
    # 10 frames over 0.82 s (last frame included); real_fps is the finest time step
    assert result["avg_fps"] == pytest.approx(10 / 0.82, rel=1e-3)
    assert result["real_fps"] > 300
    assert result["fps"] == pytest.approx(result["avg_fps"])
    assert not result["fps_fixed"]
    assert not probe_video(_case(media, "good.mp4")[0])["vfr"]


def test_webm_frame_count_by_demux_matches_a_full_decode(media):
    path = _case(media, "good.webm")[0]
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # webm has no count in its header
        decoded = sum(1 for _ in container.decode(video=0))
    result = probe_video(path)
    assert decoded == 12
    assert result["frames"] == decoded


def test_absurd_fps_is_fixed_to_the_default_but_stays_valid(media):
    path = _case(media, "fps1000.mp4")[0]
    result = probe_video(path)
    assert (result["valid"], result["reason"], result["fps_fixed"]) == (True, "bad_fps", True)
    assert result["fps"] == 25.0 and result["avg_fps"] == pytest.approx(1000.0)
    assert probe_video(path, default_fps=30.0)["fps"] == 30.0
    widened = probe_video(path, max_fps=2000.0)
    assert (widened["reason"], widened["fps_fixed"], widened["fps"]) == (
        "",
        False,
        pytest.approx(1000.0),
    )


def test_audio_is_detected(tmp_path):
    path, _, _ = hm.make_audio_only_m4a(tmp_path)
    result = probe_video(path)
    assert result["has_audio"] and result["reason"] == "no_video_stream"


# ----------------------------------------------------------------------------------------
# limits and the order of reasons
# ----------------------------------------------------------------------------------------


def test_limits_give_too_large(media):
    path = _case(media, "good.mp4")[0]  # 64x48, 0.4 s
    assert probe_video(path)["valid"]
    for limits in (
        {"max_width": 32},
        {"max_height": 40},
        {"max_duration_s": 0.1},
        {"max_bytes": 100},
    ):
        result = probe_video(path, **limits)
        assert (result["valid"], result["reason"]) == (False, "too_large"), limits
    assert probe_video(path, max_width=64, max_height=48, max_duration_s=0.4)["valid"]


def test_size_limits_apply_to_the_display_size(tmp_path):
    path, _, _ = hm.make_rotated(tmp_path, 90)  # coded 64x48, displayed 48x64
    assert probe_video(path, max_width=50, max_height=64)["valid"]
    assert probe_video(path, max_width=64, max_height=50)["reason"] == "too_large"


def test_first_failure_wins(media):
    # too_large (bytes, checked before opening) wins over not_a_video and truncated
    assert probe_video(_case(media, "text.mp4")[0], max_bytes=10)["reason"] == "too_large"
    assert (
        probe_video(_case(media, "cut_faststart_60.mp4")[0], max_bytes=10)["reason"] == "too_large"
    )
    # empty_file wins over too_large; missing wins over everything
    assert probe_video(_case(media, "zero_bytes.mp4")[0], max_bytes=-1)["reason"] == "empty_file"
    assert probe_video(_case(media, "does_not_exist.mp4")[0], max_bytes=-1)["reason"] == "missing"


# ----------------------------------------------------------------------------------------
# never raises
# ----------------------------------------------------------------------------------------


def test_nothing_raises_on_odd_inputs(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling.mp4"
    dangling.symlink_to(tmp_path / "nowhere.mp4")
    good, _, _ = hm.make_good_mp4(tmp_path)
    link = tmp_path / "link.mp4"
    link.symlink_to(good)
    cases = {
        None: "missing",
        "": "missing",
        str(fifo): "not_a_video",  # opening a FIFO would block: not a regular file
        str(loop): "missing",
        str(dangling): "missing",
        str(tmp_path): "not_a_video",
        "/dev/null": "not_a_video",
        bytes(good): "",
        str(link): "",
    }
    for path, expected_reason in cases.items():
        result = probe_video(path)
        _assert_well_formed(result)
        assert result["reason"] == expected_reason, path


def test_relative_paths_with_protocol_like_names(media, monkeypatch):
    path = _case(media, hm.PROTOCOL_NAME)[0]
    monkeypatch.chdir(path.parent)
    result = probe_video(hm.PROTOCOL_NAME)  # bare "concat:x|y.mp4" would be a protocol URL
    assert result["valid"] and result["frames"] == 4


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def test_is_variable_frame_rate():
    assert not is_variable_frame_rate(np.array([33, 34, 33, 33, 34, 33, 34]))  # 29.97 fps in ms
    assert not is_variable_frame_rate(np.full(100, 3003))
    assert is_variable_frame_rate(np.array([40, 40, 120, 10, 190, 30, 270, 20, 280]))
    one_drop = np.full(1000, 40)
    one_drop[500] = 80  # one dropped frame in 40 s is not VFR
    assert not is_variable_frame_rate(one_drop)
    assert not is_variable_frame_rate(np.array([40]))


def test_normalise_rotation():
    assert [
        normalise_rotation(d) for d in (0, 90, -90, 180, -180, 270, 360, None, float("nan"))
    ] == [
        0,
        90,
        270,
        180,
        180,
        270,
        0,
        0,
        0,
    ]


def test_choose_fps_prefers_real_rate_for_cfr_and_average_for_vfr():
    kw = {"min_fps": 1.0, "max_fps": 300.0}
    assert (
        choose_fps(avg_fps=29.9, real_fps=30000 / 1001, measured_fps=29.0, vfr=False, **kw)
        == 30000 / 1001
    )
    assert choose_fps(avg_fps=29.9, real_fps=90000.0, measured_fps=29.0, vfr=True, **kw) == 29.9
    assert choose_fps(avg_fps=math.nan, real_fps=1000.0, measured_fps=24.0, vfr=False, **kw) == 24.0
    assert math.isnan(
        choose_fps(avg_fps=0.5, real_fps=math.nan, measured_fps=400.0, vfr=False, **kw)
    )
