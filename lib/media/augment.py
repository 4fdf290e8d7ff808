"""Stage 3: deterministic, temporally consistent augmentations of video frames.

Each augmented clip ``(video_id, aug_idx)`` gets one :class:`Augmentation` whose type is
``AUGMENTATION_TYPES[aug_idx % 10]`` and whose parameters are drawn once from a generator
seeded by ``stable_seed("augment", seed, video_id, aug_idx)``. The same parameters are then
applied to every frame of the clip, so the augmentation never introduces flicker that a
video classifier could learn instead of the content (the one exception by design is
Gaussian noise, whose *sigma* is fixed per clip while the noise itself is drawn per frame
from a generator seeded by the clip seed and the frame index, so it stays reproducible).

Geometric parameters are fractions of the frame size (translation) or of its short side
(elastic displacement), so one parameter set means the same thing at 320x240 and 1080p.
Frames are RGB ``uint8`` ``(H, W, 3)``; every ``apply`` returns a new array of that shape.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from scipy import ndimage

from lib.io.reader import FrameReader
from lib.io.writer import VideoWriter
from lib.utils import stable_seed

log = logging.getLogger(__name__)

AUGMENTATION_TYPES = (
    "rotation",
    "hflip",
    "brightness",
    "contrast",
    "saturation",
    "gaussian_noise",
    "gaussian_blur",
    "affine",
    "elastic",
    "combination",
)

#: Decimal places kept for drawn parameters. Parameters are rounded when drawn (not only when
#: described), so the ``augmentation`` column of clips.csv is exactly what was applied.
PARAM_DECIMALS = 4

_SINGLE_TYPES = AUGMENTATION_TYPES[:-1]  # what a "combination" composes

# Parameter ranges (inclusive bounds of uniform draws).
ROTATION_MAX_DEG = 10.0
ENHANCE_FACTOR_RANGE = (0.8, 1.2)  # brightness, contrast, saturation
NOISE_SIGMA_RANGE = (2.0, 8.0)  # in 0-255 units
BLUR_RADIUS_RANGE = (0.5, 2.0)  # PIL GaussianBlur radius (= standard deviation), pixels
AFFINE_TRANSLATE_MAX = 0.10  # fraction of width / height
AFFINE_SCALE_RANGE = (0.9, 1.1)
AFFINE_SHEAR_MAX_DEG = 10.0
# Elastic: RMS displacement and smoothness (Gaussian std), both fractions of the short side.
# alpha/sigma <= 0.25 keeps the RMS displacement gradient under 0.18 and its maximum (about
# four times the RMS) under 1, so the warp does not fold the picture over itself.
ELASTIC_ALPHA_RANGE = (0.005, 0.010)
ELASTIC_SIGMA_RANGE = (0.04, 0.07)
COMBINATION_STEPS_RANGE = (2, 3)


def _round(value: float) -> float:
    return round(float(value), PARAM_DECIMALS)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return _round(rng.uniform(low, high))


def _draw_params(name: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the parameters of one augmentation type from ``rng`` (JSON-able values only)."""
    if name == "rotation":
        return {"angle_deg": _uniform(rng, -ROTATION_MAX_DEG, ROTATION_MAX_DEG)}
    if name == "hflip":
        return {}
    if name in ("brightness", "contrast", "saturation"):
        return {"factor": _uniform(rng, *ENHANCE_FACTOR_RANGE)}
    if name == "gaussian_noise":
        return {"sigma": _uniform(rng, *NOISE_SIGMA_RANGE)}
    if name == "gaussian_blur":
        return {"radius": _uniform(rng, *BLUR_RADIUS_RANGE)}
    if name == "affine":
        return {
            "translate_x": _uniform(rng, -AFFINE_TRANSLATE_MAX, AFFINE_TRANSLATE_MAX),
            "translate_y": _uniform(rng, -AFFINE_TRANSLATE_MAX, AFFINE_TRANSLATE_MAX),
            "scale": _uniform(rng, *AFFINE_SCALE_RANGE),
            "shear_deg": _uniform(rng, -AFFINE_SHEAR_MAX_DEG, AFFINE_SHEAR_MAX_DEG),
        }
    if name == "elastic":
        return {
            "alpha": _uniform(rng, *ELASTIC_ALPHA_RANGE),
            "sigma": _uniform(rng, *ELASTIC_SIGMA_RANGE),
        }
    if name == "combination":
        low, high = COMBINATION_STEPS_RANGE
        n_steps = int(rng.integers(low, high + 1))
        picks = rng.choice(len(_SINGLE_TYPES), size=n_steps, replace=False)
        steps = []
        for pick in picks:
            step_name = _SINGLE_TYPES[int(pick)]
            steps.append({"name": step_name, "params": _draw_params(step_name, rng)})
        return {"steps": steps}
    raise ValueError(f"unknown augmentation type {name!r}; expected one of {AUGMENTATION_TYPES}")


# --------------------------------------------------------------------------------------------
# Per-type frame functions: (frame, params, seed, frame_index, cache) -> uint8 frame.
# ``seed`` is the clip seed; ``cache`` is per-clip scratch space (e.g. the elastic field).
# --------------------------------------------------------------------------------------------


def _to_array(image: Image.Image) -> np.ndarray:
    return np.array(image, dtype=np.uint8)  # a writable copy, never a view of PIL's buffer


def _rotation(frame, params, seed, frame_index, cache):
    image = Image.fromarray(frame)
    rotated = image.rotate(
        params["angle_deg"], resample=Image.Resampling.BILINEAR, expand=False, fillcolor=(0, 0, 0)
    )
    return _to_array(rotated)


def _hflip(frame, params, seed, frame_index, cache):
    return np.ascontiguousarray(frame[:, ::-1])


def _enhance(enhancer_class):
    def apply(frame, params, seed, frame_index, cache):
        return _to_array(enhancer_class(Image.fromarray(frame)).enhance(params["factor"]))

    return apply


def _gaussian_noise(frame, params, seed, frame_index, cache):
    rng = np.random.default_rng(stable_seed(seed, "gaussian_noise", int(frame_index)))
    noise = rng.standard_normal(frame.shape, dtype=np.float32)
    noise *= np.float32(params["sigma"])
    noise += frame
    np.rint(noise, out=noise)
    np.clip(noise, 0, 255, out=noise)
    return noise.astype(np.uint8)


def _gaussian_blur(frame, params, seed, frame_index, cache):
    blurred = Image.fromarray(frame).filter(ImageFilter.GaussianBlur(radius=params["radius"]))
    return _to_array(blurred)


def _affine_inverse_coefficients(
    params: dict[str, Any], width: int, height: int
) -> tuple[float, ...]:
    """PIL's AFFINE data: the map from output pixel to input pixel.

    Forward map about the frame centre c: ``out = c + t + A (in - c)`` with
    ``A = scale * [[1, tan(shear)], [0, 1]]`` and ``t`` the translation in pixels.
    """
    shear = math.tan(math.radians(params["shear_deg"]))
    forward = params["scale"] * np.array([[1.0, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre = np.array([width / 2.0, height / 2.0])
    shift = np.array([params["translate_x"] * width, params["translate_y"] * height])
    offset = centre - inverse @ (centre + shift)
    return (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])


def _affine(frame, params, seed, frame_index, cache):
    height, width = frame.shape[:2]
    coefficients = _affine_inverse_coefficients(params, width, height)
    image = Image.fromarray(frame)
    warped = image.transform(
        (width, height),
        Image.Transform.AFFINE,
        data=coefficients,
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )
    return _to_array(warped)


def elastic_displacement(
    height: int, width: int, *, alpha: float, sigma: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement field ``(dy, dx)``, each float32 ``(height, width)``.

    White noise smoothed by a Gaussian of std ``sigma * short_side`` pixels, scaled to an RMS
    displacement of ``alpha * short_side`` pixels. The noise is smoothed on a coarse grid
    (about 4 cells per sigma) and upsampled bicubically: the field is band-limited anyway, and
    filtering at full 1080p resolution with sigma ~ 50 px would take seconds.
    """
    short_side = min(height, width)
    sigma_px = max(sigma * short_side, 1e-3)
    alpha_px = alpha * short_side
    step = max(1.0, sigma_px / 4.0)  # coarse cell size in pixels
    coarse_shape = (max(2, math.ceil(height / step) + 1), max(2, math.ceil(width / step) + 1))
    rng = np.random.default_rng(stable_seed(seed, "elastic", height, width))
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1.0, 1.0, size=coarse_shape)
        smooth = ndimage.gaussian_filter(noise, sigma=sigma_px / step, mode="reflect")
        smooth -= smooth.mean()
        rms = float(np.sqrt(np.mean(smooth**2)))
        smooth *= alpha_px / rms if rms > 0 else 0.0
        image = Image.fromarray(smooth.astype(np.float32))
        fields.append(
            np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
        )
    return fields[0], fields[1]


@dataclass(frozen=True)
class RemapPlan:
    """A precomputed bilinear warp (see :func:`bilinear_remap_plan`)."""

    index: np.ndarray  # int32 (H*W,): top-left neighbour, flat in the padded frame
    weight_y: np.ndarray  # float32 (H*W, 1): fractional row offset
    weight_x: np.ndarray  # float32 (H*W, 1): fractional column offset
    pad: int  # border added around the frame, pixels


def bilinear_remap_plan(rows: np.ndarray, cols: np.ndarray) -> RemapPlan:
    """Precompute a bilinear warp: output pixel (i, j) samples the input at (rows, cols).

    The frame is padded by ``pad`` pixels with ``np.pad(mode="symmetric")`` (the
    half-sample-symmetric border of ``scipy.ndimage``'s ``mode="reflect"``), wide enough
    for the largest displacement, so the four neighbours of every sample are the top-left
    one plus 1, a padded row, and both, with no border cases. The plan is that top-left
    index (int32) and the fractional offsets (float32): 12 bytes a pixel, 25 MB at 1080p.
    It is built once per clip, a block of rows at a time (no full-frame temporaries), and
    applied to every frame by :func:`bilinear_remap`.
    """
    height, width = rows.shape
    reach = max(
        float(np.max(-rows[:, 0])),
        float(np.max(rows[:, -1] - (height - 1))),
        float(np.max(-cols[0])),
        float(np.max(cols[-1] - (width - 1))),
        float(np.max(np.abs(rows - np.arange(height, dtype=np.float32)[:, None]))),
        float(np.max(np.abs(cols - np.arange(width, dtype=np.float32)[None, :]))),
    )
    pad = int(math.ceil(max(reach, 0.0))) + 2
    padded_width = width + 2 * pad
    index = np.empty(height * width, np.int32)
    weight_y = np.empty((height * width, 1), np.float32)
    weight_x = np.empty((height * width, 1), np.float32)
    for r0 in range(0, height, _REMAP_BLOCK_ROWS):
        r1 = min(r0 + _REMAP_BLOCK_ROWS, height)
        span = slice(r0 * width, r1 * width)
        row, col = rows[r0:r1].ravel(), cols[r0:r1].ravel()
        row_low, col_low = np.floor(row), np.floor(col)
        weight_y[span, 0] = row - row_low
        weight_x[span, 0] = col - col_low
        index[span] = (row_low.astype(np.int32) + pad) * padded_width + col_low.astype(np.int32)
        index[span] += pad
    return RemapPlan(index, weight_y, weight_x, pad)


#: Rows warped per block in :func:`bilinear_remap`: small blocks keep the float32
#: temporaries in cache (faster than warping the whole frame at once).
_REMAP_BLOCK_ROWS = 32


def bilinear_remap(frame: np.ndarray, plan: RemapPlan) -> np.ndarray:
    """Warp an RGB uint8 frame with a plan from :func:`bilinear_remap_plan`.

    Equal to ``scipy.ndimage.map_coordinates(order=1, mode="reflect")`` per channel within
    one grey level (rounding at exact halves), and several times faster at 1080p: the
    pixels are gathered as packed 32-bit RGBA words (one gather per neighbour for all three
    channels) and interpolated in float32, a block of rows at a time.
    """
    height, width, _ = frame.shape
    pad = plan.pad
    padded_width = width + 2 * pad
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[:, :, :3] = frame
    packed = np.pad(rgba.view(np.uint32)[:, :, 0], pad, mode="symmetric").ravel()
    del rgba
    out = np.empty((height * width, 3), np.uint8)
    block = _REMAP_BLOCK_ROWS * width
    for start in range(0, height * width, block):
        span = slice(start, min(start + block, height * width))
        top_left = plan.index[span]
        bottom_left = top_left + padded_width

        def corner(index: np.ndarray, offset: int = 0) -> np.ndarray:
            gathered = packed.take(index + offset if offset else index)
            return gathered.view(np.uint8).reshape(-1, 4).astype(np.float32)

        wx, wy = plan.weight_x[span], plan.weight_y[span]
        top, step = corner(top_left), corner(top_left, 1)
        step -= top
        step *= wx
        top += step
        bottom, step = corner(bottom_left), corner(bottom_left, 1)
        step -= bottom
        step *= wx
        bottom += step
        bottom -= top
        bottom *= wy
        top += bottom
        np.rint(top, out=top)
        out[span] = top[:, :3]
    return out.reshape(height, width, 3)


def _elastic(frame, params, seed, frame_index, cache):
    height, width = frame.shape[:2]
    key = ("elastic_plan", height, width)
    plan = cache.get(key)
    if plan is None:  # once per frame shape, reused for every frame of the clip
        dy, dx = elastic_displacement(
            height, width, alpha=params["alpha"], sigma=params["sigma"], seed=seed
        )
        rows = np.arange(height, dtype=np.float32)[:, None] + dy
        cols = np.arange(width, dtype=np.float32)[None, :] + dx
        plan = bilinear_remap_plan(rows, cols)
        cache[key] = plan
    return bilinear_remap(frame, plan)


def _combination(frame, params, seed, frame_index, cache):
    for step_index, step in enumerate(params["steps"]):
        step_cache = cache.setdefault(("step", step_index), {})
        step_seed = stable_seed(seed, "step", step_index)
        frame = _APPLY[step["name"]](frame, step["params"], step_seed, frame_index, step_cache)
    return frame


_APPLY: dict[str, Callable[..., np.ndarray]] = {
    "rotation": _rotation,
    "hflip": _hflip,
    "brightness": _enhance(ImageEnhance.Brightness),
    "contrast": _enhance(ImageEnhance.Contrast),
    "saturation": _enhance(ImageEnhance.Color),
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _gaussian_blur,
    "affine": _affine,
    "elastic": _elastic,
    "combination": _combination,
}


@dataclass(frozen=True)
class Augmentation:
    """One clip's augmentation: a type, its drawn parameters and the clip seed.

    ``params`` holds plain JSON-able values (floats rounded to ``PARAM_DECIMALS``; a
    combination holds ``{"steps": [{"name", "params"}, ...]}``, applied in order). ``seed`` is
    the clip seed; it only matters for per-frame noise and the elastic field. Build it with
    :func:`make_augmentation` rather than by hand.
    """

    name: str
    params: dict[str, Any]
    seed: int = 0
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name not in _APPLY:
            raise ValueError(
                f"unknown augmentation type {self.name!r}; expected one of {AUGMENTATION_TYPES}"
            )

    def apply(self, frame: np.ndarray, frame_index: int) -> np.ndarray:
        """Augment one RGB ``uint8`` ``(H, W, 3)`` frame; returns a new array of the same shape.

        ``frame_index`` (the frame's index within the clip) only changes the output of the
        Gaussian-noise type; every other type applies the identical transform to every frame.
        """
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}"
            )
        frame = np.ascontiguousarray(frame)
        out = _APPLY[self.name](frame, self.params, self.seed, frame_index, self._cache)
        return out if out is not frame else frame.copy()

    def describe(self) -> str:
        """Compact JSON (sorted keys, rounded floats) for the ``augmentation`` column."""
        payload = {"name": self.name, "params": _rounded(self.params)}
        return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item) for item in value]
    return value


def make_augmentation(video_id: str, aug_idx: int, seed: int) -> Augmentation:
    """The augmentation of clip ``aug_idx`` of ``video_id`` under the run's global ``seed``.

    The type cycles through ``AUGMENTATION_TYPES`` with ``aug_idx``; the parameters depend only
    on ``(seed, video_id, aug_idx)`` through :func:`lib.utils.stable_seed`, so they are the same
    on every machine, run and checkout location. ``aug_idx`` -1 (the original clip) has no
    augmentation: callers copy the original instead, and a negative index raises ValueError.
    """
    aug_idx = int(aug_idx)
    if aug_idx < 0:
        raise ValueError(f"aug_idx must be >= 0 (-1 marks the unaugmented original), got {aug_idx}")
    clip_seed = stable_seed("augment", seed, video_id, aug_idx)
    rng = np.random.default_rng(clip_seed)
    name = AUGMENTATION_TYPES[aug_idx % len(AUGMENTATION_TYPES)]
    return Augmentation(name=name, params=_draw_params(name, rng), seed=clip_seed)


def encode_clips(
    source: str | os.PathLike,
    clips: Sequence[tuple[Augmentation | None, str | os.PathLike]],
    *,
    start: int = 0,
    stop: int | None = None,
    fps: float | None = None,
    crf: int,
    preset: str,
    encoder_threads: int,
) -> list[int]:
    """Write each clip of ``source``'s frames ``[start, stop)``, one clip after another.

    ``clips`` pairs an :class:`Augmentation` (``None``: the frames as they are, e.g. a cut
    segment) with its output path. Each clip is encoded from its own decode of the segment
    (one reader, rewound per clip), so only one x264 encoder is open at a time: peak memory
    is one decoder + one encoder + a few frames, whatever the number of clips and however
    large the frames. Feeding every clip's encoder from one decode held ``len(clips)``
    encoders open (docs/BENCHMARKS.md, section "Augment at 1080p: memory and time per written
    frame"); decoding again costs little next to augmenting and encoding a frame.

    Every clip gets the same frames in the same order as with one shared decode, and each
    encoder is deterministic (:class:`lib.io.writer.VideoWriter`), so the bytes do not depend
    on the order or the number of clips. All or nothing: each clip is written atomically,
    and when any clip fails the clips this call already published are deleted before the
    exception propagates, so a failed video leaves no clip behind. ``fps`` defaults to the
    source's. ``crf``, ``preset`` and ``encoder_threads`` are x264's (see
    :class:`lib.io.writer.VideoWriter`). Returns the frames written per clip.
    """
    written: list[Path] = []
    counts: list[int] = []
    try:
        with FrameReader(source) as reader:
            rate = fps if fps and fps > 0 else reader.fps
            for augmentation, path in clips:
                with VideoWriter(
                    path, fps=rate, crf=crf, preset=preset, threads=encoder_threads
                ) as writer:
                    for t, frame in enumerate(reader.iter_frames(start=start, stop=stop)):
                        if augmentation is not None:
                            frame = augmentation.apply(frame, t)
                        writer.write(frame)
                if augmentation is not None:
                    augmentation._cache.clear()  # per-clip scratch (the elastic warp's plan)
                written.append(Path(path))
                counts.append(writer.frames_written)
                log.debug("%s: %d frames", path, writer.frames_written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return counts
