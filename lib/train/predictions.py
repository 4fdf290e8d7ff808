"""The predictions contract every model writes: one row per clip, its class scores.

``score`` is the positive class's probability for two classes (the best class's for more),
``pred`` the most probable class, and one ``score_<class>`` column per class; feature and
deep models alike, so evaluation never asks which kind of model it reads.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def positive_index(classes: list[str], positive_label: str) -> int:
    """Index of ``positive_label`` in ``classes``; the last class when it is not one."""
    return classes.index(positive_label) if positive_label in classes else len(classes) - 1


def predictions_table(
    clips: pl.DataFrame, probs: np.ndarray, classes: list[str], *, positive_label: str
) -> pl.DataFrame:
    """The contract for ``clips`` (clip_id, video_id, label, aug_idx), given their class
    probabilities ``probs`` (one row per clip, one column per class of ``classes``)."""
    pos = positive_index(classes, positive_label)
    score = probs[:, pos] if len(classes) == 2 else probs.max(axis=1)
    out = clips.select("clip_id", "video_id", "label").with_columns(
        score=pl.Series(score, dtype=pl.Float64),
        pred=pl.Series(np.asarray(classes)[probs.argmax(axis=1)], dtype=pl.String),
        aug_idx=clips["aug_idx"],
    )
    return out.with_columns(
        pl.Series(f"score_{c}", probs[:, j], dtype=pl.Float64) for j, c in enumerate(classes)
    )
