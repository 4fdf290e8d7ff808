"""Classify new videos with a model trained on all labelled data (``train_final``).

Each video goes the training path: probe (validate) → windows of ``window_frames`` frames
every ``stride_frames`` (one window of the whole video when it is shorter) → per window, its
frames made into a clip by :class:`lib.media.scale.ScaledClipWriter`, which the scale stage
writes its clips with (same scaler, canvas and encoder settings, from the ``scale`` config
section), then

- feature models: the handcrafted features of its sampled frames and the scaled features
  of the scaled window → ``model.joblib``'s class probabilities;
- deep models: the scaled window read as a training clip is read
  (:class:`lib.train.data.FrameClipDataset`: ``num_frames`` frames spaced uniformly,
  resized to ``image_size``, normalised with the training run's mean/std) → ``model.pt``'s
  softmax.

A video's score is the mean of its windows' probabilities; the per-window scores are kept
in a second table. Frames are streamed (a window is written to a temporary file and only
the frames the model samples are decoded again): memory does not grow with the video's
length. :func:`load_model` reads the final model's folder (``train_info.json`` names the
model; ``family`` is ``feature`` for scikit-learn models).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import joblib
import numpy as np
import polars as pl

import torch

from lib import schemas
from lib.io.probe import probe_video
from lib.io.reader import FrameReader
from lib.io.sampling import sample_fraction, sliding_windows
from lib.media.embeddings import clip_embedding, embedding_columns, frame_indices, load_encoder
from lib.media.features import scaled_features
from lib.media.handcrafted import handcrafted_features
from lib.media.scale import ScaledClipWriter
from lib.train.data import FrameClipDataset
from lib.train.models import create_model
from lib.train.runtime import autocast, resolve_runtime
from lib.train.settings import DeepSettings, is_deep
from lib.utils import atomic_path, relpath

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts"}


def list_inputs(source: str | Path) -> pl.DataFrame:
    """``video_id, path`` of the videos to classify: the video files of a folder (sorted,
    recursive), a manifest CSV with a ``path`` column (and optionally ``video_id``;
    relative paths are taken from the manifest's folder), or a videos table (the validate
    stage's, known by its ``valid`` column: its valid videos, paths relative to the working
    directory as the pipeline's tables store them; how the test corpus is classified)."""
    source = Path(source)
    if source.suffix.lower() == ".csv" and "valid" in pl.read_csv(source, n_rows=0).columns:
        videos = schemas.read_table(source, "videos").filter(pl.col("valid"))
        return videos.select("video_id", "path")
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        ids = [p.relative_to(source).with_suffix("").as_posix().replace("/", "__") for p in paths]
        return pl.DataFrame(
            {"video_id": ids, "path": [str(p) for p in paths]},
            schema={"video_id": pl.String, "path": pl.String},
        )
    if source.suffix.lower() == ".csv":
        table = pl.read_csv(source, infer_schema=False, empty_string_is_null=False)
        if "path" not in table.columns:
            raise ValueError(
                f"{source}: a predict manifest needs a 'path' column; it has "
                f"{list(table.columns)}"
            )
        paths = [p if Path(p).is_absolute() else str(source.parent / p) for p in table["path"]]
        ids = (
            table["video_id"].to_list()
            if "video_id" in table.columns
            else [Path(p).stem for p in paths]
        )
        return pl.DataFrame(
            {"video_id": ids, "path": paths}, schema={"video_id": pl.String, "path": pl.String}
        )
    raise ValueError(f"{source}: predict.input must be a folder of videos or a manifest .csv")


def window_bounds(n_frames: int, window_frames: int, stride_frames: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each window: full windows every ``stride_frames``
    (:func:`lib.io.sampling.sliding_windows`), plus one ending at the last frame when the stride
    leaves a tail uncovered; the whole video when it is shorter than a window."""
    if n_frames <= window_frames:
        return [(0, int(n_frames))] if n_frames > 0 else []
    starts = [w[0] for w in sliding_windows(n_frames, window_frames, stride_frames)]
    if starts[-1] + window_frames < n_frames:
        starts.append(n_frames - window_frames)
    return [(s, s + window_frames) for s in starts]


def window_features(
    reader, start: int, stop: int, *, sampling: dict, clip_writer: ScaledClipWriter, tmp_dir: Path
) -> dict[str, float]:
    """Handcrafted + scaled features of frames ``[start, stop)`` of an open FrameReader,
    computed as the features and scale stages compute them for a clip."""
    picks = [start + i for i in sample_fraction(stop - start, **sampling)]
    hc = handcrafted_features(
        (f for _, f in reader.read(picks)),
        bitrate=reader.bit_rate,
        fps=reader.fps,
        width=reader.width,
        height=reader.height,
    )
    scaled_path = tmp_dir / "window.mp4"
    clip_writer.write(reader, scaled_path, start=start, stop=stop)
    with FrameReader(scaled_path) as scaled:
        sc = scaled_features(
            (f for _, f in scaled.read(sample_fraction(scaled.n_frames, **sampling))),
            orig_width=reader.width,
            orig_height=reader.height,
            scaled_width=clip_writer.size,
            scaled_height=clip_writer.size,
        )
    scaled_path.unlink(missing_ok=True)
    return {**hc, **sc}


def _read_info(model_dir: Path, weights: str) -> dict:
    info_path, model_path = model_dir / "train_info.json", model_dir / weights
    if not model_path.exists() or not info_path.exists():
        missing = model_path if not model_path.exists() else info_path
        raise FileNotFoundError(
            f"{missing}: missing; run `snakemake {model_path}` " "(rule train_final) first"
        )
    return json.loads(info_path.read_text())


def load_feature_model(model_dir: str | Path):
    """(fitted pipeline, train_info) of a final feature model."""
    model_dir = Path(model_dir)
    info = _read_info(model_dir, "model.joblib")
    if info.get("family", "feature") != "feature":
        raise ValueError(
            f"{model_dir}: {info['model']!r} is a {info['family']} model, not a "
            "feature model: use load_model"
        )
    return joblib.load(model_dir / "model.joblib"), info


class FeatureWindowModel:
    """A final feature model: class probabilities of a window from its features and/or, for
    a model on embeddings (train_info's ``embedding``), the window's frames through the same
    frozen encoder, sampled as the embeddings stage samples a clip."""

    def __init__(self, model_dir: Path, *, sampling: dict, clip_writer: ScaledClipWriter):
        self.model, self.info = load_feature_model(model_dir)
        self.classes = [str(c) for c in self.model.classes_]
        self.cols = self.info["features"]
        self.kw = {"sampling": sampling, "clip_writer": clip_writer}
        self.embedding = self.info.get("embedding")
        self.encoder = None
        if self.embedding:
            self.encoder = load_encoder(
                self.embedding["encoder"], device="auto", precision="auto", batch_size=0
            )

    def window_embedding(self, reader, start: int, stop: int) -> dict[str, float]:
        """The window's mean vector, as the embeddings stage computes a clip's."""
        picks = frame_indices(
            stop - start, num_frames=self.embedding["num_frames"], sampling=self.kw["sampling"]
        )
        frames = (f for _, f in reader.read([start + i for i in picks]))
        mean, _ = clip_embedding(self.encoder, frames, keep_frames=False)
        return dict(zip(embedding_columns(len(mean)), mean.tolist()))

    def window_probabilities(self, reader, start: int, stop: int, tmp_dir: Path) -> np.ndarray:
        feats = {}
        if self.encoder is not None:
            feats = self.window_embedding(reader, start, stop)
        if any(c not in feats for c in self.cols):
            feats.update(window_features(reader, start, stop, tmp_dir=tmp_dir, **self.kw))
        x = np.asarray([[feats.get(c, np.nan) for c in self.cols]], dtype=float)
        return self.model.predict_proba(x)[0]


class DeepWindowModel:
    """A final deep model: class probabilities of a window read as a training clip."""

    def __init__(self, model_dir: Path, *, clip_writer: ScaledClipWriter):
        self.info = _read_info(model_dir, "model.pt")
        self.classes = [str(c) for c in self.info["classes"]]
        self.settings = DeepSettings.from_dict(self.info["settings"], self.info["model"])
        self.runtime = resolve_runtime(self.settings)
        self.model = create_model(self.info["model"], self.settings, num_classes=len(self.classes))
        state = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.to(self.runtime["device"]).eval()
        self.clip_writer = clip_writer

    def window_probabilities(self, reader, start: int, stop: int, tmp_dir: Path) -> np.ndarray:
        path = tmp_dir / "window.mp4"
        self.clip_writer.write(reader, path, start=start, stop=stop)
        norm = self.info["normalisation"]
        window = pl.DataFrame(
            {"clip_id": ["window"], "path": [str(path)], "label": [self.classes[0]]}
        )  # the label is not used
        x, _, _ = FrameClipDataset(
            window,
            classes=self.classes,
            num_frames=self.settings.num_frames,
            image_size=self.settings.image_size,
            mean=norm["mean"],
            std=norm["std"],
        )[0]
        device, precision = self.runtime["device"], self.runtime["precision"]
        with torch.no_grad(), autocast(device, precision):
            logits = self.model(x.unsqueeze(0).to(device)).float().cpu()
        path.unlink(missing_ok=True)
        return torch.softmax(logits.double(), dim=1)[0].numpy()


def load_model(model_dir: str | Path, *, sampling: dict, clip_writer: ScaledClipWriter):
    """The final model in ``model_dir`` as an object with ``classes``, ``info`` and
    ``window_probabilities(reader, start, stop, tmp_dir)``: feature or deep, as its
    ``train_info.json`` says. ``clip_writer`` makes each window's clip as the scale stage
    made the training clips."""
    model_dir = Path(model_dir)
    info_path = model_dir / "train_info.json"
    if not info_path.exists():
        raise FileNotFoundError(
            f"{info_path}: missing; run `snakemake {info_path}` (rule train_final) first"
        )
    if is_deep(json.loads(info_path.read_text())["model"]):
        return DeepWindowModel(model_dir, clip_writer=clip_writer)
    return FeatureWindowModel(model_dir, sampling=dict(sampling), clip_writer=clip_writer)


def predict_videos(
    source: str | Path,
    model_dir: str | Path,
    out: str | Path,
    *,
    windows_out: str | Path | None,
    window_frames: int,
    stride_frames: int,
    sampling: dict,
    scale: dict,
    limits: dict,
) -> pl.DataFrame:
    """Classify every video of ``source`` (folder or manifest) with the model in ``model_dir``.

    ``sampling``, ``scale`` and ``limits`` are the config sections the features, scale and
    validate stages read (``features``, ``scale``, ``validate``): each window is made into a
    model input exactly as those stages made the training inputs. Writes ``out`` (one row
    per input video: video_id, path, model, n_windows, score, pred, status, reason,
    score_<class>) and, if given, ``windows_out`` (one row per window with its frame range
    and class probabilities). A video that fails the probe or whose windows all fail keeps
    its row with ``status=failed`` and the reason.
    """
    # the scale section's disk budget (remove_clips) is the scale stage's, not a clip's
    writer = ScaledClipWriter(**{k: v for k, v in scale.items() if k != "remove_clips"})
    model = load_model(model_dir, sampling=sampling, clip_writer=writer)
    info, classes = model.info, model.classes
    pos = info.get("positive_label", classes[-1])
    inputs = list_inputs(source)
    rows, window_rows = [], []
    for i, item in enumerate(inputs.iter_rows(named=True)):
        row = {
            "video_id": item["video_id"],
            "path": relpath(item["path"]),
            "model": info["model"],
            "n_windows": 0,
            "score": np.nan,
            "pred": "",
            "status": "failed",
            "reason": "",
        }
        probe = probe_video(item["path"], **limits)
        if not probe["valid"]:
            rows.append({**row, "reason": f"invalid:{probe['reason']}"})
            log.warning("%s: invalid video (%s)", item["path"], probe["reason"])
            continue
        try:
            probs = []
            with FrameReader(item["path"]) as reader, tempfile.TemporaryDirectory() as tmp:
                for start, stop in window_bounds(reader.n_frames, window_frames, stride_frames):
                    p = model.window_probabilities(reader, start, stop, Path(tmp))
                    probs.append(p)
                    window_rows.append(
                        {
                            "video_id": item["video_id"],
                            "window": len(probs) - 1,
                            "start_frame": start,
                            "stop_frame": stop,
                            **{f"score_{c}": v for c, v in zip(classes, p)},
                        }
                    )
            if not probs:
                rows.append({**row, "reason": "no_frames"})
                continue
            mean = np.mean(probs, axis=0)
            score = mean[classes.index(pos)] if len(classes) == 2 else mean.max()
            rows.append(
                {
                    **row,
                    "n_windows": len(probs),
                    "score": float(score),
                    "pred": classes[int(mean.argmax())],
                    "status": "ok",
                    **{f"score_{c}": float(v) for c, v in zip(classes, mean)},
                }
            )
            log.info(
                "[%d/%d] %s: %d windows, score %.3f",
                i + 1,
                len(inputs),
                item["video_id"],
                len(probs),
                score,
            )
        except Exception as exc:  # one bad video never stops the others
            log.exception("%s: prediction failed", item["path"])
            rows.append({**row, "reason": f"predict_error:{type(exc).__name__}: {exc}"})
    names = [*schemas.columns("predict"), *[f"score_{c}" for c in classes]]
    # A failed video has no class scores: NaN, as its score.
    table = pl.DataFrame({n: [r.get(n, np.nan) for r in rows] for n in names}, strict=False)
    if windows_out:
        with atomic_path(windows_out) as tmp:
            pl.DataFrame(window_rows).write_csv(tmp)
    return schemas.write_table(table, out, "predict")
