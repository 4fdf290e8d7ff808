"""Export: a final deep model opens without this project and gives the pipeline's logits.

A tiny model of each kind is trained as ``train_final`` trains it (``train_deep_table`` with
``fold=-1``, which writes ``export/`` beside ``model.pt``); the pipeline's model is rebuilt
from ``model.pt`` as ``predict`` rebuilds it, and both read the same normalised clips
(:class:`lib.train.data.FrameClipDataset`, the training run's mean/std).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoModelForVideoClassification,
    ViTConfig,
    ViTModel,
)
from visible_corpus import visible_table  # noqa: E402

from lib.train.data import FrameClipDataset  # noqa: E402
from lib.train.export import export_model, load_exported  # noqa: E402
from lib.train.loop import train_deep_table  # noqa: E402
from lib.train.models import create_model  # noqa: E402

SETTINGS = {
    "num_frames": 4,
    "image_size": 32,
    "epochs": 1,
    "batch_size": 4,
    "micro_batch": 4,
    "val_fraction": 0.25,
    "lr": 1e-3,
    "train_clips": "originals",
}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """8 groups of the visible ``square`` corpus, one clip each, 32 px, 4 frames."""
    root = tmp_path_factory.mktemp("export_corpus")
    return visible_table(root, "square", n_groups=8, clips_per_group=1, n_frames=4)


def _train_final(table, tmp_path: Path, model: str) -> Path:
    torch.set_num_threads(1)
    out = tmp_path / model / "final"
    train_deep_table(
        table,
        out,
        model_name=model,
        fold=-1,
        settings=SETTINGS,
        positive_label="fake",
        random_state=0,
        checkpoint_dir=tmp_path / "ck" / model,
    )
    return out


def _pipeline(final: Path):
    """The pipeline's final model and normalised clips, as ``predict`` builds them."""
    info = json.loads((final / "train_info.json").read_text())
    model = create_model(info["model"], info["settings"], num_classes=len(info["classes"]))
    model.load_state_dict(torch.load(final / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), info


def _clips(table, info) -> torch.Tensor:
    ds = FrameClipDataset(
        table,
        classes=info["classes"],
        num_frames=info["settings"]["num_frames"],
        image_size=info["settings"]["image_size"],
        mean=info["normalisation"]["mean"],
        std=info["normalisation"]["std"],
    )
    return torch.stack([ds[i][0] for i in range(len(ds))])


@pytest.mark.parametrize("model", ["videomae", "timesformer"])
def test_plain_transformers_opens_the_export_with_the_pipelines_logits(table, tmp_path, model):
    final = _train_final(table, tmp_path, model)
    pipeline, info = _pipeline(final)
    x = _clips(table, info)
    with torch.no_grad():
        expected = pipeline(x)

    folder = final / "export"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "vidstage.json"} <= {
        p.name for p in folder.iterdir()
    }
    shutil.rmtree(tmp_path / "ck")  # nothing of the run but the folder is read
    exported = AutoModelForVideoClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        got = exported(pixel_values=x).logits
    print(model, "max |logit difference|", float((got - expected).abs().max()))
    assert torch.allclose(got, expected, atol=1e-5)
    assert exported.config.id2label == {0: "fake", 1: "real"}
    assert exported.config.label2id == {"fake": 0, "real": 1}

    processor = AutoImageProcessor.from_pretrained(folder)
    assert list(processor.image_mean) == pytest.approx(info["normalisation"]["mean"])
    assert list(processor.image_std) == pytest.approx(info["normalisation"]["std"])
    assert processor.crop_size["height"] == processor.crop_size["width"] == 32
    assert processor.num_frames == 4

    # The project's own loader reads the same folder (and it is a valid `pretrained:`).
    loaded, meta = load_exported(folder)
    with torch.no_grad():
        assert torch.allclose(loaded(x), expected, atol=1e-5)
    assert meta["classes"] == ["fake", "real"] and meta["positive_label"] == "fake"
    assert meta["input"]["mean"] == pytest.approx(info["normalisation"]["mean"])


def test_a_project_family_exports_safetensors_and_config(table, tmp_path):
    final = _train_final(table, tmp_path, "naive_cnn")
    pipeline, info = _pipeline(final)
    x = _clips(table, info)
    folder = final / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "vidstage.json"]
    meta = json.loads((folder / "vidstage.json").read_text())
    assert meta["model"] == "naive_cnn" and meta["loader"] == "vidstage"
    assert meta["architecture"]["channels"] and meta["classes"] == ["fake", "real"]
    loaded, _ = load_exported(folder)
    with torch.no_grad():
        assert torch.allclose(loaded(x), pipeline(x), atol=1e-6)
    assert loaded.mean == tuple(info["normalisation"]["mean"])


def test_a_vit_family_from_a_checkpoint_loads_without_it(tmp_path):
    """The architecture comes from the checkpoint's config and travels with the export: the
    export loads after the checkpoint folder is gone (no hub, no `pretrained`)."""
    torch.manual_seed(0)
    checkpoint = tmp_path / "vit-checkpoint"
    vit = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=48,
    )
    ViTModel(vit, add_pooling_layer=False).save_pretrained(checkpoint)
    settings = {"pretrained": str(checkpoint), "num_frames": 3, "image_size": 32}
    model = create_model("vit_transformer", settings, num_classes=3).eval()
    export_model(
        model,
        tmp_path / "export",
        model_name="vit_transformer",
        settings=settings,
        classes=["a", "b", "c"],
        positive_label="c",
    )
    shutil.rmtree(checkpoint)
    loaded, meta = load_exported(tmp_path / "export")
    assert meta["architecture"]["hidden_size"] == 24 and meta["settings"]["pretrained"]
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_load_exported_refuses_a_folder_that_is_not_an_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="vidstage.json"):
        load_exported(tmp_path)
