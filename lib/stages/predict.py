"""Stage ``predict``: classify new videos (a folder or a manifest CSV) with a final model."""

from __future__ import annotations

from pathlib import Path

from lib.predict import predict_videos


def run_predict(
    *,
    source: str | Path,
    model_dir: str | Path,
    out: str | Path,
    windows_out: str | Path | None,
    window_frames: int,
    stride_frames: int,
    sampling: dict,
    limits: dict,
    scale: dict,
) -> None:
    """Score every video of ``source`` with the model in ``model_dir``
    (:func:`lib.predict.predict_videos`): ``out`` one row per video, ``windows_out`` one row
    per window."""
    predict_videos(
        source,
        model_dir,
        out,
        windows_out=windows_out,
        window_frames=window_frames,
        stride_frames=stride_frames,
        sampling=sampling,
        scale=scale,
        limits=limits,
    )
