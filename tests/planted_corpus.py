"""A test corpus holding a planted copy of a training video, for the cross-corpus leak audit.

``write_test_corpus(folder, training_folder, seed=...)`` writes a small demo-format corpus
(:func:`lib.corpus.demo.generate_demo_corpus` with its own seed: content independent of the
training corpus) and adds ``planted.mp4``: the first original of the training corpus (a demo
corpus folder), cropped by a twelfth on every side and re-encoded with H.264 at a low
bitrate, as a repost on another platform would be, listed as a group of its own. Returns the
training file it copies (its name in ``training_folder``) and the planted copy's label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from lib.corpus.demo import generate_demo_corpus
from lib.corpus.demo_media import Format, decode_file, encode_file

PLANTED = "planted.mp4"


def plant_copy(source: Path, dest: Path, *, crop: float = 1 / 12) -> None:
    """``source`` cropped by ``crop`` of its size on every side, re-encoded to ``dest``."""
    frames = decode_file(source)
    height, width = frames.shape[1:3]
    dy, dx = int(height * crop), int(width * crop)
    kept = frames[:, dy : height - dy, dx : width - dx]
    even = kept[:, : kept.shape[1] // 2 * 2, : kept.shape[2] // 2 * 2]  # H.264 wants even sides
    encode_file(dest, np.ascontiguousarray(even), fps=25, fmt=Format("h264", 0.08))


def write_test_corpus(
    folder: Path, training_folder: Path, *, n_groups: int = 4, seed: int = 1
) -> tuple[str, str]:
    """A demo-format test corpus in ``folder`` with a planted copy of a training original;
    returns ``(copied file's name, its label)``."""
    index = generate_demo_corpus(folder, n_groups=n_groups, seed=seed, plant_broken=False)
    training = pl.read_csv(training_folder / "index.csv")
    source = training.filter(pl.col("is_original")).row(0, named=True)
    plant_copy(training_folder / source["path"], folder / PLANTED)
    group = int(index["group"].max()) + 1
    row = {**index.row(0, named=True), "path": PLANTED, "label": source["label"]}
    row |= {"group": group, "is_original": True, "edits": "crop", "codec": "h264"}
    pl.concat([index, pl.DataFrame([row], schema=index.schema)]).write_csv(folder / "index.csv")
    return source["path"], source["label"]
