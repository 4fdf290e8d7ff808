"""The column spec of every table that crosses a stage boundary (:mod:`lib.schemas` turns
each into a Pandera schema, CSV dtypes and a column order).

A spec lists a table's required columns in order with their kind (``str``, ``int``,
``float``, ``bool``). Adding a table is one entry in :data:`TABLES` (and, where they apply,
its columns in :data:`NULLABLE`, value checks in :data:`CHECKS`, its key in :data:`UNIQUE`);
docs/CONTRACTS.md says which stage writes and which reads it.
"""

from __future__ import annotations

import pandera.polars as pa

DOWNLOAD_STATUSES = ("ok", "skipped", "failed")
CLIP_STATUSES = ("ok", "failed")

# Columns in order, with their kind. Checks beyond the dtype live in CHECKS.
TABLES: dict[str, dict[str, str]] = {
    "manifest": {
        "video_id": "str",
        "url": "str",
        "label": "str",
        "dup_group": "str",
        "platform": "str",
        "is_original": "bool",
    },
    "download": {
        "video_id": "str",
        "url": "str",
        "label": "str",
        "dup_group": "str",
        "platform": "str",
        "status": "str",
        "path": "str",
        "reason": "str",
        "error": "str",
        "is_original": "bool",
    },
    "videos": {
        "video_id": "str",
        "path": "str",
        "label": "str",
        "dup_group": "str",
        "platform": "str",
        "frames": "int",
        "fps": "float",
        "duration_s": "float",
        "width": "int",
        "height": "int",
        "codec": "str",
        "valid": "bool",
        "reason": "str",
        "is_original": "bool",
        "container": "str",
        "pix_fmt": "str",
        "bit_depth": "int",
        "rotation": "int",
        "avg_fps": "float",
        "real_fps": "float",
        "vfr": "bool",
        "fps_fixed": "bool",
        "has_audio": "bool",
    },
    "clips": {
        "clip_id": "str",
        "video_id": "str",
        "path": "str",
        "aug_idx": "int",
        "augmentation": "str",
        "label": "str",
        "dup_group": "str",
        "status": "str",
        "reason": "str",
    },
    "scaled": {
        "clip_id": "str",
        "video_id": "str",
        "path": "str",
        "scale_method": "str",
        "orig_width": "int",
        "orig_height": "int",
        "scaled_width": "int",
        "scaled_height": "int",
        "status": "str",
        "reason": "str",
    },
    # Feature tables: clip_id, status, reason, then one float column per feature (extras).
    "features_stage": {"clip_id": "str", "status": "str", "reason": "str"},
    "features": {"clip_id": "str"},
    # Frozen-encoder embeddings (lib/stages/embeddings.py): frame -1 = the clip's mean vector,
    # else one embedded frame's index; then the emb_* floats (extras).
    "embeddings": {
        "clip_id": "str",
        "frame": "int",
        "status": "str",
        "reason": "str",
        "encoder": "str",
        "num_frames": "int",
    },
    "folds": {"video_id": "str", "dup_group": "str", "label": "str", "fold": "int"},
    "predictions": {
        "clip_id": "str",
        "video_id": "str",
        "label": "str",
        "score": "float",
        "pred": "str",
        "aug_idx": "int",
    },
    # Headline metrics: out-of-fold originals (aug_idx == -1), one row per video.
    # protocol: kfold or leave_one_<column>_out; level: video (windows aggregated) or window.
    "metrics": {
        "model": "str",
        "protocol": "str",
        "level": "str",
        "fold": "int",
        "metric": "str",
        "value": "float",
    },
    "summary": {
        "model": "str",
        "protocol": "str",
        "level": "str",
        "aggregation": "str",
        "frames_per_video": "float",
        "metric": "str",
        "mean": "float",
        "std": "float",
        "pooled": "float",
        "ci_low": "float",
        "ci_high": "float",
        "n_folds": "int",
        "n_videos": "int",
        "p_value": "float",
        "null_mean": "float",
        "null_std": "float",
        "n_permutations": "int",
    },
    # An evaluation protocol's splits (lib/evaluate/protocols.py): one row per value held out.
    "protocol_splits": {
        "protocol": "str",
        "column": "str",
        "value": "str",
        "fold": "int",
        "status": "str",
        "reason": "str",
        "n_test_videos": "int",
        "n_train_videos": "int",
        "n_left_out": "int",
        "test_per_class": "str",
    },
    # Null distribution of the headline metric, one row per permutation of group labels.
    "permutation": {"permutation": "int", "metric": "str", "value": "float"},
    # Augmented held-out clips, per augmentation type: never part of the headline.
    "robustness": {
        "model": "str",
        "augmentation": "str",
        "metric": "str",
        "value": "float",
        "n_clips": "int",
    },
    # Videos classified by `predict`: one row per input video, failures with their reason.
    "predict": {
        "video_id": "str",
        "path": "str",
        "model": "str",
        "n_windows": "int",
        "score": "float",
        "pred": "str",
        "status": "str",
        "reason": "str",
    },
    # Leak audit (lib/audit/signatures.py, lib/audit/near_duplicates.py).
    "signatures": {
        "video_id": "str",
        "status": "str",
        "reason": "str",
        "frames": "int",
        "frame_index": "str",
        "hashes": "str",
        "thumbnails": "str",
        "fps": "float",
    },
    # Self-supervised pretraining (lib/train/pretrain.py): one row per (run, epoch).
    "pretrain_history": {
        "run": "str",
        "epoch": "int",
        "loss": "float",
        "lr": "float",
        "grad_norm": "float",
        "n_clips": "int",
        "mask_ratio": "float",
        "rss_mb": "float",
        "seconds": "float",
    },
    "near_duplicates": {
        "video_a": "str",
        "video_b": "str",
        "distance": "float",
        "matched_frames": "int",
        "same_annotated_group": "bool",
        "same_fold": "bool",
    },
    # Test corpus (lib/audit/cross.py, lib/evaluate/test_corpus.py): videos, matches, scores.
    "test_corpus_videos": {
        **dict.fromkeys(("video_id", "label", "dup_group", "train_matches"), "str"),
        **dict.fromkeys(("valid", "cross_duplicate", "cross_group"), "bool"),
    },
    "cross_duplicates": {
        **dict.fromkeys(("test_video", "train_video"), "str"),
        **{"distance": "float", "matched_frames": "int"},
    },
    "test_corpus_summary": {
        **dict.fromkeys(("model", "videos", "level", "aggregation", "metric"), "str"),
        "headline": "bool",
        **dict.fromkeys(("value", "ci_low", "ci_high"), "float"),
        **dict.fromkeys(("n_videos", "n_groups", "n_left_out", "n_failed"), "int"),
    },
}

# Columns that may hold NaN (unknown measurements, undefined metrics).
NULLABLE = {
    "avg_fps",
    "real_fps",
    "fps",
    "duration_s",
    "value",
    "mean",
    "std",
    "score",
    "pooled",
    "ci_low",
    "ci_high",
    "p_value",
    "null_mean",
    "null_std",
    "frames_per_video",
}

CHECKS: dict[str, dict[str, list[pa.Check]]] = {
    "download": {"status": [pa.Check.isin(DOWNLOAD_STATUSES)]},
    "clips": {"status": [pa.Check.isin(CLIP_STATUSES)], "aug_idx": [pa.Check.ge(-1)]},
    "scaled": {"status": [pa.Check.isin(CLIP_STATUSES)]},
    "features_stage": {"status": [pa.Check.isin(CLIP_STATUSES)]},
    "embeddings": {"status": [pa.Check.isin(CLIP_STATUSES)], "frame": [pa.Check.ge(-1)]},
    "folds": {"fold": [pa.Check.ge(0)]},
    "signatures": {"status": [pa.Check.isin(CLIP_STATUSES)], "frames": [pa.Check.ge(0)]},
    "near_duplicates": {"distance": [pa.Check.in_range(0, 64)], "matched_frames": [pa.Check.ge(1)]},
    "predictions": {"aug_idx": [pa.Check.ge(-1)]},
    "predict": {"status": [pa.Check.isin(CLIP_STATUSES)]},
    "cross_duplicates": {"matched_frames": [pa.Check.ge(1)]},
    "test_corpus_summary": {
        "videos": [pa.Check.isin(("without_cross_duplicates", "all"))],
        "level": [pa.Check.isin(("video", "window"))],
    },
    "pretrain_history": {"epoch": [pa.Check.ge(1)], "mask_ratio": [pa.Check.in_range(0, 1)]},
    "protocol_splits": {"status": [pa.Check.isin(("used", "skipped"))]},
    "metrics": {"level": [pa.Check.isin(("video", "window"))]},
    "summary": {"level": [pa.Check.isin(("video", "window"))]},
}

# Tables whose key column must be unique (one row per video / clip).
UNIQUE = {
    "manifest": "video_id",
    "download": "video_id",
    "videos": "video_id",
    "clips": "clip_id",
    "scaled": "clip_id",
    "features_stage": "clip_id",
    "features": "clip_id",
    "folds": "video_id",
    "predictions": "clip_id",
    "signatures": "video_id",
    "predict": "video_id",
    "test_corpus_videos": "video_id",
}
