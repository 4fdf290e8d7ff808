"""Frozen-encoder embeddings: the stage, the probe and kNN models, predict, learnability.

No weights can be fetched here: every encoder is a tiny random-init model of a supported kind
(CLIPVisionModel, SiglipVisionModel, Dinov2Model, with their image processors), saved with
save_pretrained and loaded the way a checkpoint is, from a folder or, through a Hugging Face
cache, from a hub id. Learnability: random ViT features of a visible object still separate
the classes; with the labels drawn at random per group the probe scores at chance
(``pytest -s -k learnab`` prints the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import joblib
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from conftest import REPO
from lib import schemas
from lib.config import ConfigError, load_schema, with_defaults
from lib.io.sampling import sample_fraction
from lib.media.embeddings import TINY_KINDS, build_tiny_encoder, embedding_columns
from lib.predict import predict_videos
from lib.shards import Shard
from lib.stages.embeddings import CLIP_MEAN, embeddings_shard
from lib.train.embedding_models import check_embeddings_config, model_inputs
from lib.train.feature_models import (
    MODELS,
    fit_table,
    predict_table,
    read_model_inputs,
    train_fold,
    training_table,
)
from visible_corpus import shuffled, write_corpus

SAMPLING = {"fraction": 0.1, "min_frames": 5, "max_frames": 50}
RUNTIME = {"batch_size": 0, "device": "cpu", "precision": "auto"}
LEARNABILITY_MAKES = ("square", "bar")
#: The held-out ROC-AUC (mean over the 3 folds) the probe must reach on a visible corpus.
MIN_AUC = 0.80
SHUFFLE_SEEDS = range(5)


def embed(clips, out, encoder, tmp_path, **kw):
    settings = {"num_frames": 0, "keep_frames": False, **RUNTIME, **kw}
    embeddings_shard(
        clips,
        out,
        Shard(0, 1),
        model=str(encoder),
        sampling=SAMPLING,
        progress_dir=tmp_path / "progress",
        **settings,
    )
    return schemas.read_table(out, "embeddings")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {kind: build_tiny_encoder(kind, root / kind) for kind in TINY_KINDS}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("visible")
    return {make: write_corpus(root / make, make) for make in LEARNABILITY_MAKES}


@pytest.fixture(scope="module")
def embedded(corpora, encoders, tmp_path_factory):
    """The embeddings table of every (corpus make, encoder kind)."""
    work = tmp_path_factory.mktemp("embedded")
    tables = {}
    for make, root in corpora.items():
        for kind, encoder in encoders.items():
            tables[(make, kind)] = work / f"{make}-{kind}.parquet"
            embed(root / "clips.csv", tables[(make, kind)], encoder, work)
    return tables


def test_each_kind_loads_from_a_hub_id_through_the_cache(encoders, tmp_path):
    """A hub id takes the path a folder takes (from_pretrained), here from a Hugging Face
    cache with the hub offline; the image processor's size comes from the checkpoint."""
    hub = tmp_path / "hf/hub"
    for kind, folder in encoders.items():
        snapshot = hub / f"models--vidstage-test--tiny-{kind}/snapshots/0"
        snapshot.mkdir(parents=True)
        for file in folder.iterdir():
            (snapshot / file.name).write_bytes(file.read_bytes())
        (snapshot.parents[1] / "refs").mkdir()
        (snapshot.parents[1] / "refs/main").write_text("0")
    code = (
        "import numpy as np\n"
        "from lib.media.embeddings import load_encoder\n"
        f"for kind in {sorted(encoders)!r}:\n"
        "    e = load_encoder(f'vidstage-test/tiny-{kind}', device='cpu', precision='auto',"
        " batch_size=0)\n"
        "    frames = [np.zeros((48, 64, 3), np.uint8), np.full((40, 30, 3), 200, np.uint8)]\n"
        "    x = e.processor(images=frames, return_tensors='pt')['pixel_values']\n"
        "    v = e.embed(frames)\n"
        "    print(kind, e.model.__class__.__name__, tuple(x.shape), v.shape,"
        " bool(np.isfinite(v).all()))\n"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.split()[0] in encoders)
    assert lines == [
        "clip CLIPVisionModel (2, 3, 32, 32) (2, 32) True",
        "dinov2 Dinov2Model (2, 3, 32, 32) (2, 32) True",
        "siglip SiglipVisionModel (2, 3, 32, 32) (2, 32) True",
    ]


def test_stage_rows_means_frames_and_failures(encoders, tmp_path):
    corpus = write_corpus(tmp_path / "c", "disc", n_groups=6, clips_per_group=1)
    clips = schemas.read_table(corpus / "clips.csv", "clips")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    extra = clips.head(2).with_columns(
        pl.Series("clip_id", ["broken", "upstream"]),
        pl.Series("path", [str(broken), "x.mp4"]),
        pl.Series("status", ["ok", "failed"]),
        pl.Series("reason", ["", "augment_error:x"]),
    )
    schemas.write_table(pl.concat([clips, extra]), tmp_path / "clips.csv", "clips")
    table = embed(tmp_path / "clips.csv", tmp_path / "e.parquet", encoders["dinov2"], tmp_path,
                  keep_frames=True, batch_size=2)  # fmt: skip
    names = embedding_columns(32)
    means = table.filter(pl.col("frame") == CLIP_MEAN)
    assert means["clip_id"].to_list() == [*clips["clip_id"], "broken", "upstream"]
    status = dict(means.select("clip_id", "reason").iter_rows())
    assert status["broken"].startswith("embedding_error:")
    assert status["upstream"] == "upstream_failed:augment_error:x"
    failed = means.filter(pl.col("status") == "failed").select(names).to_numpy()
    assert np.isnan(failed).all()
    for clip_id in clips["clip_id"]:  # 8 frames: the features' minimum of 5, each kept
        frames = table.filter((pl.col("clip_id") == clip_id) & (pl.col("frame") >= 0))
        assert frames["frame"].to_list() == sample_fraction(8, **SAMPLING)
        mean = means.filter(pl.col("clip_id") == clip_id).select(names).to_numpy()[0]
        assert np.allclose(frames.select(names).to_numpy().mean(axis=0), mean, atol=1e-5)
        assert np.isfinite(mean).all()
    # one frame per forward pass gives the same vectors; num_frames samples uniformly
    one = embed(tmp_path / "clips.csv", tmp_path / "one.parquet", encoders["dinov2"], tmp_path,
                batch_size=1, num_frames=3, keep_frames=True)  # fmt: skip
    assert (one.filter(pl.col("clip_id") == clips["clip_id"][0])["frame"] >= 0).sum() == 3
    again = embed(tmp_path / "clips.csv", tmp_path / "b1.parquet", encoders["dinov2"], tmp_path,
                  batch_size=1)  # fmt: skip
    ok = pl.col("status") == "ok"
    assert np.allclose(
        again.filter(ok).select(names).to_numpy(),
        means.filter(ok).select(names).to_numpy(),
        atol=1e-5,
    )


def test_probe_and_knn_train_through_the_feature_contract_and_predict(
    embedded, corpora, encoders, tmp_path
):
    """train_fold writes the predictions contract for probe, knn and probe_hc (embeddings
    joined with features); the final probe's predict scores a video as the model scores its
    clip's stage row (the same frames through the same encoder)."""
    corpus, emb = corpora["bar"], embedded[("bar", "clip")]
    clips = schemas.read_table(corpus / "clips.csv", "clips")
    rng = np.random.default_rng(0)
    features = clips.select("clip_id").with_columns(
        pl.Series("hc_a", rng.normal(size=len(clips))),
        pl.Series("sc_b", rng.normal(size=len(clips))),
    )
    schemas.write_table(features, tmp_path / "features.parquet", "features")
    paths = {"features": tmp_path / "features.parquet", "embeddings": emb}
    for model in ("probe", "knn", "probe_hc"):
        out = tmp_path / model / "fold-0"
        preds = train_fold([paths[t] for t in model_inputs(model)], corpus / "clips.csv",
                           corpus / "folds.csv", out, model_name=model, fold=0)  # fmt: skip
        held_out = schemas.read_table(corpus / "folds.csv", "folds")["fold"] == 0
        assert len(preds) == held_out.sum() and preds["score"].is_between(0, 1).all(), model
        info = json.loads((out / "train_info.json").read_text())
        assert info["embedding"] == {"encoder": str(encoders["clip"]), "num_frames": 0}, model
        assert len(info["features"]) == 32 + 2 * (model == "probe_hc"), model
    final = tmp_path / "probe/final"
    train_fold(emb, corpus / "clips.csv", corpus / "folds.csv", final, model_name="probe", fold=-1)
    videos = tmp_path / "new"
    videos.mkdir()
    chosen = clips.filter(pl.col("clip_id").is_in(["grp000v0_orig", "grp001v0_orig"]))
    for row in chosen.iter_rows(named=True):
        (videos / f"{row['clip_id']}.mp4").write_bytes(open(row["path"], "rb").read())
    defaults = with_defaults({}, load_schema())
    table = predict_videos(videos, final, tmp_path / "pred.csv", windows_out=None,
                           window_frames=100, stride_frames=100, sampling=SAMPLING,
                           scale=defaults["scale"], limits=defaults["validate"])  # fmt: skip
    assert table["status"].to_list() == ["ok", "ok"]
    model = joblib.load(final / "model.joblib")
    rows = read_model_inputs(emb).filter(pl.col("clip_id").is_in(chosen["clip_id"].to_list()))
    expected = model.predict_proba(rows.drop("clip_id").to_numpy())[:, 0]  # fake first
    assert np.allclose(table.sort("video_id")["score"].to_numpy(), expected, atol=1e-4)


def test_the_models_are_registered_and_the_encoder_is_checked_at_start_up(monkeypatch, tmp_path):
    assert {"probe", "knn", "probe_hc"} <= set(MODELS)
    assert model_inputs("logreg") == ("features",)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = {"train": {"models": ["logreg", "probe"]}, "embeddings": {"model": "nobody/absent"}}
    with pytest.raises(ConfigError, match=r"embeddings.model='nobody/absent' cannot be found"):
        check_embeddings_config(config)
    check_embeddings_config({**config, "embeddings": {"model": "x", "tiny": "clip"}})
    check_embeddings_config({**config, "train": {"models": ["logreg"]}})  # not read: unchecked
    (tmp_path / "enc").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        check_embeddings_config({**config, "embeddings": {"model": str(tmp_path / "enc")}})


def _fold_aucs(table: pl.DataFrame, cols: list[str], model: str, folds) -> list[float]:
    aucs = []
    for fold in folds:
        train, test = table.filter(pl.col("fold") != fold), table.filter(pl.col("fold") == fold)
        fitted = fit_table(model, train, cols, params={}, random_state=0)
        preds = predict_table(fitted, test, cols, "fake")
        aucs.append(float(roc_auc_score(preds["label"] == "fake", preds["score"])))
    return aucs


def _model_table(corpus, emb):
    features = read_model_inputs(emb)
    clips = schemas.read_table(corpus / "clips.csv", "clips")
    folds = schemas.read_table(corpus / "folds.csv", "folds")
    return training_table(features, clips, folds)


@pytest.mark.parametrize("kind", sorted(TINY_KINDS))
def test_probe_learnability_on_visible_corpora(embedded, corpora, kind):
    """Random-init ViT features of each kind, mean-pooled over the sampled frames, let the
    probe separate a visible object from its background on held-out groups."""
    for make in LEARNABILITY_MAKES:
        table, cols = _model_table(corpora[make], embedded[(make, kind)])
        aucs = _fold_aucs(table, cols, "probe", range(3))
        print(f"learnability probe {kind} {make}: held-out AUC per fold {np.round(aucs, 3)}")
        assert np.mean(aucs) >= MIN_AUC, (kind, make, aucs)


def test_probe_learnability_control_shuffled_labels_at_chance(encoders, tmp_path):
    """Labels drawn at random per group (tests/visible_corpus.py): the mean held-out AUC over
    five draws stays within 0.5 +/- 0.1 (120 independent groups, 40 held out)."""
    corpus = write_corpus(tmp_path / "control", "square", n_groups=120, clips_per_group=1)
    emb = tmp_path / "control.parquet"
    embed(corpus / "clips.csv", emb, encoders["clip"], tmp_path)
    table, cols = _model_table(corpus, emb)
    true_auc = np.mean(_fold_aucs(table, cols, "probe", [0]))
    shuffled_aucs = [
        _fold_aucs(shuffled(table, seed), cols, "probe", [0])[0] for seed in SHUFFLE_SEEDS
    ]
    print(
        f"learnability control: true labels {true_auc:.3f}, shuffled {np.round(shuffled_aucs, 3)}"
    )
    assert true_auc >= MIN_AUC
    assert abs(np.mean(shuffled_aucs) - 0.5) <= 0.1, shuffled_aucs
