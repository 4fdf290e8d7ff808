"""Table read/write time: pandas (before issue 13) vs polars + Pandera's polars backend (after).

Two tables, both as the project reads and writes them (conform, Pandera validation, atomic
write; on read, typed parsing and validation again):

- the FVC manifest (5,079 rows), built from ``/work/shared/data/fvc`` by the fvc ingest
  (or a synthetic one of the same size and columns when the annotations are absent);
- a synthetic features table of 100,000 clips with the real feature columns
  (``lib.media.features``: 15 handcrafted + 8 scaled floats, 1 % of rows NaN as failed clips),
  as CSV and as Parquet (``results/features.parquet``), plus a read of 2 feature columns
  of the Parquet file (``read_table(..., columns=...)``: a lazy scan parses only those).

"Before" is the project's own ``lib/schemas.py`` as of commit ``f0b9f20`` (pandas +
``pandera.pandas``), loaded from git, so the baseline is the code that ran, not a
re-creation. Every figure is the median of ``--runs`` (default 3) runs in one process;
each run also checks that the polars table read back equals the one written (floats bit
for bit).

    .venv/bin/python benchmarks/bench_tables.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import types
from datetime import date
from pathlib import Path

import numpy as np
import pandas  # noqa: F401  (before lib: pandera then keeps its pandas backend, which the baseline uses)
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lib import schemas  # noqa: E402
from lib.media.features import HANDCRAFTED_FEATURES, SCALED_FEATURES  # noqa: E402

BEFORE_COMMIT = "f0b9f20"  # the last commit whose lib/schemas.py is on pandas
FVC_DIR = Path("/work/shared/data/fvc")
N_MANIFEST, N_FEATURES = 5_079, 100_000


def pandas_schemas() -> types.ModuleType:
    """The pandas-era ``lib/schemas.py``, from git, as a module (the "before" code path)."""
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:lib/schemas.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    module = types.ModuleType("schemas_pandas")
    exec(compile(source, f"{BEFORE_COMMIT}:lib/schemas.py", "exec"), module.__dict__)  # noqa: S102
    return module


def fvc_manifest() -> tuple[pl.DataFrame, str]:
    """The FVC manifest via the fvc ingest; a synthetic one of the same shape without it."""
    if (FVC_DIR / "FVC.csv").exists():
        from lib.config import load_schema, with_defaults
        from lib.corpus.ingest import build_manifest

        options = with_defaults({"dataset": {}}, load_schema())["dataset"]  # the schema's defaults
        manifest, _ = build_manifest("fvc", FVC_DIR, **(options | {"allow_file_urls": None}))
        return manifest, "FVC annotations, `fvc` ingest"
    rng = np.random.default_rng(0)
    ids = [f"yt_{i:011d}" for i in range(N_MANIFEST)]
    return pl.DataFrame({
        "video_id": ids, "url": [f"https://www.youtube.com/watch?v={i[3:]}" for i in ids],
        "label": rng.choice(["fake", "real"], N_MANIFEST), "dup_group": [f"f{i // 13}" for i in range(N_MANIFEST)],
        "platform": "youtube", "is_original": np.arange(N_MANIFEST) % 13 == 0,
        "frame_start": 0, "frame_end": -1,
    }), "synthetic (FVC annotations absent)"  # fmt: skip


def features_table() -> pl.DataFrame:
    """100,000 clips × the real feature columns, full-precision floats, 1 % failed (NaN)."""
    rng = np.random.default_rng(0)
    names = [*HANDCRAFTED_FEATURES, *SCALED_FEATURES]
    values = rng.lognormal(0.0, 2.0, size=(N_FEATURES, len(names))) * rng.choice([-1, 1], len(names))
    values[rng.random(N_FEATURES) < 0.01] = np.nan
    ids = [f"v{i // 11:05d}__{'orig' if i % 11 == 0 else f'a{i % 11 - 1}'}" for i in range(N_FEATURES)]
    return pl.DataFrame({"clip_id": ids, **{n: values[:, j] for j, n in enumerate(names)}})


# A stage process's fixed cost: import the stages, read and write a one-row table.
PROCESS = (
    "import lib.shards\n"
    "from lib import schemas\n"
    "t = schemas.read_table('clips.csv', 'clips')\n"
    "schemas.write_table(t, 'out.csv', 'clips')\n"
)
CLIPS_CSV = ("clip_id,video_id,path,aug_idx,augmentation,label,dup_group,status,reason\n"
             "c,v,data/c.mp4,-1,none,real,g,ok,\n")  # fmt: skip


def process_rss(work: Path, runs: int) -> dict[str, float]:
    """Peak RSS (MiB) and seconds of :data:`PROCESS` with the code before and after."""
    from bench_memory import peak_rss

    before = work / "before"
    before.mkdir()
    archive = subprocess.run(["git", "archive", BEFORE_COMMIT, "lib"], cwd=REPO, check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    out = {}
    for name, root in (("pandas", before), ("polars", REPO)):
        (work / name).mkdir()
        (work / name / "clips.csv").write_text(CLIPS_CSV)
        env_path = f"PYTHONPATH={root}"
        cmd = ["env", env_path, sys.executable, "-c", PROCESS]
        res = [peak_rss(cmd, work / name) for _ in range(runs)]
        out[f"{name} seconds"] = float(np.median([r[0] for r in res]))
        out[f"{name} rss"] = float(np.median([r[1] for r in res]))
    return out


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(name, table: pl.DataFrame, kind: str, suffix: str, old, work: Path, runs: int,
            columns: list[str] | None = None) -> dict:  # fmt: skip
    pandas_table = table.to_pandas()
    pd_path, pl_path = work / f"pandas_{name}{suffix}", work / f"polars_{name}{suffix}"
    row = {"table": name, "rows": len(table)}
    row["pandas write"] = median_time(lambda: old.write_table(pandas_table, pd_path, kind), runs)
    row["polars write"] = median_time(lambda: schemas.write_table(table, pl_path, kind), runs)
    if columns is None:
        row["pandas read"] = median_time(lambda: old.read_table(pd_path, kind), runs)
        row["polars read"] = median_time(lambda: schemas.read_table(pl_path, kind), runs)
        back = schemas.read_table(pl_path, kind)
        written = schemas.conform(table, kind)
        assert back.equals(written), f"{name}: the table read back differs from the one written"
        for c in written.columns:  # floats bit for bit (NaN included)
            if written[c].dtype == pl.Float64:
                assert back[c].to_numpy().tobytes() == written[c].to_numpy().tobytes(), c
    else:  # pandas read the whole file then selected; polars scans the columns it needs
        row["pandas read"] = median_time(lambda: old.read_table(pd_path, kind)[["clip_id", *columns]], runs)
        row["polars read"] = median_time(lambda: schemas.read_table(pl_path, kind, columns=columns), runs)
    row["size MB"] = pl_path.stat().st_size / 1e6
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    old = pandas_schemas()
    manifest, manifest_source = fvc_manifest()
    features = features_table()
    load = [os.getloadavg()[0]]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_tables_") as tmp:
        work = Path(tmp)
        rows = [
            measure("manifest (CSV)", manifest, "manifest", ".csv", old, work, args.runs),
            measure("features (CSV)", features, "features", ".csv", old, work, args.runs),
            measure("features (Parquet)", features, "features", ".parquet", old, work, args.runs),
            measure("features (Parquet), 2 of 23 feature columns", features, "features", ".parquet",
                    old, work, args.runs, columns=[HANDCRAFTED_FEATURES[0], SCALED_FEATURES[0]]),
        ]  # fmt: skip
        process = process_rss(work, args.runs)
    load.append(os.getloadavg()[0])
    lines = ["| table | rows | file | write: pandas → polars (s) | speed-up | read: pandas → polars (s) | speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['table']} | {r['rows']:,} | {r['size MB']:.1f} MB | {r['pandas write']:.3f} → "
            f"{r['polars write']:.3f} | {r['pandas write'] / r['polars write']:.1f}× | "
            f"{r['pandas read']:.3f} → {r['polars read']:.3f} | {r['pandas read'] / r['polars read']:.1f}× |"
        )  # fmt: skip
    text = (
        "## Tables: pandas (before) vs polars + Pandera (after), issue 13\n\n"
        f"Measured {date.today().isoformat()} on {os.cpu_count()} cores ({cpu_model()}), "
        f"`python benchmarks/bench_tables.py --runs {args.runs}`: median of {args.runs} runs, "
        f"one process, {time.perf_counter() - started:.0f} s in all. Each figure is the whole "
        "project path: write = conform + Pandera validation + atomic CSV/Parquet write; read = "
        "parse with the table's kinds + conform + validation. *pandas* is `lib/schemas.py` of "
        f"commit `{BEFORE_COMMIT}` (pandas + `pandera.pandas`, loaded from git); *polars* is the "
        "current one (`pandera.polars`, validation on the collected frame). Manifest: "
        f"{manifest_source}. Features: {N_FEATURES:,} synthetic clips × the 23 real feature "
        "columns (lognormal floats at full precision, 1 % NaN); every run checks that the "
        "polars table read back equals the one written, floats bit for bit. The last row reads "
        "2 feature columns (plus `clip_id`): polars scans only those, pandas read the whole file "
        f"and then selected. Load average {load[0]:.1f} → {load[1]:.1f} (other jobs were "
        "running: timings are indicative).\n\n" + "\n".join(lines) + "\n\n"
        "Fixed cost of every stage process (a fresh `python` that imports `lib.shards`, reads "
        "and writes a one-row clips table; peak RSS from `getrusage`, as bench_memory.py): "
        f"peak RSS {process['pandas rss']:.0f} → {process['polars rss']:.0f} MiB, "
        f"{process['pandas seconds']:.2f} → {process['polars seconds']:.2f} s. pandera's "
        "top-level package imports pandas whenever it is installed (and the SLURM executor "
        "plugin needs pandas installed), so the polars process carries pandas' import too "
        "(issue 20 removed the hook that hid it; its cost: section gc).\n"
    )
    print(write_section("tables", text).read_text()[-3000:])


if __name__ == "__main__":
    main()
