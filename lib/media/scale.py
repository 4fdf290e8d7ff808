"""Stage 5: bring frames of any size to one square size, by letterbox or autoencoder scaling.

Two scalers share one interface (``.method`` and ``.scale_chunk(frames) -> frames``):

- :class:`LetterboxScaler` keeps the aspect ratio, resizes (area averaging when shrinking,
  bicubic when enlarging) and centres the picture on a black ``size x size`` canvas.
- :class:`AutoencoderScaler` letterboxes, then sends the frames through a diffusers VAE
  (encode -> latent mean/mode -> decode): "autoencoder scaling", which replaces fine detail
  by what the VAE can reproduce. torch and diffusers are imported only when it is built
  (:func:`_torch_and_diffusers`), so letterbox users never pay for them.

:func:`scale_frames` drives a scaler over a video's chunks and halves the chunk on
out-of-memory; when even ``min_chunk`` frames fail it raises :class:`ScaleFallback`, and the
caller restarts that video with letterbox and records why.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, runtime_checkable

import huggingface_hub
import numpy as np
from huggingface_hub.errors import EntryNotFoundError
from PIL import Image

from lib.io.writer import VideoWriter
from lib.memory import is_out_of_memory, release

log = logging.getLogger(__name__)

SCALE_METHODS = ("letterbox", "autoencoder")
VAE_CLASSES = ("AutoencoderKL", "AutoencoderTiny")


# --------------------------------------------------------------------------------------------
# Letterbox
# --------------------------------------------------------------------------------------------


def letterbox_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """Where a ``width x height`` picture lands on a ``size x size`` canvas.

    Returns ``(new_w, new_h, x0, y0)``: the resized picture's size (the long side becomes
    ``size``, the short side is rounded, never below 1) and its top-left corner, centred
    (an odd remainder puts the extra black row/column at the bottom/right).
    """
    width, height, size = int(width), int(height), int(size)
    if width < 1 or height < 1 or size < 1:
        raise ValueError(f"width, height and size must be >= 1, got {width}, {height}, {size}")
    scale = size / max(width, height)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    return new_w, new_h, (size - new_w) // 2, (size - new_h) // 2


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


def letterbox(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB ``uint8`` frame into a black ``size x size`` canvas, aspect ratio kept.

    Shrinking averages the covered source area (PIL ``BOX``: no aliasing, no ringing);
    enlarging uses bicubic interpolation. Returns a new ``(size, size, 3)`` uint8 array.
    """
    frame = _check_frame(frame)
    height, width = frame.shape[:2]
    new_w, new_h, x0, y0 = letterbox_geometry(width, height, size)
    if (new_w, new_h) == (width, height):
        resized = frame
    else:
        shrinking = new_w * new_h < width * height
        resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
        resized = np.asarray(Image.fromarray(frame).resize((new_w, new_h), resample=resample))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    return canvas


def on_canvas(frame: np.ndarray, size: int) -> np.ndarray:
    """``frame`` letterboxed to ``size x size``; a frame already on such a canvas as it is.

    What every scaler applies first. The stage hands scalers frames that
    :func:`letterboxed_chunks` has letterboxed already (to stream in bounded memory), and a
    second :func:`letterbox` of those would only copy them: a tenth of the demo's scale stage.
    """
    if frame.shape == (size, size, 3) and frame.dtype == np.uint8:
        return frame
    return letterbox(frame, size)


# --------------------------------------------------------------------------------------------
# Scalers
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Scaler(Protocol):
    """What :func:`scale_frames` and the stage driver need from a scaler."""

    method: str
    size: int

    def scale_chunk(
        self, frames: list[np.ndarray], *, source_size: tuple[int, int] | None = None
    ) -> list[np.ndarray]:
        """Scale a chunk of RGB uint8 frames to ``(size, size, 3)`` uint8 frames, in order.

        ``source_size`` (width, height) names the video's own size when the frames were
        letterboxed already (so that a chunk holds small frames, never full-size ones).
        """
        ...


class LetterboxScaler:
    """Letterbox every frame to ``size x size`` (see :func:`letterbox`)."""

    method = "letterbox"

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def scale_chunk(
        self, frames: list[np.ndarray], *, source_size: tuple[int, int] | None = None
    ) -> list[np.ndarray]:
        return [on_canvas(frame, self.size) for frame in frames]

    def __repr__(self) -> str:
        return f"LetterboxScaler(size={self.size})"


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _config_at(model: str, relative: str) -> dict[str, Any] | None:
    """The JSON config ``relative`` of a local folder or hub repo ``model``; None if absent.

    Local folders are checked on disk. Hub ids ask the hub whether the file exists
    (``huggingface_hub.file_exists``) and download it; offline (``HF_HUB_OFFLINE`` or no
    network) the local cache answers instead.
    """
    local = Path(model)
    if local.is_dir():
        path = local / relative
        return _read_json(path) if path.is_file() else None
    if local.is_absolute() or model.startswith((".", "~")) or local.exists():
        raise FileNotFoundError(f"VAE folder {model!r} does not exist (and is not a hub id)")
    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        try:
            if not huggingface_hub.file_exists(model, relative):
                return None
        except Exception as exc:  # no network, proxy trouble: let the cache decide below
            log.info(
                "could not ask the hub about %s/%s (%s); trying the local cache",
                model,
                relative,
                exc,
            )
    try:
        return _read_json(Path(huggingface_hub.hf_hub_download(model, relative)))
    except EntryNotFoundError:  # also LocalEntryNotFoundError: offline and not cached
        return None


def resolve_vae_layout(model: str, subfolder: str | None = None) -> tuple[str | None, str]:
    """Find the VAE in ``model`` (local path or hub id): returns ``(subfolder, class_name)``.

    diffusers' ``from_pretrained`` fails on a folder that only has ``vae/`` and, worse, loads
    the root model without complaint when given a ``subfolder`` that does not exist (and, for
    local folders, takes a root weights file even when the subfolder exists; the scaler loads
    local folders from the VAE's own directory for that reason). So the layout is checked first: an explicit ``subfolder`` must hold a ``config.json``; otherwise
    a root ``config.json`` of a VAE class wins (a standalone VAE), then ``vae/config.json`` (a
    whole pipeline). The class comes from the config's ``_class_name``.
    """
    if subfolder is not None:
        candidates = [subfolder.strip("/") or None]
    else:
        candidates = [None, "vae"]
    seen = []
    for candidate in candidates:
        relative = "config.json" if candidate is None else f"{candidate}/config.json"
        config = _config_at(model, relative)
        if config is None:
            seen.append(f"{relative}: missing")
            continue
        class_name = str(config.get("_class_name", ""))
        if class_name in VAE_CLASSES:
            return candidate, class_name
        seen.append(f"{relative}: _class_name={class_name!r}")
    raise ValueError(
        f"no {' or '.join(VAE_CLASSES)} config found in {model!r} "
        f"(subfolder={subfolder!r}; {'; '.join(seen)})"
    )


class AutoencoderScaler:
    """Letterbox to ``size``, then a VAE round trip: encode, take the latent mean, decode.

    ``model`` is a hub id or local folder holding an ``AutoencoderKL`` or ``AutoencoderTiny``,
    standalone or under ``vae/`` (see :func:`resolve_vae_layout`). ``device="auto"`` picks CUDA
    when available. ``dtype="auto"`` runs float16 on CUDA and float32 on the CPU; a float16
    pass that produces non-finite values (VAEs flagged ``force_upcast`` can overflow) is
    redone in float32 and the model stays in float32. The black letterbox bars are restored
    after decoding, so the content area is exactly ``letterbox_geometry`` and the bars carry
    no VAE artefacts. ``size`` must be a multiple of the VAE's downsampling factor (8 for
    Stable Diffusion VAEs).
    """

    method = "autoencoder"

    def __init__(
        self,
        model: str,
        *,
        size: int,
        device: str,
        subfolder: str | None = None,
        dtype: str = "auto",
    ) -> None:
        torch, diffusers = _torch_and_diffusers()
        self.model = str(model)
        self.size = int(size)
        self.subfolder, self.vae_class = resolve_vae_layout(self.model, subfolder)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype == "auto":
            torch_dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        self.dtype = torch_dtype
        accelerate_present = _module_available("accelerate")
        # A local folder is loaded from the VAE's own directory, never via ``subfolder=``:
        # diffusers 0.42 takes the *root's* weights file when one exists, pairing it with the
        # subfolder's config (a root KL VAE + vae/ Tiny VAE gives a Tiny model with random
        # weights and only a warning). Hub ids resolve ``subfolder`` per file and are safe.
        if Path(self.model).is_dir():
            load_from, load_subfolder = str(Path(self.model, self.subfolder or "")), None
        else:
            load_from, load_subfolder = self.model, self.subfolder
        vae = getattr(diffusers, self.vae_class).from_pretrained(
            load_from,
            subfolder=load_subfolder,
            torch_dtype=torch_dtype,
            low_cpu_mem_usage=accelerate_present,  # without accelerate, True only nags
        )
        self.vae = vae.to(self.device).eval()
        log.info(
            "loaded %s from %s (subfolder=%s) on %s as %s",
            self.vae_class,
            self.model,
            self.subfolder,
            self.device,
            torch_dtype,
        )

    def __repr__(self) -> str:
        return (
            f"AutoencoderScaler(model={self.model!r}, size={self.size}, device={str(self.device)!r}, "
            f"subfolder={self.subfolder!r}, class={self.vae_class})"
        )

    def _round_trip(self, pixels):
        """VAE encode -> latent mean/mode -> decode, on a float [-1, 1] NCHW batch."""
        if self.vae_class == "AutoencoderKL":
            latents = self.vae.encode(pixels).latent_dist.mode()
        else:
            latents = self.vae.encode(pixels).latents
        return self.vae.decode(latents).sample

    def scale_chunk(
        self, frames: list[np.ndarray], *, source_size: tuple[int, int] | None = None
    ) -> list[np.ndarray]:
        torch, _ = _torch_and_diffusers()
        if len(frames) == 0:
            return []
        boxed = np.stack([on_canvas(frame, self.size) for frame in frames])
        try:
            with torch.inference_mode():
                batch = torch.from_numpy(boxed).to(self.device).permute(0, 3, 1, 2)
                pixels = batch.to(self.dtype) / 127.5 - 1.0
                decoded = self._round_trip(pixels)
                if self.dtype == torch.float16 and not torch.isfinite(decoded).all():
                    log.warning("%s overflowed in float16; switching to float32", self.model)
                    self.dtype = torch.float32
                    self.vae = self.vae.float()
                    decoded = self._round_trip(pixels.float())
                if tuple(decoded.shape[-2:]) != (self.size, self.size):
                    raise ValueError(
                        f"{self.model} decoded {tuple(decoded.shape[-2:])} from {self.size}x{self.size}: "
                        "size must be a multiple of the VAE's downsampling factor"
                    )
                out = ((decoded.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
                out = out.permute(0, 2, 3, 1).cpu().numpy()
        except RuntimeError as exc:
            # torch's CPU allocator reports "can't allocate memory", which is_out_of_memory does
            # not recognise: surface it as MemoryError so scale_frames halves the chunk.
            if "can't allocate memory" in str(exc) and not is_out_of_memory(exc):
                raise MemoryError(str(exc)) from exc
            raise
        results = []
        for frame, scaled in zip(frames, out):
            width, height = source_size or (frame.shape[1], frame.shape[0])
            new_w, new_h, x0, y0 = letterbox_geometry(width, height, self.size)
            bars_restored = np.zeros_like(scaled)
            bars_restored[y0 : y0 + new_h, x0 : x0 + new_w] = scaled[
                y0 : y0 + new_h, x0 : x0 + new_w
            ]
            results.append(bars_restored)
        return results


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _torch_and_diffusers():
    """torch and diffusers, imported here on first use, the one import inside a function in
    this module: together they take seconds to import, which every process that scales by
    letterbox (and every stage process importing this module) would pay for nothing
    (``tests/test_scale.py::test_importing_scale_does_not_import_torch``)."""
    import torch
    import diffusers

    return torch, diffusers


def make_scaler(
    method: str, *, size: int, model: str | None, device: str
) -> LetterboxScaler | AutoencoderScaler:
    """A scaler for ``method`` in ``SCALE_METHODS`` (``model`` and ``device``: the autoencoder's;
    the config's ``scale`` section holds their defaults)."""
    if method == "letterbox":
        return LetterboxScaler(size=size)
    if method == "autoencoder":
        if not model:
            raise ValueError("the autoencoder scaler needs a model: set scale.model")
        return AutoencoderScaler(model, size=size, device=device)
    raise ValueError(f"unknown scale method {method!r}; expected one of {SCALE_METHODS}")


# --------------------------------------------------------------------------------------------
# Driving a scaler over a video
# --------------------------------------------------------------------------------------------


class ScaleFallback(Exception):
    """Scaling ran out of memory even on ``min_chunk`` frames; restart the video with letterbox.

    ``reason`` is one line for the ``reason`` column of scaled.csv.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def letterboxed_chunks(
    frames: Iterable[np.ndarray], *, size: int, chunk_frames: int
) -> Iterator[list[np.ndarray]]:
    """Letterbox each frame as it arrives and group the small results in chunks.

    A raw 1080p frame holds about 32 times the bytes of a letterboxed 256×256 one
    (1920×1080×3 against 256×256×3). The stage streams frames through this, so memory does
    not depend on the input resolution.
    """
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(letterbox(frame, size))
        if len(chunk) == chunk_frames:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scale_frames(
    chunks: Iterable[list[np.ndarray]],
    scaler: Scaler,
    *,
    min_chunk: int = 1,
    source_size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield every frame of ``chunks`` scaled by ``scaler``, in order.

    On out-of-memory (:func:`lib.memory.is_out_of_memory`) the failing piece is retried in
    halves, and the smaller piece size is kept for the rest of the video (retrying the size
    that just failed would fail again). When a piece of ``min_chunk`` frames or fewer still
    fails, :class:`ScaleFallback` is raised; frames already yielded belong to the failed
    attempt and the caller discards them. Errors other than out-of-memory propagate.
    """
    min_chunk = max(1, int(min_chunk))
    limit: int | None = None  # piece size that last succeeded or is still worth trying
    for chunk in chunks:
        chunk = list(chunk)
        start = 0
        while start < len(chunk):
            stop = len(chunk) if limit is None else min(len(chunk), start + limit)
            piece_size = stop - start
            out_of_memory = None
            try:
                scaled = scaler.scale_chunk(chunk[start:stop], source_size=source_size)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                out_of_memory = " ".join(str(exc).split())[:200] or type(exc).__name__
                if piece_size <= min_chunk:
                    raise ScaleFallback(
                        f"{scaler.method} out of memory on a chunk of {piece_size} frame(s): {out_of_memory}"
                    ) from exc
            if out_of_memory is not None:
                # Outside the except block, so the traceback (and the tensors its frames hold)
                # is already gone when caches are dropped.
                limit = max(min_chunk, piece_size // 2)
                log.warning(
                    "%s out of memory on %d frames (%s); retrying with %d",
                    scaler.method,
                    piece_size,
                    out_of_memory,
                    limit,
                )
                release(log, "after scale out of memory")
                continue
            if len(scaled) != piece_size:
                raise RuntimeError(f"{scaler!r} returned {len(scaled)} frames for {piece_size}")
            yield from scaled
            start = stop


class ScaledClipWriter:
    """Makes a model's input from a video: frames onto the canvas and encoded as a clip.

    The scale stage writes every training clip with it and predict every window it scores,
    from the same ``scale`` config section, so a model reads at predict time frames made
    exactly as its training frames were (same scaler, canvas, chunks and encoder settings).
    When the autoencoder runs out of memory even on one frame, the clip is redone with
    letterbox and :meth:`write` says so.
    """

    def __init__(
        self,
        *,
        method: str,
        size: int,
        model: str | None,
        device: str,
        chunk_frames: int,
        crf: int,
        preset: str,
        encoder_threads: int,
    ) -> None:
        self.size, self.chunk_frames = size, chunk_frames
        self.encoder = {"crf": crf, "preset": preset, "threads": encoder_threads}
        self.scaler = make_scaler(method, size=size, model=model, device=device)
        letterbox_only = make_scaler("letterbox", size=size, model=None, device=device)
        self.fallback = letterbox_only if method != "letterbox" else None

    @property
    def method(self) -> str:
        return self.scaler.method

    def _encode(self, reader, path: Path, scaler: Scaler, start: int, stop: int | None) -> None:
        with VideoWriter(path, fps=reader.fps, **self.encoder) as writer:
            chunks = letterboxed_chunks(
                reader.iter_frames(start, stop), size=self.size, chunk_frames=self.chunk_frames
            )
            for frame in scale_frames(chunks, scaler, source_size=(reader.width, reader.height)):
                writer.write(frame)

    def write(
        self, reader, path: str | Path, *, start: int = 0, stop: int | None = None
    ) -> tuple[str, str]:
        """Frames ``[start, stop)`` of an open :class:`lib.io.reader.FrameReader` as a clip at
        ``path``; returns (the method used, the reason of a fallback or "")."""
        try:
            self._encode(reader, Path(path), self.scaler, start, stop)
            return self.scaler.method, ""
        except ScaleFallback as exc:
            log.warning("%s: %s; falling back to letterbox", path, exc)
            self._encode(reader, Path(path), self.fallback, start, stop)
            return "letterbox", f"fallback:{exc}"
