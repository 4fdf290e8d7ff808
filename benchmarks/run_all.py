"""Every benchmark in one run: reader vs peers, memory of the streaming stages, the demo,
the leak audit (robustness of the signatures, scale of the matcher).

    .venv/bin/python benchmarks/run_all.py      # or: make bench

Each script generates its own inputs and rewrites its own section of docs/BENCHMARKS.md;
every figure is the median of 3 runs or more. About 18 minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_reader.py", "bench_memory.py", "bench_train.py", "bench_leaks.py", "bench_demo.py")


def main() -> int:
    start = time.perf_counter()
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
    print(f"all benchmarks: {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
