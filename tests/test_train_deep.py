"""Deep models: tiny families through from_pretrained, honest inner split, resume after kill -9,
and the seed's silent failures made loud."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal
import pytest

from conftest import REPO
from lib import schemas
from lib.io.writer import VideoWriter

torch = pytest.importorskip("torch")

from lib.train import checkpoint as ckpt  # noqa: E402
from lib.train.clips import inner_split, load_clip_table  # noqa: E402
from lib.config import ConfigError, load_schema, with_defaults  # noqa: E402
from lib.train.check import check_train_config  # noqa: E402
from lib.train.models import create_model, register_model  # noqa: E402
from lib.train.settings import DEEP_MODELS, DeepSettings  # noqa: E402

TINY = {
    "num_frames": 4,
    "image_size": 32,
    "epochs": 2,
    "batch_size": 4,
    "micro_batch": 2,
    "val_fraction": 0.34,
    "warmup_fraction": 0.0,
    "lr": 3e-3,
}


def _frames(label: str, group: int, n: int = 10, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(group)
    base = rng.integers(40, 120, (size, size, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = np.roll(base, t, axis=1).copy()
        if label == "fake":  # a bright square moving: something a network can pick up
            f[4 + t % 8 : 14 + t % 8, 8:18] = 230
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """12 duplicate groups (6 real, 6 fake), 1–2 videos each, original + 1 augmentation,
    tiny H.264 clips; scaled.csv, clips.csv, folds.csv (3 folds) as the workflow writes them."""
    root = tmp_path_factory.mktemp("deep")
    clips, scaled, folds = [], [], []
    for g in range(12):
        label = "fake" if g % 2 else "real"
        for v in range(1 + g % 2):
            vid = f"g{g:02d}v{v}"
            folds.append(
                {"video_id": vid, "dup_group": f"grp{g:02d}", "label": label, "fold": g % 3}
            )
            for aug in (-1, 0):
                cid = f"{vid}_{'orig' if aug < 0 else f'aug{aug}'}"
                path = root / "scaled" / f"{cid}.mp4"
                path.parent.mkdir(exist_ok=True)
                with VideoWriter(path, fps=10) as w:
                    for f in _frames(label, g * 10 + v + (aug + 1) * 100):
                        w.write(f)
                clips.append(
                    {
                        "clip_id": cid,
                        "video_id": vid,
                        "path": str(path),
                        "aug_idx": aug,
                        "augmentation": "none" if aug < 0 else "flip",
                        "label": label,
                        "dup_group": f"grp{g:02d}",
                        "status": "ok",
                        "reason": "",
                    }
                )
                scaled.append(
                    {
                        "clip_id": cid,
                        "video_id": vid,
                        "path": str(path),
                        "scale_method": "letterbox",
                        "orig_width": 32,
                        "orig_height": 32,
                        "scaled_width": 32,
                        "scaled_height": 32,
                        "status": "ok",
                        "reason": "",
                    }
                )
    schemas.write_table(pl.DataFrame(clips), root / "clips.csv", "clips")
    schemas.write_table(pl.DataFrame(scaled), root / "scaled.csv", "scaled")
    schemas.write_table(pl.DataFrame(folds), root / "folds.csv", "folds")
    return root


def _train_cmd(corpus: Path, out: Path, ckdir: Path, model: str, settings: dict, fold: int = 0):
    return [
        sys.executable,
        "-m",
        "lib",
        "train",
        "--scaled",
        str(corpus / "scaled.csv"),
        "--clips",
        str(corpus / "clips.csv"),
        "--folds",
        str(corpus / "folds.csv"),
        "--out-dir",
        str(out),
        "--model",
        model,
        "--fold",
        str(fold),
        "--params",
        json.dumps(settings),
        "--checkpoint-dir",
        str(ckdir),
        "--seed",
        "3",
    ]


def _env(**extra) -> dict:
    env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = str(REPO)
    return env


# -- registry and from_pretrained ------------------------------------------------------------


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_tiny_family_saves_and_loads_through_from_pretrained(name, tmp_path):
    from transformers import VideoMAEImageProcessor

    s = DeepSettings(num_frames=4, image_size=32)
    torch.manual_seed(0)
    model = create_model(name, s, num_classes=2)
    model.eval()
    # What a hub checkpoint holds: the weights (the ViT encoder, for vit_*) and a processor.
    saved = model.net.encoder if name.startswith("vit_") else model.net
    saved.save_pretrained(tmp_path)
    VideoMAEImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.5, 0.5]).save_pretrained(
        tmp_path
    )
    loaded = create_model(
        name, DeepSettings(num_frames=4, image_size=32, pretrained=str(tmp_path)), num_classes=2
    )
    loaded.eval()
    assert loaded.mean == (0.1, 0.2, 0.3) and "image processor" in loaded.norm_source
    assert model.mean != loaded.mean  # without a processor: ImageNet's
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 2)
        if not name.startswith("vit_"):  # whole model saved: identical outputs
            assert torch.allclose(model(x), loaded(x), atol=1e-6)
        else:  # encoder saved: identical frame features
            assert torch.allclose(
                model.net.encoder(pixel_values=x[0]).last_hidden_state,
                loaded.net.encoder(pixel_values=x[0]).last_hidden_state,
                atol=1e-6,
            )


def test_clip_length_mismatch_is_a_config_error_at_start_up(tmp_path):
    create_model(
        "videomae", DeepSettings(num_frames=4, image_size=32), num_classes=2
    ).net.save_pretrained(tmp_path)
    cfg = {
        "models": ["videomae"],
        "deep": {"videomae": {"pretrained": str(tmp_path), "num_frames": 8, "image_size": 32}},
    }
    with pytest.raises(ConfigError, match=r"num_frames=8 .*fixes num_frames=4"):
        check_train_config(cfg)
    with pytest.raises(ConfigError, match="all_but_last_N"):
        check_train_config({"models": ["naive_cnn"], "deep": {"naive_cnn": {"freeze": "top"}}})
    with pytest.raises(ConfigError, match="unknown key"):
        check_train_config({"models": ["naive_cnn"], "deep": {"naive_cnn": {"frames": 4}}})


def test_unknown_feature_model_argument_is_a_config_error_at_start_up():
    with pytest.raises(ConfigError, match=r"unknown key train.params.logreg.c; did you mean C\?"):
        check_train_config({"models": ["logreg"], "params": {"logreg": {"c": 0.5}}})
    # linear_svm takes its LinearSVC's arguments and the calibration method
    check_train_config({"params": {"linear_svm": {"C": 0.5, "calibration": "isotonic"}}})


def test_a_family_needs_its_settings_entry_in_the_schema():
    with pytest.raises(ValueError, match="add train.deep.tiny_rnn"):
        register_model("tiny_rnn")


def test_the_snakefile_learns_the_deep_model_names_without_torch():
    code = (
        "import sys; from lib.train.check import check_train_config; "
        "from lib.train.settings import DEEP_MODELS; "
        "check_train_config({'models': ['naive_cnn', 'videomae'], 'params': {}}); "
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules; print(*DEEP_MODELS)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert run.stdout.decode().split() == list(DEEP_MODELS) and "naive_cnn" in DEEP_MODELS


# -- honest selection ---------------------------------------------------------------------------


def test_evaluated_fold_never_reaches_the_inner_validation_split(corpus):
    table = load_clip_table(corpus / "scaled.csv", corpus / "clips.csv", corpus / "folds.csv")
    for fold in range(3):
        train, test = table.filter(pl.col("fold") != fold), table.filter(pl.col("fold") == fold)
        for seed in range(5):
            inner_train, inner_val = inner_split(train, val_fraction=0.34, random_state=seed)
            assert len(inner_val) and len(inner_train)
            assert not set(inner_val["video_id"]) & set(test["video_id"])
            assert not set(inner_val["dup_group"]) & set(test["dup_group"])
            assert not set(inner_val["dup_group"]) & set(inner_train["dup_group"])
            assert len(inner_train) + len(inner_val) == len(train)


def test_low_trainable_share_refuses_unless_allowed(corpus, tmp_path):
    from lib.train.loop import train_deep_fold

    args = (corpus / "scaled.csv", corpus / "clips.csv", corpus / "folds.csv", tmp_path / "out")
    s = {**TINY, "freeze": "backbone", "min_trainable_share": 0.05}
    with pytest.raises(ConfigError, match=r"only 130 of .* allow_low_trainable"):
        train_deep_fold(
            *args,
            model_name="naive_cnn",
            fold=0,
            settings=s,
            positive_label="fake",
            random_state=0,
            checkpoint_dir=tmp_path / "ck",
        )


# -- the training job: warnings, resume -----------------------------------------------------------


def test_lr_zero_is_flagged_in_log_and_history(corpus, tmp_path):
    out = tmp_path / "out"
    settings = {**TINY, "lr": 0.0, "freeze": "backbone", "allow_low_trainable": True}
    proc = subprocess.run(
        _train_cmd(corpus, out, tmp_path / "ck", "naive_cnn", settings),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "weights did not change this epoch" in proc.stderr
    assert "allowed by allow_low_trainable" in proc.stderr
    history = pl.read_csv(out / "history.csv")
    assert len(history) == 2 and history["warnings"].str.contains("weights did not change").all()
    assert (history["update_norm"] == 0).all()
    info = json.loads((out / "train_info.json").read_text())
    assert info["trainable_params"] == 130 and any("did not change" in w for w in info["warnings"])
    preds = schemas.read_table(out / "predictions.csv", "predictions")
    assert set(preds["aug_idx"]) == {-1, 0}  # originals and augmentations of the fold
    # ... and the report shows it: a table in evaluation.md, red crosses on the curves
    from lib.evaluate import report

    warned = report.training_warnings([out / "predictions.csv"])
    assert warned["epoch"].to_list() == [1, 2] and warned["fold"].unique().to_list() == ["out"]
    empty = pl.DataFrame(schema={"model": pl.String, "metric": pl.String, "fold": pl.Int64})
    text = report.evaluation_markdown(
        empty,
        empty,
        pl.DataFrame(
            schema={
                "model": pl.String,
                "augmentation": pl.String,
                "n_clips": pl.Int64,
                "metric": pl.String,
                "value": pl.Float64,
            }
        ),
        10,
        warnings=warned,
    )
    assert (
        "## Training warnings" in text
        and "| out | 1, 2 |" in text
        and "weights did not change" in text
    )
    report.plot_training_curves([out / "predictions.csv"], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_kill_9_mid_epoch_resumes_with_identical_predictions(corpus, tmp_path):
    settings = {**TINY, "epochs": 4}
    ref_out, ref_ck = tmp_path / "ref", tmp_path / "ref_ck"
    ref = subprocess.run(
        _train_cmd(corpus, ref_out, ref_ck, "naive_cnn", settings),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert "resuming" not in ref.stderr

    out, ck, log_path = tmp_path / "run", tmp_path / "run_ck", tmp_path / "run.log"
    with open(log_path, "w") as log:  # slow steps, so the kill lands inside an epoch
        job = subprocess.Popen(
            _train_cmd(corpus, out, ck, "naive_cnn", settings),
            cwd=tmp_path,
            env=_env(VIDSTAGE_TRAIN_STEP_DELAY_S="0.3"),
            stdout=log,
            stderr=log,
        )
        deadline = time.time() + 240
        while time.time() < deadline and job.poll() is None:
            state = ckpt.load(ck / "last.pt") if (ck / "last.pt").exists() else None
            if state is not None and state["epoch"] == 1:  # epochs 1 and 2 done, 3 under way
                time.sleep(0.5)
                break
            time.sleep(0.1)
        assert job.poll() is None, "the job ended before it could be killed"
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    killed_log = log_path.read_text()
    assert "epoch 3/4" in killed_log and not (out / "predictions.csv").exists()
    assert ckpt.load(ck / "last.pt")["epoch"] == 1

    rerun = subprocess.run(
        _train_cmd(corpus, out, ck, "naive_cnn", settings),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming at epoch 3 of 4" in rerun.stderr
    assert "epoch 1/4" not in rerun.stderr and "epoch 2/4" not in rerun.stderr
    info = json.loads((out / "train_info.json").read_text())
    assert info["resumed_from_epoch"] == 3 and info["epochs_run"] == 4
    assert ckpt.load(ck / "last.pt")["epoch"] == 3
    a = schemas.read_table(ref_out / "predictions.csv", "predictions")
    b = schemas.read_table(out / "predictions.csv", "predictions")
    assert_frame_equal(a, b, check_exact=True)
    assert (ref_out / "predictions.csv").read_bytes() == (out / "predictions.csv").read_bytes()
    wa = torch.load(ref_out / "model.pt", weights_only=True)
    wb = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    cols = ["train_loss", "val_loss", "grad_norm"]
    assert_frame_equal(
        pl.read_csv(ref_out / "history.csv").select(cols),
        pl.read_csv(out / "history.csv").select(cols),
        check_exact=True,
    )


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_every_family_trains_a_fold_and_writes_the_contract(name, corpus, tmp_path):
    from lib.train.epoch import HISTORY_COLUMNS
    from lib.train.loop import train_deep_fold

    preds = train_deep_fold(
        corpus / "scaled.csv",
        corpus / "clips.csv",
        corpus / "folds.csv",
        tmp_path / "out",
        model_name=name,
        fold=1,
        settings={**TINY, "epochs": 1},
        positive_label="fake",
        random_state=0,
        checkpoint_dir=tmp_path / "ck",
    )
    folds = schemas.read_table(corpus / "folds.csv", "folds")
    held_out = set(folds.filter(pl.col("fold") == 1)["video_id"])
    assert set(preds["video_id"]) == held_out and len(preds) == 2 * len(held_out)
    assert {"score_fake", "score_real"} <= set(preds.columns)
    assert np.allclose((preds["score_fake"] + preds["score_real"]).to_numpy(), 1.0)
    history = pl.read_csv(tmp_path / "out/history.csv")
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == 1
    info = json.loads((tmp_path / "out/train_info.json").read_text())
    assert info["runtime"]["device"] == "cpu" and info["runtime"]["precision"] == "fp32"
    assert info["runtime"]["workers"] == 0 and info["runtime"]["accumulation"] == 2
    assert 0 < info["trainable_params"] == info["total_params"]
    assert sorted((tmp_path / "ck").iterdir()) == [tmp_path / "ck/last.pt"]  # select_on: last


def test_clip_cache_changes_nothing_but_the_decodes(corpus, tmp_path):
    from lib.train.data import ClipCache, read_clip
    from lib.train.loop import train_deep_fold

    scaled = schemas.read_table(corpus / "scaled.csv", "scaled")
    first = scaled["path"][0]
    one_clip_mb = read_clip(first, 4).numel() / 2**20
    small = ClipCache(max_mb=1.5 * one_clip_mb)  # room for one clip, not two
    for path in scaled["path"][:3]:
        assert torch.equal(small.read(path, 4), read_clip(path, 4))
    assert small.read(first, 4) is small.read(first, 4)  # kept, not decoded again
    assert small.stats()["clips"] == 1 and small.bytes <= small.max_bytes

    runs = {}
    for cache_mb in (0, 64):
        out = tmp_path / f"cache{cache_mb}"
        train_deep_fold(
            corpus / "scaled.csv",
            corpus / "clips.csv",
            corpus / "folds.csv",
            out,
            model_name="naive_cnn",
            fold=0,
            settings={**TINY, "epochs": 2, "cache_mb": cache_mb},
            checkpoint_dir=tmp_path / f"ck{cache_mb}",
            positive_label="fake",
            random_state=3,
        )
        runs[cache_mb] = out
    assert (runs[0] / "predictions.csv").read_bytes() == (runs[64] / "predictions.csv").read_bytes()
    info = json.loads((runs[64] / "train_info.json").read_text())
    n_clips = info["n_train_clips"] + info["n_val_clips"] + info["n_test_clips"]
    assert info["clip_cache"]["misses"] == n_clips  # each clip decoded once over 2 epochs
    assert info["clip_cache"]["hits"] == info["n_train_clips"] + info["n_val_clips"]
    assert json.loads((runs[0] / "train_info.json").read_text())["clip_cache"]["clips"] == 0


@pytest.mark.parametrize("fail_at_one", [False, True])
def test_out_of_memory_halves_the_micro_batch_then_fails_at_one(
    corpus, tmp_path, monkeypatch, caplog, fail_at_one
):
    """A forward pass that runs out of memory above micro-batch 1 (or always)."""
    import lib.train.loop as loop

    def create(name, settings, num_classes):
        model = create_model(name, settings, num_classes=num_classes)
        forward = model.forward

        def oom_above_one(x):
            if model.training and (x.shape[0] > 1 or fail_at_one):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(x)

        model.forward = oom_above_one
        return model

    monkeypatch.setattr(loop, "create_model", create)
    args = (corpus / "scaled.csv", corpus / "clips.csv", corpus / "folds.csv", tmp_path / "out")
    kw = {
        "model_name": "naive_cnn",
        "fold": 0,
        "checkpoint_dir": tmp_path / "ck",
        "positive_label": "fake",
        "random_state": 0,
    }
    settings = {**TINY, "epochs": 1, "micro_batch": 4}
    if fail_at_one:
        with pytest.raises(RuntimeError, match="out of memory at micro-batch 1"):
            loop.train_deep_fold(*args, settings=settings, **kw)
        return
    loop.train_deep_fold(*args, settings=settings, **kw)
    info = json.loads((tmp_path / "out/train_info.json").read_text())
    assert info["oom_events"] == [{"epoch": 0, "micro_batch": 2}, {"epoch": 0, "micro_batch": 1}]
    assert info["runtime"]["micro_batch"] == 1 and info["runtime"]["accumulation"] == 4
    assert "micro-batch halved to 1, accumulation 4 (same effective batch 4)" in caplog.text


# -- permutation test of a deep model (on request) ---------------------------------------------


def test_deep_permutation_test_resumes_and_draws_the_feature_paths_labels(
    corpus, tmp_path, monkeypatch
):
    import lib.train.loop as loop
    from lib.stages.permutation import run_permutation
    from lib.train.feature_models import training_table
    from lib.train.permutation import permutation_test

    real, seen, fail_at = loop.train_deep_table, [], [4]

    def recording(table, out_dir, **kw):  # the permuted labels each deep training sees
        seen.append(
            dict(
                table.filter(pl.col("fold") != kw["fold"])
                .select("dup_group", "label")
                .unique()
                .rows()
            )
        )
        if len(seen) == fail_at[0]:
            raise RuntimeError("killed")
        return real(table, out_dir, **kw)

    monkeypatch.setattr(loop, "train_deep_table", recording)
    out, work = tmp_path / "permutation.csv", tmp_path / "perm"
    kw = {
        "features": None,
        "scaled": corpus / "scaled.csv",
        "clips": corpus / "clips.csv",
        "folds": corpus / "folds.csv",
        "output": out,
        "model": "naive_cnn",
        "params": {**TINY, "epochs": 1},
        "checkpoint_dir": work,
        "n_permutations": 99,
        "n_permutations_deep": 2,
        "positive_label": "fake",
        "seed": 7,
    }
    with pytest.raises(RuntimeError, match="killed"):  # dies in permutation 2, fold 0
        run_permutation(**kw)
    assert not out.exists() and len(list(work.glob("fold-*/predictions.csv"))) == 3
    assert not list(work.rglob("*.pt"))  # finished fits keep their predictions only
    fail_at[0] = 0
    run_permutation(**kw)
    assert len(seen) == 7  # 3 + the killed one + its 3 folds again: permutation 1 not redone
    table = schemas.read_table(out, "permutation")
    assert table["permutation"].to_list() == [0, 1] and (table["metric"] == "roc_auc").all()
    assert table["value"].is_finite().all() and table["value"].is_between(0, 1).all()
    assert not work.exists()  # removed once the table is written

    # The feature path, same seed, same groups: the same permuted label for every group.
    clips = schemas.read_table(corpus / "clips.csv", "clips")
    folds = schemas.read_table(corpus / "folds.csv", "folds")
    features = pl.DataFrame({"clip_id": clips["clip_id"], "hc_x": 0.0})
    drawn = []
    permutation_test(
        training_table(features, clips, folds)[0],
        n_permutations=2,
        random_state=7,
        fit_predict=lambda train, test: drawn.append(
            dict(train.select("dup_group", "label").unique().rows())
        ),
        statistic=lambda by_fold: 0.5,
    )
    assert seen[3] == seen[4] and [*seen[:3], *seen[4:]] == drawn
    truth = dict(folds.select("dup_group", "label").unique().rows())
    assert any(d != {g: truth[g] for g in d} for d in drawn)  # labels were permuted


# -- train_final and predict with a deep model ----------------------------------------------------


def test_deep_train_final_then_predict_windows(corpus, tmp_path):
    from lib.stages.train import run_train_final
    from lib.predict import predict_videos

    final = tmp_path / "models/naive_cnn/final"
    run_train_final(
        features=None,
        scaled=corpus / "scaled.csv",
        clips=corpus / "clips.csv",
        folds=corpus / "folds.csv",
        out_dir=final,
        model="naive_cnn",
        params={**TINY, "epochs": 1},
        checkpoint_dir=tmp_path / "ck",
        positive_label="fake",
        seed=0,
    )
    info = json.loads((final / "train_info.json").read_text())
    assert (
        info["fold"] == -1
        and info["n_test_clips"] == 0
        and not (final / "predictions.csv").exists()
    )
    assert info["n_train_videos"] + info["n_val_videos"] == 18  # every labelled video, all folds
    assert info["classes"] == ["fake", "real"] and info["normalisation"]["mean"]
    assert (final / "model.pt").exists() and len(pl.read_csv(final / "history.csv")) == 1

    videos = tmp_path / "new"
    videos.mkdir()
    for name, label, n in (("short", "real", 8), ("long", "fake", 25)):
        with VideoWriter(videos / f"{name}.mp4", fps=10) as w:
            for f in _frames(label, 3, n=n):
                w.write(f)
    (videos / "broken.mp4").write_bytes(b"not a video")
    defaults = with_defaults({}, load_schema())  # the scale stage's clips, on a 32-px canvas
    predict_videos(
        videos,
        final,
        tmp_path / "pred.csv",
        windows_out=tmp_path / "win.csv",
        window_frames=10,
        stride_frames=10,
        sampling=defaults["features"],
        scale={**defaults["scale"], "size": 32},
        limits=defaults["validate"],
    )
    table = schemas.read_table(tmp_path / "pred.csv", "predict")
    by_id = {r["video_id"]: r for r in table.iter_rows(named=True)}
    assert sorted(by_id) == ["broken", "long", "short"]
    assert by_id["broken"]["status"] == "failed" and by_id["broken"]["reason"].startswith(
        "invalid:"
    )
    ok = table.filter(pl.col("status") == "ok")
    assert dict(ok.select("video_id", "n_windows").iter_rows()) == {"long": 3, "short": 1}
    assert (ok["model"] == "naive_cnn").all() and set(ok["pred"]) <= {"fake", "real"}
    assert np.allclose((ok["score_fake"] + ok["score_real"]).to_numpy(), 1.0)
    windows = pl.read_csv(tmp_path / "win.csv")
    long = windows.filter(pl.col("video_id") == "long")
    assert long["start_frame"].to_list() == [0, 10, 15] and long["stop_frame"].to_list() == [
        10,
        20,
        25,
    ]
    assert np.allclose((windows["score_fake"] + windows["score_real"]).to_numpy(), 1.0)
    assert by_id["long"]["score"] == pytest.approx(long["score_fake"].mean())  # mean of windows


# -- layer-wise learning-rate decay, selection of the last epoch ----------------------------------


@pytest.mark.parametrize("name", ["videomae", "vit_gru"])
def test_layer_decay_lowers_the_learning_rate_block_by_block(name):
    from lib.train.epoch import training_state
    from lib.train.models import apply_freeze

    s = DeepSettings(num_frames=4, image_size=32, lr=0.01, layer_decay=0.5, warmup_fraction=0)
    model = create_model(name, s, num_classes=2)
    if name == "videomae":
        layers, embeddings = model.net.videomae.encoder.layer, model.net.videomae.embeddings
        head, final_norm = model.net.classifier, model.net.fc_norm  # fc_norm: the head's
    else:
        layers, embeddings = model.backbone_blocks[:-1], model.net.encoder.embeddings
        head, final_norm = model.net.temporal, model.net.encoder.layernorm  # the last block's
    params = [p for p in model.parameters() if p.requires_grad]
    rt = {"device": "cpu", "precision": "fp32"}
    opt = training_state(model, params, s, rt, n_train=8).optimiser
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert sorted(lr_of) == sorted(id(p) for p in params)  # every parameter once
    n = len(layers)

    def lr(module) -> float:  # the one learning rate of every parameter of ``module``
        (value,) = {lr_of[id(p)] for p in module.parameters()}
        return value

    assert lr(head) == 0.01 and opt.param_groups[0]["lr"] == 0.01  # logged: the peak
    for i, layer in enumerate(layers):  # the last block 0.01 * 0.5, each earlier one halved
        assert lr(layer) == pytest.approx(0.01 * 0.5 ** (n - i))
    assert lr(embeddings) == pytest.approx(0.01 * 0.5 ** (n + 1))
    assert lr(final_norm) == pytest.approx(0.01 if name == "videomae" else 0.005)
    # the schedule keeps the ratios; frozen blocks stay out; 1.0 is a single group
    state = training_state(model, params, s, rt, n_train=8)
    state.optimiser.step()
    state.scheduler.step()
    ratios = [g["lr"] / state.optimiser.param_groups[0]["lr"] for g in state.optimiser.param_groups]
    assert ratios == pytest.approx([0.5**k for k in range(n + 2)])
    apply_freeze(model, "all_but_last_1")
    frozen = [p for p in model.parameters() if p.requires_grad]
    groups = training_state(model, frozen, s, rt, n_train=8).optimiser.param_groups
    assert len(groups) == 2 and sum(len(g["params"]) for g in groups) == len(frozen)
    one = DeepSettings(num_frames=4, image_size=32, lr=0.01)
    assert len(training_state(model, frozen, one, rt, n_train=8).optimiser.param_groups) == 1


def test_select_on_last_keeps_the_last_epoch_and_never_stops_early(corpus, tmp_path):
    from lib.train.loop import train_deep_fold

    train_deep_fold(
        corpus / "scaled.csv",
        corpus / "clips.csv",
        corpus / "folds.csv",
        tmp_path / "out",
        model_name="naive_cnn",
        fold=0,
        settings={**TINY, "epochs": 3, "patience": 1, "select_on": "last", "lr": 0.0},
        positive_label="fake",
        random_state=0,
        checkpoint_dir=tmp_path / "ck",
    )
    info = json.loads((tmp_path / "out/train_info.json").read_text())
    # lr 0: the validation loss never improves after epoch 1, yet all 3 epochs run
    assert info["epochs_run"] == 3 and info["best_epoch"] == 3
    assert not (tmp_path / "ck/best.pt").exists()
