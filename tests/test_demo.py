"""Tests for the bundled demo corpus generator (lib/corpus/demo.py, lib/corpus/demo_media.py).

Small corpora (3–6 groups) generated into tmp folders; every file is decoded with PyAV.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import polars as pl
from polars.testing import assert_frame_equal
import pytest
from PIL import Image

import lib.corpus.demo as demo
import lib.corpus.demo_media as media
from lib.corpus.demo import generate_demo_corpus
from lib.corpus.ingest import build_manifest

N_GROUPS = 6
CODEC_OF_EXTENSION = {".mp4": "h264", ".webm": "vp9", ".avi": "mpeg4"}


# ----------------------------------------------------------------------------- helpers


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def frames_md5(path: Path) -> str:
    digest = hashlib.md5()
    for frame in decode_frames(path):
        digest.update(frame.tobytes())
    return digest.hexdigest()


def decodes_cleanly(path: Path) -> bool:
    """True when PyAV opens the file and decodes at least one frame without any error."""
    try:
        return len(decode_frames(path)) > 0
    except Exception:  # noqa: BLE001 - any failure means "not clean"
        return False


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    heights, widths = {f.shape[0] for f in frames}, {f.shape[1] for f in frames}
    assert len(heights) == 1 and len(widths) == 1, "frame size changes inside a file"
    return {
        "codec": codec,
        "fps": fps,
        "n_frames": len(frames),
        "width": widths.pop(),
        "height": heights.pop(),
    }


def luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def highpass_residual(y: np.ndarray) -> np.ndarray:
    """|y - 3x3 box mean of y|: what is left after removing the local average (noise, edges)."""
    padded = np.pad(y, 1, mode="edge")
    box = (
        sum(
            padded[dy : dy + y.shape[0], dx : dx + y.shape[1]] for dy in range(3) for dx in range(3)
        )
        / 9.0
    )
    return np.abs(y - box)


def median_residual(frames: np.ndarray) -> float:
    """Median over frames of the median |high-pass residual|: a robust noise estimate."""
    return float(np.median([np.median(highpass_residual(luma(f))) for f in frames]))


def blockiness_8x8(frames: np.ndarray) -> float:
    """Mean horizontal luma step across 8-pixel column boundaries over the mean step elsewhere."""
    steps = np.abs(np.diff(np.stack([luma(f) for f in frames]), axis=2)).mean(axis=(0, 1))
    column = np.arange(steps.size)
    return float(steps[column % 8 == 7].mean() / steps[column % 8 != 7].mean())


def good_rows(index: pl.DataFrame) -> pl.DataFrame:
    return index.filter(~pl.col("edits").str.starts_with("broken"))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    out = tmp_path_factory.mktemp("demo_a")
    return out, generate_demo_corpus(out, n_groups=N_GROUPS, seed=0)


@pytest.fixture(scope="module")
def corpus_again(tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    out = tmp_path_factory.mktemp("demo_b")
    return out, generate_demo_corpus(out, n_groups=N_GROUPS, seed=0)


@pytest.fixture(scope="module")
def probes(corpus) -> dict[str, dict]:
    out, index = corpus
    return {p: probe(out / p) for p in good_rows(index)["path"]}


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_index_and_decoded_frames(corpus, corpus_again):
    (out_a, index_a), (out_b, index_b) = corpus, corpus_again
    assert (out_a / "index.csv").read_bytes() == (out_b / "index.csv").read_bytes()
    assert_frame_equal(index_a, index_b)
    good = good_rows(index_a)
    # every original plus one repost per codec: covers all three encoders and the repost path
    sample = list(good.filter(pl.col("is_original"))["path"]) + list(
        good.filter(~pl.col("is_original")).group_by("codec", maintain_order=True).first()["path"]
    )
    assert len(sample) >= N_GROUPS + 2
    for name in sample:
        assert frames_md5(out_a / name) == frames_md5(out_b / name), name


def test_different_seed_gives_different_corpus(corpus, tmp_path):
    out_a, index_a = corpus
    index_c = generate_demo_corpus(tmp_path, n_groups=3, seed=1)
    originals_a = {frames_md5(out_a / p) for p in index_a.filter(pl.col("is_original"))["path"]}
    originals_c = {frames_md5(tmp_path / p) for p in index_c.filter(pl.col("is_original"))["path"]}
    assert originals_a.isdisjoint(originals_c)


# ----------------------------------------------------------------------------- table and files


def test_index_csv_matches_returned_table_and_folder(corpus):
    out, index = corpus
    assert list(index.columns[:5]) == ["path", "label", "group", "is_original", "platform"]
    assert_frame_equal(pl.read_csv(out / "index.csv", empty_string_is_null=False), index)
    assert all("/" not in p and (out / p).is_file() for p in index["path"])
    own_files = {p.name for p in out.iterdir() if p.name != "index.csv"}
    assert own_files == set(index["path"])  # nothing unlisted, no temporary leftovers


def test_platforms_are_named_re_encode_their_own_way_and_the_demo_format_reads_them(corpus):
    out, index = corpus
    assert set(index["platform"]) <= set(demo.PLATFORMS)
    manifest, _ = build_manifest("demo", out, label_map={"real": "real", "fake": "fake"}, keep_labels=None,
                                 label_precedence=[], folder_group="video", allow_file_urls=None)  # fmt: skip
    assert sorted(manifest["platform"]) == sorted(index["platform"])
    homes = [demo._draw_platform(seed=0, group=g, copy=0, original_platform=None) for g in range(400)]
    share = {p: homes.count(p) / len(homes) for p in demo.PLATFORMS}
    assert share["chirp"] < 0.2 < min(share["tube"], share["book"])  # a small third platform
    same = [demo._draw_platform(seed=0, group=g, copy=1, original_platform=h) == h
            for g, h in enumerate(homes)]  # fmt: skip
    assert 0.6 < np.mean(same) < 0.95  # reposts mostly stay on their original's platform
    for platform, (_, mix, _) in demo.PLATFORMS.items():  # each platform's own codec mix
        codecs = {demo._draw_format(seed=0, group=g, copy=1, original=False, platform=platform).codec
                  for g in range(60)}  # fmt: skip
        assert codecs == {c for c, p in mix.items() if p > 0}, platform


def test_groups_have_two_to_four_files_one_original_and_balanced_labels(corpus):
    _, index = corpus
    per_group = index.group_by("group").agg(
        pl.len(), pl.col("is_original").sum(), pl.col("label").n_unique().alias("n_labels"),
        pl.col("label").first()).sort("group")  # fmt: skip
    assert per_group["group"].to_list() == list(range(N_GROUPS))
    assert per_group["len"].is_between(2, 4).all()
    assert (per_group["is_original"] == 1).all()
    assert (per_group["n_labels"] == 1).all()
    group_labels = per_group["label"]
    assert set(group_labels) == {"real", "fake"}
    assert (group_labels == "real").sum() == (group_labels == "fake").sum() == N_GROUPS // 2
    assert (index.filter(pl.col("label") == "real")["manipulation"] == "none").all()
    assert (index.filter(pl.col("label") == "fake")["manipulation"] != "none").all()


def test_good_files_decode_with_small_size_and_two_to_four_seconds(corpus, probes):
    _, index = corpus
    good = good_rows(index)
    assert len(probes) == len(good) >= 2 * N_GROUPS - 3
    for row in good.iter_rows(named=True):
        info = probes[row["path"]]
        assert info["width"] <= 320 and info["height"] <= 240, row["path"]
        assert info["width"] % 2 == 0 and info["height"] % 2 == 0, row["path"]
        assert info["fps"] in (15.0, 24.0, 25.0), row["path"]
        assert 2.0 <= info["n_frames"] / info["fps"] <= 4.0, (row["path"], info)
        assert info["codec"] == CODEC_OF_EXTENSION[Path(row["path"]).suffix] == row["codec"], row[
            "path"
        ]


def test_all_three_codecs_and_containers_appear(corpus, probes):
    _, index = corpus
    assert {Path(p).suffix for p in probes} == {".mp4", ".webm", ".avi"}
    assert {info["codec"] for info in probes.values()} == {"h264", "vp9", "mpeg4"}


def test_broken_files_are_planted_and_do_not_decode(corpus):
    out, index = corpus
    broken = index.filter(pl.col("edits").str.starts_with("broken"))
    path_of = dict(broken.select("edits", "path").iter_rows())
    assert sorted(path_of) == ["broken:empty", "broken:text", "broken:truncated"]
    assert not broken["is_original"].any()
    assert all(Path(p).suffix == ".mp4" for p in broken["path"])
    assert (out / path_of["broken:empty"]).stat().st_size == 0
    text = (out / path_of["broken:text"]).read_bytes()
    assert text.decode("utf-8").lstrip().lower().startswith("<!doctype html")
    truncated = (out / path_of["broken:truncated"]).read_bytes()
    assert truncated[4:8] == b"ftyp" and len(truncated) > 1000  # the start of a real mp4
    for name in broken["path"]:
        assert not decodes_cleanly(out / name), name
    # each broken file carries its group's label
    group_label = dict(index.filter(pl.col("is_original")).select("group", "label").iter_rows())
    assert broken["label"].to_list() == [group_label[g] for g in broken["group"]]


def test_reposts_are_near_duplicates_of_their_own_original(corpus):
    """A repost's middle frame matches some frame of its own original better than any other's."""
    out, index = corpus
    good = good_rows(index)

    def thumbnails(path: Path) -> np.ndarray:
        rows = []
        for frame in decode_frames(path):
            t = np.asarray(
                Image.fromarray(frame).convert("L").resize((16, 12), Image.BILINEAR),
                dtype=np.float32,
            )
            t = t.ravel() - t.mean()
            rows.append(t / (np.linalg.norm(t) + 1e-6))
        return np.stack(rows)

    originals = {r["group"]: thumbnails(out / r["path"])
                 for r in good.filter(pl.col("is_original")).iter_rows(named=True)}  # fmt: skip
    reposts = good.filter(~pl.col("is_original"))
    assert len(reposts) >= N_GROUPS
    for row in reposts.iter_rows(named=True):
        probe_thumb = thumbnails(out / row["path"])
        middle = probe_thumb[len(probe_thumb) // 2]
        own = float((originals[row["group"]] @ middle).max())
        other = max(
            float((thumbs @ middle).max()) for g, thumbs in originals.items() if g != row["group"]
        )
        # crop+watermark of a scene with little detail is the weakest match
        assert own > 0.55 and own > other + 0.1, (row["path"], row["edits"], own, other)
    edits = set("+".join(reposts["edits"]).split("+"))
    assert edits <= set(media.REPOST_EDITS) and len(edits) >= 3


def test_format_and_shape_do_not_depend_on_the_label(corpus, probes, tmp_path, monkeypatch):
    """Flip every label: codecs, containers, edits, sizes, frame rates and lengths stay the same."""
    out, index = corpus
    original_assign = demo._assign_labels

    def flipped(*, n_groups, seed):
        return [
            "fake" if label == "real" else "real"
            for label in original_assign(n_groups=n_groups, seed=seed)
        ]

    monkeypatch.setattr(demo, "_assign_labels", flipped)
    flipped_index = generate_demo_corpus(tmp_path, n_groups=N_GROUPS, seed=0)
    assert (flipped_index["label"] != index["label"]).all()
    label_blind = ["path", "group", "is_original", "platform", "codec", "edits"]
    assert_frame_equal(flipped_index.select(label_blind), index.select(label_blind))
    for name, info in probes.items():
        assert probe(tmp_path / name) == info, name


# ----------------------------------------------------------------------------- class signal


def test_real_and_fake_differ_in_highpass_residual_on_average(corpus):
    """The 3x3 high-pass luma residual is larger for real videos than for fakes on average.

    Per file: the median over pixels of |luma - 3x3 mean| on 6 frames spread over the video
    (the median ignores the sparse edges and block borders that the mean also counts), then
    averaged per class. It separates the classes on average, not file by file: a single
    statistic is not meant to split them.
    """
    out, index = corpus
    good = good_rows(index)

    def residual_level(path: Path) -> float:
        frames = decode_frames(path)
        chosen = np.linspace(0, len(frames) - 1, 6).astype(int)
        return float(np.mean([np.median(highpass_residual(luma(frames[i]))) for i in chosen]))

    good = good.with_columns(residual=pl.Series([residual_level(out / p) for p in good["path"]]))
    per_class = dict(good.group_by("label").agg(pl.col("residual").mean()).iter_rows())
    assert per_class["real"] > 1.25 * per_class["fake"], per_class


def test_camera_captures_carry_sensor_noise_and_rendered_content_does_not():
    for seed in range(4):
        noisy = media.camera_capture(np.random.default_rng(seed), n_frames=3, width=160, height=120)
        clean = media.camera_capture(
            np.random.default_rng(seed), n_frames=3, width=160, height=120, sigma=0.0
        )
        # same scene and motion (same rng stream); only the default sensor noise differs
        assert median_residual(noisy) > 1.3, seed
        assert median_residual(noisy) > median_residual(clean) + 0.8, seed
        # fresh noise in every frame, not one fixed pattern
        assert not np.array_equal(noisy[1].astype(int) - clean[1], noisy[2].astype(int) - clean[2])
    rendered = media.rendered_animation(np.random.default_rng(0), n_frames=4, width=160, height=120)
    assert median_residual(rendered) < 0.3


def colour_summary(clip: np.ndarray) -> tuple[np.ndarray, float, float]:
    """At a thumbnail's size (16x12, as small models see it, roughly): the clip's mean chroma
    (each channel minus the pixel's grey), the chroma spread inside its frames, its mean grey."""
    small = np.stack(
        [np.asarray(Image.fromarray(f).resize((16, 12), Image.BOX), np.float32) for f in clip]
    )
    grey = small.mean(axis=-1, keepdims=True)
    chroma = small - grey
    return chroma.mean(axis=(0, 1, 2)), float(chroma.reshape(-1, 3).std(axis=0).mean()), grey.mean()


def test_no_colour_cast_or_exposure_of_a_videos_own():
    """A video's overall colour says nothing about its group or label; colour inside frames stays.

    Per kind (camera captures, renders, fakes of every recipe; 12 seeds each): the spread
    between videos of the mean chroma must stay small beside the chroma spread inside their
    frames, and captures, renders and fakes must share one mean brightness. A random colour
    cast per scene (a tint per group, as the generator once drew) gives a spread between
    videos of the same order as the one inside frames, and darker captures than renders.
    """
    makers = {
        "capture": lambda rng: media.camera_capture(rng, n_frames=2, width=96, height=72),
        "render": lambda rng: media.rendered_animation(rng, n_frames=2, width=96, height=72),
        "fake": lambda rng: media.fake_video(rng, n_frames=6, width=96, height=72, fps=15)[0],
    }
    brightness = {}
    for kind, make in makers.items():
        summaries = [colour_summary(make(np.random.default_rng(seed))) for seed in range(12)]
        between = float(np.stack([s[0] for s in summaries]).std(axis=0).mean())
        within = float(np.mean([s[1] for s in summaries]))
        assert within > 5.0, (kind, within)  # colour still varies inside frames
        assert between < 0.25 * within, (kind, between, within)
        brightness[kind] = float(np.mean([s[2] for s in summaries]))
    assert max(brightness.values()) - min(brightness.values()) < 12.0, brightness


def test_double_compression_leaves_8x8_blocking():
    rng = np.random.default_rng(1)
    frames = media.camera_capture(rng, n_frames=12, width=256, height=192, sigma=4.0)
    first_pass = media.Format(codec="mpeg4", bits_per_pixel=0.1, quantizer=8)
    recompressed = media.recompress(frames, fps=15, fmt=first_pass)
    assert recompressed.shape == frames.shape
    assert blockiness_8x8(frames) < 1.1
    assert blockiness_8x8(recompressed) > 1.3


# ----------------------------------------------------------------------------- reruns


def test_rerun_overwrites_own_files_and_keeps_foreign_ones(tmp_path):
    generate_demo_corpus(tmp_path, n_groups=3, seed=5)
    (tmp_path / "notes.txt").write_text("not ours")
    assert any(p.name.startswith("g002-") for p in tmp_path.iterdir())
    index = generate_demo_corpus(tmp_path, n_groups=2, seed=5, plant_broken=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == set(index["path"]) | {"index.csv", "notes.txt"}
    assert not any(name.startswith(("g002-", ".tmp-")) for name in names)
    assert not index["edits"].str.starts_with("broken").any()
    assert_frame_equal(pl.read_csv(tmp_path / "index.csv", empty_string_is_null=False), index)


def test_rejects_fewer_than_two_groups(tmp_path):
    with pytest.raises(ValueError, match="n_groups"):
        generate_demo_corpus(tmp_path, n_groups=1, seed=0)
