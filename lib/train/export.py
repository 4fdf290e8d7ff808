"""A final deep model as a folder the ecosystem opens without this project.

``train_final`` (``fold=-1`` in :func:`lib.train.loop.train_deep_table`) calls
:func:`export_model` after it writes ``model.pt``: ``results/models/{model}/final/export/``.

- ``videomae``, ``timesformer`` (:data:`TRANSFORMERS_FAMILIES`): the transformers model's
  ``save_pretrained`` (``config.json`` with ``id2label``/``label2id`` = the class names,
  ``model.safetensors``) and a ``preprocessor_config.json`` (``VideoMAEImageProcessor``, as
  the hub's VideoMAE and TimeSformer checkpoints ship) with the pipeline's mean/std, size and
  ``num_frames``. Plain transformers opens it::

      model = AutoModelForVideoClassification.from_pretrained(folder)
      logits = model(pixel_values=x).logits     # x: (batch, num_frames, 3, size, size)

- the other families (``naive_cnn``, ``vit_gru``, ``vit_transformer``: modules of this
  project around transformers parts): ``model.safetensors`` (the state dict) and the
  architecture in ``vidstage.json``; :func:`load_exported` rebuilds the model through
  :func:`lib.train.models.create_model` with no hub access.

Every export has ``vidstage.json``: the model, family, class names, positive label, the
training settings, and the input the model expects (``input``: frames, size, mean/std and
how a clip becomes a tensor), so any reader can prepare the same normalised input. The same
input gives the same logits as the pipeline's model (``tests/test_export.py``). The
image processor resizes with PIL and centre-crops; the pipeline resizes its letterboxed
square clips with torch's antialiased bilinear: for logits equal to the pipeline's, prepare
frames as ``input`` says (or with :class:`lib.train.data.FrameClipDataset`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import VideoMAEImageProcessorPil

from lib.train.models import VideoClassifier, create_model
from lib.train.settings import DeepSettings, as_settings
from lib.utils import atomic_write_text

__all__ = ["EXPORT_DIR", "TRANSFORMERS_FAMILIES", "export_final", "export_model", "load_exported"]

#: The export's folder name inside a final model's folder.
EXPORT_DIR = "export"
#: Families whose export is a plain transformers folder (AutoModelForVideoClassification).
TRANSFORMERS_FAMILIES = ("videomae", "timesformer")
FORMAT = "vidstage-export"
FORMAT_VERSION = 1
INFO_FILE = "vidstage.json"
WEIGHTS_FILE = "model.safetensors"
# Keys of a transformers config that are not architecture: the labels come from the
# export's classes, the rest is bookkeeping that from_dict/__init__ sets itself.
_NOT_ARCHITECTURE = {
    "id2label",
    "label2id",
    "num_labels",
    "architectures",
    "model_type",
    "transformers_version",
    "_name_or_path",
    "torch_dtype",
    "dtype",
}


def export_model(
    model: VideoClassifier,
    folder: str | os.PathLike,
    *,
    model_name: str,
    settings: DeepSettings | dict,
    classes: list[str],
    positive_label: str,
) -> Path:
    """Write ``model`` (a trained :class:`VideoClassifier`) as a standalone folder.

    ``settings`` are the model's training settings (``num_frames``/``image_size`` define
    its input), ``classes`` the class names in logit order. The folder is written beside
    ``folder`` and renamed onto it when complete (an existing export is replaced).
    """
    s = as_settings(settings, model_name)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        classes = [str(c) for c in classes]
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": model_name,
            "family": model.family,
            "loader": "transformers" if model_name in TRANSFORMERS_FAMILIES else "vidstage",
            "classes": classes,
            "positive_label": str(positive_label),
            "input": _input_spec(model, s),
            "settings": s.as_dict(),
        }
        if model_name in TRANSFORMERS_FAMILIES:
            _save_transformers(model, tmp, s, classes)
        else:
            info["architecture"] = _architecture(model, s)
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "pt"})
        atomic_write_text(tmp / INFO_FILE, json.dumps(info, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def load_exported(folder: str | os.PathLike) -> tuple[VideoClassifier, dict]:
    """``(model, info)`` from a folder :func:`export_model` wrote, in eval mode on the CPU.

    ``model(pixel_values)`` gives the logits of the exported model; ``info`` is
    ``vidstage.json`` (classes, positive label, ``input``). No hub access: a transformers
    folder is read by ``from_pretrained(folder)``, the others are rebuilt from their
    architecture.
    """
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path}: missing; {folder} is not a vidstage export")
    info = json.loads(info_path.read_text())
    if info.get("format") != FORMAT or info.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{info_path}: format {info.get('format')!r} version {info.get('format_version')}; "
            f"this code reads {FORMAT!r} up to version {FORMAT_VERSION}"
        )
    name, classes = info["model"], info["classes"]
    known = {f for f in DeepSettings.__dataclass_fields__}
    values = {k: v for k, v in info["settings"].items() if k in known}
    if info["loader"] == "transformers":
        values.update(pretrained=str(folder), model_config={})
        model = create_model(name, values, num_classes=len(classes))
    else:
        values.update(pretrained=None, model_config=info["architecture"])
        model = create_model(name, values, num_classes=len(classes))
        model.load_state_dict(load_file(folder / WEIGHTS_FILE))
        model.mean = tuple(info["input"]["mean"])
        model.std = tuple(info["input"]["std"])
    return model.eval(), info


def _input_spec(model: VideoClassifier, s: DeepSettings) -> dict:
    return {
        "pixel_values": "float32 (batch, num_frames, 3, image_size, image_size)",
        "num_frames": s.num_frames,
        "image_size": s.image_size,
        "mean": list(model.mean),
        "std": list(model.std),
        "frames": "num_frames frames uniformly spaced over the clip (centred in equal bins)",
        "resize": "bilinear, antialiased, to image_size x image_size",
        "normalise": "RGB / 255, then (x - mean) / std per channel",
    }


def _save_transformers(model: VideoClassifier, folder: Path, s: DeepSettings, classes) -> None:
    net = model.net
    net.config.id2label = dict(enumerate(classes))
    net.config.label2id = {c: i for i, c in enumerate(classes)}
    net.save_pretrained(folder)
    size = s.image_size
    # The PIL variant saves as "VideoMAEImageProcessor" and needs no torchvision here.
    VideoMAEImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(model.mean),
        image_std=list(model.std),
        num_frames=s.num_frames,
    ).save_pretrained(folder)


def _architecture(model: VideoClassifier, s: DeepSettings) -> dict:
    """The config the model was built from (the frame encoder's for the ViT families), as
    ``model_config`` overrides that rebuild it without its checkpoint. ``num_frames`` and
    ``image_size`` equal to the settings' are left to the settings (builders pass them)."""
    net = model.net
    config = net.config if hasattr(net, "config") else model.backbone.config
    from_settings = {"num_frames": s.num_frames, "image_size": s.image_size}
    return {
        k: v
        for k, v in config.to_dict().items()
        if k not in _NOT_ARCHITECTURE and from_settings.get(k, object()) != v
    }


def export_final(model: VideoClassifier, out_dir: str | os.PathLike, train_info: dict) -> Path:
    """:func:`export_model` of a final model into ``out_dir/export``, its names from the
    run's ``train_info.json`` contents (model, settings, classes, positive label)."""
    return export_model(
        model,
        Path(out_dir) / EXPORT_DIR,
        model_name=train_info["model"],
        settings=train_info["settings"],
        classes=train_info["classes"],
        positive_label=train_info["positive_label"],
    )
