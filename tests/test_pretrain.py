"""Self-supervised VideoMAE pretraining (the ``pretrain`` stage): tube masks, no label read,
the evaluated fold never seen, the encoder ``videomae`` fine-tunes, resume after kill -9,
``pretrained: ssl`` resolved per fold by the workflow, and a small DAG run.

Time on the shared 2-core machine (load average about 2): about 20 s without the two
``slow`` tests (the dry runs most of it), about 65 s with them (the kill -9 resume and the
small DAG run, about 22 s each)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import DEMO_CONFIG, REPO, snakemake
from lib import schemas
from lib.config import ConfigError
from lib.train.check import SSL_SETTINGS, check_train_config
from visible_corpus import write_corpus

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402
from transformers import VideoMAEForPreTraining  # noqa: E402

from lib.train import checkpoint as ckpt  # noqa: E402
from lib.train.models import IMAGENET_MEAN, create_model  # noqa: E402
from lib.train.pretrain import (  # noqa: E402
    pretrain_table,
    pretraining_clips,
    pretraining_config,
    tube_masks,
)
from lib.train.settings import DeepSettings  # noqa: E402

VIDEOMAE = {"num_frames": 4, "image_size": 32, "micro_batch": 2}
RECIPE = {
    "mask_ratio": 0.75,
    "norm_pix_loss": True,
    "epochs": 2,
    "lr": 1e-3,
    "weight_decay": 0.05,
    "warmup_fraction": 0.0,
    "batch_size": 4,
    "grad_clip": 1.0,
    "augment": True,
    "decoder_hidden_size": None,
    "decoder_num_attention_heads": None,
    "decoder_num_hidden_layers": 1,
    "decoder_intermediate_size": None,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """6 groups x 2 videos, original + 1 augmentation each, 3 folds (tests/visible_corpus.py)."""
    root = tmp_path_factory.mktemp("pretrain_corpus")
    return write_corpus(root, "square", n_groups=6, clips_per_group=2, n_augmentations=1, k=3)


def _tables(corpus: Path) -> tuple[Path, Path, Path]:
    return corpus / "scaled.csv", corpus / "clips.csv", corpus / "folds.csv"


def _pretrain(table, out: Path, **overrides):
    kw = {**RECIPE, **overrides}
    return pretrain_table(
        table, out, run="fold-0", settings=VIDEOMAE, random_state=3, checkpoint_dir=out / "ck", **kw
    )


# -- masks ------------------------------------------------------------------------------


def test_tube_masks_hide_the_same_patches_in_every_frame_at_the_ratio():
    g = torch.Generator().manual_seed(0)
    masks = tube_masks(64, patches_per_frame=16, tubelets=4, mask_ratio=0.9, generator=g)
    per_tubelet = masks.view(64, 4, 16)
    assert masks.shape == (64, 64) and masks.dtype == torch.bool
    assert (per_tubelet == per_tubelet[:, :1]).all(), "a tube: the same patches at every time"
    assert (per_tubelet[:, 0].sum(1) == 14).all()  # floor(0.9 * 16) hidden in every clip
    assert len({tuple(m.tolist()) for m in per_tubelet[:, 0]}) > 32, "drawn per clip"
    hidden = masks.float().mean(0)  # every token hidden about as often
    assert hidden.min() > 0.6 and hidden.max() < 1.0
    for ratio, count in ((0.01, 1), (0.99, 3), (0.5, 2)):  # never all hidden, never none
        m = tube_masks(5, patches_per_frame=4, tubelets=2, mask_ratio=ratio, generator=g)
        assert (m.view(5, 2, 4)[:, 0].sum(1) == count).all()


def test_tube_token_order_is_the_patch_embeddings():
    """Token t * patches_per_frame + p is spatial patch p of tubelet t, as VideoMAE embeds."""
    s = DeepSettings(**VIDEOMAE)
    cfg = pretraining_config(
        s,
        norm_pix_loss=True,
        decoder_hidden_size=None,
        decoder_num_attention_heads=None,
        decoder_num_hidden_layers=1,
        decoder_intermediate_size=None,
    )
    embed = VideoMAEForPreTraining(cfg).videomae.embeddings.patch_embeddings
    torch.nn.init.constant_(embed.projection.weight, 1.0)
    torch.nn.init.zeros_(embed.projection.bias)
    ps, side = cfg.patch_size, s.image_size // cfg.patch_size
    x = torch.zeros(1, s.num_frames, 3, s.image_size, s.image_size)
    row, col = 1, 2
    x[..., row * ps : (row + 1) * ps, col * ps : (col + 1) * ps] = 1.0
    lit = embed(x)[0].abs().sum(-1) > 0
    spatial = torch.zeros(1, side * side, dtype=torch.bool)
    spatial[0, row * side + col] = True
    assert torch.equal(lit, spatial.repeat(1, s.num_frames // cfg.tubelet_size)[0])


# -- which clips ------------------------------------------------------------------------


def test_clips_of_a_fold_leave_the_evaluated_fold_out(corpus):
    folds = schemas.read_table(corpus / "folds.csv", "folds")
    for k in range(3):
        t = pretraining_clips(*_tables(corpus), fold=k, scope="fold", train_clips="all")
        assert k not in set(t["fold"]) and set(t["fold"]) == {0, 1, 2} - {k}
        held = set(folds.filter(pl.col("fold") == k)["video_id"])
        assert held and not held & set(t["video_id"])
        assert set(t["aug_idx"]) == {-1, 0} and "label" not in t.columns
    final = pretraining_clips(*_tables(corpus), fold=-1, scope="fold", train_clips="originals")
    assert len(final) == len(folds) and set(final["aug_idx"]) == {-1}


def test_corpus_scope_takes_every_valid_video_fold_or_not(corpus, tmp_path):
    folds = schemas.read_table(corpus / "folds.csv", "folds")
    schemas.write_table(folds.slice(1), tmp_path / "folds.csv", "folds")  # one video unfolded
    scaled, clips, _ = _tables(corpus)
    t = pretraining_clips(
        scaled, clips, tmp_path / "folds.csv", fold=0, scope="corpus", **{"train_clips": "all"}
    )
    assert set(t["video_id"]) == set(folds["video_id"]) and t["fold"].null_count() == 2


def test_no_label_is_read_and_permuted_labels_give_the_same_weights(corpus, tmp_path):
    """Without a label column the clips are the same; with the labels permuted the weights and
    the history are identical, bit for bit."""
    scaled, clips, folds = _tables(corpus)
    c, f = pl.read_csv(clips), pl.read_csv(folds)
    c.drop("label").write_csv(tmp_path / "clips_nolabel.csv")
    f.drop("label").write_csv(tmp_path / "folds_nolabel.csv")
    ref = pretraining_clips(scaled, clips, folds, fold=1, scope="fold", train_clips="all")
    blind = pretraining_clips(
        scaled,
        tmp_path / "clips_nolabel.csv",
        tmp_path / "folds_nolabel.csv",
        fold=1,
        scope="fold",
        train_clips="all",
    )
    assert_frame_equal(ref, blind)

    flipped = {"fake": "real", "real": "fake"}
    (tmp_path / "p").mkdir()
    schemas.write_table(
        c.with_columns(pl.col("label").replace(flipped)), tmp_path / "p/clips.csv", "clips"
    )
    schemas.write_table(
        f.with_columns(pl.col("label").replace(flipped)), tmp_path / "p/folds.csv", "folds"
    )
    permuted = pretraining_clips(
        scaled,
        tmp_path / "p/clips.csv",
        tmp_path / "p/folds.csv",
        fold=1,
        scope="fold",
        train_clips="all",
    )
    h1 = _pretrain(ref, tmp_path / "a")
    h2 = _pretrain(permuted, tmp_path / "b")
    cols = ["epoch", "loss", "lr", "grad_norm", "n_clips"]
    assert_frame_equal(h1.select(cols), h2.select(cols), check_exact=True)
    wa, wb = load_file(tmp_path / "a/model.safetensors"), load_file(
        tmp_path / "b/model.safetensors"
    )
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert len(h1) == 2 and h1["loss"].is_finite().all()


# -- the encoder videomae fine-tunes ----------------------------------------------------


def test_fine_tuning_starts_from_the_pretrained_encoder(corpus, tmp_path):
    table = pretraining_clips(*_tables(corpus), fold=0, scope="fold", train_clips="originals")
    history = _pretrain(table, tmp_path / "pre", epochs=1)
    info = json.loads((tmp_path / "pre/pretrain_info.json").read_text())
    assert info["folds"] == [1, 2] and info["n_clips"] == len(table) and not info["transductive"]
    ppf, tubelets = info["patches_per_frame"], info["tubelets"]
    assert info["hidden_tokens_per_clip"] == int(0.75 * ppf) * tubelets < ppf * tubelets
    assert (
        set(schemas.read_table(tmp_path / "pre/history.csv", "pretrain_history")["run"])
        == {"fold-0"}
        and len(history) == 1
    )

    scratch = create_model("videomae", VIDEOMAE, num_classes=2)
    tuned = create_model(
        "videomae", {**VIDEOMAE, "pretrained": str(tmp_path / "pre")}, num_classes=2
    )
    pre = VideoMAEForPreTraining.from_pretrained(tmp_path / "pre").videomae.state_dict()
    enc, init = tuned.net.videomae.state_dict(), scratch.net.videomae.state_dict()
    assert {k: v.shape for k, v in init.items()} == {
        k: v.shape for k, v in enc.items()
    }, "the pretraining's encoder is the one the videomae builder makes"
    assert set(enc) == set(pre) and all(torch.equal(enc[k], pre[k]) for k in enc)
    assert not torch.equal(
        enc["embeddings.patch_embeddings.projection.weight"],
        init["embeddings.patch_embeddings.projection.weight"],
    )
    assert tuned.mean == IMAGENET_MEAN and "image processor" in tuned.norm_source


def test_ssl_is_for_videomae_only_a_config_error_at_start_up():
    ok = {"models": ["videomae"], "deep": {"videomae": {**VIDEOMAE, "pretrained": "ssl"}}}
    check_train_config(ok)  # no hub request: ssl is the fold's own pretraining
    bad = {"models": ["timesformer"], "deep": {"timesformer": {**VIDEOMAE, "pretrained": "ssl"}}}
    with pytest.raises(ConfigError, match=r"train\.deep\.timesformer\.pretrained=ssl"):
        check_train_config(bad)


# -- resume -----------------------------------------------------------------------------


def _pretrain_cmd(corpus: Path, out: Path, ck: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lib",
        "pretrain",
        *("--scaled", str(corpus / "scaled.csv"), "--clips", str(corpus / "clips.csv")),
        *("--folds", str(corpus / "folds.csv"), "--out-dir", str(out), "--fold", "2"),
        *("--params", json.dumps(VIDEOMAE), "--checkpoint-dir", str(ck), "--seed", "3"),
        *(
            "--epochs",
            "4",
            "--batch-size",
            "4",
            "--lr",
            "0.001",
            "--decoder-num-hidden-layers",
            "1",
        ),
    ]


def _env(**extra) -> dict:
    env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.slow
def test_kill_9_mid_epoch_resumes_to_the_uninterrupted_weights(corpus, tmp_path):
    ref = subprocess.run(
        _pretrain_cmd(corpus, tmp_path / "ref", tmp_path / "ref_ck"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    out, ck, log_path = tmp_path / "run", tmp_path / "run_ck", tmp_path / "run.log"
    with open(log_path, "w") as log:  # slow steps, so the kill lands inside an epoch
        job = subprocess.Popen(
            _pretrain_cmd(corpus, out, ck),
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
    assert "epoch 3/4" in log_path.read_text() and not (out / "model.safetensors").exists()
    rerun = subprocess.run(
        _pretrain_cmd(corpus, out, ck), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming at epoch 3 of 4" in rerun.stderr and "epoch 1/4" not in rerun.stderr
    info = json.loads((out / "pretrain_info.json").read_text())
    assert info["resumed_from_epoch"] == 3 and info["epochs_run"] == 4
    wa, wb = load_file(tmp_path / "ref/model.safetensors"), load_file(out / "model.safetensors")
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    cols = ["epoch", "loss", "lr", "grad_norm"]
    assert_frame_equal(
        pl.read_csv(tmp_path / "ref/history.csv").select(cols),
        pl.read_csv(out / "history.csv").select(cols),
        check_exact=True,
    )


# -- the workflow -----------------------------------------------------------------------

SSL = "train:\n  deep:\n    videomae: {pretrained: ssl}\n"


def _shell_lines(out: str, command: str) -> list[str]:
    return [line for line in out.splitlines() if f"-m lib {command} " in line]


def test_workflow_resolves_ssl_per_run_and_plans_pretraining_only_for_it(workflow_dir):
    """Dry runs: a pretrain job per fold, each fold's videomae from its own run, train_final
    from `final`; scope corpus: one run for all; no ssl: no pretrain job; ssl in the
    permutation test: refused at start-up."""
    wf = workflow_dir
    (wf / "ssl.yaml").write_text(SSL)
    targets = ("results/models/videomae/final/model.pt",)
    out = snakemake(wf, "-n", "-p", "all", *targets, "--configfile", *DEMO_CONFIG, "ssl.yaml")
    text = out.stdout
    assert re.search(r"^pretrain\s+4$", text, re.M) and re.search(
        r"^pretrain_report\s+1$", text, re.M
    )
    trains = _shell_lines(text, "train")
    for k in range(3):
        (line,) = [t for t in trains if f"--model videomae --fold {k} " in t]
        assert f'"pretrained": "results/pretrain/fold-{k}"' in line
        (pre,) = [p for p in _shell_lines(text, "pretrain") if f"pretrain/fold-{k} " in p]
        params = json.loads(re.search(r"--params '(\{.*?\})'", pre).group(1))
        assert f"--fold {k} " in pre and set(params) == set(SSL_SETTINGS)
    (final,) = _shell_lines(text, "train-final")
    assert '"pretrained": "results/pretrain/final"' in final
    assert not [t for t in trains if "--model timesformer" in t and "results/pretrain" in t]

    (wf / "corpus.yaml").write_text("pretrain:\n  scope: corpus\n")
    text = snakemake(wf, "-n", "-p", "--configfile", *DEMO_CONFIG, "ssl.yaml", "corpus.yaml").stdout
    assert re.search(r"^pretrain\s+1$", text, re.M)
    assert all(
        '"pretrained": "results/pretrain/corpus"' in t
        for t in _shell_lines(text, "train")
        if "--model videomae" in t
    )

    (wf / "scratch.yaml").write_text("train:\n  deep:\n    videomae: {pretrained: null}\n")
    text = snakemake(wf, "-n", "--configfile", *DEMO_CONFIG, "scratch.yaml").stdout
    assert not re.search(r"^pretrain", text, re.M) and "pretrain" not in text

    (wf / "perm.yaml").write_text("evaluate:\n  permutation:\n    models: [logreg, videomae]\n")
    bad = snakemake(wf, "-n", "--configfile", *DEMO_CONFIG, "ssl.yaml", "perm.yaml", check=False)
    assert bad.returncode != 0 and "evaluate.permutation.models has ['videomae']" in (
        bad.stdout + bad.stderr
    )


@pytest.mark.slow
def test_a_small_dag_pretrains_each_fold_then_fine_tunes_from_it(workflow_dir):
    """From a visible corpus's tables: the pretrain jobs of both folds, videomae's fold 0
    from its pretraining, and the report's pretraining table and figure."""
    wf = workflow_dir
    write_corpus(wf / "results", "square", n_groups=8, clips_per_group=2, k=2)
    (wf / "ssl.yaml").write_text(
        "folds: {k: 2}\ntrain:\n  models: [hist_gbm, videomae]\n  deep:\n    videomae:"
        " {num_frames: 4, image_size: 32, epochs: 1, batch_size: 8, pretrained: ssl}\n"
        "pretrain: {epochs: 2, batch_size: 8, decoder_num_hidden_layers: 1}\n"
    )
    snakemake(
        wf,
        "results/models/videomae/fold-0/predictions.csv",
        "results/reports/pretrain_history.png",
        "--allowed-rules",
        "pretrain",
        "train_deep",
        "pretrain_report",
        "--cores",
        "2",
        "--configfile",
        *DEMO_CONFIG,
        "ssl.yaml",
    )
    history = schemas.read_table(wf / "results/reports/pretrain_history.csv", "pretrain_history")
    assert set(history["run"]) == {"fold-0", "fold-1"} and len(history) == 4
    assert (wf / "results/reports/pretrain_history.png").stat().st_size > 0
    info = json.loads((wf / "results/models/videomae/fold-0/train_info.json").read_text())
    assert info["settings"]["pretrained"] == "results/pretrain/fold-0"
    assert info["normalisation"]["source"] == "results/pretrain/fold-0 image processor"
    pre = json.loads((wf / "results/pretrain/fold-0/pretrain_info.json").read_text())
    assert pre["folds"] == [1] and (wf / "logs/pretrain/fold-0.log").exists()
