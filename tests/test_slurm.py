"""profiles/slurm against a REAL one-node SLURM cluster (munged, slurmctld, slurmd) that
tests/slurm/start_cluster.sh starts on this host; nothing here is mocked.

- Without SLURM: `snakemake -n --profile profiles/slurm` plans the run (no sbatch on PATH),
  and the GPU overlay asks for a GPU for `scale` only.
- The small demo through sbatch: every job but `all` is one SLURM job, as many as the
  dry run's job table says (stages x shards + models x folds + gathers + singletons),
  and the contract tables are written.
- A shard scancelled mid-run: Snakemake reports the failure; the same command again
  resubmits only that shard (which resumes after its finished clips) and the gather, and
  the scale table equals that of the uninterrupted run.

The cluster tests skip, with the script's reason, where the cluster cannot be started
(not root, no apt-get). On 2 cores the file takes about 7.5 minutes, mostly the plugin's
status polling (one poll cycle of 11 s or more per DAG level).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
import pytest
import yaml

from conftest import BIN, DEMO_CONFIG, REPO, bare_python_dir, copy_workflow, layered_config
from conftest import workflow_env
from lib import schemas
from lib.config import load_schema, with_defaults

SLURM_SCRIPTS = REPO / "tests" / "slurm"
PROFILE = ("--profile", "profiles/slurm")
# The plugin's first poll after a submission, and the interval after a job finished. The
# profile's 40 s suits real clusters; 1 s keeps this file within its time budget. The
# cluster's MinJobAge (3600 s) stays far above 3 x this, so squeue remains in charge.
# (While no job finishes, the plugin adds 10 s to the interval after each poll: a job
# shorter than 11 s takes about 12 s here, which is most of this file's time.)
FAST_POLL = ("--slurm-init-seconds-before-status-checks", "1")

# The smallest demo that still has every stage, two shards and two folds, layered on `make
# demo`'s config files (the demo's canvas, tiny deep models and encoder settings).
# Every model family runs, but one deep model stands for the others (the same rule), and
# few permutations and bootstrap resamples: the cluster's polling is the slow part.
OVERLAY = {
    "demo": {"n_groups": 4},
    "folds": {"k": 2},
    "augment": {"n_augmentations": 1},
    "shards": 2,
    "train": {"models": ["logreg", "linear_svm", "hist_gbm", "dummy", "naive_cnn"]},
    "evaluate": {
        "bootstrap": 100,
        # the demo's probe is not trained here: the schema's three permuted models
        "permutation": {"n_permutations": 5, "models": ["logreg", "linear_svm", "hist_gbm"]},
    },
}
SHARDED_STAGES = {
    "download",
    "validate",
    "augment",
    "signatures",
    "features",
    "scale",
    "scaled_features",
}
SCALE_TABLE = "results/scaled.csv"
MODEL_FOLD_RULES = {"train", "train_deep"}  # one job per (model, fold): feature / deep models

# (path, schema kind) of the tables compared between runs and checked after the demo.
TABLES = [
    ("results/manifest.csv", "manifest"),
    ("results/download.csv", "download"),
    ("results/videos.csv", "videos"),
    ("results/clips.csv", "clips"),
    ("results/scaled.csv", "scaled"),
    ("results/features.parquet", "features"),
    ("results/folds.csv", "folds"),
    ("results/metrics.csv", "metrics"),
    ("results/summary.csv", "summary"),
]

SUBMITTED = re.compile(
    r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", re.MULTILINE
)
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
LOCALRULE = re.compile(r"^localrule (\w+):", re.MULTILINE)
TIMEOUT = shutil.which("timeout") or "timeout"  # resolved here: some runs get a bare PATH


# ----------------------------------------------------------------------------- helpers
def write_overlay(workdir: Path, overlay: dict = OVERLAY) -> tuple[str, ...]:
    """The config files of the test demo, in order: the demo's, then ``overlay``."""
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    return (*DEMO_CONFIG, "overlay.yaml")


def run_snakemake(workdir: Path, *args: str, limit_s: int, env: dict | None = None):
    """Snakemake under `timeout -k 15` (a hung run only stops with SIGKILL)."""
    cmd = [TIMEOUT, "-k", "15", str(limit_s), str(BIN / "snakemake"), *args]
    return subprocess.run(
        cmd,
        cwd=workdir,
        env=env or workflow_env(),
        capture_output=True,
        text=True,
        timeout=limit_s + 30,
    )


def output_of(proc) -> str:
    return (proc.stdout or "") + (proc.stderr or "")


def failure(proc, workdir: Path, what: str) -> str:
    """A failure message with Snakemake's output and the tails of the job logs."""
    logs = "\n".join(
        f"--- {p}\n{p.read_text(errors='replace')[-1500:]}"
        for p in sorted((workdir / "logs").rglob("*.log"))
    )
    slurm_dir = workdir / ".snakemake" / "slurm_logs"
    slurm_logs = "\n".join(
        f"--- {p}\n{p.read_text(errors='replace')[-1500:]}"
        for p in sorted(slurm_dir.rglob("*.log"))
    )
    return (
        f"{what}: exit {proc.returncode}\n{output_of(proc)[-6000:]}\n"
        f"{logs[-8000:]}\nSLURM logs:\n{slurm_logs[-4000:]}"
    )


def job_stats(text: str) -> collections.Counter:
    """Snakemake's 'Job stats' table (rule -> number of jobs), without the total."""
    table = text.split("Job stats:", 1)[1]
    counts = collections.Counter()
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    assert counts, f"no job stats table in:\n{text[-3000:]}"
    return counts


def submitted_jobs(text: str) -> list[dict]:
    """One dict per 'has been submitted with SLURM jobid' line: rule, wildcards, ids, log."""
    jobs = []
    for snakemake_id, slurm_id, log in SUBMITTED.findall(text):
        # .snakemake/slurm_logs/rule_<rule>[/<wildcards>]/<slurm id>.log
        parts = Path(log).parts
        i = max(k for k, p in enumerate(parts) if p.startswith("rule_"))
        jobs.append(
            {
                "rule": parts[i][len("rule_") :],
                "wildcards": "/".join(parts[i + 1 : -1]),
                "snakemake_id": int(snakemake_id),
                "slurm_id": int(slurm_id),
                "slurm_log": Path(log),
            }
        )
    return jobs


def permuted_models(config: dict) -> list[str]:
    """Models with a permutation test (one job each)."""
    return [
        m for m in config["evaluate"]["permutation"]["models"] if m in config["train"]["models"]
    ]


def expected_job_count(config: dict, n_sharded: int, n_gathers: int, n_singletons: int) -> int:
    """stages x shards + models x folds + permuted models + gathers + singletons
    (docs/CLUSTER.md)."""
    return (
        n_sharded * config["shards"]
        + len(config["train"]["models"]) * config["folds"]["k"]
        + len(permuted_models(config))
        + n_gathers
        + n_singletons
    )


def resolved_config(workdir: Path, overlay: dict) -> dict:
    """The demo's config files with the overlay merged in depth, as Snakemake layers them,
    and the schema's defaults filled in."""
    return with_defaults(layered_config(workdir, *DEMO_CONFIG, overlay=overlay), load_schema())


def check_plan(plan: collections.Counter, config: dict) -> int:
    """The dry run's jobs fit the formula; returns the number of SLURM jobs (all is local)."""
    sharded = {r for r in plan if r in SHARDED_STAGES}
    gathers = {r for r in plan if r.startswith("gather_")}
    singletons = set(plan) - sharded - gathers - MODEL_FOLD_RULES - {"permutation", "all"}
    assert sharded == SHARDED_STAGES, plan
    assert gathers == {f"gather_{s}" for s in SHARDED_STAGES}, plan
    assert all(plan[r] == config["shards"] for r in sharded), plan
    model_fold_jobs = sum(plan[r] for r in MODEL_FOLD_RULES)
    assert model_fold_jobs == len(config["train"]["models"]) * config["folds"]["k"], plan
    assert plan["permutation"] == len(permuted_models(config)), plan
    assert all(plan[r] == 1 for r in gathers | singletons | {"all"}), plan
    n_jobs = expected_job_count(config, len(sharded), len(gathers), len(singletons))
    assert n_jobs == sum(plan.values()) - plan["all"]
    return n_jobs


def squeue_jobs() -> dict[int, dict]:
    """Every job slurmctld still knows (MinJobAge 3600 s keeps finished ones)."""
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%T|%j|%k|%C"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        jobid, state, name, comment, cpus = line.split("|")
        if jobid.isdigit():
            jobs[int(jobid)] = {"state": state, "name": name, "comment": comment, "cpus": int(cpus)}
    return jobs


def read_tables(workdir: Path) -> dict[str, pl.DataFrame]:
    """The contract tables (validated) plus every predictions.csv, without absolute URLs."""
    tables = {path: schemas.read_table(workdir / path, kind) for path, kind in TABLES}
    for p in sorted((workdir / "results" / "models").glob("*/fold-*/predictions.csv")):
        tables[str(p.relative_to(workdir))] = schemas.read_table(p, "predictions")
    return {path: without_file_urls(df) for path, df in tables.items()}


def without_file_urls(table: pl.DataFrame) -> pl.DataFrame:
    """file:// URLs hold the absolute path of the checkout the corpus was generated in."""
    return table.drop(
        [c for c in table.columns if table[c].cast(pl.String).str.starts_with("file://").any()]
    )


def progress_units(progress_dir: Path, shard: str, key: str) -> int:
    """Finished units in a shard's progress file (complete lines only)."""
    files = list(progress_dir.glob(f"{shard}-*.csv"))
    if not files:
        return 0
    data = files[0].read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    lines = data.decode(errors="replace").splitlines()
    if len(lines) < 2:
        return 0
    col = lines[0].split(",").index(key)
    return len({line.split(",")[col] for line in lines[1:] if line})


def no_slurm_path(tmp_path: Path) -> str:
    """A new user's bare ``python`` and the basic tools the plugin calls, but no SLURM command."""
    tools = tmp_path / "bin-without-slurm"
    tools.mkdir()
    for name in ("which", "sh", "bash", "env"):  # the plugin runs `which sacct` at import
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    path = f"{bare_python_dir()}{os.pathsep}{tools}"
    for name in ("sbatch", "sinfo", "squeue", "sacct", "srun", "scontrol"):
        assert shutil.which(name, path=path) is None, name
    return path


# ----------------------------------------------------------------------------- no cluster
def test_dry_run_plans_the_slurm_run_without_slurm(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    configfiles = write_overlay(workdir)
    env = {**workflow_env(), "PATH": no_slurm_path(tmp_path)}
    proc = run_snakemake(
        workdir, "-n", *PROFILE, "--configfile", *configfiles, limit_s=120, env=env
    )
    assert proc.returncode == 0, failure(proc, workdir, "dry run without SLURM")
    text = output_of(proc)
    assert "Using profile profiles/slurm" in text
    assert "This was a dry-run" in text
    plan = job_stats(text)
    config = resolved_config(workdir, OVERLAY)
    n_jobs = check_plan(plan, config)
    # 7 stages x 2 shards + 5 models x 2 folds + 3 permutation tests + 7 gathers + the
    # singletons (the plan's other rules, less the two model rules, permutation and all).
    assert n_jobs == 7 * 2 + 5 * 2 + 3 + 7 + (len(plan) - 7 - 7 - 2 - 1 - 1)
    # The profile's resources reach every job: partition, and mem_mb/runtime from the rules.
    assert text.count("slurm_partition=cpu") == sum(plan.values())
    assert not (workdir / "results").exists()


def test_gpu_overlay_asks_for_a_gpu_for_scale_and_deep_training_only(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    configfiles = write_overlay(workdir)
    env = {**workflow_env(), "PATH": no_slurm_path(tmp_path)}
    args = ("-n", "--cores", "64", *PROFILE, "--configfile", *configfiles)

    def resources_by_rule(text):
        found = collections.defaultdict(list)
        for rule, resources in re.findall(
            r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", text, re.MULTILINE
        ):
            found[rule].append(dict(kv.split("=", 1) for kv in resources.split(", ")))
        return found

    plain = run_snakemake(workdir, *args, limit_s=120, env=env)
    assert plain.returncode == 0, failure(plain, workdir, "dry run")
    plain_res = resources_by_rule(output_of(plain))
    assert plain_res["scale"] and all("gpu" not in r for rs in plain_res.values() for r in rs)
    assert {r["cpus_per_task"] for r in plain_res["augment"]} == {"2"}  # threads -> cpus
    assert {r["cpus_per_task"] for r in plain_res["folds"]} == {"1"}

    gpu = run_snakemake(
        workdir,
        *args,
        "--profile",
        "profiles/slurm-gpu",
        "--config",
        "scale={method: autoencoder, device: cuda}",
        limit_s=120,
        env=env,
    )
    assert gpu.returncode == 0, failure(gpu, workdir, "dry run with the GPU overlay")
    gpu_res = resources_by_rule(output_of(gpu))
    assert len(gpu_res["scale"]) == OVERLAY["shards"]
    for r in gpu_res["scale"]:
        assert (r["gpu"], r["slurm_partition"], r["cpus_per_task"]) == ("1", "gpu", "4")
        assert r["mem_mb"] == "2000"  # still the rule's own, attempt-scaled request
    deep = gpu_res["train_deep"]
    assert len(deep) == len(plain_res["train_deep"]) > 0  # one GPU job per (deep model, fold)
    for r in deep:
        assert (r["gpu"], r["slurm_partition"], r["cpus_per_task"]) == ("1", "gpu", "5")
    others = [r for rule, rs in gpu_res.items() if rule not in ("scale", "train_deep") for r in rs]
    assert others and all("gpu" not in r and r["slurm_partition"] == "cpu" for r in others)


# ----------------------------------------------------------------------------- real cluster
@pytest.fixture(scope="session")
def slurm_cluster():
    """The one-node cluster of tests/slurm/start_cluster.sh; stopped at the end if started here."""
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("bash and timeout are needed to start the SLURM test cluster")
    proc = subprocess.run(
        ["bash", str(SLURM_SCRIPTS / "start_cluster.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode == 3:
        reason = [ln for ln in proc.stderr.splitlines() if "CANNOT" in ln] or [proc.stderr]
        # CI runs as root with apt-get: a cluster that cannot start there is a broken cluster
        # path, which a skip would hide behind a green run.
        if os.environ.get("CI") == "true":
            pytest.fail(f"no SLURM test cluster under CI=true: {reason[-1].strip()}")
        pytest.skip(f"no SLURM test cluster: {reason[-1].strip()}")
    if proc.returncode != 0:
        pytest.fail(f"start_cluster.sh exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    started_here = "already running" not in proc.stdout
    yield proc.stdout
    if started_here:
        subprocess.run(["bash", str(SLURM_SCRIPTS / "stop_cluster.sh")], timeout=120)


@pytest.fixture(scope="module")
def demo_run(slurm_cluster, tmp_path_factory):
    """The small demo through `snakemake --profile profiles/slurm`, uninterrupted."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "wf")
    configfiles = write_overlay(workdir)
    dry = run_snakemake(workdir, "-n", *PROFILE, "--configfile", *configfiles, limit_s=120)
    assert dry.returncode == 0, failure(dry, workdir, "dry run")
    plan = job_stats(output_of(dry))
    started = time.monotonic()
    proc = run_snakemake(workdir, *PROFILE, "--configfile", *configfiles, *FAST_POLL, limit_s=480)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(failure(proc, workdir, f"demo under SLURM ({elapsed:.0f} s)"))
    text = output_of(proc)
    return {
        "workdir": workdir,
        "configfiles": configfiles,
        "plan": plan,
        "text": text,
        "config": resolved_config(workdir, OVERLAY),
        "elapsed": elapsed,
    }


@pytest.mark.slurm
def test_demo_under_slurm_writes_the_contract_tables(demo_run):
    workdir = demo_run["workdir"]
    tables = read_tables(workdir)
    manifest, videos = tables["results/manifest.csv"], tables["results/videos.csv"]
    assert len(manifest) >= 8
    assert len(tables["results/download.csv"]) == len(manifest) == len(videos)
    valid = videos.filter(pl.col("valid"))
    assert len(valid) >= 4
    clips = tables["results/clips.csv"]
    # One original plus n_augmentations clips per valid video.
    assert len(clips) == len(valid) * (1 + OVERLAY["augment"]["n_augmentations"])
    assert set(tables["results/features.parquet"]["clip_id"]) == set(clips["clip_id"])
    folds = tables["results/folds.csv"]
    assert set(folds["video_id"]) == set(valid["video_id"])
    assert set(folds["fold"]) == set(range(OVERLAY["folds"]["k"]))
    metrics = tables["results/metrics.csv"]
    models = demo_run["config"]["train"]["models"]
    assert set(metrics["model"]) == set(models)
    assert set(metrics["fold"]) == set(range(OVERLAY["folds"]["k"]))
    assert set(tables["results/summary.csv"]["model"]) == set(models)


@pytest.mark.slurm
def test_every_job_but_all_went_through_sbatch(demo_run):
    text, plan, config = demo_run["text"], demo_run["plan"], demo_run["config"]
    n_jobs = check_plan(plan, config)
    jobs = submitted_jobs(text)
    assert LOCALRULE.findall(text) == ["all"]  # the only job Snakemake ran itself
    assert len(jobs) == n_jobs
    assert collections.Counter(j["rule"] for j in jobs) == plan - collections.Counter(all=1)
    shards = {f"{i}-of-{config['shards']}" for i in range(1, config["shards"] + 1)}
    for stage in SHARDED_STAGES:
        assert {j["wildcards"] for j in jobs if j["rule"] == stage} == shards, stage

    # slurmctld ran each of them to completion, under the run's job name, on the partition's
    # CPUs the profile asked for (augment and scale have threads: 2 -> --cpus-per-task=2; the
    # demo corpus rule declares threads: 2 itself).
    run_id = RUN_ID.search(text).group(1)
    assert run_id.startswith("vidstage_")  # slurm-jobname-prefix
    known = squeue_jobs()
    for j in jobs:
        info = known[j["slurm_id"]]
        assert info["state"] == "COMPLETED", (j, info)
        assert info["name"] == run_id
        assert info["comment"].startswith(f"rule_{j['rule']}")
        assert info["cpus"] == (2 if j["rule"] in ("augment", "scale", "demo_corpus") else 1), (
            j,
            info,
        )
        # SLURM's log of a successful job is deleted; the job's own log stays.
        assert not j["slurm_log"].exists()
    assert all((demo_run["workdir"] / "logs" / stage).is_dir() for stage in SHARDED_STAGES)


@pytest.mark.slurm
def test_scancelled_shard_fails_the_run_and_the_rerun_resumes_it(demo_run, tmp_path):
    # Start from the finished demo with the outputs of `scale` and of everything after it
    # deleted: the state of a first run that has just written clips.csv. (Not --forcerun:
    # after a failed forced run, Snakemake finds the older downstream files up to date.)
    # Both runs ask for the scale table only: what follows it is the same jobs on the same
    # inputs as in the uninterrupted run, and tests/test_workflow.py resumes a whole run.
    reference = read_tables(demo_run["workdir"])["results/scaled.csv"]
    workdir = tmp_path / "wf"
    shutil.copytree(demo_run["workdir"], workdir, symlinks=True)
    configfiles, target = demo_run["configfiles"], "1-of-2"
    plan = run_snakemake(
        workdir, "-n", *PROFILE, "--configfile", *configfiles, "--forcerun", "scale", limit_s=120
    )
    assert plan.returncode == 0, failure(plan, workdir, "dry run --forcerun scale")
    outputs = {
        o
        for line in re.findall(r"^    output: (.*)$", output_of(plan), re.MULTILINE)
        for o in line.split(", ")
    }
    assert "results/scaled.csv" in outputs and "results/clips.csv" not in outputs
    for name in outputs:
        (workdir / name).unlink(missing_ok=True)
    progress_dir = workdir / "results" / ".progress" / "scale"
    shard_out = workdir / "results" / "shards" / "scale" / f"{target}.csv"
    other_out = workdir / "results" / "shards" / "scale" / "2-of-2.csv"
    before = max(squeue_jobs(), default=0)

    # Run 1 (no automatic retry, so the cancellation is final): scancel shard 1-of-2 of
    # scale once it has finished at least one clip.
    log = (tmp_path / "run1.log").open("w")
    cmd = [
        TIMEOUT,
        "-k",
        "15",
        "240",
        str(BIN / "snakemake"),
        *PROFILE,
        "--configfile",
        *configfiles,
        *FAST_POLL,
        "--retries",
        "0",
        SCALE_TABLE,
    ]
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=workflow_env(), stdout=log, stderr=subprocess.STDOUT, text=True
    )
    cancelled, deadline = None, time.monotonic() + 200
    try:
        while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
            running = [
                jid
                for jid, j in squeue_jobs().items()
                if jid > before
                and j["comment"] == f"rule_scale_wildcards_{target}"
                and j["state"] == "RUNNING"
            ]
            if running and progress_units(progress_dir, target, "clip_id") >= 1:
                assert not shard_out.exists(), "shard finished before it could be cancelled"
                subprocess.run(["scancel", str(running[0])], check=True, timeout=30)
                cancelled = running[0]
            time.sleep(0.1)
        rc = proc.wait(timeout=max(10, deadline - time.monotonic()) + 40)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text1 = (tmp_path / "run1.log").read_text()
    assert cancelled is not None, f"never saw scale {target} at work:\n{text1[-4000:]}"
    assert rc not in (0, 124, 137), f"run 1 exited {rc}:\n{text1[-4000:]}"
    assert squeue_jobs()[cancelled]["state"] == "CANCELLED"
    assert f"SLURM-job '{cancelled}' failed" in text1 and "CANCELLED" in text1
    # SLURM's log of the failed job is kept; the shard's output is gone, its progress not.
    failed = [j for j in submitted_jobs(text1) if j["slurm_id"] == cancelled]
    assert failed and failed[0]["slurm_log"].exists()
    assert not shard_out.exists()
    n_done = progress_units(progress_dir, target, "clip_id")
    assert n_done >= 1
    # keep-going: the other shard finished in run 1 and is not touched again.
    other_log = workdir / "logs" / "scale" / "2-of-2.log"
    assert other_out.exists()
    other_mtime = (other_out.stat().st_mtime_ns, other_log.stat().st_mtime_ns)

    # Run 2: the same command: only the cancelled shard and the gather.
    proc2 = run_snakemake(
        workdir, *PROFILE, "--configfile", *configfiles, *FAST_POLL, SCALE_TABLE, limit_s=240
    )
    assert proc2.returncode == 0, failure(proc2, workdir, "rerun after scancel")
    jobs2 = submitted_jobs(output_of(proc2))
    assert [(j["rule"], j["wildcards"]) for j in jobs2] == [("scale", target), ("gather_scale", "")]
    assert (other_out.stat().st_mtime_ns, other_log.stat().st_mtime_ns) == other_mtime
    shard_log = (workdir / "logs" / "scale" / f"{target}.log").read_text()
    m = re.search(rf"scale shard {target}: (\d+) rows, (\d+) already done", shard_log)
    assert m, shard_log[-2000:]
    n_rows, resumed = int(m.group(1)), int(m.group(2))
    assert resumed == n_done and 1 <= resumed < n_rows
    assert not list(progress_dir.glob(f"{target}-*.csv"))  # removed once the output is written

    # The scale table equals the uninterrupted run's.
    resumed = without_file_urls(schemas.read_table(workdir / SCALE_TABLE, "scaled"))
    assert_frame_equal(resumed, reference)
