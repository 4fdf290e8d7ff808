"""The leak audit: frame signatures, the LSH matcher, content groups and the leak report.

The demo tests score the matcher against the demo generator's ground truth (which file is a
repost of which original); they print recall and precision (`pytest -s` shows them). The
low-detail tests (tests/low_detail_corpus.py) check that independent videos on plain
backgrounds, logos, tickers, screens, slides and signers are not paired, while their reposts
are, and that a WLASL-style corpus gets folds by signer through the stage functions.
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
from lib.audit.signatures import (
    VARIANTS,
    decode_hashes,
    encode_hashes,
    frame_hashes,
    strip_flat_borders,
)
from lib.stages.folds import run_folds
from lib.stages.near_duplicates import run_near_duplicates
from lib.stages.signatures import signatures_shard
from low_detail_corpus import low_detail_corpus, signer_corpus, videos_table

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
    upright, mirrored = frame_hashes(frame, **HASHING), frame_hashes(
        frame[:, ::-1].copy(), **HASHING
    )
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
    return videos_table(
        index.with_columns(
            video_id=pl.col("path"),
            path=pl.lit(str(folder) + "/") + pl.col("path"),
            platform=pl.lit("demo"),
            valid=~broken,
            reason=pl.when(broken).then(pl.lit("not_a_video")).otherwise(pl.lit("")),
        ),
        label="label",
        group="group",
    )


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
    print(
        f"\ndemo leak audit: recall {recall:.3f} ({len(known & found)}/{len(known)} repost->original "
        f"pairs), precision {precision:.3f} ({within}/{len(found)} pairs within one generated group)"
    )
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
    share = DEFAULTS["folds"]["max_merged_share"]
    regrouped = regroup(hidden, tmp_path / "near_duplicates.csv", "content", max_merged_share=share)
    folds = assign_folds(regrouped, n_folds=5, random_state=0)
    check_folds(folds)
    group_of = dict(zip(index["path"], index["group"]))
    generated = folds.with_columns(generated=pl.Series([group_of[v] for v in folds["video_id"]]))
    spread = generated.group_by("generated").agg(pl.col("fold").n_unique())
    assert (spread["fold"] == 1).all(), spread.filter(pl.col("fold") > 1)
    merged = int(report.split("| annotated groups merged by the audit | ")[1].split(" ")[0])
    print(
        f"\nhidden groups: {len(pairs)} pairs; {merged} of {hidden['valid'].sum()} "
        f"one-video groups merged; {folds['dup_group'].n_unique()} content groups, "
        f"{index['group'].n_unique()} generated"
    )


# ----------------------------------------------------------------------------- low detail
def sign(videos: pl.DataFrame, work) -> pl.DataFrame:
    """The signatures of ``videos`` through the signatures stage (one shard)."""
    schemas.write_table(videos, work / "videos.csv", "videos")
    signatures_shard(work / "videos.csv", work / "signatures.csv", Shard(0, 1),
                     progress_dir=work / "progress", sampling=DEFAULTS["signatures"])  # fmt: skip
    return schemas.read_table(work / "signatures.csv", "signatures")


@pytest.fixture(scope="module")
def low_detail(tmp_path_factory):
    work = tmp_path_factory.mktemp("low_detail")
    index = low_detail_corpus(work / "videos", n_groups=3, videos_per_group=3, n_reposts=14, seed=3)
    return index, sign(videos_table(index, label="label", group="group"), work)


def test_independent_low_detail_videos_are_not_paired_and_their_reposts_are(low_detail):
    index, signatures = low_detail
    source = dict(zip(index["video_id"], index["source"]))
    pairs = find_near_duplicates(signatures, **MATCH, random_state=0)
    found = set(zip(pairs["video_a"], pairs["video_b"]))
    false = sorted((a, b) for a, b in found if source[a] != source[b])
    reposts = index.filter(pl.col("repost") != "")
    known = {tuple(sorted(p)) for p in zip(reposts["video_id"], reposts["source"])}
    print(f"\nlow-detail audit: {len(index) - len(reposts)} independent videos of "
          f"{index['kind'].n_unique()} kinds, {len(false)} false pairs; reposts found "
          f"{len(known & found)}/{len(known)}")  # fmt: skip
    assert not false
    assert len(known & found) >= 0.85 * len(known), sorted(known - found)
    # The hashes alone (no thumbnail may differ) pair unrelated videos of this corpus.
    loose = MATCH | {"verify_levels": 255, "verify_share": 1.0, "frame_share": 1.0}
    loose_pairs = find_near_duplicates(signatures, **loose, random_state=0)
    assert (
        sum(source[a] != source[b] for a, b in zip(loose_pairs["video_a"], loose_pairs["video_b"]))
        > 10
    )


def test_wlasl_style_signers_are_never_merged_and_folds_follow_them(tmp_path):
    """Six signers, each in their own plain studio, sign three glosses twice (36 different
    recordings): the audit pairs no two signers, and folds are made of whole signers."""
    index = signer_corpus(tmp_path / "videos", n_signers=6, n_glosses=3, takes=2, seed=5)
    videos = videos_table(index, label="gloss", group="signer")
    signatures = sign(videos, tmp_path)
    folds_config = DEFAULTS["folds"] | {"k": 3}
    run_near_duplicates(videos=tmp_path / "videos.csv", signatures=tmp_path / "signatures.csv",
                        out=tmp_path / "near_duplicates.csv", report=tmp_path / "leaks.md",
                        match=MATCH, k=3, group_by=folds_config["group_by"], seed=0)  # fmt: skip
    pairs = schemas.read_table(tmp_path / "near_duplicates.csv", "near_duplicates")
    signer = dict(zip(index["video_id"], index["signer"]))
    across = [(a, b) for a, b in zip(pairs["video_a"], pairs["video_b"]) if signer[a] != signer[b]]
    assert not across
    # Nor two different signs of one signer; what it may still pair are two takes of one sign
    # (hands a pixel or two apart at 64 pixels): docs/LEAKS.md, "What it cannot tell apart".
    gloss = dict(zip(index["video_id"], index["gloss"]))
    assert all(gloss[a] == gloss[b] for a, b in zip(pairs["video_a"], pairs["video_b"])), pairs
    print(f"\nWLASL-style: {len(pairs)} pairs, all two takes of one sign by one signer (of 18)")
    run_folds(videos=tmp_path / "videos.csv", out=tmp_path / "folds.csv",
              near_duplicates=tmp_path / "near_duplicates.csv", seed=0, **folds_config)  # fmt: skip
    folds = schemas.read_table(tmp_path / "folds.csv", "folds")
    assert dict(zip(folds["video_id"], folds["dup_group"])) == signer
    assert (folds.group_by("dup_group").agg(pl.col("fold").n_unique())["fold"] == 1).all()
    assert folds["fold"].n_unique() == 3
    # By their hashes alone the signers would have merged.
    loose = MATCH | {"verify_levels": 255, "verify_share": 1.0, "frame_share": 1.0}
    loose_pairs = find_near_duplicates(signatures, **loose, random_state=0)
    assert fold_groups(videos, loose_pairs, "both").n_unique() < 6


def test_pairs_among_skipped_videos_are_neither_checked_nor_reported(demo_signed):
    """What a cross-corpus audit relies on: the training corpus's own pairs are left out,
    every other pair is found as before."""
    signatures = demo_signed[2]
    everything = find_near_duplicates(signatures, **MATCH, random_state=0)
    skipped = frozenset(signatures["video_id"].to_list()[: len(signatures) // 2])
    pairs = find_near_duplicates(signatures, **MATCH, skip_among=skipped, random_state=0)
    both = pl.col("video_a").is_in(list(skipped)) & pl.col("video_b").is_in(list(skipped))
    assert len(everything.filter(both)) > 0
    assert pairs.equals(everything.filter(~both))
