"""predict: one row per input video (failures with a reason), windows over long videos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import hostile_media as hm  # noqa: E402

from lib import cli, schemas  # noqa: E402
from lib.config import load_schema, with_defaults  # noqa: E402
from lib.media import scale  # noqa: E402
from lib.media.features import HANDCRAFTED_FEATURES, SCALED_FEATURES  # noqa: E402
from lib.predict import list_inputs, predict_videos, window_bounds  # noqa: E402
from lib.train.feature_models import make_model  # noqa: E402

#: The schema's defaults of the sections predict reads besides its own.
_DEFAULTS = with_defaults({}, load_schema())
SECTIONS = {"scale": _DEFAULTS["scale"], "limits": _DEFAULTS["validate"]}


def test_window_bounds_cover_the_video():
    assert window_bounds(40, 100, 50) == [(0, 40)]  # shorter than a window: the whole video
    assert window_bounds(0, 10, 5) == []
    assert window_bounds(100, 40, 40) == [(0, 40), (40, 80), (60, 100)]  # tail covered
    assert window_bounds(100, 40, 30) == [(0, 40), (30, 70), (60, 100)]


@pytest.fixture
def final_model(tmp_path):
    """A logreg 'final model' on the pipeline's feature columns (random training data)."""
    cols = [*HANDCRAFTED_FEATURES, *SCALED_FEATURES]
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, len(cols))), np.repeat(["fake", "real"], 20)
    out = tmp_path / "models/logreg/final"
    out.mkdir(parents=True)
    joblib.dump(make_model("logreg").fit(X, y), out / "model.joblib")
    (out / "train_info.json").write_text(
        json.dumps(
            {"model": "logreg", "family": "feature", "features": cols, "positive_label": "fake"}
        )
    )
    return out


def test_predict_a_folder_one_row_per_video_with_windows(tmp_path, final_model):
    videos = tmp_path / "new"
    videos.mkdir()
    hm.write_video(videos / "short.mp4", frames=12)
    hm.write_video(videos / "long.mp4", frames=60, noise=True)
    (videos / "sub").mkdir()
    hm.write_video(videos / "sub" / "clip.avi", frames=8, codec="mpeg4")
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    (videos / "notes.txt").write_text("ignored")
    out = tmp_path / "pred.csv"
    table = predict_videos(
        videos,
        final_model,
        out,
        windows_out=tmp_path / "win.csv",
        window_frames=20,
        stride_frames=20,
        sampling={"fraction": 0.5, "min_frames": 2, "max_frames": 5},
        **SECTIONS,
    )
    table = schemas.read_table(out, "predict")
    by_id = {r["video_id"]: r for r in table.iter_rows(named=True)}
    assert sorted(by_id) == ["broken", "long", "short", "sub__clip"]
    assert by_id["broken"]["status"] == "failed" and by_id["broken"]["reason"].startswith(
        "invalid:"
    )
    ok = table.filter(pl.col("status") == "ok")
    assert dict(ok.select("video_id", "n_windows").iter_rows()) == {
        "long": 3,
        "short": 1,
        "sub__clip": 1,
    }
    assert ok["score"].is_between(0, 1).all() and set(ok["pred"]) <= {"fake", "real"}
    windows = pl.read_csv(tmp_path / "win.csv")
    long = windows.filter(pl.col("video_id") == "long")
    assert long["start_frame"].to_list() == [0, 20, 40]
    assert by_id["long"]["score"] == pytest.approx(long["score_fake"].mean())  # mean of windows


def test_manifest_input_and_clear_errors(tmp_path, final_model):
    hm.write_video(tmp_path / "a.mp4", frames=10)
    (tmp_path / "m.csv").write_text("video_id,path\nvid_a,a.mp4\n")
    assert list_inputs(tmp_path / "m.csv").to_dicts() == [
        {"video_id": "vid_a", "path": str(tmp_path / "a.mp4")}
    ]
    (tmp_path / "bad.csv").write_text("file\na.mp4\n")
    with pytest.raises(ValueError, match="'path' column"):
        list_inputs(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="train_final"):
        predict_videos(
            tmp_path / "m.csv",
            tmp_path / "nowhere",
            tmp_path / "p.csv",
            windows_out=None,
            window_frames=20,
            stride_frames=20,
            sampling={"fraction": 0.5, "min_frames": 2, "max_frames": 5},
            **SECTIONS,
        )


def _spy_clip_writer(monkeypatch, kept: Path) -> list:
    """Record every ScaledClipWriter.write (its scaler) and keep a copy of each clip."""
    calls, write = [], scale.ScaledClipWriter.write

    def spy(self, reader, path, **window):
        used = write(self, reader, path, **window)
        copy = kept / f"{len(calls)}.mp4"
        copy.write_bytes(Path(path).read_bytes())
        calls.append({"scaler": self.scaler, "used": used, "copy": copy})
        return used

    monkeypatch.setattr(scale.ScaledClipWriter, "write", spy)
    return calls


def _stage_clip_and_predict_window(tmp_path, monkeypatch, final_model, scale_config: dict):
    """The scale stage's clip of a video and predict's window of the same frames (one window
    covers the whole video), each made through the command line from one config."""
    (tmp_path / "videos").mkdir()
    video = hm.write_video(tmp_path / "videos" / "v.mp4", frames=30, width=96, height=64)
    clips = tmp_path / "clips.csv"
    schemas.write_table(
        pl.DataFrame(
            [
                {
                    "clip_id": "v__aug0",
                    "video_id": "v",
                    "path": str(video),
                    "aug_idx": 0,
                    "augmentation": "original",
                    "label": "fake",
                    "dup_group": "g",
                    "status": "ok",
                    "reason": "",
                }
            ]
        ),
        clips,
        "clips",
    )
    config = json.dumps({"scale": scale_config, "predict": {"window_frames": 250}})
    kept = tmp_path / "kept"
    kept.mkdir()
    calls = _spy_clip_writer(monkeypatch, kept)
    assert (
        cli.main(
            [
                "scale",
                "--clips",
                str(clips),
                "--out",
                str(tmp_path / "scaled.csv"),
                "--scaled-dir",
                str(tmp_path / "scaled"),
                "--shard",
                "1-of-1",
                "--progress-dir",
                str(tmp_path / "progress"),
                "--config-json",
                config,
            ]
        )
        == 0
    )
    stage_clip = tmp_path / "scaled" / "v" / "v__aug0.mp4"
    assert calls[0]["copy"].read_bytes() == stage_clip.read_bytes()
    assert (
        cli.main(
            [
                "predict",
                "--input",
                str(video.parent),
                "--model-dir",
                str(final_model),
                "--out",
                str(tmp_path / "pred.csv"),
                "--config-json",
                config,
            ]
        )
        == 0
    )
    assert len(calls) == 2, "predict scores the video as one window through the clip writer"
    return calls[0], calls[1]


@pytest.mark.parametrize("encoder_threads", [1, 2])
def test_predict_window_is_byte_identical_to_the_scale_stage_clip(
    tmp_path, monkeypatch, final_model, encoder_threads
):
    config = {"method": "letterbox", "size": 48, "crf": 23, "encoder_threads": encoder_threads}
    stage, window = _stage_clip_and_predict_window(tmp_path, monkeypatch, final_model, config)
    assert window["copy"].read_bytes() == stage["copy"].read_bytes()
    assert stage["used"] == window["used"] == ("letterbox", "")


def test_predict_window_goes_through_the_scale_stage_autoencoder(
    tmp_path, monkeypatch, final_model
):
    from diffusers import AutoencoderTiny

    vae = tmp_path / "vae"
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    ).save_pretrained(vae)
    config = {"method": "autoencoder", "model": str(vae), "size": 32, "device": "cpu"}
    stage, window = _stage_clip_and_predict_window(tmp_path, monkeypatch, final_model, config)
    for call in (stage, window):
        assert isinstance(call["scaler"], scale.AutoencoderScaler)
        assert call["scaler"].model == str(vae) and call["used"] == ("autoencoder", "")
    assert window["copy"].read_bytes() == stage["copy"].read_bytes()
