"""The leak audit across two corpora: the videos of a test corpus that copy a training video.

A test corpus (config ``test_corpus``) is never trained on, but nothing keeps its videos from
being reposts, re-encodes or crops of training videos: a model scored on those is scored on
what it was trained on. :func:`cross_corpus_audit` matches the two corpora's signatures
(:mod:`lib.audit.signatures`) with the leak audit's own matcher
(:func:`lib.audit.near_duplicates.find_near_duplicates`, same keys, same confirmation) run
on both corpora at once (pairs of two training videos skipped: the training corpus's own
audit found those), and keeps

* the pairs of a test video and a training video (the cross-corpus near-duplicates), and
* the pairs of two test videos, which join the test corpus's annotated groups as the folds'
  groups are joined (:func:`lib.audit.groups.fold_groups`, ``folds.group_by``): the groups
  the test score's bootstrap resamples, and the unit that is left out with a copy. A test
  video's repost is a copy of the same training video even where the matcher missed that
  pair, so a whole test group goes when one of its videos matches.

The ids of the two corpora may coincide (two corpora of one format name their files alike):
they are told apart inside the matcher by a prefix no video id can hold (ids are
``[A-Za-z0-9_-]``, :mod:`lib.corpus.ids`).
"""

from __future__ import annotations

import logging

import polars as pl

from lib import schemas
from lib.audit.groups import fold_groups
from lib.audit.near_duplicates import find_near_duplicates

log = logging.getLogger(__name__)

_TEST, _TRAIN = "test/", "train/"  # "test/" sorts first: a cross pair is (test, train)


def _tagged(signatures: pl.DataFrame, valid: pl.Series, prefix: str) -> pl.DataFrame:
    """The signatures of the ``valid`` videos, their ids prefixed."""
    return (
        signatures.filter(pl.col("video_id").is_in(valid.implode()))
        .select(schemas.columns("signatures"))
        .with_columns(video_id=pl.lit(prefix) + pl.col("video_id"))
    )


def cross_corpus_audit(
    train_videos: pl.DataFrame,
    train_signatures: pl.DataFrame,
    test_videos: pl.DataFrame,
    test_signatures: pl.DataFrame,
    *,
    match: dict,
    group_by: str,
    random_state: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Match a test corpus against the training corpus.

    Returns the ``cross_duplicates`` table (one row per test video and training video that
    match: ``test_video, train_video, distance, matched_frames, flipped`` and both videos'
    label and group) and the ``test_corpus_videos`` table: every test video (valid or not)
    with ``dup_group`` (its annotated group joined through content matches inside the test
    corpus, by ``group_by``, as the folds' groups), ``cross_duplicate`` (it matches a
    training video) and ``cross_group`` (its group holds such a video) and
    ``train_matches`` (the training videos it matches, space-separated). ``match``: the
    ``near_duplicates`` section's keys; ``random_state`` seeds the matcher's index.
    """
    train_valid = train_videos.filter(pl.col("valid"))
    test_valid = test_videos.filter(pl.col("valid"))
    signed = pl.concat(
        [
            _tagged(test_signatures, test_valid["video_id"], _TEST),
            _tagged(train_signatures, train_valid["video_id"], _TRAIN),
        ],
        how="vertical_relaxed",
    )
    trained = frozenset(signed.filter(pl.col("video_id").str.starts_with(_TRAIN))["video_id"])
    # the training corpus's own pairs were audited by near_duplicates: not checked again
    pairs = find_near_duplicates(signed, random_state=random_state, skip_among=trained, **match)
    first_test = pl.col("video_a").str.starts_with(_TEST)
    cross = pairs.filter(first_test & pl.col("video_b").str.starts_with(_TRAIN))
    within = pairs.filter(first_test & pl.col("video_b").str.starts_with(_TEST))
    within = within.with_columns(
        video_a=pl.col("video_a").str.strip_prefix(_TEST),
        video_b=pl.col("video_b").str.strip_prefix(_TEST),
    )
    groups = dict(
        zip(test_valid["video_id"].to_list(), fold_groups(test_valid, within, group_by).to_list())
    )
    test_info = _info(test_valid, groups)
    train_info = _info(train_valid, None)
    cross = cross.select(
        test_video=pl.col("video_a").str.strip_prefix(_TEST),
        train_video=pl.col("video_b").str.strip_prefix(_TRAIN),
        distance="distance",
        matched_frames="matched_frames",
        flipped="flipped",
    )
    cross = cross.with_columns(
        test_label=pl.col("test_video").replace_strict(test_info["label"], return_dtype=pl.String),
        train_label=pl.col("train_video").replace_strict(
            train_info["label"], return_dtype=pl.String
        ),
        test_group=pl.col("test_video").replace_strict(groups, return_dtype=pl.String),
        train_group=pl.col("train_video").replace_strict(
            train_info["group"], return_dtype=pl.String
        ),
    ).sort(["test_video", "train_video"])
    matches: dict[str, list[str]] = {}
    for test_id, train_id in cross.select("test_video", "train_video").iter_rows():
        matches.setdefault(test_id, []).append(train_id)
    copied = {groups[v] for v in matches}
    ids = test_videos["video_id"].to_list()
    videos = test_videos.select(
        "video_id", "label", "platform", "valid", "reason", "is_original"
    ).with_columns(
        dup_group=pl.Series(
            [groups.get(v, g) for v, g in zip(ids, test_videos["dup_group"].to_list())],
            dtype=pl.String,
        ),
        annotated_group=test_videos["dup_group"],
        cross_duplicate=pl.Series([v in matches for v in ids], dtype=pl.Boolean),
        cross_group=pl.Series([groups.get(v) in copied for v in ids], dtype=pl.Boolean),
        train_matches=pl.Series([" ".join(matches.get(v, [])) for v in ids], dtype=pl.String),
    )
    log.info(
        "test corpus: %d valid videos in %d groups; %d match %d training videos (%d pairs), "
        "%d videos in their groups",
        len(test_valid),
        len(set(groups.values())),
        len(matches),
        cross["train_video"].n_unique(),
        len(cross),
        int(videos.filter(pl.col("valid"))["cross_group"].sum()),
    )
    return cross, videos


def _info(valid: pl.DataFrame, groups: dict[str, str] | None) -> dict[str, dict[str, str]]:
    ids = valid["video_id"].to_list()
    return {
        "label": dict(zip(ids, valid["label"].cast(pl.String).to_list())),
        "group": groups or dict(zip(ids, valid["dup_group"].cast(pl.String).to_list())),
    }
