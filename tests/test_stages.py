"""Stage drivers called directly (no Snakemake): segments, determinism, bad rows kept."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from hostile_media import write_video
from lib import schemas
from lib.cli import default_parameters
from lib.io.probe import probe_video
from lib.io.reader import FrameReader
from lib.shards import Shard
from lib.stages import augment
from lib.stages.augment import augment_shard
from lib.stages.download import download_shard
from lib.stages.validate import validate_shard

#: What the command line passes each stage when nothing is configured: the schema's defaults
#: and the command table's default folders (a stage function has no defaults of its own).
AUGMENT = {**default_parameters("augment"), "clips_dir": "data/clips"}
VALIDATE = default_parameters("validate")
DOWNLOAD = {**default_parameters("download"), "videos_dir": "data/videos", "previous": None,
            "recheck": None}  # fmt: skip


def _videos_table(tmp_path: Path, source: Path | None = None, **extra) -> Path:
    """A one-video videos.csv (paths relative to tmp_path, which is the cwd).

    ``source``: a video to copy in; the test helper's own x264 encode is not bitwise
    repeatable, so tests comparing outputs must start from the same file.
    """
    (tmp_path / "data/videos").mkdir(parents=True)
    if source is None:
        write_video(tmp_path / "data/videos/v1.mp4", frames=30, width=64, height=48, noise=True)
    else:
        shutil.copy2(source, tmp_path / "data/videos/v1.mp4")
    probe = probe_video("data/videos/v1.mp4")
    row = {"video_id": "v1", "path": "data/videos/v1.mp4", "label": "real", "dup_group": "g1",
           "platform": "local", "is_original": True, **probe, **extra}  # fmt: skip
    schemas.write_table(pl.DataFrame([row]), tmp_path / "videos.csv", "videos")
    return tmp_path / "videos.csv"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_augment_honours_a_segment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    videos = _videos_table(tmp_path, frame_start=5, frame_end=17)
    augment_shard(videos, tmp_path / "clips.csv", Shard(0, 1), **{**AUGMENT, "n_augmentations": 2,
                  "seed": 1}, progress_dir=tmp_path / "progress")  # fmt: skip
    clips = schemas.read_table(tmp_path / "clips.csv", "clips")
    assert list(clips["aug_idx"]) == [-1, 0, 1]
    assert clips["augmentation"][0] == "segment:5-17"
    for path in clips["path"]:
        with FrameReader(path) as reader:
            assert reader.n_frames == 12, path
    with FrameReader("data/videos/v1.mp4") as src, FrameReader(clips["path"][0]) as cut:
        candidates = {i: f.astype(int) for i, f in src.read([4, 5, 6])}
        first_cut = next(iter(cut.read([0])))[1].astype(int)
    error = {i: abs(f - first_cut).mean() for i, f in candidates.items()}
    assert min(error, key=error.get) == 5, f"the cut starts at frame_start: {error}"


def test_augment_is_deterministic_and_location_independent(tmp_path, monkeypatch):
    source = write_video(tmp_path / "source.mp4", frames=30, width=64, height=48, noise=True)
    results = []
    for where in ("a", "b/deeper"):
        root = tmp_path / where
        root.mkdir(parents=True)
        monkeypatch.chdir(root)
        videos = _videos_table(root, source)
        augment_shard(videos, root / "clips.csv", Shard(0, 1), **{**AUGMENT, "n_augmentations": 3,
                      "seed": 7}, progress_dir=root / "progress")  # fmt: skip
        clips = schemas.read_table(root / "clips.csv", "clips")
        results.append((clips, [_md5(root / p) for p in clips["path"][1:]]))
    assert_frame_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1], "same seed and id give bitwise-identical clips"
    assert results[0][0]["path"].str.starts_with("data/clips/v1/")[1:].all()


def test_failed_downloads_keep_their_row_in_videos(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/videos").mkdir(parents=True)
    write_video(tmp_path / "data/videos/ok.mp4", frames=5)
    (tmp_path / "data/videos/bad.mp4").write_text("not a video")
    rows = [
        {"video_id": "ok", "path": "data/videos/ok.mp4", "status": "ok", "reason": ""},
        {"video_id": "bad", "path": "data/videos/bad.mp4", "status": "ok", "reason": ""},
        {"video_id": "gone", "path": "", "status": "failed", "reason": "http_404"},
    ]
    table = pl.DataFrame([{**r, "url": f"https://x/{r['video_id']}", "label": "fake",
                           "dup_group": "g", "platform": "other", "error": "",
                           "is_original": True, "frame_start": 0, "frame_end": -1}
                          for r in rows])  # fmt: skip
    schemas.write_table(table, tmp_path / "download.csv", "download")
    validate_shard(tmp_path / "download.csv", tmp_path / "videos.csv", Shard(0, 1), **VALIDATE,
                   progress_dir=tmp_path / "progress")  # fmt: skip
    table = schemas.read_table(tmp_path / "videos.csv", "videos")
    videos = {r["video_id"]: r for r in table.iter_rows(named=True)}
    assert list(videos) == ["ok", "bad", "gone"]
    assert videos["ok"]["valid"] and videos["ok"]["frames"] == 5
    assert not videos["bad"]["valid"] and videos["bad"]["reason"] == "not_a_video"
    assert videos["gone"]["reason"] == "not_downloaded:http_404"
    videos = table
    assert "frame_end" in videos.columns, "extra manifest columns travel on"


def test_every_hostile_file_gets_one_row_with_its_verdict(tmp_path, monkeypatch):
    from hostile_media import hostile_set

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data/videos"
    folder.mkdir(parents=True)
    cases = hostile_set(folder)
    rows = [{"video_id": f"h{i:02d}", "url": f"file://{p}", "label": "fake", "dup_group": "g",
             "platform": "local", "status": "ok", "path": os.path.relpath(p, tmp_path),
             "reason": "", "error": "", "is_original": True}
            for i, (p, _, _) in enumerate(cases)]  # fmt: skip
    schemas.write_table(pl.DataFrame(rows), tmp_path / "download.csv", "download")
    validate_shard(tmp_path / "download.csv", tmp_path / "videos.csv", Shard(0, 1), **VALIDATE,
                   progress_dir=tmp_path / "progress")  # fmt: skip
    videos = schemas.read_table(tmp_path / "videos.csv", "videos")
    assert list(videos["video_id"]) == [r["video_id"] for r in rows]
    for (path, valid, reason), got in zip(cases, videos.iter_rows(named=True)):
        assert (got["valid"], got["reason"]) == (valid, reason), path.name


def _manifest(tmp_path: Path, sources: list[Path]) -> Path:
    rows = [{"video_id": f"h{i:02d}", "url": p.absolute().as_uri(), "label": "fake",
             "dup_group": "g", "platform": "local", "is_original": True, "frame_start": 0,
             "frame_end": -1} for i, p in enumerate(sources)]  # fmt: skip
    schemas.write_table(pl.DataFrame(rows), tmp_path / "manifest.csv", "manifest")
    return tmp_path / "manifest.csv"


def test_local_files_are_linked_without_yt_dlp_and_no_failure_is_other(tmp_path, monkeypatch):
    """The hostile set named by a corpus: each file gets its own download and validate verdict."""
    from hostile_media import hostile_set

    monkeypatch.chdir(tmp_path)
    cases = hostile_set(tmp_path / "corpus")
    before = {p: _md5(p) for p, _, _ in cases if p.is_file()}
    manifest = _manifest(tmp_path, [p for p, _, _ in cases])
    download_shard(manifest, tmp_path / "download.csv", Shard(0, 1), **DOWNLOAD,
                   progress_dir=tmp_path / "progress")  # fmt: skip
    downloads = schemas.read_table(tmp_path / "download.csv", "download")
    expected_failure = {"missing": "missing", "empty_file": "empty"}
    for (path, _, verdict), got in zip(cases, downloads.iter_rows(named=True)):
        want = "not_a_file" if path.is_dir() else expected_failure.get(verdict, "")
        assert (got["status"], got["reason"]) == ("failed" if want else "ok", want), path.name
        if not want:
            assert got["path"] == f"data/videos/{got['video_id']}{path.suffix.lower()}", path.name
            assert os.path.samefile(got["path"], path), "hard-linked, not copied"
    assert "other" not in set(downloads["reason"])
    validate_shard(tmp_path / "download.csv", tmp_path / "videos.csv", Shard(0, 1), **VALIDATE,
                   progress_dir=tmp_path / "progress")  # fmt: skip
    videos = schemas.read_table(tmp_path / "videos.csv", "videos")
    for (path, valid, verdict), got in zip(cases, videos.iter_rows(named=True)):
        if path.is_file() and path.stat().st_size:
            assert (got["valid"], got["reason"]) == (valid, verdict), path.name
    assert not videos["reason"].str.contains("other").any()
    assert before == {p: _md5(p) for p in before}, "the corpus files are never changed"
    # A rerun finds every fetched file on disk: skipped, no new link.
    download_shard(manifest, tmp_path / "again.csv", Shard(0, 1), **DOWNLOAD,
                   progress_dir=tmp_path / "progress")  # fmt: skip
    again = schemas.read_table(tmp_path / "again.csv", "download")
    assert set(again.filter(downloads["status"] == "ok")["status"]) == {"skipped"}


def test_rerun_refetches_a_file_validate_found_broken_only_when_retrying(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    source = write_video(tmp_path / "corpus/good.mp4", frames=8, noise=True)
    manifest = _manifest(tmp_path, [source])
    (tmp_path / "data/videos").mkdir(parents=True)
    (tmp_path / "data/videos/h00.mp4").write_bytes(source.read_bytes()[:2000])  # a cut transfer
    first = {**DOWNLOAD, "progress_dir": tmp_path / "progress"}
    download_shard(manifest, tmp_path / "download.csv", Shard(0, 1), **first)
    assert schemas.read_table(tmp_path / "download.csv", "download")["status"][0] == "skipped"
    validate_shard(tmp_path / "download.csv", tmp_path / "videos.csv", Shard(0, 1), **VALIDATE,
                   progress_dir=tmp_path / "progress")  # fmt: skip
    assert schemas.read_table(tmp_path / "videos.csv", "videos")["reason"][0] == "truncated"

    download_shard(manifest, tmp_path / "kept.csv", Shard(0, 1), **{**first, "retry_failed": False,
                   "recheck": tmp_path / "videos.csv"})  # fmt: skip
    assert schemas.read_table(tmp_path / "kept.csv", "download")["status"][0] == "skipped"
    download_shard(manifest, tmp_path / "retried.csv", Shard(0, 1),
                   **{**first, "recheck": tmp_path / "videos.csv"})  # fmt: skip
    retried = schemas.read_table(tmp_path / "retried.csv", "download")
    assert (retried["status"][0], retried["path"][0]) == ("ok", "data/videos/h00.mp4")
    assert _md5(tmp_path / "data/videos/h00.mp4") == _md5(source)


def test_failed_segment_augmentation_fails_the_original_clip_too(tmp_path, monkeypatch):
    """A WLASL segment is cut by augment: if that fails there is no original clip either."""

    class Broken:
        def apply(self, frame, t):
            raise RuntimeError("augmentation exploded")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(augment, "make_augmentation", lambda *a: Broken())
    for name, extra in (("segment", {"frame_start": 5, "frame_end": 17}), ("whole", {})):
        root = tmp_path / name
        root.mkdir()
        monkeypatch.chdir(root)
        augment_shard(_videos_table(root, **extra), root / "clips.csv", Shard(0, 1),
                      **{**AUGMENT, "n_augmentations": 2}, progress_dir=root / "progress")  # fmt: skip
        clips = {
            r["aug_idx"]: r
            for r in schemas.read_table(root / "clips.csv", "clips").iter_rows(named=True)
        }
        assert clips[0]["status"] == clips[1]["status"] == "failed"
        assert clips[0]["reason"] == "augment_error:RuntimeError: augmentation exploded"
        original = clips[-1]
        if name == "segment":
            assert (original["status"], original["path"]) == ("failed", ""), original
            assert original["reason"].startswith("augment_error:RuntimeError")
        else:  # the untouched file validate passed is still a good original
            assert (original["status"], original["path"]) == ("ok", "data/videos/v1.mp4")
