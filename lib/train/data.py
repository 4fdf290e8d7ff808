"""Frames for the deep models: a streaming dataset of scaled clips.

Frames come from the scaled clips through the one decode path
(:class:`lib.io.reader.FrameReader`): ``num_frames`` uniformly spaced per clip, resized to
the model's input size, normalised with the checkpoint's mean/std. A dataset item is one
clip, decoded when it is asked for; the loader holds at most a batch, unless a
:class:`ClipCache` with a memory budget keeps decoded clips across epochs (``cache_mb``;
same values either way). Training-time augmentation (flip, crop, brightness) is drawn from
a generator seeded by (seed, epoch, clip): the same on every run, with any number of
workers, and after a resume. The clip table and a fold's split: :mod:`lib.train.clips`.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from lib.io.reader import FrameReader
from lib.utils import stable_seed

log = logging.getLogger(__name__)


def frame_indices(n_frames: int, num_frames: int) -> list[int]:
    """Exactly ``num_frames`` indices, uniformly spaced (centred in equal bins).

    A clip shorter than ``num_frames`` repeats frames rather than giving fewer: models such
    as VideoMAE take a fixed clip length.
    """
    if n_frames <= 0:
        return []
    return np.floor((np.arange(num_frames) + 0.5) * (n_frames / num_frames)).astype(int).tolist()


def read_clip(path, num_frames: int) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 frames of one clip, ``T == num_frames``."""
    with FrameReader(path) as reader:
        wanted = frame_indices(reader.n_frames, num_frames)
        got = dict(reader.read(wanted))
    if not got:
        raise ValueError(f"{path}: no decodable frame")
    # A frame the decoder could not produce is replaced by the nearest one it did.
    have = np.array(sorted(got))
    frames = [got[int(have[np.abs(have - i).argmin()])] for i in wanted]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class ClipCache:
    """Decoded clips (uint8, as :func:`read_clip` gives them) kept up to ``max_mb`` megabytes.

    Training decodes the same clips every epoch; on a CPU with small models the decode is
    most of the time (the demo's deep jobs). Clips are kept in the order first asked for
    and never evicted, so the memory is bounded by the budget and flat once it is full;
    a clip beyond the budget is decoded each time, as without a cache. ``max_mb`` 0 keeps
    nothing. With data-loader workers each worker holds its own cache for one epoch only:
    the cache pays off with ``workers: 0``.
    """

    def __init__(self, max_mb: float = 0.0):
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = self.hits = self.misses = 0
        self._clips: dict[tuple[str, int], torch.Tensor] = {}

    def read(self, path, num_frames: int) -> torch.Tensor:
        key = (str(path), int(num_frames))
        clip = self._clips.get(key)
        if clip is not None:
            self.hits += 1
            return clip
        self.misses += 1
        clip = read_clip(path, num_frames)
        size = clip.numel() * clip.element_size()
        if self.bytes + size <= self.max_bytes:
            self._clips[key] = clip
            self.bytes += size
        return clip

    def stats(self) -> dict:
        return {
            "max_mb": round(self.max_bytes / 2**20, 1),
            "mb": round(self.bytes / 2**20, 1),
            "clips": len(self._clips),
            "hits": self.hits,
            "misses": self.misses,
        }


class FrameClipDataset(torch.utils.data.Dataset):
    """One item per clip: ``(pixel_values (T, 3, S, S) float32, label index, row index)``."""

    def __init__(
        self,
        table: pl.DataFrame,
        *,
        classes: list[str],
        num_frames: int,
        image_size: int,
        mean,
        std,
        augment: bool = False,
        seed: int = 0,
        cache: ClipCache | None = None,
    ):
        self.paths = table["path"].to_list()
        self.clip_ids = table["clip_id"].to_list()
        self.labels = [classes.index(str(c)) for c in table["label"]]
        self.num_frames, self.image_size = num_frames, image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.cache = cache if cache is not None else ClipCache(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        x = self.cache.read(self.paths[i], self.num_frames).float().div_(255.0)  # a new tensor
        if self.augment:
            g = torch.Generator().manual_seed(stable_seed(self.seed, self.epoch, self.clip_ids[i]))
            x = _augment(x, g)
        x = F.interpolate(
            x,
            size=(self.image_size, self.image_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        x = (x.clamp_(0, 1) - self.mean) / self.std
        return x, self.labels[i], i


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The same random crop (80–100 % side), flip and brightness for every frame of a clip."""
    _, _, h, w = x.shape
    scale = 0.8 + 0.2 * torch.rand(1, generator=g).item()
    ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
    x = x[:, :, top : top + ch, left : left + cw]
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(-1)
    return x * (0.9 + 0.2 * torch.rand(1, generator=g).item())
