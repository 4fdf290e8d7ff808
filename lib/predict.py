"""Classify new videos with a model trained on all labelled data (``train_final``).

Each video goes the training path: probe (validate) → windows of ``window_frames`` frames
every ``stride_frames`` (one window of the whole video when it is shorter) → per window, the
handcrafted features of its sampled frames and the scaled features of its letterboxed,
re-encoded frames (as the scale stage writes them) → the model's class probabilities.
A video's score is the mean of its windows' probabilities; the per-window scores are kept
in a second table. Frames are streamed: memory does not grow with the video's length.

Feature models load ``model.joblib`` + ``train_info.json`` from the final model's folder.
Deep models are not wired in yet: they need a loader in the training registry that gives
per-window class probabilities from frames (``train_info.json`` ``family`` tells which);
:func:`load_feature_model` refuses other families with a message saying so.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import joblib
import numpy as np
import polars as pl

from lib import schemas
from lib.utils import relpath

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts"}


def list_inputs(source: str | Path) -> pl.DataFrame:
    """``video_id, path`` of the videos to classify: the video files of a folder (sorted,
    recursive), or a manifest CSV with a ``path`` column (and optionally ``video_id``;
    relative paths are taken from the manifest's folder)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        ids = [p.relative_to(source).with_suffix("").as_posix().replace("/", "__") for p in paths]
        return pl.DataFrame({"video_id": ids, "path": [str(p) for p in paths]},
                            schema={"video_id": pl.String, "path": pl.String})  # fmt: skip
    if source.suffix.lower() == ".csv":
        table = pl.read_csv(source, infer_schema=False, empty_string_is_null=False)
        if "path" not in table.columns:
            raise ValueError(f"{source}: a predict manifest needs a 'path' column; it has "
                             f"{list(table.columns)}")  # fmt: skip
        paths = [p if Path(p).is_absolute() else str(source.parent / p) for p in table["path"]]
        ids = table["video_id"].to_list() if "video_id" in table.columns else [Path(p).stem for p in paths]
        return pl.DataFrame({"video_id": ids, "path": paths},
                            schema={"video_id": pl.String, "path": pl.String})  # fmt: skip
    raise ValueError(f"{source}: predict.input must be a folder of videos or a manifest .csv")


def window_bounds(n_frames: int, window_frames: int, stride_frames: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each window: full windows every ``stride_frames``
    (:func:`lib.video.sliding_windows`), plus one ending at the last frame when the stride
    leaves a tail uncovered; the whole video when it is shorter than a window."""
    from lib.video import sliding_windows

    if n_frames <= window_frames:
        return [(0, int(n_frames))] if n_frames > 0 else []
    starts = [w[0] for w in sliding_windows(n_frames, window_frames, stride_frames)]
    if starts[-1] + window_frames < n_frames:
        starts.append(n_frames - window_frames)
    return [(s, s + window_frames) for s in starts]


def window_features(reader, start: int, stop: int, *, sampling: dict, scaler, crf: int,
                    preset: str, chunk_frames: int, tmp_dir: Path) -> dict[str, float]:  # fmt: skip
    """Handcrafted + scaled features of frames ``[start, stop)`` of an open FrameReader,
    computed as the features and scale stages compute them for a clip."""
    from lib.features import handcrafted_features, scaled_features
    from lib.scale import letterboxed_chunks, scale_frames
    from lib.video import FrameReader, VideoWriter, sample_fraction

    picks = [start + i for i in sample_fraction(stop - start, **sampling)]
    hc = handcrafted_features((f for _, f in reader.read(picks)), bitrate=reader.bit_rate,
                              fps=reader.fps, width=reader.width, height=reader.height)  # fmt: skip
    scaled_path = tmp_dir / "window.mp4"
    with VideoWriter(scaled_path, fps=reader.fps, crf=crf, preset=preset) as writer:
        chunks = letterboxed_chunks(reader.iter_frames(start, stop), size=scaler.size,
                                    chunk_frames=chunk_frames)  # fmt: skip
        for frame in scale_frames(chunks, scaler, source_size=(reader.width, reader.height)):
            writer.write(frame)
    with FrameReader(scaled_path) as scaled:
        sc = scaled_features((f for _, f in scaled.read(sample_fraction(scaled.n_frames, **sampling))),
                             orig_width=reader.width, orig_height=reader.height,
                             scaled_width=scaler.size, scaled_height=scaler.size)  # fmt: skip
    scaled_path.unlink(missing_ok=True)
    return {**hc, **sc}


def load_feature_model(model_dir: str | Path):
    """(fitted pipeline, train_info) of a final feature model."""
    model_dir = Path(model_dir)
    info_path, model_path = model_dir / "train_info.json", model_dir / "model.joblib"
    if not model_path.exists():
        raise FileNotFoundError(f"{model_path}: missing; run `snakemake {model_path}` "
                                "(rule train_final) first")  # fmt: skip
    info = json.loads(info_path.read_text())
    if info.get("family", "feature") != "feature":
        raise NotImplementedError(f"{model_dir}: predict supports feature models only so far; "
                                  f"{info['model']!r} is a {info['family']} model")  # fmt: skip
    return joblib.load(model_path), info


def predict_videos(
    source: str | Path,
    model_dir: str | Path,
    out: str | Path,
    *,
    windows_out: str | Path | None = None,
    window_frames: int = 250,
    stride_frames: int = 250,
    sampling: dict | None = None,
    scale_size: int = 256,
    crf: int = 18,
    preset: str = "veryfast",
    chunk_frames: int = 100,
    limits: dict | None = None,
) -> pl.DataFrame:
    """Classify every video of ``source`` (folder or manifest) with the model in ``model_dir``.

    Writes ``out`` (one row per input video: video_id, path, model, n_windows, score, pred,
    status, reason, score_<class>) and, if given, ``windows_out`` (one row per window with
    its frame range and class probabilities). A video that fails the probe or whose windows
    all fail keeps its row with ``status=failed`` and the reason.
    """
    from lib.probe import probe_video
    from lib.scale import LetterboxScaler
    from lib.video import FrameReader

    model, info = load_feature_model(model_dir)
    cols, classes = info["features"], [str(c) for c in model.classes_]
    pos = info.get("positive_label", classes[-1])
    sampling = dict(sampling or {})
    scaler = LetterboxScaler(scale_size)
    inputs = list_inputs(source)
    rows, window_rows = [], []
    for i, item in enumerate(inputs.iter_rows(named=True)):
        row = {"video_id": item["video_id"], "path": relpath(item["path"]), "model": info["model"],
               "n_windows": 0, "score": np.nan, "pred": "", "status": "failed", "reason": ""}  # fmt: skip
        probe = probe_video(item["path"], **(limits or {}))
        if not probe["valid"]:
            rows.append({**row, "reason": f"invalid:{probe['reason']}"})
            log.warning("%s: invalid video (%s)", item["path"], probe["reason"])
            continue
        try:
            probs = []
            with FrameReader(item["path"]) as reader, tempfile.TemporaryDirectory() as tmp:
                for start, stop in window_bounds(reader.n_frames, window_frames, stride_frames):
                    feats = window_features(reader, start, stop, sampling=sampling, scaler=scaler,
                                            crf=crf, preset=preset, chunk_frames=chunk_frames,
                                            tmp_dir=Path(tmp))  # fmt: skip
                    x = np.asarray([[feats.get(c, np.nan) for c in cols]], dtype=float)
                    p = model.predict_proba(x)[0]
                    probs.append(p)
                    window_rows.append({"video_id": item["video_id"], "window": len(probs) - 1,
                                        "start_frame": start, "stop_frame": stop,
                                        **{f"score_{c}": v for c, v in zip(classes, p)}})  # fmt: skip
            if not probs:
                rows.append({**row, "reason": "no_frames"})
                continue
            mean = np.mean(probs, axis=0)
            score = mean[classes.index(pos)] if len(classes) == 2 else mean.max()
            rows.append({**row, "n_windows": len(probs), "score": float(score),
                         "pred": classes[int(mean.argmax())], "status": "ok",
                         **{f"score_{c}": float(v) for c, v in zip(classes, mean)}})  # fmt: skip
            log.info("[%d/%d] %s: %d windows, score %.3f", i + 1, len(inputs), item["video_id"],
                     len(probs), score)  # fmt: skip
        except Exception as exc:  # one bad video never stops the others
            log.exception("%s: prediction failed", item["path"])
            rows.append({**row, "reason": f"predict_error:{type(exc).__name__}: {exc}"})
    names = [*schemas.columns("predict"), *[f"score_{c}" for c in classes]]
    # A failed video has no class scores: NaN, as its score.
    table = pl.DataFrame({n: [r.get(n, np.nan) for r in rows] for n in names}, strict=False)
    if windows_out:
        from lib.utils import atomic_path

        with atomic_path(windows_out) as tmp:
            pl.DataFrame(window_rows).write_csv(tmp)
    return schemas.write_table(table, out, "predict")
