"""Independent low-detail videos: the content on which a perceptual-hash audit invents pairs.

Plain or gradient backgrounds carry little of what tells two videos apart, so the frames of
unrelated videos hash alike. Every video here is drawn from its own random numbers (nothing
is copied between two of them unless a repost is asked for), in one of these kinds:

- ``plain``: a plain background with one to three bright objects moving across it;
- ``gradient``: the same over a two-colour linear gradient;
- ``logo``: a channel's plain set (one colour per channel) with moving objects and the
  channel's logo in a corner (every video of a channel has the same set and logo);
- ``ticker``: a plain scene with a moving object above a news ticker (text scrolling in a
  band of the channel's colour);
- ``screen``: a screen recording of one application (one layout per application: title
  bar, side panel, window colours) whose text scrolls or is typed while a cursor moves;
- ``slides``: text slides of one theme (title and bullet lines) changing every second or so;
- ``signer`` (WLASL-style): a figure with moving arms and hands signing a gloss on the plain
  background of its studio. A signer always stands in the same studio, so two recordings of
  one signer are the same background, body and clothes: different videos all the same.

A *group* is what the videos of one channel, application, theme or signer share (the
annotated duplicate group a corpus would give them); a *source* is the footage a video is
cut from: each video its own, a repost its original's. A pair of videos with different
sources shares no footage: any such pair an audit reports is false.

Reposts (:data:`REPOSTS`) of some videos check that the audit still finds copies of
low-detail content. Frames are tiny (``width`` x ``height``) and short, written with
:class:`lib.io.writer.VideoWriter`; everything is drawn from ``seed``, so the same
arguments give the same frames and tables.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lib import schemas
from lib.io.writer import VideoWriter
from lib.utils import stable_seed

__all__ = [
    "KINDS",
    "REPOSTS",
    "low_detail_corpus",
    "signer_corpus",
    "video_frames",
    "videos_table",
]

KINDS = ("plain", "gradient", "logo", "ticker", "screen", "slides", "signer")
REPOSTS = ("crf35", "crop10", "hflip", "trim_half", "watermark")
WIDTH, HEIGHT, FPS = 128, 96, 10
_FONT = np.random.default_rng(2024).random((40, 5, 4)) < 0.45  # one font: 40 glyphs of 5x4


# ----------------------------------------------------------------------------- drawing
def _colour(rng, saturation=(0.3, 0.9), value=(0.3, 0.95), hue=(0.0, 1.0)) -> np.ndarray:
    hsv = (rng.uniform(*hue), rng.uniform(*saturation), rng.uniform(*value))
    return np.array(colorsys.hsv_to_rgb(*hsv), dtype=np.float32) * 255


def _blend(canvas, mask, colour) -> None:
    canvas += mask[..., None] * (np.asarray(colour, dtype=np.float32) - canvas)


def _grid(height, width):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return x, y


def _ellipse(canvas, cx, cy, rx, ry, colour) -> None:
    x, y = _grid(*canvas.shape[:2])
    d = np.sqrt(((x - cx) / max(rx, 0.5)) ** 2 + ((y - cy) / max(ry, 0.5)) ** 2)
    _blend(canvas, np.clip((1 - d) * min(rx, ry) + 0.5, 0, 1), colour)


def _rect(canvas, x0, y0, x1, y1, colour, alpha=1.0) -> None:
    x, y = _grid(*canvas.shape[:2])
    inside = np.clip(np.minimum(np.minimum(x - x0, x1 - x), np.minimum(y - y0, y1 - y)) + 0.5, 0, 1)
    _blend(canvas, inside * alpha, colour)


def _segment(canvas, p, q, width, colour) -> None:
    x, y = _grid(*canvas.shape[:2])
    (px, py), (qx, qy) = p, q
    dx, dy = qx - px, qy - py
    t = np.clip(((x - px) * dx + (y - py) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
    d = np.hypot(x - px - t * dx, y - py - t * dy)
    _blend(canvas, np.clip(width / 2 - d + 0.5, 0, 1), colour)


def _text(canvas, x0, y0, words, scale, colour) -> None:
    """Words (lists of glyph numbers) in the corpus's one font, left to right from (x0, y0)."""
    height, width = canvas.shape[:2]
    x = int(x0)
    for word in words:
        for glyph in word:
            bitmap = np.kron(_FONT[glyph % len(_FONT)], np.ones((scale, scale), dtype=bool))
            h, w = bitmap.shape
            ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x, 0), min(x + w, width))
            if ys.start < ys.stop and xs.start < xs.stop:
                part = bitmap[ys.start - y0 : ys.stop - y0, xs.start - x : xs.stop - x]
                canvas[ys, xs][part] = colour
            x += w + scale
        x += 3 * scale
        if x >= width:
            break


def _words(rng, n_words, length=(2, 7)) -> list[list[int]]:
    return [list(rng.integers(0, len(_FONT), rng.integers(*length))) for _ in range(n_words)]


def _finish(frames: list[np.ndarray], rng, noise: float) -> np.ndarray:
    out = np.stack(frames)
    if noise:
        out = out + rng.normal(0, noise, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Group:
    """What the videos of one channel, application, theme or signer share."""

    kind: str
    seed: int

    def rng(self, *salt) -> np.random.Generator:
        return np.random.default_rng(stable_seed("low_detail_group", self.kind, self.seed, *salt))


def _background(rng, height, width, gradient: bool) -> np.ndarray:
    first = _colour(rng, value=(0.1, 0.9))
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[...] = first
    if gradient:
        second = _colour(rng, value=(0.1, 0.9))
        x, y = _grid(height, width)
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * x / width + np.sin(angle) * y / height + 1) / 2
        canvas += t[..., None] * (second - first)
    return canvas


def _movers(rng, height, width, n_frames):
    """One to three objects: shape, colour, size and a straight path bouncing off the edges."""
    movers = []
    for _ in range(int(rng.integers(1, 4))):
        size = rng.uniform(0.05, 0.14) * width
        start = rng.uniform([size, size], [width - size, height - size])
        velocity = rng.normal(0, 2.0, 2) * width / 128
        movers.append(
            (
                rng.choice(["disc", "square", "ring"]),
                _colour(rng, value=(0.7, 1.0)),
                size,
                start,
                velocity,
            )
        )
    for t in range(n_frames):
        placed = []
        for shape, colour, size, start, velocity in movers:
            pos = start + velocity * t
            span = np.array([width - 2 * size, height - 2 * size])
            pos = size + span - np.abs((pos - size) % (2 * span) - span)  # bounces off edges
            placed.append((shape, colour, size, pos))
        yield placed


def _moving_scene(rng, n_frames, background, overlay=None) -> np.ndarray:
    height, width = background.shape[:2]
    hole = background.mean(axis=(0, 1))
    frames = []
    for t, placed in enumerate(_movers(rng, height, width, n_frames)):
        canvas = background.copy()
        for shape, colour, size, (x, y) in placed:
            if shape == "square":
                _rect(canvas, x - size, y - size, x + size, y + size, colour)
            else:
                _ellipse(canvas, x, y, size, size, colour)
                if shape == "ring":
                    _ellipse(canvas, x, y, size * 0.55, size * 0.55, hole)
        if overlay is not None:
            overlay(canvas, t)
        frames.append(canvas)
    return _finish(frames, rng, noise=rng.uniform(0, 3))


def _logo(group: Group, height, width):
    rng = group.rng("logo")
    box_w, box_h = int(width * rng.uniform(0.12, 0.2)), int(height * rng.uniform(0.08, 0.14))
    x0 = 4 if rng.random() < 0.5 else width - box_w - 4
    y0 = 4 if rng.random() < 0.5 else height - box_h - 4
    colours = _colour(rng, value=(0.8, 1.0)), _colour(rng, value=(0.1, 0.4))
    glyphs = _words(rng, 1, (2, 4))

    def draw(canvas, t):
        _rect(canvas, x0, y0, x0 + box_w, y0 + box_h, colours[0], alpha=0.85)
        _text(canvas, x0 + 2, y0 + max(1, (box_h - 5) // 2), glyphs, 1, colours[1])

    return draw


def _ticker(group: Group, rng, height, width):
    band_colour, text_colour = _colour(group.rng("band"), value=(0.1, 0.4)), 235.0
    band = int(height * 0.18)
    words = _words(rng, 12)
    speed = rng.uniform(1.5, 3.0)

    def draw(canvas, t):
        canvas[height - band :] = band_colour
        _text(
            canvas, int(width - speed * t), height - band + (band - 5) // 2, words, 1, text_colour
        )

    return draw


def _screen(group: Group, rng, n_frames, height, width) -> np.ndarray:
    look = group.rng("app")
    window, ink = _colour(look, (0.0, 0.1), (0.85, 1.0)), _colour(look, (0.0, 0.3), (0.0, 0.3))
    bar, panel = _colour(look, value=(0.2, 0.6)), _colour(look, (0.0, 0.2), (0.6, 0.85))
    bar_h, panel_w = int(height * look.uniform(0.08, 0.14)), int(width * look.uniform(0.15, 0.3))
    lines = [_words(rng, int(rng.integers(2, 6))) for _ in range(40)]
    typing, speed = rng.random() < 0.5, rng.uniform(0.5, 1.5)
    cursor = rng.uniform([panel_w, bar_h], [width, height])
    frames = []
    for t in range(n_frames):
        canvas = np.empty((height, width, 3), dtype=np.float32)
        canvas[...] = window
        shown = lines[: 1 + int(t * speed / 2)] if typing else lines
        top = bar_h + 3 - (0 if typing else int(t * speed))
        for i, line in enumerate(shown):
            y = top + 8 * i
            if bar_h <= y < height - 5:
                _text(canvas, panel_w + 3, y, line, 1, ink)
        _rect(canvas, 0, bar_h, panel_w, height, panel)
        _rect(canvas, 0, 0, width, bar_h, bar)
        cursor = np.clip(cursor + rng.normal(0, 3, 2), 0, [width - 3, height - 5])
        _segment(canvas, cursor, cursor + [2, 5], 2, 10)
        frames.append(canvas)
    return _finish(frames, rng, noise=0)


def _slides(group: Group, rng, n_frames, height, width) -> np.ndarray:
    theme = group.rng("theme")
    background = _background(theme, height, width, gradient=theme.random() < 0.5)
    ink, accent = 255.0 if theme.random() < 0.5 else 20.0, _colour(theme, value=(0.6, 1.0))
    per_slide = int(rng.integers(8, 15))
    frames, slide = [], None
    for t in range(n_frames):
        if t % per_slide == 0:
            slide = background.copy()
            _text(slide, 6, 6, _words(rng, 3, (3, 6)), 2, accent)
            for i in range(int(rng.integers(2, 6))):
                _rect(slide, 8, 24 + 12 * i, 11, 27 + 12 * i, accent)
                _text(slide, 15, 23 + 12 * i, _words(rng, int(rng.integers(2, 5))), 1, ink)
        frames.append(slide)
    return _finish(frames, rng, noise=rng.uniform(0, 2))


@dataclass(frozen=True)
class Signer:
    """A signer in their studio: the studio's background, the body, clothes and skin."""

    background: np.ndarray
    shirt: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    scale: float
    centre: float  # x of the body, as a share of the width

    @classmethod
    def draw(cls, rng) -> "Signer":
        return cls(
            background=_colour(rng, (0.0, 0.5), (0.15, 0.9)),
            shirt=_colour(rng, (0.0, 0.8), (0.05, 0.6)),
            skin=_colour(rng, (0.25, 0.6), (0.3, 0.95), hue=(0.02, 0.11)),
            hair=_colour(rng, (0.0, 0.6), (0.05, 0.4)),
            scale=rng.uniform(0.85, 1.1),
            centre=rng.uniform(0.42, 0.58),
        )


def gloss_path(gloss: int, n_keys: int = 4) -> np.ndarray:
    """A gloss: the key positions of both hands in the signing space (shares of the
    frame's size, x relative to the body's centre): ``float[n_keys, 2 hands, 2]``."""
    rng = np.random.default_rng(stable_seed("gloss", gloss))
    strong = rng.uniform([-0.25, 0.25], [0.2, 0.72], (n_keys, 2))
    weak = rng.uniform([-0.05, 0.35], [0.28, 0.8], (n_keys, 2))
    weak[:, 0] = np.where(rng.random(n_keys) < 0.5, -strong[:, 0], weak[:, 0])  # symmetric
    return np.stack([strong, weak * [-1, 1]], axis=1)


def _signer_frames(signer: Signer, gloss: int, rng, n_frames, height, width) -> np.ndarray:
    """One recording of ``signer`` signing ``gloss``: rest, the keys (jittered, held a
    little), rest; the camera shifts a pixel or two and the light varies between takes."""
    s, cx = signer.scale, signer.centre * width + rng.normal(0, 1.5)
    keys = gloss_path(gloss) + rng.normal(0, 0.03, (4, 2, 2))
    sleeve = np.minimum(signer.shirt * 1.3 + 12, 255)  # lit from the front
    shoulders = np.array(
        [[cx - 0.15 * width * s, 0.58 * height], [cx + 0.15 * width * s, 0.58 * height]]
    )
    rest = np.array([[cx - 0.2 * width * s, 1.02 * height], [cx + 0.2 * width * s, 1.02 * height]])
    points = (
        [rest]
        + [np.stack([cx + k[:, 0] * width * s, k[:, 1] * height], axis=1) for k in keys]
        + [rest]
    )
    lead, tail = rng.uniform(0.12, 0.25, 2)
    times = np.concatenate([[0.0], np.linspace(lead, 1 - tail, len(keys)), [1.0]])
    light = rng.uniform(0.94, 1.06)
    background = np.empty((height, width, 3), dtype=np.float32)
    background[...] = signer.background
    background *= (1 - 0.08 * np.linspace(0, 1, height))[:, None, None]  # studio light falls off
    _ellipse(background, cx, 1.05 * height, 0.22 * width * s, 0.5 * height, signer.shirt)
    _rect(background, cx - 0.03 * width, 0.4 * height, cx + 0.03 * width, 0.6 * height, signer.skin)
    _ellipse(background, cx, 0.3 * height, 0.09 * width * s, 0.14 * height * s, signer.skin)
    _ellipse(background, cx, 0.2 * height, 0.09 * width * s, 0.07 * height * s, signer.hair)
    frames = []
    for t in np.linspace(0, 1, n_frames):
        u = np.interp(t, times, np.arange(len(times)))
        k = min(int(u), len(points) - 2)
        w = np.clip((u - k) * 1.4 - 0.2, 0, 1)  # hold each key a little
        w = w * w * (3 - 2 * w)
        hands = points[k] * (1 - w) + points[k + 1] * w
        canvas = background.copy()
        for side in (0, 1):
            shoulder, hand = shoulders[side], hands[side]
            bend = np.array([-1.0, 0.0]) if side == 0 else np.array([1.0, 0.0])
            elbow = (shoulder + hand) / 2 + bend * 0.08 * width * s + [0, 0.05 * height]
            for a, b, thick in ((shoulder, elbow, 0.075), (elbow, hand, 0.06)):
                _segment(canvas, a, b, thick * width * s + 2, signer.shirt * 0.6)  # outline
                _segment(canvas, a, b, thick * width * s, sleeve)
            _ellipse(canvas, hand[0], hand[1], 0.045 * width * s, 0.055 * height * s, signer.skin)
        frames.append(canvas * light)
    return _finish(frames, rng, noise=rng.uniform(1, 3))


def video_frames(
    kind: str,
    group: Group,
    rng: np.random.Generator,
    *,
    n_frames: int,
    height: int = HEIGHT,
    width: int = WIDTH,
    gloss: int = 0,
) -> np.ndarray:
    """The frames (``uint8[n, height, width, 3]``) of one new video of ``kind`` in ``group``,
    drawn from ``rng`` (``gloss``: what a signer signs)."""
    if kind in ("plain", "gradient"):
        background = _background(rng, height, width, gradient=kind == "gradient")
        return _moving_scene(rng, n_frames, background)
    if kind == "logo":  # the channel's set (one colour for all its videos) and logo
        background = _background(group.rng("set"), height, width, gradient=False)
        return _moving_scene(rng, n_frames, background, _logo(group, height, width))
    if kind == "ticker":
        background = _background(rng, height, width, gradient=False)
        return _moving_scene(rng, n_frames, background, _ticker(group, rng, height, width))
    if kind == "screen":
        return _screen(group, rng, n_frames, height, width)
    if kind == "slides":
        return _slides(group, rng, n_frames, height, width)
    if kind == "signer":
        return _signer_frames(Signer.draw(group.rng("signer")), gloss, rng, n_frames, height, width)
    raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")


# ----------------------------------------------------------------------------- reposts
def repost(name: str, frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The frames of a repost of ``frames`` (:data:`REPOSTS`) and the CRF to encode it with."""
    from lib.corpus.demo_media import watermark

    n, height, width = frames.shape[:3]
    if name == "crf35":
        return frames, 35
    if name == "crop10":  # 10% of the width and of the height cut, split at random
        x0, y0 = (rng.uniform(0, 0.1, 2) * [width, height]).astype(int)
        return frames[:, y0 : y0 + int(0.9 * height), x0 : x0 + int(0.9 * width)], 23
    if name == "hflip":
        return frames[:, :, ::-1], 23
    if name == "trim_half":
        return frames[n // 4 : n // 4 + n // 2], 23
    if name == "watermark":
        return watermark(rng, frames), 23
    raise ValueError(f"unknown repost {name!r}; one of {REPOSTS}")


def write_video(path: Path, frames: np.ndarray, crf: int = 23) -> None:
    """Encode ``frames`` at :data:`FPS` (x264, ``crf``) into ``path``."""
    with VideoWriter(path, fps=FPS, crf=crf, threads=1) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))


def _n_frames(rng) -> int:
    return int(rng.integers(30, 46))  # 3 to 4.5 s at FPS


# ----------------------------------------------------------------------------- corpora
def low_detail_corpus(
    folder: str | Path,
    *,
    kinds: tuple[str, ...] = KINDS,
    n_groups: int = 2,
    videos_per_group: int = 3,
    n_reposts: int = 0,
    seed: int = 0,
    height: int = HEIGHT,
    width: int = WIDTH,
) -> pl.DataFrame:
    """Write ``n_groups`` groups of ``videos_per_group`` independent videos of every kind
    into ``folder``, plus ``n_reposts`` reposts (one per original, taken in turn from the
    kinds and through :data:`REPOSTS`).

    Returns the index: ``video_id, path, kind, group, source, repost, label`` (``source``:
    the video whose footage it is, its own id but for reposts; ``label``: by group).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, originals = [], []
    for kind in kinds:
        for g in range(n_groups):
            group = Group(kind, stable_seed("low_detail", seed, g))
            for v in range(videos_per_group):
                rng = np.random.default_rng(stable_seed("low_detail_video", seed, kind, g, v))
                frames = video_frames(
                    kind, group, rng, n_frames=_n_frames(rng), height=height, width=width, gloss=v
                )
                video_id = f"{kind}{g}-{v}"
                write_video(folder / f"{video_id}.mp4", frames)
                rows.append(
                    {
                        "video_id": video_id,
                        "kind": kind,
                        "group": f"{kind}{g}",
                        "source": video_id,
                        "repost": "",
                    }
                )
                originals.append((rows[-1], frames))
    order = sorted(range(len(originals)), key=lambda i: (i % videos_per_group, i))
    for r in range(n_reposts):
        original, frames = originals[order[r % len(order)]]
        name = REPOSTS[r % len(REPOSTS)]
        rng = np.random.default_rng(stable_seed("low_detail_repost", seed, r))
        out, crf = repost(name, frames, rng)
        video_id = f"{original['video_id']}-{name}"
        write_video(folder / f"{video_id}.mp4", out, crf)
        rows.append(original | {"video_id": video_id, "repost": name})
    index = pl.DataFrame(rows)
    return index.with_columns(
        path=pl.lit(str(folder) + "/") + pl.col("video_id") + ".mp4",
        label=pl.when(pl.col("group").rank("dense") % 2 == 0)
        .then(pl.lit("fake"))
        .otherwise(pl.lit("real")),
    ).select("video_id", "path", "kind", "group", "source", "repost", "label")


def signer_corpus(
    folder: str | Path,
    *,
    n_signers: int,
    n_glosses: int,
    takes: int,
    seed: int = 0,
    height: int = HEIGHT,
    width: int = WIDTH,
) -> pl.DataFrame:
    """A WLASL-style corpus: every signer (each in their own studio) signs every gloss
    ``takes`` times, each take a new recording. Returns ``video_id, path, signer, gloss``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(n_signers):
        group = Group("signer", stable_seed("signer", seed, s))
        for g in range(n_glosses):
            for take in range(takes):
                rng = np.random.default_rng(stable_seed("signer_take", seed, s, g, take))
                frames = video_frames(
                    "signer",
                    group,
                    rng,
                    n_frames=_n_frames(rng),
                    height=height,
                    width=width,
                    gloss=g,
                )
                video_id = f"s{s}-gloss{g}-{take}"
                write_video(folder / f"{video_id}.mp4", frames)
                rows.append(
                    {
                        "video_id": video_id,
                        "path": str(folder / f"{video_id}.mp4"),
                        "signer": f"signer{s}",
                        "gloss": f"gloss{g}",
                    }
                )
    return pl.DataFrame(rows)


def videos_table(index: pl.DataFrame, *, label: str, group: str) -> pl.DataFrame:
    """A ``videos`` table of a generated corpus as validate would write it: ``label`` and
    ``group`` name the index's columns to use, other columns of the table the index has
    (``valid``, ``reason``, ``is_original``...) are kept, the rest filled in (every video
    valid, an original)."""
    kept = [
        c
        for c in schemas.TABLES["videos"]
        if c in index.columns and c not in ("label", "dup_group")
    ]
    videos = index.select(
        *kept, pl.col(label).alias("label"), pl.col(group).cast(pl.String).alias("dup_group")
    )
    defaults = {"str": "", "int": 0, "float": 0.0, "bool": False}
    for column, kind in schemas.TABLES["videos"].items():
        if column not in videos.columns:
            value = True if column in ("valid", "is_original") else defaults[kind]
            videos = videos.with_columns(pl.lit(value).alias(column))
    return schemas.conform(videos, "videos")
