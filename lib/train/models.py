"""Every deep model family, and one entry point: ``create_model(name, settings, num_classes)``.

Shaped like timm's ``create_model`` over a registry filled by ``@register_model``: a family
is one builder function here plus its settings entry ``train.deep.<name>`` in the schema
(where the Snakefile learns the name, :mod:`lib.train.settings`); the rules, the training
loop and the evaluation never change when a family is added. The feature (scikit-learn)
models keep their own registry in :mod:`lib.train.feature_models`.

Every family is a transformers ``Config`` + ``Model`` loaded with ``from_pretrained(hub id or
folder)`` or built from a config, wrapped in :class:`VideoClassifier`, whose one interface
the training loop uses: ``forward(pixel_values (B, T, C, H, W) float) -> logits (B,
classes)``, ``backbone`` and ``backbone_blocks`` for freezing, ``mean``/``std`` for the
input normalisation (the checkpoint's image processor when it has one).

``naive_cnn`` is a transformers ``PreTrainedModel`` too (a small config class of its own),
so every family saves and loads through the same ``save_pretrained``/``from_pretrained``.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn
from transformers import (
    AutoImageProcessor,
    PretrainedConfig,
    PreTrainedModel,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    ViTConfig,
    ViTModel,
)

from lib.config import ConfigError
from lib.train.check import check_settings
from lib.train.settings import DEEP_MODELS, DeepSettings, as_settings

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The small transformer every family uses when no checkpoint is given (demo, tests; any
# field overridden by ``model_config``): the tiny CPU recipe's architecture, chosen by the
# learnability measurements (docs/BENCHMARKS.md, section "Learnability of the deep
# families"). Patches of an eighth of the frame's side: a smaller object than a
# quarter-side patch still fills patches of its own.
TINY_TRANSFORMER = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}
TINY_PATCHES_PER_SIDE = 8


def tiny_patch_size(image_size: int) -> int:
    """The patch side of a tiny transformer for frames of ``image_size``."""
    return max(2, image_size // TINY_PATCHES_PER_SIDE)


_BUILDERS: dict[str, Callable[[DeepSettings, int], "VideoClassifier"]] = {}


def register_model(name: str):
    """Decorator: register ``build(settings, num_classes) -> VideoClassifier`` as ``name``.

    ``name`` must have its settings entry ``train.deep.<name>`` in the schema.
    """
    if name not in DEEP_MODELS:
        raise ValueError(
            f"deep model {name!r} has no settings entry: add train.deep.{name} "
            "(a $ref to $defs/deep_model) to workflow/schemas/config.schema.yaml"
        )

    def wrap(build):
        _BUILDERS[name] = build
        return build

    return wrap


def create_model(name: str, settings: DeepSettings | dict | None = None, *, num_classes: int):
    """Build deep model ``name`` (a :class:`VideoClassifier`).

    From ``settings.pretrained`` (hub id or local folder) through ``from_pretrained`` when
    given, else from a small config (``settings.model_config`` overrides its fields).
    """
    settings = as_settings(settings, name)
    if name not in _BUILDERS:
        raise ConfigError(f"unknown deep model {name!r}; choose from {sorted(_BUILDERS)}")
    check_settings(name, settings)
    return _BUILDERS[name](settings, num_classes)


class VideoClassifier(nn.Module):
    """One interface over every family: video in, class logits out."""

    def __init__(
        self,
        net: nn.Module,
        *,
        backbone: nn.Module,
        backbone_blocks: list[nn.Module],
        mean,
        std,
        family: str,
        norm_source: str = "",
        forward_fn=None,
    ):
        super().__init__()
        self.net = net
        self.family = family
        self.norm_source = norm_source
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        # Plain attributes, not submodules: they point into ``net``.
        object.__setattr__(self, "backbone", backbone)
        object.__setattr__(self, "backbone_blocks", list(backbone_blocks))
        self._forward_fn = forward_fn

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self._forward_fn is not None:
            return self._forward_fn(pixel_values)
        return self.net(pixel_values=pixel_values).logits


def _normalisation(pretrained: str | None) -> tuple[tuple, tuple, str]:
    """Mean/std of the checkpoint's image processor, else ImageNet's."""
    if pretrained:
        try:
            proc = AutoImageProcessor.from_pretrained(pretrained)
            if getattr(proc, "image_mean", None) is not None:
                return (
                    tuple(proc.image_mean),
                    tuple(proc.image_std),
                    f"{pretrained} image processor",
                )
        except (OSError, ValueError) as exc:
            log.info("no image processor in %s (%s): ImageNet normalisation", pretrained, exc)
    return IMAGENET_MEAN, IMAGENET_STD, "ImageNet default"


def _labels(num_classes: int) -> dict:
    return {"num_labels": num_classes}


# --------------------------------------------------------------------------------------
# naive_cnn
# --------------------------------------------------------------------------------------


class NaiveCNNConfig(PretrainedConfig):
    model_type = "vidstage_naive_cnn"

    def __init__(
        self,
        channels=(16, 32, 64),
        image_size: int = 64,
        num_frames: int = 8,
        dropout: float = 0.1,
        **kwargs,
    ):
        self.channels = list(channels)
        self.image_size = image_size
        self.num_frames = num_frames
        self.dropout = dropout
        super().__init__(**kwargs)


class NaiveCNNForVideoClassification(PreTrainedModel):
    """A small 2D CNN scores each frame; the video's logits are the mean over frames."""

    config_class = NaiveCNNConfig
    main_input_name = "pixel_values"
    base_model_prefix = "features"

    def __init__(self, config: NaiveCNNConfig):
        super().__init__(config)
        blocks, c_in = [], 3
        for c in config.channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, padding=1),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            c_in = c
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(c_in, config.num_labels)
        self.post_init()

    def _init_weights(self, module):  # PyTorch's default init is kept
        pass

    def forward(self, pixel_values: torch.Tensor, **_):
        b, t = pixel_values.shape[:2]
        x = self.features(pixel_values.flatten(0, 1))
        x = self.dropout(x.mean(dim=(2, 3)))
        frame_logits = self.classifier(x).view(b, t, -1)
        return frame_logits.mean(dim=1)


@register_model("naive_cnn")
def naive_cnn(s: DeepSettings, num_classes: int) -> VideoClassifier:
    """Per-frame 2D CNN, frame scores averaged."""
    if s.pretrained:
        net = NaiveCNNForVideoClassification.from_pretrained(
            s.pretrained, **_labels(num_classes), ignore_mismatched_sizes=True
        )
    else:
        cfg = NaiveCNNConfig(
            image_size=s.image_size,
            num_frames=s.num_frames,
            **{**_labels(num_classes), **s.model_config},
        )
        net = NaiveCNNForVideoClassification(cfg)
    mean, std, norm_source = _normalisation(s.pretrained)
    return VideoClassifier(
        net,
        backbone=net.features,
        backbone_blocks=list(net.features),
        mean=mean,
        std=std,
        norm_source=norm_source,
        family="naive_cnn",
        forward_fn=net.forward,
    )


# --------------------------------------------------------------------------------------
# ViT frame encoder + GRU / Transformer over time
# --------------------------------------------------------------------------------------


class _ViTTemporal(nn.Module):
    def __init__(self, encoder: ViTModel, temporal: str, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        d = encoder.config.hidden_size
        self.temporal_kind = temporal
        if temporal == "gru":
            self.temporal = nn.GRU(d, d, batch_first=True)
        else:
            heads = encoder.config.num_attention_heads
            layer = nn.TransformerEncoderLayer(
                d, heads, dim_feedforward=2 * d, dropout=dropout, batch_first=True
            )
            self.temporal = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        b, t = pixel_values.shape[:2]
        cls = self.encoder(pixel_values=pixel_values.flatten(0, 1)).last_hidden_state[:, 0]
        seq = cls.view(b, t, -1)
        if self.temporal_kind == "gru":
            out, _ = self.temporal(seq)
            pooled = out[:, -1]
        else:
            pooled = self.temporal(seq).mean(dim=1)
        return self.classifier(self.dropout(pooled))


def _vit_encoder(s: DeepSettings) -> ViTModel:
    if s.pretrained:
        return ViTModel.from_pretrained(s.pretrained, add_pooling_layer=False)
    cfg = ViTConfig(
        **{
            "image_size": s.image_size,
            "patch_size": tiny_patch_size(s.image_size),
            **TINY_TRANSFORMER,
            **s.model_config,
        }
    )
    return ViTModel(cfg, add_pooling_layer=False)


def _vit_temporal(s: DeepSettings, num_classes: int, temporal: str) -> VideoClassifier:
    encoder = _vit_encoder(s)
    net = _ViTTemporal(encoder, temporal, num_classes)
    mean, std, norm_source = _normalisation(s.pretrained)
    blocks = [*encoder.layers, encoder.layernorm]
    return VideoClassifier(
        net,
        backbone=encoder,
        backbone_blocks=blocks,
        mean=mean,
        std=std,
        norm_source=norm_source,
        family=f"vit_{temporal}",
        forward_fn=net.forward,
    )


@register_model("vit_gru")
def vit_gru(s: DeepSettings, num_classes: int) -> VideoClassifier:
    """transformers ViTModel per frame ([CLS]), a GRU over time, a linear head."""
    return _vit_temporal(s, num_classes, "gru")


@register_model("vit_transformer")
def vit_transformer(s: DeepSettings, num_classes: int) -> VideoClassifier:
    """transformers ViTModel per frame ([CLS]), an nn.TransformerEncoder over time, a linear head."""
    return _vit_temporal(s, num_classes, "transformer")


# --------------------------------------------------------------------------------------
# Spatiotemporal transformers
# --------------------------------------------------------------------------------------


def _hf_video_config(s: DeepSettings, num_classes: int, config_cls, extra: dict):
    """The config a family without ``pretrained`` is built from (``s.model_config`` last)."""
    return config_cls(
        **{
            "image_size": s.image_size,
            "num_frames": s.num_frames,
            "patch_size": tiny_patch_size(s.image_size),
            **TINY_TRANSFORMER,
            **extra,
            **_labels(num_classes),
            **s.model_config,
        }
    )


def _hf_video(s: DeepSettings, num_classes: int, config_cls, model_cls, extra: dict):
    if s.pretrained:
        net = model_cls.from_pretrained(
            s.pretrained, **_labels(num_classes), ignore_mismatched_sizes=True
        )
    else:
        net = model_cls(_hf_video_config(s, num_classes, config_cls, extra))
    return net


_VIDEOMAE_EXTRA = {"tubelet_size": 2, "use_mean_pooling": True}


def videomae_config(s: DeepSettings, num_classes: int = 2) -> VideoMAEConfig:
    """The VideoMAEConfig the ``videomae`` builder makes from ``s`` without a checkpoint;
    :mod:`lib.train.pretrain` pretrains exactly this encoder (``pretrained: ssl``)."""
    return _hf_video_config(s, num_classes, VideoMAEConfig, _VIDEOMAE_EXTRA)


@register_model("videomae")
def videomae(s: DeepSettings, num_classes: int) -> VideoClassifier:
    """VideoMAEForVideoClassification (tubelet tokens over the whole clip)."""
    net = _hf_video(s, num_classes, VideoMAEConfig, VideoMAEForVideoClassification, _VIDEOMAE_EXTRA)
    mean, std, norm_source = _normalisation(s.pretrained)
    return VideoClassifier(
        net,
        backbone=net.videomae,
        backbone_blocks=list(net.videomae.encoder.layer),
        mean=mean,
        std=std,
        norm_source=norm_source,
        family="videomae",
    )


@register_model("timesformer")
def timesformer(s: DeepSettings, num_classes: int) -> VideoClassifier:
    """TimesformerForVideoClassification (divided space-time attention)."""
    net = _hf_video(s, num_classes, TimesformerConfig, TimesformerForVideoClassification, {})
    mean, std, norm_source = _normalisation(s.pretrained)
    enc = net.timesformer
    return VideoClassifier(
        net,
        backbone=enc,
        backbone_blocks=[*enc.encoder.layer, enc.layernorm],
        mean=mean,
        std=std,
        norm_source=norm_source,
        family="timesformer",
    )


# --------------------------------------------------------------------------------------
# Freezing
# --------------------------------------------------------------------------------------


def apply_freeze(model: VideoClassifier, freeze: str) -> dict:
    """Freeze per ``none | backbone | all_but_last_N``; returns parameter counts.

    ``all_but_last_N`` freezes the backbone except its last N blocks (encoder layers, the
    final norm counting as part of the last); the head always trains.
    """
    for p in model.parameters():
        p.requires_grad_(True)
    if freeze != "none":
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        if freeze.startswith("all_but_last_"):
            n = int(freeze.rsplit("_", 1)[1])
            blocks = model.backbone_blocks
            if model.family in ("vit_gru", "vit_transformer", "timesformer") and n:
                n += 1  # the final layernorm rides with the last block
            for block in blocks[len(blocks) - n :] if n else []:
                for p in block.parameters():
                    p.requires_grad_(True)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable_params": int(trainable),
        "total_params": int(total),
        "trainable_share": trainable / total if total else 0.0,
    }
