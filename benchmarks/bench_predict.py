"""Peak memory of `python -m lib predict` on 1 min vs 10 min of 1080p (sliding windows).

`predict` streams each window (decode → letterbox → x264 → scaled features; sampled frames
→ handcrafted features), so its peak RSS must not grow with the video's length. The model
is a logreg fitted on random rows of the pipeline's feature columns: the figure is about
the video path, not the classifier. Each length runs once in a fresh process (peak RSS from
`getrusage(RUSAGE_CHILDREN)` of a wrapper, as bench_memory.py).

    .venv/bin/python benchmarks/bench_predict.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import peak_rss  # noqa: E402
from bench_reader import INPUTS, ensure_input, ensure_long_input  # noqa: E402
from report import cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lib.media.features import HANDCRAFTED_FEATURES, SCALED_FEATURES  # noqa: E402
from lib.train.feature_models import make_model  # noqa: E402


def tiny_model(folder: Path) -> Path:
    cols = [*HANDCRAFTED_FEATURES, *SCALED_FEATURES]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    model = make_model("logreg").fit(rng.normal(size=(40, len(cols))), np.repeat(["fake", "real"], 20))
    joblib.dump(model, folder / "model.joblib")
    (folder / "train_info.json").write_text(json.dumps(
        {"model": "logreg", "family": "feature", "features": cols, "positive_label": "fake"}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    one_minute = ensure_input(INPUTS["h264_1080p_60s_gop_default"])
    inputs = {"1 min": one_minute, "10 min": ensure_long_input(one_minute, minutes=10)}
    rows = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="vidstage-predict-") as tmp:
        work = Path(tmp)
        model = tiny_model(work / "model")
        for length, video in inputs.items():
            (work / "in.csv").write_text(f"video_id,path\n{video.stem},{video}\n")
            cmd = [sys.executable, "-m", "lib", "predict", "--input", str(work / "in.csv"),
                   "--model-dir", str(model), "--out", str(work / "out.csv"),
                   "--windows-out", str(work / "win.csv"), "--window-frames", "250",
                   "--stride-frames", "250"]  # fmt: skip
            for run in range(args.runs):
                seconds, rss = peak_rss(cmd, REPO)
                n_windows = int(pd.read_csv(work / "out.csv")["n_windows"].iloc[0])
                rows.append({"video": length, "run": run, "windows": n_windows,
                             "seconds": seconds, "peak_rss_mb": rss})  # fmt: skip
                print(rows[-1], flush=True)
    load.append(os.getloadavg()[0])
    table = pd.DataFrame(rows).groupby("video", sort=False).median(numeric_only=True)
    ratio = table.loc["10 min", "peak_rss_mb"] / table.loc["1 min", "peak_rss_mb"]
    text = (f"## predict on long videos\n\nMeasured {date.today()} on {os.cpu_count()} cores "
            f"({cpu_model()}), `python benchmarks/bench_predict.py --runs {args.runs}`: "
            "`python -m lib predict` (windows of 250 frames, stride 250) on one 1080p H.264 "
            f"file of 1 and of 10 min. Load average {load[0]:.1f} → {load[1]:.1f} (other jobs "
            "shared the machine: times are noisy, memory is not).\n\n"
            + table.drop(columns="run").round(1).to_markdown()
            + f"\n\nPeak RSS 10 min / 1 min: {ratio:.3f}.\n")
    print(write_section("predict", text).read_text())


if __name__ == "__main__":
    main()
