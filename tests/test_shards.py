"""Shard slicing and resume: a shard killed with SIGKILL resumes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
import pytest

from lib import schemas
from lib.shards import ProgressFile, Shard, concat_tables, run_shard


def test_shard_bounds_cover_every_row_once():
    for n_rows in (0, 1, 7, 100, 101):
        for count in (1, 2, 3, 8):
            covered = []
            for i in range(count):
                start, end = Shard(i, count).bounds(n_rows)
                covered += list(range(start, end))
            assert covered == list(range(n_rows))


def test_shard_parse():
    assert Shard.parse("2-of-4") == Shard(1, 4)
    assert Shard(1, 4).name == "2-of-4"
    for bad in ("0-of-4", "5-of-4", "2of4", "a-of-b"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_progress_file_cuts_torn_line(tmp_path):
    cols = schemas.columns("folds")
    pf = ProgressFile(tmp_path / "p.csv", cols)
    pf.append([{"video_id": "a", "dup_group": "g", "label": "real", "fold": 1}])
    with open(pf.path, "ab") as f:  # a torn write, as after a power loss
        f.write(b"b,g,fa")
    rows, keys = pf.load("folds", "video_id")
    assert list(rows["video_id"]) == ["a"] and keys == {"a"}
    assert pf.path.read_bytes().endswith(b"\n")


def test_progress_file_floats_round_trip_bit_for_bit(tmp_path):
    """Resumed rows come back from the progress file exactly as they were computed."""
    values = [0.1 + 0.2, 1 / 3, 5e-324, -1.2345678901234567e-300, 1e300, 2.0**53 + 2, -0.0,
              float("nan"), float("inf")]
    pf = ProgressFile(tmp_path / "p.csv", ["clip_id", "status", "reason", "x"])
    for i, v in enumerate(values):
        pf.append([{"clip_id": f"c{i}", "status": "ok", "reason": "", "x": v}])
    rows, _ = pf.load("features_stage", "clip_id")
    got = rows["x"].to_numpy()
    assert rows["x"].dtype == pl.Float64
    assert got.tobytes() == pl.Series(values).to_numpy().tobytes()
    out = schemas.write_table(rows, tmp_path / "f.csv", "features_stage")
    back = schemas.read_table(tmp_path / "f.csv", "features_stage")
    assert_frame_equal(back, out)
    assert back["x"].to_numpy().tobytes() == got.tobytes()


# A shard run as its own process, so that the test can kill -9 it like a dying node.
SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    import polars as pl
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from lib.shards import Shard, run_shard
    table = pl.DataFrame({"video_id": [f"v{i:02d}" for i in range(12)],
                          "dup_group": [f"g{i // 3}" for i in range(12)],
                          "label": ["real", "fake"] * 6})
    delay, log = float(sys.argv[3]), open(sys.argv[4], "a")
    def process(row):
        log.write(row["video_id"] + "\\n"); log.flush()
        time.sleep(delay)
        if row["video_id"] == "v05":
            return []                      # a unit with no output rows
        if row["video_id"] == "v07":
            raise RuntimeError("corrupt")  # a bad unit must not stop the shard
        return [{**row, "fold": int(row["video_id"][1:]) * 7 % 5}]
    def on_error(row, exc):
        return [{**row, "fold": 0, "error": str(exc)}]
    run_shard(table, Shard.parse(sys.argv[1]), stage="toy", key="video_id", process=process,
              on_error=on_error, out_kind="folds", out_columns=["video_id", "dup_group",
              "label", "fold", "error"], output=sys.argv[2], progress_dir=sys.argv[5],
              params={"p": 1})
    """
)


def _run(tmp_path, shard, out, delay, calls, progress, **kw):
    script = tmp_path / "shard_job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = [sys.executable, str(script), shard, str(out), str(delay), str(calls), str(progress)]
    return subprocess.Popen(args, env=env, start_new_session=True, **kw)


def test_killed_shard_resumes_and_matches_uninterrupted_run(tmp_path):
    ref, calls_ref = tmp_path / "ref.csv", tmp_path / "calls_ref.txt"
    assert _run(tmp_path, "1-of-1", ref, 0.0, calls_ref, tmp_path / "prog_ref").wait() == 0

    out, calls = tmp_path / "out.csv", tmp_path / "calls.txt"
    progress = tmp_path / "prog"
    proc = _run(tmp_path, "1-of-1", out, 0.3, calls, progress)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a few videos are finished
        files = list((progress / "toy").glob("*.csv"))
        if files and files[0].read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed shard must not leave its output"
    first = calls.read_text().split()
    assert 4 <= len(first) < 12

    assert _run(tmp_path, "1-of-1", out, 0.0, calls, progress).wait() == 0
    second = calls.read_text().split()[len(first):]
    # The rerun skipped every finished video and redid at most the one in flight.
    assert set(second).isdisjoint(first[:-1])
    assert sorted(set(first) | set(second)) == [f"v{i:02d}" for i in range(12)]
    assert len(second) <= 12 - len(first) + 1

    assert out.read_bytes() == ref.read_bytes()
    got, want = schemas.read_table(out, "folds"), schemas.read_table(ref, "folds")
    assert_frame_equal(got, want)
    assert got["video_id"].is_unique().all() and "v05" not in set(got["video_id"])
    assert got.filter(pl.col("video_id") == "v07")["error"].item() == "corrupt"
    assert not list((progress / "toy").glob("*.csv")), "progress is removed after success"


def test_results_do_not_depend_on_shard_count(tmp_path):
    whole = tmp_path / "whole.csv"
    assert _run(tmp_path, "1-of-1", whole, 0.0, tmp_path / "c1", tmp_path / "p1").wait() == 0
    parts = []
    for i in (1, 2, 3):
        part = tmp_path / f"part{i}.csv"
        assert _run(tmp_path, f"{i}-of-3", part, 0.0, tmp_path / "c3", tmp_path / "p3").wait() == 0
        parts.append(part)
    gathered = concat_tables(parts, "folds")  # what the gather rule does
    assert_frame_equal(gathered, schemas.read_table(whole, "folds"))


def test_progress_under_other_params_is_not_reused(tmp_path):
    table = pl.DataFrame({"video_id": ["a", "b"], "dup_group": ["g", "h"], "label": ["x", "y"]})
    seen = []

    def run(fold):
        def process(row):
            seen.append(row["video_id"])
            return [{**row, "fold": fold}]

        return run_shard(table, Shard(0, 1), stage="t", key="video_id", process=process,
                         on_error=None, out_kind="folds", out_columns=schemas.columns("folds"),
                         output=tmp_path / "o.csv", progress_dir=tmp_path / "p",
                         params={"fold": fold})  # fmt: skip

    assert list(run(1)["fold"]) == [1, 1]
    assert list(run(2)["fold"]) == [2, 2]
    assert seen == ["a", "b", "a", "b"]


def test_log_of_a_killed_shard_names_the_video_in_flight(tmp_path):
    log_path = tmp_path / "job.log"
    with open(log_path, "w") as log_file:
        proc = _run(tmp_path, "1-of-1", tmp_path / "o.csv", 1.0, tmp_path / "calls.txt",
                    tmp_path / "prog", stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline and "v02: start" not in log_path.read_text():
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = log_path.read_text()
    assert "video_id=v02: start" in text and "video_id=v02: done" not in text
    assert "video_id=v01: done" in text
