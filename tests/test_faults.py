"""A cluster's faults injected into real stage jobs (``python -m lib <stage>``, as the rules
run them): a full disk, SIGTERM (SLURM's time limit, preemption) and a memory limit's
SIGKILL. Each shows the job stopping with a log that says why (and in which unit), nothing
half-written where a later stage reads, and a rerun that resumes and ends with tables and
files identical to an uninterrupted run. Recovery for users: docs/CLUSTER.md, "When a job
fails".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
from polars.testing import assert_frame_equal

from hostile_media import write_video
from lib import schemas
from lib.io.probe import probe_video

ROOT = Path(__file__).resolve().parents[1]
#: Small stage settings, as a rule passes them (``--config-json``).
CONFIG = {
    "augment": {"n_augmentations": 2, "max_frames": 12, "encoder_threads": 1},
    "scale": {"size": 32, "encoder_threads": 1},
    "seed": 3,
}
#: The corpus: small videos and one large one (v3), whose unit needs far more memory.
SIZES = {"v0": (160, 120), "v1": (160, 120), "v2": (160, 120), "v3": (1280, 720), "v4": (96, 72)}
MEMORY_MARGIN_MB = 40  # the large unit's peak is far above it, a small unit's far below


def _require_root(what: str) -> None:
    if os.geteuid() == 0:
        return
    # CI runs as root: there a test that cannot inject its fault is a failure, not a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} needs root under CI=true")
    pytest.skip(f"{what} needs root")


def _mount_tmpfs(path: Path, size_bytes: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                   check=True)  # fmt: skip


def _resize_tmpfs(path: Path, size_bytes: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_bytes}", str(path)], check=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Source videos and their videos.csv, copied by every run (same bytes everywhere)."""
    root = tmp_path_factory.mktemp("fault_corpus")
    rows = []
    (root / "data/videos").mkdir(parents=True)
    for i, (vid, (width, height)) in enumerate(SIZES.items()):
        path = f"data/videos/{vid}.mp4"
        frames = 6 if width > 640 else 36
        write_video(root / path, frames=frames, width=width, height=height, noise=True, seed=i)
        rows.append({"video_id": vid, "path": path, "label": ["real", "fake"][i % 2],
                     "dup_group": f"g{i}", "platform": "local", "is_original": True,
                     **probe_video(root / path)})  # fmt: skip
    schemas.write_table(pl.DataFrame(rows), root / "videos.csv", "videos")
    return root


def _workspace(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def _job(root: Path, stage: str, log: Path, preexec_fn=None) -> subprocess.Popen:
    """One stage job as the rule starts it, its stdout and stderr in ``log``."""
    args = {"augment": ["--videos", "videos.csv", "--out", "results/clips.csv"],
            "scale": ["--clips", "results/clips.csv", "--out", "results/scaled.csv"]}[stage]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lib", stage, *args, "--shard", "1-of-1",
           "--progress-dir", "results/.progress", "--config-json", json.dumps(CONFIG)]  # fmt: skip
    with open(log, "a") as out:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=preexec_fn)  # fmt: skip


def _run(root: Path, stage: str, log: Path) -> int:
    return _job(root, stage, log).wait(timeout=300)


def _state(root: Path, stage: str) -> tuple[pl.DataFrame, dict]:
    """A stage's table and the md5 of every file it lists."""
    table, kind = {"augment": ("clips.csv", "clips"), "scale": ("scaled.csv", "scaled")}[stage]
    frame = schemas.read_table(root / "results" / table, kind)
    files = {p: hashlib.md5((root / p).read_bytes()).hexdigest() for p in frame["path"] if p}
    return frame, files


@pytest.fixture(scope="module")
def reference(template, tmp_path_factory) -> dict:
    """The uninterrupted run: augment then scale."""
    root = _workspace(template, tmp_path_factory.mktemp("fault_ref") / "run")
    log = root / "ref.log"
    for stage in ("augment", "scale"):
        assert _run(root, stage, log) == 0, log.read_text()
    return {"root": root, "log": log.read_text(),
            **{stage: _state(root, stage) for stage in ("augment", "scale")}}  # fmt: skip


def _assert_same(root: Path, reference: dict, stage: str) -> None:
    frame, files = _state(root, stage)
    assert_frame_equal(frame, reference[stage][0])
    assert (frame["status"] == "ok").all()
    assert files == reference[stage][1], "the rerun's files differ from the uninterrupted run's"


def _half_written(folder: Path) -> list[Path]:
    """Temporary files a writer left behind (a later stage must never see one)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.name.startswith(".tmp")]


def _bytes_on_tmpfs(paths: list[Path]) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in paths)


@pytest.mark.parametrize("stage", ["augment", "scale"])
def test_disk_full_stops_the_job_naming_the_path_and_the_rerun_resumes(
    stage, template, reference, tmp_path
):
    _require_root("a size-limited tmpfs")
    root = _workspace(template, tmp_path / "run")
    log = tmp_path / "job.log"
    folder = root / "data" / {"augment": "clips", "scale": "scaled"}[stage]
    ref_files = [reference["root"] / p for p in reference[stage][1]]
    first = [p for p in ref_files if "/v0" in str(p)]
    # Room for the first video's files and a little more: the disk fills during a later one.
    size = _bytes_on_tmpfs(first) + 16384
    assert size < _bytes_on_tmpfs(ref_files) // 2
    if stage == "scale":
        assert _run(root, "augment", log) == 0, log.read_text()
    _mount_tmpfs(folder, size)
    try:
        assert _run(root, stage, log) != 0
        text = log.read_text()
        assert "No space left on device" in text and f"data/{folder.name}/" in text, text
        assert re.search(rf"{stage} shard 1-of-1 stopped during \w+=v\d", text), text
        assert "rerun: the shard resumes" in text
        out = root / "results" / {"augment": "clips.csv", "scale": "scaled.csv"}[stage]
        assert not out.exists(), "a stopped shard must not write its table"
        assert not _half_written(folder), "no half-written file may stay"
        progress = list((root / "results/.progress" / stage).glob("*.csv"))
        assert len(progress) == 1 and "failed" not in progress[0].read_text()

        _resize_tmpfs(folder, 64 * 2**20)  # space freed
        assert _run(root, stage, log) == 0, log.read_text()
        rerun = log.read_text()[len(text) :]
        assert re.search(r"rows, [1-9]\d* already done \(resumed", rerun), rerun
        _assert_same(root, reference, stage)
    finally:
        _umount(folder)


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and re.search(pattern, log.read_text()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"job ended before {pattern!r}:\n{log.read_text()}")
        time.sleep(0.01)
    raise AssertionError(f"no {pattern!r} in {timeout} s:\n{log.read_text()}")


def test_sigterm_stops_the_job_with_progress_kept_and_the_rerun_resumes(
    template, reference, tmp_path
):
    root = _workspace(template, tmp_path / "run")
    log = tmp_path / "job.log"
    proc = _job(root, "augment", log)
    _wait_for(log, r"augment video_id=v3: start", proc)  # the long unit
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # what SLURM sends at the time limit
    rc = proc.wait(timeout=60)
    print(f"stopped {time.monotonic() - sent:.2f} s after SIGTERM")
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text
    assert "stopped by signal SIGTERM" in text and "during video_id=v3" in text, text
    assert "3 of 5 units are saved" in text, text
    assert not (root / "results/clips.csv").exists()
    assert not _half_written(root / "data/clips") and not list((root / "data/clips/v3").glob("*"))

    assert _run(root, "augment", log) == 0
    assert "5 rows, 3 already done" in log.read_text()[len(text) :]
    _assert_same(root, reference, "augment")


def _memory_cgroup(tmp_name: str) -> tuple[Path, str] | None:
    """A child of this process's memory cgroup (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``), or None where the machine does not allow one."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            base, limit = Path("/sys/fs/cgroup") / path.lstrip("/"), "memory.max"
            if "memory" not in (base / "cgroup.controllers").read_text().split():
                continue
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit = "memory.limit_in_bytes"
        else:
            continue
        try:
            (base / tmp_name).mkdir()
        except OSError:
            continue
        if not (base / tmp_name / limit).exists():  # v2 without memory in subtree_control
            (base / tmp_name).rmdir()
            continue
        return base / tmp_name, limit
    return None


def _rss_after_small_units(log_text: str) -> float:
    """The largest RSS the reference job logged after a small unit (MiB)."""
    values = [float(m.group(1)) for m in re.finditer(r"rss_mb=([\d.]+) video_id=v[0-2]: done",
                                                       log_text)]  # fmt: skip
    assert values, log_text
    return max(values)


def test_memory_limit_kill_names_the_unit_and_the_rerun_resumes(template, reference, tmp_path):
    root = _workspace(template, tmp_path / "run")
    log = tmp_path / "job.log"
    limit_mb = _rss_after_small_units(reference["log"]) + MEMORY_MARGIN_MB
    cgroup = _memory_cgroup(f"vidstage-test-{os.getpid()}") if os.geteuid() == 0 else None
    print("memory cgroup:", cgroup)
    try:
        if cgroup is not None:  # the kernel's out-of-memory killer sends the SIGKILL
            folder, limit_file = cgroup
            procs = folder / "cgroup.procs"
            proc = _job(root, "augment", log, preexec_fn=lambda: procs.write_text(str(os.getpid())))
            # The cgroup's usage leaves out pages charged elsewhere (shared libraries), so
            # the limit is set from its own usage once the job has imported and started.
            _wait_for(log, r"augment video_id=v0: start", proc)
            usage = int((folder / limit_file.replace("limit_in_bytes", "usage_in_bytes")
                         .replace("max", "current")).read_text())  # fmt: skip
            limit_mb = usage / 2**20 + MEMORY_MARGIN_MB
            (folder / limit_file).write_text(str(int(limit_mb * 2**20)))
            rc = proc.wait(timeout=300)
        else:  # a watchdog does it at the same RSS
            proc = _job(root, "augment", log)
            watched = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    if watched.memory_info().rss > limit_mb * 2**20:
                        proc.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
                time.sleep(0.005)
            rc = proc.wait()
        print(f"limit {limit_mb:.0f} MiB, by {'cgroup ' + str(cgroup) if cgroup else 'watchdog'}")
    finally:
        if cgroup is not None:
            cgroup[0].rmdir()
    text = log.read_text()
    assert rc == -signal.SIGKILL, text
    starts = re.findall(r"augment video_id=(v\d): start", text)
    assert starts[-1] == "v3", f"the killed job's log names its last unit: {starts}\n{text}"
    assert not (root / "results/clips.csv").exists()
    assert not list((root / "data/clips/v3").glob("[!.]*")), "no finished-looking v3 clip"
    print("left by the kill:", [p.name for p in _half_written(root / "data/clips")])

    assert _run(root, "augment", log) == 0
    rerun = log.read_text()[len(text) :]
    assert "5 rows, 3 already done" in rerun, rerun
    # kill -9 leaves the writer's temporary file (no reader opens a '.tmp' name); the
    # unit's rerun removes it.
    assert not _half_written(root / "data/clips")
    _assert_same(root, reference, "augment")


def test_disk_budget_removes_each_shards_clips_once_read_and_a_later_reader_stops(
    template, reference, tmp_path, monkeypatch
):
    """scale.remove_clips: the readers take augment's shard tables (as the rules pass them
    under the budget), scale removes the shard's clips after its table is written, the
    gathered tables equal the uninterrupted run's, and a reader run after the removal stops
    with the fix instead of writing failed rows."""
    from lib.cli import default_parameters
    from lib.shards import Shard, ShardStopped, concat_tables
    from lib.stages.augment import augment_shard
    from lib.stages.features import features_shard
    from lib.stages.scale import scale_shard

    root = _workspace(template, tmp_path / "run")
    monkeypatch.chdir(root)
    augment = {**default_parameters("augment"), **CONFIG["augment"], "seed": CONFIG["seed"]}
    scale = {**default_parameters("scale"), **CONFIG["scale"], "remove_clips": True}
    features = default_parameters("features")
    shards = [Shard(0, 2), Shard(1, 2)]
    tables = {"augment": [], "features": [], "scale": []}
    for shard in shards:
        out = Path(f"results/shards/augment/{shard.name}.csv")
        augment_shard("videos.csv", out, shard, clips_dir="data/clips",
                      progress_dir="results/.progress", **augment)  # fmt: skip
        tables["augment"].append(out)
    for shard, clips in zip(shards, tables["augment"]):
        progress = f"results/.progress/{shard.name}"
        written = schemas.read_table(clips, "clips").filter(pl.col("aug_idx") >= 0)["path"]
        assert all(Path(p).exists() for p in written)
        for stage, run, extra in (("features", features_shard, features),
                                  ("scale", scale_shard, scale)):  # fmt: skip
            out = Path(f"results/shards/{stage}/{shard.name}.csv")
            run(clips, out, Shard(0, 1), progress_dir=progress, **extra,
                **({"scaled_dir": "data/scaled"} if stage == "scale" else {}))  # fmt: skip
            tables[stage].append(out)
        assert not any(Path(p).exists() for p in written), "scale removes the shard's clips"
        assert all(Path(p).exists() for p in schemas.read_table(clips, "clips")
                   .filter(pl.col("aug_idx") < 0)["path"]), "a corpus's own videos stay"  # fmt: skip
    assert not list(Path("data/clips").rglob("*.mp4"))
    gathered = concat_tables(tables["scale"], "scaled")
    assert_frame_equal(gathered, reference["scale"][0])
    files = {p: hashlib.md5(Path(p).read_bytes()).hexdigest() for p in gathered["path"]}
    assert files == reference["scale"][1]
    assert_frame_equal(concat_tables(tables["augment"], "clips"), reference["augment"][0])

    # a reader rerun after the removal (e.g. forced) stops and says how to recover
    with pytest.raises(ShardStopped, match="missing .*--forcerun augment"):
        features_shard(tables["augment"][0], "results/again.csv", Shard(0, 1),
                       progress_dir="results/.progress/again", **features)  # fmt: skip
    assert not Path("results/again.csv").exists()


def test_disk_budget_plan_gives_the_readers_augments_shards(workflow_dir):
    """Under scale.remove_clips the plan runs features and scale on augment's shard tables
    (shard 1-of-1, a progress folder per shard) and scale after the shard's features."""
    from conftest import DEMO_CONFIG, snakemake

    (workflow_dir / "budget.yaml").write_text("scale:\n  remove_clips: true\n")
    out = snakemake(workflow_dir, "-n", "-p", "results/scaled.csv", "results/features.parquet",
                    "--configfile", *DEMO_CONFIG, "budget.yaml").stdout  # fmt: skip
    for i in (1, 2):
        shard = f"{i}-of-2"
        for stage in ("features", "scale"):
            assert (f"-m lib {stage} --clips results/shards/augment/{shard}.csv --shard 1-of-1"
                    f" --progress-dir results/.progress/{shard}") in out, out  # fmt: skip
        # and, where a model reads embeddings (the demo's probe), after the embeddings too
        assert re.search(rf"input: results/shards/augment/{shard}.csv, "
                         rf"results/shards/features/{shard}.csv(, results/embeddings.parquet)?\n",
                         out), out  # fmt: skip
