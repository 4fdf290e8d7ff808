"""Tests for lib.corpus.ingest: the real Fake Video Corpus files plus small fixtures per format."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
import pytest

from conftest import write_csv as _write_csv
from lib.config import DATASET_PATHS, load_schema, with_defaults
from lib.corpus.formats import FORMATS, FVC_DEFAULT_LABEL_MAP, wlasl_segment
from lib.corpus.ids import file_video_id, platform_from_url, safe_id, video_id_from_url
from lib.corpus.ingest import MANIFEST_COLUMNS, build_manifest, resolve_label, write_ingest_report

FVC_DIR = Path("/work/shared/data/fvc")
SAFE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
KEEP_ALL = {label: label for label in FVC_DEFAULT_LABEL_MAP}
#: The options the manifest stage passes for a config that sets none: the schema's defaults of
#: the dataset section (allow_file_urls false reaches ingest as None, the format's own choice).
DEFAULT_OPTIONS = {
    key: value
    for key, value in with_defaults({"dataset": {}}, load_schema())["dataset"].items()
    if key not in ("format", "path")
} | {"allow_file_urls": None}
LABEL_PRECEDENCE = DEFAULT_OPTIONS["label_precedence"]


def ingest(fmt, path, **options):
    """:func:`build_manifest` with the default options for those not given."""
    return build_manifest(fmt, path, **(DEFAULT_OPTIONS | options))

needs_fvc = pytest.mark.skipif(
    not ((FVC_DIR / "FVC.csv").is_file() and (FVC_DIR / "FVC_dup.csv").is_file()),
    reason=f"real FVC annotations not found in {FVC_DIR} (copy FVC.csv and FVC_dup.csv there)",
)


def _accounting_holds(report) -> bool:
    return (
        report.rows_read_total == report.rows_kept + report.duplicates_merged + report.dropped_total
    )


# --------------------------------------------------------------------------- real FVC


@pytest.fixture(scope="module")
def fvc_default():
    return ingest("fvc", FVC_DIR)


@pytest.fixture(scope="module")
def fvc_all():
    return ingest("fvc", FVC_DIR, label_map=KEEP_ALL)


@pytest.fixture(scope="module")
def fvc_raw() -> pl.DataFrame:
    originals = pl.read_csv(FVC_DIR / "FVC.csv", infer_schema=False).with_columns(is_original=True)
    reposts = pl.read_csv(FVC_DIR / "FVC_dup.csv", infer_schema=False).with_columns(is_original=False)
    return pl.concat([originals, reposts], how="diagonal")


@needs_fvc
def test_fvc_default_counts(fvc_default):
    manifest, report = fvc_default
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert report.rows_read == {"FVC.csv": 380, "FVC_dup.csv": 5199}
    assert len(manifest) == report.rows_kept == 5079
    assert report.duplicates_merged == 5
    assert report.dropped == {"label_dropped_by_map": 495}
    assert _accounting_holds(report)
    assert report.label_mapping == {
        "fake": {"fake": 2920},
        "real": {"real": 2164},
        "uncertain": {"(dropped)": 340},
        "debunked": {"(dropped)": 89},
        "parody": {"(dropped)": 66},
    }
    assert report.labels == {"fake": 2916, "real": 2163}
    assert dict(manifest["label"].value_counts().iter_rows()) == {"fake": 2916, "real": 2163}
    assert report.label_conflicts == 0
    assert report.groups == manifest["dup_group"].n_unique() == 376
    assert len(report.groups_multi_label) == 12  # cascades holding fake AND real reposts: kept
    assert "f9" in report.groups_multi_label
    assert set(manifest.filter(pl.col("dup_group") == "f9")["label"]) == {"fake", "real"}
    print("FVC default platforms:", report.platforms)
    assert report.platforms == {"youtube": 3037, "facebook": 1912, "twitter": 130}
    assert dict(manifest["platform"].value_counts().iter_rows()) == report.platforms
    assert (manifest["frame_start"] == 0).all() and (manifest["frame_end"] == -1).all()


@needs_fvc
def test_fvc_keep_everything_counts(fvc_all):
    manifest, report = fvc_all
    assert len(manifest) == 5572  # 5579 rows, 7 listed twice
    assert report.duplicates_merged == 7
    assert report.dropped == {}
    assert _accounting_holds(report)
    assert report.labels == {
        "fake": 2916,
        "real": 2163,
        "uncertain": 340,
        "debunked": 88,
        "parody": 65,
    }
    assert report.groups == 376
    assert len(report.groups_multi_label) == 85
    print("FVC all-label platforms:", report.platforms)
    assert report.platforms == {"youtube": 3369, "facebook": 2062, "twitter": 141}
    # Two reposts are listed twice with different labels: majority tie -> precedence.
    assert report.label_conflicts == 2
    chosen = {c["video_id"]: (c["labels"], c["chosen"]) for c in report.label_conflict_examples}
    assert chosen == {
        "yt_cyiHil6lUlY": (["parody", "real"], "real"),
        "yt_u8RuDS18R_E": (["debunked", "fake"], "fake"),
    }
    by_id = {r["video_id"]: r for r in manifest.iter_rows(named=True)}
    assert by_id["yt_u8RuDS18R_E"]["label"] == "fake"
    assert by_id["yt_cyiHil6lUlY"]["label"] == "real"


@needs_fvc
def test_fvc_label_map_debunked_to_fake():
    label_map = {
        "fake": "fake",
        "real": "real",
        "debunked": "fake",
        "uncertain": None,
        "parody": None,
    }
    manifest, report = ingest("fvc", FVC_DIR, label_map=label_map)
    assert report.label_mapping["debunked"] == {"fake": 89}
    assert report.dropped == {"label_dropped_by_map": 406}
    # yt_u8RuDS18R_E was listed as fake and as debunked: now one fake row, merged.
    assert report.duplicates_merged == 6 and report.label_conflicts == 0
    assert len(manifest) == 5167
    assert report.labels == {"fake": 3004, "real": 2163}
    assert _accounting_holds(report)
    # keep_labels drops after mapping, with its own reason.
    manifest2, report2 = ingest(
        "fvc",
        FVC_DIR,
        label_map={**KEEP_ALL, "debunked": "fake", "parody": "real"},
        keep_labels=["fake", "real"],
    )
    assert report2.dropped == {"label_not_kept": 340}
    assert report2.label_mapping["uncertain"] == {"uncertain (not in keep_labels)": 340}
    assert len(manifest2) == 5232 and set(manifest2["label"]) == {"fake", "real"}


@needs_fvc
def test_fvc_ids_unique_and_injective(fvc_all, fvc_raw):
    manifest, report = fvc_all
    assert manifest["video_id"].is_unique().all()
    assert manifest["video_id"].str.to_lowercase().is_unique().all()  # safe on case-insensitive disks too
    assert report.case_insensitive_id_clashes == []
    assert all(SAFE.match(v) for v in manifest["video_id"])
    ids_of_url = {url: video_id_from_url(url) for url in fvc_raw["video_url"].unique()}
    assert len(ids_of_url) == 5572
    assert len(set(ids_of_url.values())) == len(ids_of_url)  # distinct URLs never share an id
    assert set(manifest["url"]) == set(ids_of_url)
    assert all(v.startswith(("yt_", "fb_", "tw_")) for v in manifest["video_id"])


@needs_fvc
def test_fvc_groups_closed_under_shared_videos(fvc_all, fvc_raw):
    manifest, report = fvc_all
    group_of_video = dict(manifest.select("video_id", "dup_group").iter_rows())
    members_of_group = {name: set(name.split("+")) for name in manifest["dup_group"].unique()}
    # Every cascade id lives in exactly one manifest group ...
    cascade_owner: dict[str, str] = {}
    for name, members in members_of_group.items():
        for cascade in members:
            assert cascade not in cascade_owner, f"{cascade} in {name} and {cascade_owner[cascade]}"
            cascade_owner[cascade] = name
    assert len(cascade_owner) == 380
    # ... and every listing (row) of the corpus lands in its cascade's group.
    listed_group = [group_of_video[video_id_from_url(u)] for u in fvc_raw["video_url"]]
    assert [cascade_owner[c] for c in fvc_raw["cascade_id"]] == listed_group
    # The real example: yt_FJcVcV46XBE is listed in f138, f139 and f140, yt_CkLI6Qb4drI in f140
    # and f142: the four cascades are ONE group; yt_CjZt_9iehWI joins f144 and f145.
    assert report.groups_joined == {
        "f138+f139+f140+f142": ["f138", "f139", "f140", "f142"],
        "f144+f145": ["f144", "f145"],
    }
    assert report.groups_joined_by["f138+f139+f140+f142"] == ["yt_CkLI6Qb4drI", "yt_FJcVcV46XBE"]
    assert group_of_video["yt_FJcVcV46XBE"] == "f138+f139+f140+f142"
    f142_ids = map(video_id_from_url, fvc_raw.filter(pl.col("cascade_id") == "f142")["video_url"])
    assert {group_of_video[v] for v in f142_ids} == {"f138+f139+f140+f142"}
    assert "f142" not in set(manifest["dup_group"])


@needs_fvc
def test_fvc_originals(fvc_default, fvc_raw):
    manifest, report = fvc_default
    assert int(manifest["is_original"].sum()) == report.originals == 380
    original_ids = set(map(video_id_from_url, fvc_raw.filter(pl.col("is_original"))["video_url"]))
    assert set(manifest.filter(pl.col("is_original"))["video_id"]) == original_ids


@needs_fvc
def test_fvc_deterministic(fvc_default, tmp_path):
    manifest_again, report_again = ingest("fvc", FVC_DIR)
    assert_frame_equal(fvc_default[0], manifest_again)
    assert fvc_default[1].to_dict() == report_again.to_dict()
    # Sorted by (dup_group, video_id).
    keys = list(zip(manifest_again["dup_group"], manifest_again["video_id"]))
    assert keys == sorted(keys)
    # The same files from another location give the same table (web URLs only).
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for name in ("FVC.csv", "FVC_dup.csv"):
        shutil.copy(FVC_DIR / name, copy / name)
    assert_frame_equal(ingest("fvc", copy)[0], manifest_again)


# --------------------------------------------------------------------------- ids and URLs


HOSTILE = [
    "../../etc/passwd",
    "a b",
    'x"; rm -rf /',
    "$(reboot)",
    ".",
    "..",
    "",
    "-rf",
    "é",
    "/",
    "x" * 500,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_id_is_harmless(text, tmp_path):
    ident = safe_id(text)
    assert SAFE.match(ident), ident
    assert ident not in {".", ".."} and not ident.startswith("-")
    target = (tmp_path / f"{ident}.mp4").resolve()
    assert target.parent == tmp_path.resolve()


def test_safe_id_values():
    assert safe_id("yt_abc-DEF_1") == "yt_abc-DEF_1"  # safe text is unchanged
    assert re.fullmatch(r"etc_passwd_[0-9a-f]{8}", safe_id("../../etc/passwd"))
    assert re.fullmatch(r"reboot_[0-9a-f]{8}", safe_id("$(reboot)"))
    assert re.fullmatch(r"id_[0-9a-f]{8}", safe_id(""))
    # Texts that slug alike stay apart; the plain safe one keeps its own spelling.
    assert len({safe_id("a b"), safe_id("a/b"), safe_id("a_b"), safe_id("a  b")}) == 4
    assert safe_id("a_b") == "a_b"
    assert len(safe_id("x" * 500)) == 100 and safe_id("x" * 500) != safe_id("x" * 499)
    assert safe_id("a b") == safe_id("a b")  # stable


@pytest.mark.parametrize(
    "url, platform, video_id",
    [
        ("https://www.youtube.com/watch?v=Y7MJlmbnLQA", "youtube", "yt_Y7MJlmbnLQA"),
        ("https://youtube.com/watch?feature=share&v=Y7MJlmbnLQA&t=30", "youtube", "yt_Y7MJlmbnLQA"),
        ("https://youtu.be/Y7MJlmbnLQA?t=3", "youtube", "yt_Y7MJlmbnLQA"),
        ("https://m.youtube.com/shorts/-bc_EFGHijk", "youtube", "yt_-bc_EFGHijk"),
        ("https://www.youtube.com/embed/Y7MJlmbnLQA", "youtube", "yt_Y7MJlmbnLQA"),
        (
            "https://www.facebook.com/lioncityfeed/videos/916632151837497/",
            "facebook",
            "fb_916632151837497",
        ),
        (
            "https://www.facebook.com/page/videos/vb.123/916632151837497/?type=2",
            "facebook",
            "fb_916632151837497",
        ),
        ("https://www.facebook.com/video.php?v=916632151837497", "facebook", "fb_916632151837497"),
        ("https://twitter.com/someone/status/1234567890", "twitter", "tw_1234567890"),
        ("https://x.com/someone/status/1234567890?s=20", "twitter", "tw_1234567890"),
    ],
)
def test_video_id_from_url_forms(url, platform, video_id):
    assert platform_from_url(url) == platform
    assert video_id_from_url(url) == video_id


def test_video_id_other_urls():
    vimeo = video_id_from_url("https://vimeo.com/76979871")
    assert platform_from_url("https://vimeo.com/76979871") == "other"
    assert re.fullmatch(r"vimeo_com_76979871_[0-9a-f]{10}", vimeo)
    assert video_id_from_url("https://VIMEO.com/76979871#frag") == vimeo  # host case, fragment
    assert video_id_from_url("https://vimeo.com/76979872") != vimeo
    hostile = video_id_from_url("https://evil.example/../../etc/passwd?$(reboot)")
    assert SAFE.match(hostile) and ".." not in hostile
    # A YouTube URL without a usable id still gets a safe, distinct id.
    assert re.fullmatch(
        r"youtube_com_channel_x_[0-9a-f]{10}",
        video_id_from_url("https://www.youtube.com/channel/x"),
    )
    assert platform_from_url("file:///tmp/a.mp4") == "local"


def test_file_video_id_is_relative(tmp_path):
    first = file_video_id(tmp_path / "a" / "clips" / "My clip.mp4", base_dir=tmp_path / "a")
    second = file_video_id(tmp_path / "b" / "clips" / "My clip.mp4", base_dir=tmp_path / "b")
    assert first == second and re.fullmatch(r"My_clip_[0-9a-f]{8}", first)
    assert file_video_id(tmp_path / "a" / "other" / "My clip.mp4", base_dir=tmp_path / "a") != first


def test_resolve_label_rules():
    precedence = {"label_precedence": LABEL_PRECEDENCE}  # the schema's: fake before real
    assert resolve_label(["real", "fake", "real"], **precedence) == "real"  # majority
    assert resolve_label(["real", "fake"], **precedence) == "fake"  # tie -> precedence
    assert resolve_label(["real", "fake"], label_precedence=("real", "fake")) == "real"
    assert resolve_label(["zebra", "apple"], **precedence) == "apple"  # tie, no precedence -> alphabetical
    assert (
        resolve_label(["fake", "fake", "real"], is_original=[False, False, True], **precedence)
        == "real"
    )  # original wins


def test_wlasl_segment_conversion():
    assert wlasl_segment(1, -1) == (0, -1)
    assert wlasl_segment(10, 50) == (9, 50)  # 1-based inclusive 10..50 -> frames[9:50], 41 frames
    assert wlasl_segment(0, 0) == (0, -1)
    assert wlasl_segment(30, 20) is None
    assert wlasl_segment("x", 5) is None


# --------------------------------------------------------------------------- csv / demo


def _csv_corpus(folder: Path) -> Path:
    (folder / "media").mkdir(parents=True, exist_ok=True)
    rows = [
        ["media/one.mp4", "", "fake", "g1", "true"],
        ["media/two.mp4", "", "real", "", "0"],
        ["", "https://youtu.be/Y7MJlmbnLQA", "fake", "g2", ""],
        ["", "https://www.youtube.com/watch?v=Y7MJlmbnLQA", "real", "g3", "no"],  # same video
        ["../../etc/passwd", "", "fake", "", ""],
        ["", "", "fake", "", ""],  # no url, no path
        ["", "javascript:alert(1)", "fake", "", ""],
        ["media/three.mp4", "", "", "", ""],  # no label
        ["media/four.mp4", "", "fake", "", "maybe"],
    ]
    path = _write_csv(folder / "corpus.csv", ["path", "url", "label", "group", "is_original"], rows)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("media/five.mp4,,fake,,true,EXTRA\n")  # wrong number of cells
    return path


def test_csv_format(tmp_path):
    manifest, report = ingest("csv", _csv_corpus(tmp_path / "a"))
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert report.rows_read == {"corpus.csv": 10}
    assert report.dropped == {
        "bad_is_original": 1,
        "bad_url": 1,
        "empty_label": 1,
        "empty_url": 1,
        "path_outside_corpus": 1,
        "unparsable": 1,
    }
    assert report.duplicates_merged == 1 and len(manifest) == 3
    assert _accounting_holds(report)
    by_id = {r["video_id"]: r for r in manifest.iter_rows(named=True)}
    one = by_id[file_video_id(tmp_path / "a" / "media" / "one.mp4", base_dir=tmp_path / "a")]
    assert one["url"] == (tmp_path / "a" / "media" / "one.mp4").as_uri()
    assert one["platform"] == "local" and one["dup_group"] == "g1" and bool(one["is_original"])
    two_id = file_video_id(tmp_path / "a" / "media" / "two.mp4", base_dir=tmp_path / "a")
    assert by_id[two_id]["dup_group"] == two_id and not by_id[two_id]["is_original"]
    # The YouTube video listed twice (g2 fake, g3 real): one row, groups joined, tie -> fake.
    youtube = by_id["yt_Y7MJlmbnLQA"]
    assert (
        youtube["label"] == "fake"
        and youtube["dup_group"] == "g2+g3"
        and youtube["platform"] == "youtube"
    )
    assert youtube["url"] == "https://youtu.be/Y7MJlmbnLQA"  # first listing's URL
    assert report.label_conflicts == 1 and report.groups_joined == {"g2+g3": ["g2", "g3"]}
    # A path escaping the corpus folder is refused, never fetched.
    assert report.dropped_examples["path_outside_corpus"] == ["corpus.csv:6"]
    assert not manifest["url"].str.contains("passwd").any()
    assert all(SAFE.match(v) for v in manifest["video_id"])


def test_csv_file_urls_need_the_corpus_to_opt_in(tmp_path):
    target = tmp_path / "elsewhere" / "clip.mp4"
    rows = [["", target.as_uri(), "fake"], ["media/a.mp4", "", "real"]]
    corpus = _write_csv(tmp_path / "c" / "corpus.csv", ["path", "url", "label"], rows)
    refused, report = ingest("csv", corpus)
    assert report.dropped == {"file_url_refused": 1} and len(refused) == 1
    allowed, report = ingest("csv", corpus, allow_file_urls=True)
    assert report.dropped == {} and target.as_uri() in set(allowed["url"])
    # The demo format opts in by itself; an explicit False still refuses.
    (tmp_path / "c" / "index.csv").write_text((tmp_path / "c" / "corpus.csv").read_text())
    assert len(ingest("demo", tmp_path / "c")[0]) == 2
    assert len(ingest("demo", tmp_path / "c", allow_file_urls=False)[0]) == 1


def test_csv_ids_independent_of_location(tmp_path):
    first, _ = ingest("csv", _csv_corpus(tmp_path / "checkout_one"))
    second, _ = ingest("csv", _csv_corpus(tmp_path / "deeper" / "checkout_two"))
    assert first["video_id"].to_list() == second["video_id"].to_list()
    assert_frame_equal(first.drop("url"), second.drop("url"))
    assert first["url"].to_list() != second["url"].to_list()  # file URLs are absolute by nature


def test_csv_row_order_does_not_change_table(tmp_path):
    rows = [[f"v{i}.mp4", "fake" if i % 2 else "real", f"g{i % 3}"] for i in range(12)]
    forward = ingest(
        "csv", _write_csv(tmp_path / "f" / "index.csv", ["path", "label", "group"], rows)
    )[0]
    backward = ingest(
        "csv", _write_csv(tmp_path / "b" / "index.csv", ["path", "label", "group"], rows[::-1])
    )[0]
    assert_frame_equal(forward.drop("url"), backward.drop("url"))
    assert forward["dup_group"].to_list() == sorted(forward["dup_group"])


def test_csv_label_map_and_unknown_labels(tmp_path):
    rows = [["a.mp4", "Fake"], ["b.mp4", "Real"], ["c.mp4", "satire"], ["d.mp4", "Fake"]]
    path = _write_csv(tmp_path / "labels.csv", ["path", "label"], rows)
    manifest, report = ingest("csv", path, label_map={"Fake": "fake", "Real": "real"})
    assert sorted(manifest["label"]) == ["fake", "fake", "real"]
    assert report.dropped == {"unknown_label": 1}
    assert report.label_mapping == {
        "Fake": {"fake": 2},
        "Real": {"real": 1},
        "satire": {"(unknown label)": 1},
    }


def test_every_format_has_a_reader_a_schema_entry_and_a_path_check():
    enum = load_schema()["properties"]["dataset"]["properties"]["format"]["enum"]
    assert set(FORMATS) == set(enum) == set(DATASET_PATHS)


def test_csv_missing_columns_is_an_error(tmp_path):
    path = _write_csv(tmp_path / "wrong.csv", ["file", "label"], [["a.mp4", "x"]])
    with pytest.raises(ValueError, match="url"):
        ingest("csv", path)
    with pytest.raises(ValueError, match="unknown ingest format"):
        ingest("nope", path)


def test_demo_format(tmp_path):
    rows = [
        ["videos/real_000.mp4", "real", "src0", "true"],
        ["videos/fake_000.mp4", "fake", "src0", "false"],
        ["videos/real_001.mp4", "real", "src1", "true"],
    ]
    _write_csv(tmp_path / "demo" / "index.csv", ["path", "label", "group", "is_original"], rows)
    manifest, report = ingest("demo", tmp_path / "demo")
    assert len(manifest) == 3 and report.rows_read == {"index.csv": 3}
    assert manifest["dup_group"].to_list() == ["src0", "src0", "src1"]
    assert manifest["is_original"].to_list() == [False, True, True]  # fake_000 sorts first
    assert manifest["video_id"].str.contains(r"^(real|fake)_00[01]_[0-9a-f]{8}$").all()
    assert manifest["url"].str.starts_with("file:///").all()


# --------------------------------------------------------------------------- folder


def _folder_corpus(root: Path) -> Path:
    files = [
        "cats/a.mp4",
        "cats/b.WEBM",
        "cats/seq1/c.mkv",
        "cats/seq1/d.mov",
        "dogs/e.avi",
        "dogs/notes.txt",
        "dogs/.hidden.mp4",
        "stray.mp4",
    ]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0")
    return root


def test_folder_format(tmp_path):
    root = _folder_corpus(tmp_path / "corpus")
    manifest, report = ingest("folder", root)
    assert report.rows_read == {"corpus": 6} and report.ignored_files == 1
    assert report.dropped == {"no_class_folder": 1}
    assert len(manifest) == 5 and _accounting_holds(report)
    assert dict(manifest["label"].value_counts().iter_rows()) == {"cats": 4, "dogs": 1}
    assert (manifest["dup_group"] == manifest["video_id"]).all()
    assert (manifest["platform"] == "local").all()
    assert all(SAFE.match(v) for v in manifest["video_id"])
    grouped, _ = ingest("folder", root, folder_group="parent")
    assert sorted(grouped["dup_group"].unique()) == ["cats", "cats/seq1", "dogs"]
    assert (grouped["dup_group"] == "cats/seq1").sum() == 2
    # Same tree elsewhere -> same ids.
    moved = ingest("folder", _folder_corpus(tmp_path / "x" / "corpus"))[0]
    assert moved["video_id"].to_list() == manifest["video_id"].to_list()


# --------------------------------------------------------------------------- wlasl


def test_wlasl_format(tmp_path):
    content = [
        {
            "gloss": "book",
            "instances": [
                {
                    "url": "https://www.youtube.com/watch?v=0UsjUE-TXns",
                    "video_id": "69241",
                    "frame_start": 1,
                    "frame_end": -1,
                    "fps": 25,
                    "signer_id": 118,
                    "split": "train",
                },
                {
                    "url": "https://www.youtube.com/watch?v=0UsjUE-TXns",
                    "video_id": "69242",
                    "frame_start": 100,
                    "frame_end": 160,
                    "fps": 25,
                    "signer_id": 90,
                    "split": "val",
                },
                {
                    "url": "https://aslsignbank.haskins.yale.edu/dictionary/protected_media/glossvideo/ASL/BO/BOOK.mp4",
                    "video_id": "../../evil id",
                    "frame_start": 1,
                    "frame_end": -1,
                    "fps": 25,
                    "signer_id": 7,
                },
            ],
        },
        {
            "gloss": "drink",
            "instances": [
                {
                    "url": "http://www.example.com/drink.mp4",
                    "video_id": "65539",
                    "frame_start": 1,
                    "frame_end": -1,
                    "fps": 30,
                    "signer_id": 7,
                },
                {"url": "", "video_id": "65540", "frame_start": 1, "frame_end": -1, "signer_id": 7},
                {
                    "url": "http://www.example.com/d2.mp4",
                    "video_id": "65541",
                    "frame_start": 50,
                    "frame_end": 10,
                    "signer_id": 7,
                },
                "not an instance",
            ],
        },
    ]
    json_path = tmp_path / "WLASL_v0.3.json"
    json_path.write_text(json.dumps(content))
    manifest, report = ingest("wlasl", json_path)
    assert list(manifest.columns) == list(MANIFEST_COLUMNS) + ["segment_fps"]
    assert report.rows_read == {"WLASL_v0.3.json": 7}
    assert report.dropped == {"bad_segment": 1, "empty_url": 1, "unparsable": 1}
    assert len(manifest) == 4 and _accounting_holds(report)
    by_id = {r["video_id"]: r for r in manifest.iter_rows(named=True)}
    assert (by_id["69241"]["frame_start"], by_id["69241"]["frame_end"]) == (0, -1)
    assert (by_id["69242"]["frame_start"], by_id["69242"]["frame_end"]) == (99, 160)
    assert by_id["65539"]["segment_fps"] == 30
    # Two signers cut from one YouTube video share a group; signer 7 is its own group.
    assert (
        by_id["69241"]["dup_group"] == by_id["69242"]["dup_group"] == "signer_90+signer_118"
    )
    assert (
        by_id["65539"]["dup_group"] == "signer_7" and by_id["65539"]["platform"] == "other"
    )
    evil = [v for v in by_id if v.startswith("evil_id_")]
    assert len(evil) == 1 and SAFE.match(evil[0])
    assert sorted(manifest["label"].unique()) == ["book", "drink"]
    assert report.groups == 2


# --------------------------------------------------------------------------- report


def test_write_ingest_report(tmp_path):
    rows = [["a.mp4", "fake", "g"], ["b.mp4", "real", "g"], ["", "fake", ""]]
    _, report = ingest(
        "csv", _write_csv(tmp_path / "c.csv", ["path", "label", "group"], rows)
    )
    md_path = tmp_path / "reports" / "ingest.md"
    write_ingest_report(report, md_path)
    text = md_path.read_text()
    assert "| 3 | 2 | 0 | 1 | 1 | 2 |" in text  # read, kept, merged, dropped, groups, originals
    assert "| empty_url | 1 |" in text
    assert "Groups holding more than one label: 1" in text
    data = json.loads(md_path.with_suffix(".json").read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["rows_read_total"] == 3 and data["groups_multi_label"] == ["g"]
    assert sorted(p.name for p in md_path.parent.iterdir()) == ["ingest.json", "ingest.md"]
