"""The leak audit: frame signatures, the LSH matcher, content groups and the leak report.

The demo tests score the matcher against the demo generator's ground truth (which file is a
repost of which original); they print recall and precision (`pytest -s` shows them).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lib import schemas
from lib.audit.groups import fold_groups, regroup
from lib.audit.leaks import audit
from lib.audit.near_duplicates import (
    candidate_pairs,
    find_near_duplicates,
    signature_arrays,
    verify_pairs,
)
from lib.config import load_schema, with_defaults
from lib.evaluate.folds import assign_folds, check_folds
from lib.shards import Shard
from lib.audit.signatures import VARIANTS, decode_hashes, encode_hashes, frame_hashes, strip_flat_borders
from lib.stages.signatures import signatures_shard

#: The signature and matching parameters of a config that sets none (the schema's defaults).
DEFAULTS = with_defaults({}, load_schema())
HASHING = {"min_std": DEFAULTS["signatures"]["min_std"]}
MATCH = DEFAULTS["near_duplicates"]
INDEX = {k: MATCH[k] for k in ("threshold", "band_bits", "n_bands", "max_neighbours")}
BOUNDS = {k: MATCH[k] for k in ("threshold", "min_matched_frames", "min_matched_fraction")}


# ----------------------------------------------------------------------------- frames
def textured_frame(seed: int, height: int = 120, width: int = 160) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 10, width // 10, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


def test_mirrored_variants_are_the_hashes_of_the_mirrored_frame():
    frame = textured_frame(1)
    upright, mirrored = frame_hashes(frame, **HASHING), frame_hashes(frame[:, ::-1].copy(), **HASHING)
    assert len(upright) == len(VARIANTS) == 6
    swapped = np.concatenate([mirrored[3:], mirrored[:3]])
    assert np.bitwise_count(upright ^ swapped).max() <= 4  # resampling is not mirror-exact


def test_flat_frames_are_not_hashed_and_bars_are_cut():
    assert frame_hashes(np.zeros((90, 120, 3), np.uint8), **HASHING) is None
    frame = textured_frame(2)
    boxed = np.zeros((160, 160, 3), np.uint8)
    boxed[20:140] = frame[:, :160]
    assert strip_flat_borders(boxed[..., 0]).shape == (120, 160)
    distance = np.bitwise_count(frame_hashes(boxed, **HASHING) ^ frame_hashes(frame, **HASHING))
    assert distance.max() <= 4, distance


def test_hashes_round_trip_through_text():
    rows = [frame_hashes(textured_frame(s), **HASHING) for s in range(3)]
    assert (decode_hashes(encode_hashes(rows)) == np.array(rows)).all()


# ----------------------------------------------------------------------------- matcher
def synthetic_signatures(n_videos: int, n_frames: int, seed: int):
    """Random frame hashes, plus copies: video 2i+1 is a noisy trimmed copy of video 2i for
    the first ``n_videos // 10`` pairs."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=(n_videos, n_frames, 6), dtype=np.uint64)
    counts = np.full(n_videos, n_frames)
    planted = []
    for i in range(0, n_videos // 5, 2):
        segment = hashes[i, n_frames // 3 : 2 * n_frames // 3]  # a middle third
        flips = rng.integers(0, 64, size=(len(segment), 6, 4)).astype(np.uint64)
        noise = np.bitwise_or.reduce(np.uint64(1) << flips, axis=2)  # up to 4 bits
        hashes[i + 1] = 0
        hashes[i + 1, : len(segment)] = segment ^ noise
        counts[i + 1] = len(segment)
        planted.append((i, i + 1))
    return hashes, counts, planted


def brute_force(hashes, counts, **params):
    n = len(hashes)
    every = np.array([(a, b) for a in range(n) for b in range(a + 1, n)])
    found = verify_pairs(hashes, counts, every, **(BOUNDS | params))
    return set(zip(found["a"], found["b"]))


def test_index_finds_what_comparing_all_pairs_finds():
    hashes, counts, planted = synthetic_signatures(300, 12, seed=3)
    truth = brute_force(hashes, counts)
    assert truth == set(planted)  # trimmed, noisy copies match; random videos never do
    candidates = candidate_pairs(hashes, counts, **INDEX, random_state=0)
    assert set(map(tuple, candidates)) >= truth
    assert len(candidates) < 300 * 299 / 2 / 100  # the index did not propose everything


def test_a_mirrored_copy_matches_through_the_mirrored_hashes():
    frames = [textured_frame(s) for s in range(8)]
    original = np.array([frame_hashes(f, **HASHING) for f in frames])
    mirrored = np.array([frame_hashes(f[:, ::-1].copy(), **HASHING) for f in frames])
    other = np.array([frame_hashes(textured_frame(100 + s), **HASHING) for s in range(8)])
    sig = pl.DataFrame({"video_id": ["a", "b", "c"], "status": "ok", "reason": "",
                        "frames": 8, "frame_index": "",
                        "hashes": [encode_hashes(list(h)) for h in (original, mirrored, other)]})  # fmt: skip
    pairs = find_near_duplicates(sig, **MATCH, random_state=0)
    assert list(zip(pairs["video_a"], pairs["video_b"], pairs["flipped"])) == [("a", "b", True)]


# ----------------------------------------------------------------------------- groups
def test_fold_groups_annotated_content_and_both():
    videos = pl.DataFrame({"video_id": ["v1", "v2", "v3", "v4", "v5"],
                           "dup_group": ["g1", "g1", "g2", "g3", "g4"]})  # fmt: skip
    pairs = pl.DataFrame({"video_a": ["v2", "v4"], "video_b": ["v3", "v5"]})
    assert list(fold_groups(videos, pairs, "annotated")) == ["g1", "g1", "g2", "g3", "g4"]
    content = dict(zip(videos["video_id"], fold_groups(videos, pairs, "content")))
    assert content["v2"] == content["v3"] != content["v1"] and content["v4"] == content["v5"]
    both = fold_groups(videos, pairs, "both")
    assert list(both) == ["g1+g2", "g1+g2", "g1+g2", "g3+g4", "g3+g4"]
    with pytest.raises(ValueError, match="group_by"):
        fold_groups(videos, pairs, "pixels")


# ----------------------------------------------------------------------------- the demo
def demo_videos(folder, index: pl.DataFrame) -> pl.DataFrame:
    """A ``videos`` table of the demo (as validate would write it; broken files invalid)."""
    broken = index["edits"].str.starts_with("broken")
    videos = pl.DataFrame({
        "video_id": index["path"], "path": [str(folder / p) for p in index["path"]],
        "label": index["label"], "dup_group": index["group"].cast(pl.String), "platform": "demo",
        "valid": ~broken, "reason": np.where(broken.to_numpy(), "not_a_video", ""),
        "is_original": index["is_original"],
    })  # fmt: skip
    for column, kind in schemas.TABLES["videos"].items():
        if column not in videos.columns:
            videos = videos.with_columns(pl.lit({"str": "", "int": 0, "float": 0.0, "bool": False}[kind]).alias(column))
    return schemas.conform(videos, "videos")


@pytest.fixture(scope="module")
def demo_signed(demo_corpus, tmp_path_factory):
    folder, index = demo_corpus
    work = tmp_path_factory.mktemp("leaks")
    videos = demo_videos(folder, index)
    schemas.write_table(videos, work / "videos.csv", "videos")
    signatures_shard(work / "videos.csv", work / "signatures.csv", Shard(0, 1),
                     progress_dir=work / "progress", sampling=DEFAULTS["signatures"])  # fmt: skip
    return index, videos, schemas.read_table(work / "signatures.csv", "signatures")


def test_signature_stage_signs_every_valid_video(demo_signed):
    _, videos, signatures = demo_signed
    assert list(signatures["video_id"]) == list(videos["video_id"])
    ok = signatures["status"] == "ok"
    assert dict(zip(signatures["video_id"], ok)) == dict(zip(videos["video_id"], videos["valid"]))
    assert (signatures.filter(ok)["frames"] >= 8).all()
    assert signatures.filter(~ok)["reason"].str.starts_with("invalid:").all()


def test_signatures_do_not_depend_on_shards(demo_signed, tmp_path):
    _, videos, signatures = demo_signed
    head = videos.head(8)
    schemas.write_table(head, tmp_path / "videos.csv", "videos")
    parts = []
    for i in range(2):
        signatures_shard(tmp_path / "videos.csv", tmp_path / f"s{i}.csv", Shard(i, 2),
                         progress_dir=tmp_path / "progress", sampling=DEFAULTS["signatures"])  # fmt: skip
        parts.append(schemas.read_table(tmp_path / f"s{i}.csv", "signatures"))
    assert_frame_equal(pl.concat(parts), signatures.head(8),
                                  check_exact=True)  # fmt: skip


def test_demo_reposts_match_their_originals(demo_signed):
    index, videos, signatures = demo_signed
    pairs, _ = audit(videos, signatures, n_folds=5, random_state=0, group_by="both", match=MATCH)
    group = dict(zip(index["path"], index["group"]))
    good = index.filter(~pl.col("edits").str.starts_with("broken"))
    originals_only = good.filter(pl.col("is_original"))
    original = dict(zip(originals_only["group"], originals_only["path"]))
    known = {tuple(sorted((p, original[g]))) for p, g, o in
             zip(good["path"], good["group"], good["is_original"]) if not o}  # fmt: skip
    found = set(zip(pairs["video_a"], pairs["video_b"]))
    recall = len(known & found) / len(known)
    within = sum(group[a] == group[b] for a, b in found)
    precision = within / len(found)
    print(f"\ndemo leak audit: recall {recall:.3f} ({len(known & found)}/{len(known)} repost->original "
          f"pairs), precision {precision:.3f} ({within}/{len(found)} pairs within one generated group)")
    assert recall >= 0.95, sorted(known - found)
    assert precision >= 0.95, sorted(p for p in found if group[p[0]] != group[p[1]])
    assert pairs["same_annotated_group"].sum() == within  # the demo's groups are annotated


def test_hidden_groups_content_folds_recover_the_generated_groups(demo_signed, tmp_path):
    index, videos, signatures = demo_signed
    hidden = videos.with_columns(dup_group=pl.col("video_id"))  # a corpus without a group column
    pairs, report = audit(
        hidden, signatures, n_folds=5, random_state=0, group_by="content", match=MATCH, top=10_000
    )
    assert len(pairs) and not pairs["same_annotated_group"].any()
    assert f"| pairs the annotations missed (different annotated groups) | {len(pairs)} |" in report
    for a, b in zip(pairs["video_a"], pairs["video_b"]):  # every pair listed
        assert f"| {a} | {b} |" in report
    schemas.write_table(pairs, tmp_path / "near_duplicates.csv", "near_duplicates")
    regrouped = regroup(hidden, tmp_path / "near_duplicates.csv", "content")
    folds = assign_folds(regrouped, n_folds=5, random_state=0)
    check_folds(folds)
    group_of = dict(zip(index["path"], index["group"]))
    generated = folds.with_columns(generated=pl.Series([group_of[v] for v in folds["video_id"]]))
    spread = generated.group_by("generated").agg(pl.col("fold").n_unique())
    assert (spread["fold"] == 1).all(), spread.filter(pl.col("fold") > 1)
    merged = int(report.split("| annotated groups merged by the audit | ")[1].split(" ")[0])
    print(f"\nhidden groups: {len(pairs)} pairs; {merged} of {hidden['valid'].sum()} "
          f"one-video groups merged; {folds['dup_group'].n_unique()} content groups, "
          f"{index['group'].n_unique()} generated")
