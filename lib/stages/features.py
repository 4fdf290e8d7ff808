"""Stages ``features`` and ``scaled-features`` (one shard of clips each) and
``merge-features`` (both tables joined into the table the feature models read).

Both feature stages run one driver, :func:`_feature_shard`: sample frames of a clip, compute
a feature set, one row per clip. What differs is a :class:`_FeatureSet`: the stage's name,
its feature names and how the values are computed from the clip's row, reader and frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl

from lib import schemas
from lib.io.reader import FrameReader
from lib.io.sampling import sample_fraction
from lib.media.features import HANDCRAFTED_FEATURES, SCALED_FEATURES, scaled_features
from lib.media.handcrafted import handcrafted_features
from lib.shards import Shard
from lib.stages.sharded import ShardedStage, failure_reason, require_clip, upstream_failed


@dataclass(frozen=True)
class _FeatureSet:
    stage: ShardedStage
    names: tuple[str, ...]
    compute: Callable[[dict, FrameReader, Iterator[np.ndarray]], dict]


def _handcrafted(row: dict, reader: FrameReader, frames: Iterator[np.ndarray]) -> dict:
    return handcrafted_features(
        frames, bitrate=reader.bit_rate, fps=reader.fps, width=reader.width, height=reader.height
    )


def _scaled(row: dict, reader: FrameReader, frames: Iterator[np.ndarray]) -> dict:
    return scaled_features(
        frames,
        orig_width=row["orig_width"],
        orig_height=row["orig_height"],
        scaled_width=row["scaled_width"],
        scaled_height=row["scaled_height"],
    )


HANDCRAFTED = _FeatureSet(
    ShardedStage("features", "clip_id", "features_stage"), HANDCRAFTED_FEATURES, _handcrafted
)
SCALED = _FeatureSet(
    ShardedStage("scaled_features", "clip_id", "features_stage"), SCALED_FEATURES, _scaled
)


def features_shard(
    clips: str | Path, output: str | Path, shard: Shard, *, sampling: dict, progress_dir: str | Path
) -> None:
    """Handcrafted features of every clip (noise residual, DCT, sharpness, blockiness, codec)."""
    table = schemas.read_table(clips, "clips")
    _feature_shard(table, output, shard, HANDCRAFTED, sampling=sampling, progress_dir=progress_dir)


def scaled_features_shard(
    scaled: str | Path,
    output: str | Path,
    shard: Shard,
    *,
    sampling: dict,
    progress_dir: str | Path,
) -> None:
    """Features of the scaled clips: edges, texture, colour, blockiness, up/down-scale flags."""
    table = schemas.read_table(scaled, "scaled")
    _feature_shard(table, output, shard, SCALED, sampling=sampling, progress_dir=progress_dir)


def _feature_shard(
    clips_table: pl.DataFrame,
    output: str | Path,
    shard: Shard,
    features: _FeatureSet,
    *,
    sampling: dict,
    progress_dir: str | Path,
) -> None:
    """Shared driver of both feature stages: sample frames, compute, one row per clip.

    ``sampling``: the ``features`` config section, keywords of
    :func:`lib.io.sampling.sample_fraction`.
    """
    sampling = dict(sampling)
    names = features.names

    def failed(row, reason):
        return {
            "clip_id": row["clip_id"],
            "status": "failed",
            "reason": reason,
            **{n: float("nan") for n in names},
        }

    def skip(row):
        if row["status"] != "ok":
            return [failed(row, upstream_failed(row))]
        return None

    def process(row):
        if "aug_idx" in row:  # a clip augment wrote; the disk budget may have removed it
            require_clip(row)
        with FrameReader(row["path"]) as reader:
            indices = sample_fraction(reader.n_frames, **sampling)
            frames = (frame for _, frame in reader.read(indices))
            values = features.compute(row, reader, frames)
        return [
            {
                "clip_id": row["clip_id"],
                "status": "ok",
                "reason": "",
                **{n: float(values[n]) for n in names},
            }
        ]

    def on_error(row, exc):
        return [failed(row, failure_reason("feature_error", exc))]

    params = {"sampling": sampling}
    features.stage.run(
        clips_table,
        shard,
        output,
        progress_dir,
        process,
        on_error,
        skip,
        params=params,
        extras=names,
    )


def merge_features(handcrafted: str | Path, scaled: str | Path, output: str | Path) -> None:
    """Join both feature tables on clip_id into ``features.parquet`` (clip_id + floats).

    A clip whose features failed in either stage keeps its row with NaN values; the
    status and reason stay in the two stage tables, and training reports what it skipped.
    """
    hc = schemas.read_table(handcrafted, "features_stage")
    sc = schemas.read_table(scaled, "features_stage")
    merged = hc.drop("status", "reason").join(
        sc.drop("status", "reason"), on="clip_id", how="left", validate="1:1", maintain_order="left"
    )
    schemas.write_table(merged, output, "features")
