"""Frozen image-encoder embeddings of frames: CLIP, SigLIP and DINOv2 vision models.

An encoder is loaded with transformers' ``from_pretrained`` from a hub id or a local folder
(the path a hub id takes and a folder take are one: :func:`load_encoder`), with the image
processor saved beside it (its resize, crop and normalisation are the checkpoint's). Frames
go through it in batches, without gradients, in bf16 on CUDA; a frame's vector is the
model's pooled output (CLIP: the post-layernorm [CLS]; SigLIP: its attention-pooling head;
DINOv2: the layernormed [CLS]). A clip's vector is the mean of its frames' vectors.

Streaming: frames arrive as an iterable and are embedded ``batch_size`` at a time; only the
running sum and, where asked for, the per-frame vectors (a few KB each) are kept, so memory
does not grow with the video's length.

:func:`build_tiny_encoder` saves a random-init encoder of any supported kind with its image
processor: the demo's rule, the tests and the benchmarks load it through the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from lib.io.sampling import sample_fraction, sample_uniform

#: config.json's ``model_type`` -> the vision model that loads it. A full CLIP or SigLIP
#: checkpoint (``clip``, ``siglip``: text and vision towers) loads its vision tower only.
ENCODERS = {
    "clip": CLIPVisionModel,
    "clip_vision_model": CLIPVisionModel,
    "siglip": SiglipVisionModel,
    "siglip_vision_model": SiglipVisionModel,
    "dinov2": Dinov2Model,
}

#: The kinds :func:`build_tiny_encoder` makes: (config, model, image processor, its sizes).
TINY_KINDS = {
    "clip": (CLIPVisionConfig, CLIPVisionModel, CLIPImageProcessorPil, "crop"),
    "siglip": (SiglipVisionConfig, SiglipVisionModel, SiglipImageProcessorPil, "square"),
    "dinov2": (Dinov2Config, Dinov2Model, BitImageProcessorPil, "crop"),
}

#: Frames per batch on the CPU when ``batch_size`` is 0 (the cores, not memory, limit it).
CPU_BATCH = 16
#: On CUDA with ``batch_size`` 0: frames per GiB of free GPU memory, and the cap.
GPU_FRAMES_PER_GIB = 16
GPU_MAX_BATCH = 512
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class EncoderError(ValueError):
    """A checkpoint that is not a supported image encoder; the message says which are."""


def choose_device(device: str) -> torch.device:
    """``auto``: CUDA when a GPU is visible, else the CPU; ``cpu``/``cuda`` as given."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EncoderError("embeddings.device is cuda but no GPU is visible; use auto or cpu")
    return torch.device(device)


def choose_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a CUDA GPU that has it, else float32; ``fp32``/``bf16`` as given."""
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def choose_batch(batch_size: int, device: torch.device) -> int:
    """``batch_size``, or with 0 one from the hardware: :data:`CPU_BATCH` on the CPU, on a GPU
    :data:`GPU_FRAMES_PER_GIB` per free GiB (at most :data:`GPU_MAX_BATCH`)."""
    if batch_size > 0:
        return batch_size
    if device.type != "cuda":
        return CPU_BATCH
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(GPU_MAX_BATCH, GPU_FRAMES_PER_GIB * free / 2**30)))


@dataclass
class Encoder:
    """A loaded frozen encoder: model (eval, on ``device`` in ``dtype``), its image processor,
    the frames per forward pass and the vector size."""

    model: torch.nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype
    batch_size: int
    dim: int
    name: str

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        """float32 (len(frames), dim): one pooled vector per RGB uint8 frame."""
        inputs = self.processor(images=frames, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            pooled = self.model(pixel_values=pixels).pooler_output
        return pooled.float().cpu().numpy()

    def embed_stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Each frame's vector, ``batch_size`` frames per forward pass, streamed."""
        batch: list[np.ndarray] = []
        for frame in frames:
            batch.append(_rgb(frame))
            if len(batch) == self.batch_size:
                yield from self.embed(batch)
                batch = []
        if batch:
            yield from self.embed(batch)


def _rgb(frame: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 frame: a grey frame repeated, an alpha channel dropped."""
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    return np.ascontiguousarray(frame[..., :3])


def load_encoder(model: str, *, device: str, precision: str, batch_size: int) -> Encoder:
    """The frozen encoder ``model`` (a hub id or a folder with config.json and
    preprocessor_config.json), ready to embed frames (:class:`Encoder`).

    ``device``: auto, cpu or cuda; ``precision``: auto (bf16 on CUDA), fp32 or bf16;
    ``batch_size``: frames per forward pass, 0 to choose from the hardware.
    """
    config = AutoConfig.from_pretrained(model)
    if config.model_type not in ENCODERS:
        raise EncoderError(
            f"{model}: a {config.model_type!r} checkpoint; embeddings.model takes a CLIP, "
            f"SigLIP or DINOv2 vision checkpoint (model_type one of {sorted(ENCODERS)})"
        )
    where = choose_device(device)
    dtype = choose_dtype(precision, where)
    encoder = ENCODERS[config.model_type].from_pretrained(model, dtype=dtype)
    encoder.to(where).eval().requires_grad_(False)
    processor = AutoImageProcessor.from_pretrained(model)
    dim = encoder.config.hidden_size
    return Encoder(encoder, processor, where, dtype, choose_batch(batch_size, where), dim, model)


def clip_embedding(
    encoder: Encoder, frames: Iterable[np.ndarray], *, keep_frames: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(mean vector, per-frame vectors or []) of a clip's frames; NaN when none arrives."""
    total = np.zeros(encoder.dim, dtype=np.float64)
    kept: list[np.ndarray] = []
    count = 0
    for vector in encoder.embed_stream(frames):
        total += vector
        count += 1
        if keep_frames:
            kept.append(vector)
    if count == 0:
        return np.full(encoder.dim, np.nan), []
    return total / count, kept


def embedding_columns(dim: int) -> list[str]:
    """The table columns of a ``dim``-sized vector: ``emb_0000``, ``emb_0001``, ..."""
    return [f"emb_{i:04d}" for i in range(dim)]


def build_tiny_encoder(
    kind: str,
    folder: str | Path,
    *,
    image_size: int = 32,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    patch_size: int = 8,
    random_state: int = 0,
    **config: object,
) -> Path:
    """Save a random-init ``kind`` encoder (clip, siglip or dinov2) with its image processor
    into ``folder``, loadable as a checkpoint (:func:`load_encoder`). The defaults make a
    tiny one (tests, the demo); ``config`` overrides any of the model config's keys (e.g. the
    architecture of a base-size checkpoint, for benchmarks)."""
    if kind not in TINY_KINDS:
        raise EncoderError(f"unknown encoder kind {kind!r}; choose from {sorted(TINY_KINDS)}")
    config_cls, model_cls, processor_cls, sizes = TINY_KINDS[kind]
    settings = dict(
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    settings.update(config)
    torch.manual_seed(random_state)
    model = model_cls(config_cls(**settings)).eval()
    side = int(settings["image_size"])
    if sizes == "square":  # SigLIP resizes to the square input, no crop
        processor = processor_cls(size={"height": side, "width": side})
    else:
        extra = {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD} if kind == "dinov2" else {}
        crop = {"height": side, "width": side}
        processor = processor_cls(size={"shortest_edge": side}, crop_size=crop, **extra)
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def frame_indices(n_frames: int, *, num_frames: int, sampling: dict) -> list[int]:
    """The frames of a clip that are embedded: ``num_frames`` spaced uniformly, or with 0
    the frames the feature stage samples (``sampling``: the ``features`` config section)."""
    if num_frames > 0:
        return sample_uniform(int(n_frames), min(num_frames, int(n_frames)))
    return sample_fraction(n_frames, **sampling)
