"""The demo corpus's media: synthetic captures, the fakes' manipulations, the reposts' edits,
and how every file is encoded (through :class:`lib.io.writer.VideoWriter`) and decoded
(through :class:`lib.io.reader.FrameReader`).

:mod:`lib.corpus.demo` assembles the corpus from these; its docstring says why each choice.
Everything here is a function of the random generator it is given.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from lib.io.reader import FrameReader
from lib.io.writer import VideoWriter

CODECS = {
    # name: (PyAV encoder, container extension, encoder options)
    # mbtree and B-frames off: with them this libx264 build is not reproducible run to run.
    "h264": ("libx264", ".mp4", {"preset": "veryfast", "x264-params": "mbtree=0:bframes=0"}),
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8"}),
    "mpeg4": ("mpeg4", ".avi", {}),
}
# MPEG-4 Part 2 needs about twice the bits of H.264/VP9 for the same quality; uploaders and
# platforms that use it spend them (else its own 8x8 blocking would swamp everything else).
BITRATE_FACTOR = {"h264": 1.0, "vp9": 1.0, "mpeg4": 2.0}
REPOST_EDITS = ("trim", "crop", "rescale", "watermark")  # in the order applied
FAKE_MANIPULATIONS = ("splice", "double_compression", "rendered", "speed_change")
MIN_DURATION_S = 2.1  # every good file lasts at least this long (and at most MAX_DURATION_S)
MAX_DURATION_S = 3.8
EXPOSURE_LEVELS = (95.0, 130.0)  # the mean grey level automatic exposure aims at, per capture


@dataclass(frozen=True)
class Format:
    """How one file is encoded: drawn independently of the label."""

    codec: str
    bits_per_pixel: float  # target bitrate / (width * height * fps)
    quantizer: int | None = None  # a fixed quantiser instead (mpeg4: 2 fine .. 31 coarse)


# ----------------------------------------------------------------------------- encoding


def encode_file(path: Path, frames: np.ndarray, *, fps: int, fmt: Format) -> None:
    """Encode uint8 RGB frames to ``path`` atomically (the container follows the extension).

    One encoder thread and the muxer's bit-exact mode (no version string, no random ids),
    so a seed gives byte-identical files on a given build.
    """
    encoder, _, options = CODECS[fmt.codec]
    height, width = frames.shape[1:3]
    rate_options = {
        "b": str(int(fmt.bits_per_pixel * BITRATE_FACTOR[fmt.codec] * width * height * fps))
    }
    rate_options["g"] = str(2 * fps)  # a keyframe every two seconds
    if fmt.quantizer is not None:  # qmin = qmax pins it (mpeg4 ignores "qscale" options)
        rate_options["qmin"] = rate_options["qmax"] = str(fmt.quantizer)
    with VideoWriter(
        path,
        fps=fps,
        codec=encoder,
        crf=None,
        preset=None,
        options={**options, **rate_options},
        threads=1,
        container_options={"fflags": "+bitexact"},
    ) as writer:
        for frame in frames:
            writer.write(frame)


def decode_file(path: Path) -> np.ndarray:
    """Every frame of a video file as uint8 RGB, shape ``(n, height, width, 3)``."""
    with FrameReader(path) as reader:
        return np.stack(list(reader.iter_frames()))


def recompress(frames: np.ndarray, *, fps: int, fmt: Format) -> np.ndarray:
    """``frames`` after one encode and decode with ``fmt`` (a file of its usual container)."""
    with tempfile.TemporaryDirectory(prefix="vidstage-demo-") as folder:
        path = Path(folder) / f"pass{CODECS[fmt.codec][1]}"
        encode_file(path, frames, fps=fps, fmt=fmt)
        return decode_file(path)


# ----------------------------------------------------------------------------- content


def _smooth_field(rng: np.random.Generator, *, width: int, height: int, cell: int) -> np.ndarray:
    """A smooth random RGB field in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = (rng.random((height // cell + 3, width // cell + 3, 3)) * 255).astype(np.uint8)
    big = Image.fromarray(grid).resize((width + 2 * cell, height + 2 * cell), Image.BICUBIC)
    return np.asarray(big, dtype=np.float32)[cell : cell + height, cell : cell + width] / 255.0


def _scene_texture(rng: np.random.Generator, *, width: int, height: int) -> np.ndarray:
    """A camera-like still scene, float32 in [0, 255]: multi-scale texture plus objects.

    Brightness comes from several octaves (coarse light, mid-scale shapes, and fine
    grass/gravel-like detail whose strength varies per scene); colour varies slowly on top of
    it. A few blocky objects give edges; automatic exposure and white balance
    (:func:`_grey_world_gains`) leave no colour cast of the scene's own; optics blur (random
    radius) softens everything.
    """
    detail = rng.uniform(0.03, 0.2)
    brightness = (
        1.0 * _smooth_field(rng, width=width, height=height, cell=int(rng.integers(40, 90)))[..., 0]
        + 0.45
        * _smooth_field(rng, width=width, height=height, cell=int(rng.integers(12, 24)))[..., 0]
        + detail
        * _smooth_field(rng, width=width, height=height, cell=int(rng.integers(3, 6)))[..., 0]
        + 0.5 * detail * _smooth_field(rng, width=width, height=height, cell=2)[..., 0]
    )
    brightness = (brightness - brightness.min()) / max(float(np.ptp(brightness)), 1e-6)
    colour = 0.45 + 0.55 * _smooth_field(
        rng, width=width, height=height, cell=int(rng.integers(60, 120))
    )
    img = (0.1 + 0.9 * brightness[..., None]) * colour * 255.0
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(2, 7))):  # objects: textured rectangles with edges
        x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
        w, h = rng.integers(12, max(13, width // 3)), rng.integers(12, max(13, height // 3))
        inside = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
        object_colour = rng.uniform(20, 235, size=3).astype(np.float32)
        img[inside] = 0.55 * object_colour + 0.45 * img[inside]
    img *= _grey_world_gains(img, level=float(rng.uniform(*EXPOSURE_LEVELS)))
    blur = float(rng.uniform(0.4, 1.6))
    blurred = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(blur)
    )
    return np.asarray(blurred, dtype=np.float32)


def _grey_world_gains(picture: np.ndarray, *, level: float) -> np.ndarray:
    """Per-channel gains that make ``picture``'s mean a neutral grey of ``level``: what a
    camera's automatic exposure and white balance do (the grey-world assumption).

    Colour still varies inside the picture (objects, a slowly varying colour field), but no
    capture carries a colour cast or an exposure of its own making.
    """
    means = picture.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    return (level / np.maximum(means, 1.0)).astype(np.float32)


def _sensor_noise(
    rng: np.random.Generator, *, n_fields: int, width: int, height: int, sigma: float
) -> np.ndarray:
    """Gaussian camera noise fields of standard deviation ``sigma``, float32 ``(n, h, w, 3)``.

    As after a camera's demosaicing: mostly shared by the three channels (luma noise), and
    partly grain-like (correlated over about two pixels), so part of it survives re-encoding.
    """
    white = rng.standard_normal((n_fields, height, width, 4), dtype=np.float32)
    grain = (
        white
        + np.roll(white, 1, axis=1)
        + np.roll(white, 1, axis=2)
        + np.roll(white, 1, axis=(1, 2))
    ) / 2.0
    share = rng.uniform(0.3, 0.7)  # fraction of variance in the grain
    mixed = np.sqrt(1.0 - share) * white + np.sqrt(share) * grain
    luma, chroma = mixed[..., :1], mixed[..., 1:]
    return (sigma * (0.85 * luma + 0.53 * chroma)).astype(np.float32)


def camera_capture(
    rng: np.random.Generator,
    *,
    n_frames: int,
    width: int,
    height: int,
    sigma: float | None = None,
) -> np.ndarray:
    """One continuous capture: a textured scene panning with hand shake, plus sensor noise.

    Sensor noise (see :func:`_sensor_noise`) has a per-capture ``sigma`` (drawn in [2.5, 7]
    when not given) and is fresh in every frame: slices of a few pre-drawn noise fields at
    random offsets, statistically the same for these features and several times faster than
    drawing every frame anew.
    Returns uint8 frames of shape ``(n_frames, height, width, 3)``.
    """
    default_sigma = float(rng.uniform(2.5, 7.0))  # always drawn: the stream stays aligned
    sigma = default_sigma if sigma is None else sigma
    speed = rng.uniform(0.3, 2.5)
    angle = rng.uniform(0, 2 * np.pi)
    shake = rng.normal(0, 0.6, size=(n_frames, 2)).cumsum(axis=0)
    t = np.arange(n_frames)[:, None]
    path = t * speed * np.array([np.cos(angle), np.sin(angle)]) + shake
    path -= path.min(axis=0)
    offsets = np.round(path).astype(int)  # (x, y) per frame
    margin_x, margin_y = offsets.max(axis=0) + 1
    scene = _scene_texture(rng, width=width + int(margin_x), height=height + int(margin_y))

    pad = 16
    n_fields = 3
    noise = _sensor_noise(
        rng, n_fields=n_fields, width=width + pad, height=height + pad, sigma=sigma
    )
    starts = rng.integers(0, pad, size=(n_frames, 2))
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    work = np.empty((height, width, 3), dtype=np.float32)
    for i, ((ox, oy), (ny, nx)) in enumerate(zip(offsets, starts)):
        np.add(
            scene[oy : oy + height, ox : ox + width],
            noise[i % n_fields, ny : ny + height, nx : nx + width],
            out=work,
        )
        np.clip(work, 0.0, 255.0, out=work)
        frames[i] = work + 0.5  # round to nearest on the cast
    return frames


def rendered_animation(
    rng: np.random.Generator, *, n_frames: int, width: int, height: int
) -> np.ndarray:
    """Noise-free computer-generated content: flat-shaded shapes bouncing over a smooth backdrop.

    Hard, aliased edges and exactly flat regions are what rendering leaves and a camera
    never does; the palette is graded to a camera's exposure and neutral balance. Returns uint8 frames of shape ``(n_frames, height, width, 3)``.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(30, 220, size=(2, 3)).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xx / width + np.sin(direction) * yy / height + 1.0) / 2.0
    backdrop = c0 + (c1 - c0) * ramp[..., None]
    if rng.random() < 0.5:  # a soft, noise-free "material" texture on the backdrop
        backdrop = backdrop + 60.0 * (
            _smooth_field(rng, width=width, height=height, cell=int(rng.integers(20, 50))) - 0.5
        )
    backdrop = np.clip(backdrop + 0.5, 0, 255).astype(np.uint8)

    n_shapes = int(rng.integers(3, 8))
    is_disc = rng.random(n_shapes) < 0.5
    radii = rng.uniform(0.06, 0.22, size=n_shapes) * min(width, height)
    starts = rng.uniform([0, 0], [width, height], size=(n_shapes, 2))
    velocities = rng.uniform(-4, 4, size=(n_shapes, 2))
    colours = rng.integers(0, 256, size=(n_shapes, 3)).astype(np.uint8)
    extent = np.array([width, height], dtype=float)

    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i in range(n_frames):
        frame = frames[i]
        frame[...] = backdrop
        travelled = (starts + velocities * i) % (2 * extent)
        centres = np.where(travelled > extent, 2 * extent - travelled, travelled)  # bounce
        for disc, radius, (cx, cy), colour in zip(is_disc, radii, centres, colours):
            x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 1, width)
            y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 1, height)
            if x0 >= x1 or y0 >= y1:
                continue
            if disc:
                inside = (xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2 <= radius**2
                frame[y0:y1, x0:x1][inside] = colour
            else:
                frame[y0:y1, x0:x1] = colour
    # Graded like camera footage (the same exposure and neutral balance on average), so that
    # flat shading and hard edges, not a palette or a brightness, tell a render apart.
    gains = _grey_world_gains(frames[0], level=float(rng.uniform(*EXPOSURE_LEVELS)))
    for frame in frames:
        frame[...] = np.clip(frame * gains + 0.5, 0, 255)
    return frames


def _foreign_source(
    rng: np.random.Generator, *, n_frames: int, width: int, height: int
) -> np.ndarray:
    """The inserted part of a splice: another camera and processing chain than the first part.

    Usually a lower-resolution, cleaner capture upscaled to fit (soft, little noise); sometimes
    a much noisier one (a cheap sensor at night). Either way its noise level differs.
    """
    if rng.random() < 0.85:
        factor = rng.uniform(1.5, 2.5)
        small_w, small_h = max(16, int(width / factor)), max(16, int(height / factor))
        small = camera_capture(
            rng, n_frames=n_frames, width=small_w, height=small_h, sigma=rng.uniform(0.0, 1.5)
        )
        return np.stack(
            [np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in small]
        )
    return camera_capture(
        rng, n_frames=n_frames, width=width, height=height, sigma=rng.uniform(9.0, 13.0)
    )


def fake_video(
    rng: np.random.Generator, *, n_frames: int, width: int, height: int, fps: int
) -> tuple[np.ndarray, list[str]]:
    """A manipulated video: one primary manipulation, sometimes a second one on top.

    Returns the uint8 frames and the manipulation names in the order applied.
    """
    primary = str(rng.choice(FAKE_MANIPULATIONS, p=[0.3, 0.3, 0.25, 0.15]))
    steps = {primary}
    if rng.random() < 0.35:
        steps.add(str(rng.choice([m for m in FAKE_MANIPULATIONS if m != primary])))

    # A speed change maps output frames to source frames: repeats (slow motion) or gaps. It
    # covers the whole clip (a slowed-down speech) or starts partway (a sped-up gesture), so
    # the motion between frames far apart changes pace too, not only between neighbours.
    if "speed_change" in steps:
        rate = rng.uniform(0.4, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 2.0)
        start = 0 if rng.random() < 0.5 else int(n_frames * rng.uniform(0.3, 0.6))
        step = np.where(np.arange(n_frames) < start, 1.0, rate)
        source_index = np.floor(np.concatenate([[0.0], np.cumsum(step[:-1])]) + 1e-9).astype(int)
    else:
        source_index = np.arange(n_frames)
    n_source = int(source_index[-1]) + 1

    if "splice" in steps:
        cut = int(round(n_source * rng.uniform(0.35, 0.65)))
        first = camera_capture(rng, n_frames=cut, width=width, height=height)
        if "rendered" in steps:
            second = rendered_animation(rng, n_frames=n_source - cut, width=width, height=height)
        else:
            second = _foreign_source(rng, n_frames=n_source - cut, width=width, height=height)
        frames = np.concatenate([first, second])
    elif "rendered" in steps:
        frames = rendered_animation(rng, n_frames=n_source, width=width, height=height)
    else:
        frames = camera_capture(rng, n_frames=n_source, width=width, height=height)
    frames = frames[source_index]

    if "double_compression" in steps:
        # First generation with an 8x8-DCT codec at a coarse fixed quantiser (a low bitrate
        # that rate control cannot lurch away from), decoded, and re-encoded later.
        first_pass = Format(codec="mpeg4", bits_per_pixel=0.1, quantizer=int(rng.integers(10, 19)))
        frames = recompress(frames, fps=fps, fmt=first_pass)
    order = [m for m in FAKE_MANIPULATIONS if m in steps]
    return frames, order


# ----------------------------------------------------------------------------- reposts


def repost(
    rng: np.random.Generator, frames: np.ndarray, *, fps: int
) -> tuple[np.ndarray, list[str]]:
    """A near-duplicate: one or two of trim, crop, rescale, watermark (applied in that order)."""
    n_frames, height, width = frames.shape[:3]
    spare = n_frames - int(np.ceil(MIN_DURATION_S * fps))
    candidates = [e for e in REPOST_EDITS if e != "trim" or spare >= 2]
    chosen = set(rng.choice(candidates, size=int(rng.integers(1, 3)), replace=False).tolist())
    out = frames
    if "trim" in chosen:
        cut = int(rng.integers(1, spare + 1))
        head = int(rng.integers(0, cut + 1))
        out = out[head : n_frames - (cut - head)]
    if "crop" in chosen:
        left, right, top, bottom = rng.uniform(0.03, 0.12, size=4)
        x0, y0 = int(left * width), int(top * height)
        new_w = _even(width - x0 - int(right * width))
        new_h = _even(height - y0 - int(bottom * height))
        out = out[:, y0 : y0 + new_h, x0 : x0 + new_w]
    if "rescale" in chosen:
        factor = rng.uniform(0.45, 0.85)
        size = (_even(out.shape[2] * factor), _even(out.shape[1] * factor))
        method = [Image.BILINEAR, Image.BICUBIC, Image.LANCZOS][int(rng.integers(3))]
        out = np.stack([np.asarray(Image.fromarray(f).resize(size, method)) for f in out])
    if "watermark" in chosen:
        out = watermark(rng, out)
    return np.ascontiguousarray(out), [e for e in REPOST_EDITS if e in chosen]


def _even(x: float) -> int:
    return max(16, int(x) // 2 * 2)


def watermark(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """Blend a small logo (a box with bars, like a channel name) into a corner of every frame."""
    height, width = frames.shape[1:3]
    box_w, box_h = max(12, int(width * rng.uniform(0.12, 0.22))), max(
        8, int(height * rng.uniform(0.07, 0.12))
    )
    margin = int(rng.integers(2, 10))
    x0 = margin if rng.random() < 0.5 else width - box_w - margin
    y0 = margin if rng.random() < 0.5 else height - box_h - margin
    logo = np.empty((box_h, box_w, 3), dtype=np.float32)
    logo[...] = rng.uniform(0, 255, size=3)
    bars = (np.arange(box_w) // max(2, box_w // 8)) % 2 == 0
    rows = slice(box_h // 4, box_h - box_h // 4)
    logo[rows, bars] = rng.uniform(0, 255, size=3)
    alpha = rng.uniform(0.5, 0.9)
    out = frames.copy()
    region = out[:, y0 : y0 + box_h, x0 : x0 + box_w].astype(np.float32)
    out[:, y0 : y0 + box_h, x0 : x0 + box_w] = (alpha * logo + (1 - alpha) * region + 0.5).astype(
        np.uint8
    )
    return out
