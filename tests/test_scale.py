"""Tests for lib.media.scale: letterbox geometry/pixels, VAE layouts, the OOM halving driver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib.media.scale import (
    AutoencoderScaler,
    LetterboxScaler,
    ScaleFallback,
    Scaler,
    letterbox,
    letterbox_geometry,
    letterboxed_chunks,
    make_scaler,
    on_canvas,
    resolve_vae_layout,
    scale_frames,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
VAE_SIZE = 32  # tiny VAEs downsample by 2; 32x32 keeps every round trip in milliseconds


# --------------------------------------------------------------------------------------------
# letterbox
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (320, 240, 256, (256, 192, 0, 32)),
        (240, 320, 256, (192, 256, 32, 0)),
        (100, 50, 256, (256, 128, 0, 64)),
        (1920, 1080, 256, (256, 144, 0, 56)),
        (1, 1, 256, (256, 256, 0, 0)),
        (1000, 1, 256, (256, 1, 0, 127)),
        (256, 256, 256, (256, 256, 0, 0)),
        (33, 17, 32, (32, 16, 0, 8)),
    ],
)
def test_letterbox_geometry(width, height, size, expected):
    assert letterbox_geometry(width, height, size) == expected


def test_letterbox_geometry_rejects_empty():
    with pytest.raises(ValueError):
        letterbox_geometry(0, 10, 256)


def test_letterbox_320x240_has_256x192_content_and_32px_black_bars():
    frame = np.full((240, 320, 3), 200, np.uint8)
    frame[:, :, 1] = 90
    out = letterbox(frame, 256)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert out[:32].max() == 0 and out[-32:].max() == 0
    content = out[32:224]
    assert np.all(content[..., 0] == 200) and np.all(content[..., 1] == 90)


def test_letterbox_shrink_averages_area():
    # A 2-px checkerboard shrunk by 2 averages each 2x2 block to mid grey (BOX, not nearest).
    checker = ((np.indices((240, 320)).sum(axis=0) % 2) * 255).astype(np.uint8)
    frame = np.repeat(checker[..., None], 3, axis=2)
    out = letterbox(frame, 160)
    content = out[20:140].astype(int)
    assert np.all(np.abs(content - 127.5) <= 1)


def test_letterbox_enlarges_100x50_bicubic():
    rows = np.linspace(0, 255, 50)[:, None]
    ramp = np.broadcast_to(rows, (50, 100)).astype(np.uint8)
    frame = np.repeat(ramp[..., None], 3, axis=2)
    out = letterbox(frame, 256)
    assert out[:64].max() == 0 and out[192:].max() == 0
    content = out[64:192, :, 0].astype(int)
    assert content.shape == (128, 256)
    # a vertical ramp stays a monotone vertical ramp spanning (nearly) the full range
    columns_equal = np.all(content == content[:, :1])
    assert columns_equal
    assert np.all(np.diff(content[:, 0]) >= 0)
    assert content[0, 0] <= 3 and content[-1, 0] >= 252
    # bicubic gives more distinct levels than the 50 source rows (nearest would repeat them)
    assert len(np.unique(content[:, 0])) > 60


def test_letterbox_of_a_single_pixel_fills_the_canvas():
    pixel = np.array([[[10, 20, 30]]], np.uint8)
    out = letterbox(pixel, 256)
    assert out.shape == (256, 256, 3)
    assert np.all(out == np.array([10, 20, 30], np.uint8))


def test_scalers_take_canvas_frames_as_they_are_and_letterbox_the_others():
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert on_canvas(canvas, 64) is canvas
    wide = rng.integers(0, 256, (30, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(on_canvas(wide, 64), letterbox(wide, 64))
    np.testing.assert_array_equal(on_canvas(canvas, 32), letterbox(canvas, 32))
    # the stage's path: letterboxed chunks through the letterbox scaler equal one letterbox
    frames = [wide, canvas]
    chunk = next(letterboxed_chunks(frames, size=48, chunk_frames=2))
    for got, frame in zip(LetterboxScaler(size=48).scale_chunk(chunk), frames):
        np.testing.assert_array_equal(got, letterbox(frame, 48))


def test_letterbox_same_size_is_a_copy():
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = letterbox(frame, 64)
    np.testing.assert_array_equal(out, frame)
    assert not np.shares_memory(out, frame)


def test_letterbox_scaler_and_make_scaler():
    scaler = make_scaler("letterbox", size=64, model=None, device="cpu")
    assert isinstance(scaler, LetterboxScaler) and isinstance(scaler, Scaler)
    assert scaler.method == "letterbox"
    frames = [np.zeros((30, 40, 3), np.uint8), np.zeros((50, 20, 3), np.uint8)]
    out = scaler.scale_chunk(frames)
    assert [frame.shape for frame in out] == [(64, 64, 3)] * 2
    with pytest.raises(ValueError, match="unknown scale method"):
        make_scaler("bilinear", size=64, model=None, device="cpu")


def test_importing_scale_does_not_import_torch():
    code = "import sys, lib.media.scale, lib.media.augment; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# autoencoder scaling with tiny VAEs saved in tmp_path
# --------------------------------------------------------------------------------------------


def _tiny_kl():
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=VAE_SIZE,
    ).eval()


def _tiny_taesd():
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(1)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    ).eval()


@pytest.fixture(scope="module")
def vae_dirs(tmp_path_factory):
    """Tiny VAEs saved standalone, under vae/ only, and beside a non-VAE root config."""
    root = tmp_path_factory.mktemp("vaes")
    kl, taesd = _tiny_kl(), _tiny_taesd()
    kl.save_pretrained(root / "kl")
    taesd.save_pretrained(root / "taesd")
    kl.save_pretrained(root / "pipeline_kl" / "vae")  # a pipeline-like folder: ONLY vae/
    taesd.save_pretrained(root / "pipeline_taesd" / "vae")
    (root / "pipeline_kl" / "model_index.json").write_text(
        json.dumps({"_class_name": "SomePipeline"})
    )
    # A root KL VAE with a *different* Tiny VAE under vae/: subfolder decides which loads.
    kl.save_pretrained(root / "both")
    taesd.save_pretrained(root / "both" / "vae")
    # A root that is another model (a UNet-like config) with the VAE under vae/.
    (root / "unet_root").mkdir()
    (root / "unet_root" / "config.json").write_text(
        json.dumps({"_class_name": "UNet2DConditionModel"})
    )
    kl.save_pretrained(root / "unet_root" / "vae")
    (root / "empty").mkdir()
    return root, kl, taesd


def _frames():
    rng = np.random.default_rng(3)
    return [
        rng.integers(0, 256, (24, 40, 3), dtype=np.uint8),  # landscape: bars top/bottom
        rng.integers(0, 256, (50, 20, 3), dtype=np.uint8),  # portrait: bars left/right
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),  # already square
    ]


@pytest.mark.parametrize(
    ("folder", "subfolder", "expected"),
    [
        ("kl", None, (None, "AutoencoderKL")),
        ("taesd", None, (None, "AutoencoderTiny")),
        ("pipeline_kl", None, ("vae", "AutoencoderKL")),
        ("pipeline_taesd", None, ("vae", "AutoencoderTiny")),
        ("both", None, (None, "AutoencoderKL")),
        ("both", "vae", ("vae", "AutoencoderTiny")),
        ("unet_root", None, ("vae", "AutoencoderKL")),
    ],
)
def test_resolve_vae_layout_local(vae_dirs, folder, subfolder, expected):
    root, _, _ = vae_dirs
    assert resolve_vae_layout(str(root / folder), subfolder) == expected


@pytest.mark.parametrize(
    ("folder", "subfolder"), [("kl", "vae"), ("empty", None), ("pipeline_kl", "decoder")]
)
def test_resolve_vae_layout_refuses_missing_subfolder(vae_dirs, folder, subfolder):
    """diffusers would silently load the root for a wrong subfolder; we refuse instead."""
    root, _, _ = vae_dirs
    with pytest.raises(ValueError, match="config"):
        resolve_vae_layout(str(root / folder), subfolder)


def test_resolve_vae_layout_hub_id_uses_file_exists(monkeypatch, vae_dirs):
    import huggingface_hub

    root, _, _ = vae_dirs
    served = root / "pipeline_taesd"  # the "repo": only vae/config.json exists
    asked = []

    def file_exists(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return (served / filename).is_file()

    def hf_hub_download(repo_id, filename, **kwargs):
        return str(served / filename)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "file_exists", file_exists)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    assert resolve_vae_layout("someone/some-vae") == ("vae", "AutoencoderTiny")
    assert asked == [("someone/some-vae", "config.json"), ("someone/some-vae", "vae/config.json")]


@pytest.mark.parametrize(
    ("folder", "subfolder", "expected_class", "expected_subfolder"),
    [
        ("kl", None, "AutoencoderKL", None),
        ("pipeline_kl", None, "AutoencoderKL", "vae"),
        ("taesd", None, "AutoencoderTiny", None),
        ("pipeline_taesd", None, "AutoencoderTiny", "vae"),
        ("both", "vae", "AutoencoderTiny", "vae"),
    ],
)
def test_autoencoder_scaler_loads_layouts_and_returns_uint8(
    vae_dirs, folder, subfolder, expected_class, expected_subfolder
):
    root, kl, taesd = vae_dirs
    scaler = AutoencoderScaler(str(root / folder), size=VAE_SIZE, device="cpu", subfolder=subfolder)
    assert scaler.method == "autoencoder" and isinstance(scaler, Scaler)
    assert scaler.vae_class == expected_class and type(scaler.vae).__name__ == expected_class
    assert scaler.subfolder == expected_subfolder
    # the saved weights were loaded (not a root checkpoint paired with the subfolder's config)
    saved = (kl if expected_class == "AutoencoderKL" else taesd).state_dict()
    loaded = scaler.vae.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(bool((loaded[key] == saved[key]).all()) for key in saved)
    frames = _frames()
    out = scaler.scale_chunk(frames)
    assert len(out) == len(frames)
    for frame, scaled in zip(frames, out):
        assert scaled.shape == (VAE_SIZE, VAE_SIZE, 3) and scaled.dtype == np.uint8
        new_w, new_h, x0, y0 = letterbox_geometry(frame.shape[1], frame.shape[0], VAE_SIZE)
        content = scaled[y0 : y0 + new_h, x0 : x0 + new_w]
        assert content.std() > 0  # the VAE produced an image, not a constant
        bars = scaled.copy()
        bars[y0 : y0 + new_h, x0 : x0 + new_w] = 0
        assert bars.max() == 0  # bars stay black after decoding
    again = scaler.scale_chunk(frames)
    for first, second in zip(out, again):
        np.testing.assert_array_equal(first, second)


def test_autoencoder_scaler_is_the_kl_round_trip_of_the_saved_weights(vae_dirs):
    """The scaler's pixels equal decode(encode(x).mode()) of the VAE that was saved."""
    import torch

    root, kl, _ = vae_dirs
    scaler = AutoencoderScaler(str(root / "pipeline_kl"), size=VAE_SIZE, device="cpu")
    frame = np.random.default_rng(9).integers(0, 256, (VAE_SIZE, VAE_SIZE, 3), dtype=np.uint8)
    (out,) = scaler.scale_chunk([frame])
    with torch.no_grad():
        pixels = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1
        decoded = kl.decode(kl.encode(pixels).latent_dist.mode()).sample
    expected = (
        ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    )
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_autoencoder_scaler_rejects_size_not_divisible(vae_dirs):
    root, _, _ = vae_dirs
    scaler = AutoencoderScaler(str(root / "kl"), size=33, device="cpu")
    with pytest.raises(ValueError, match="multiple"):
        scaler.scale_chunk([np.zeros((10, 10, 3), np.uint8)])


def test_make_scaler_autoencoder(vae_dirs):
    root, _, _ = vae_dirs
    scaler = make_scaler("autoencoder", size=VAE_SIZE, model=str(root / "taesd"), device="cpu")
    assert isinstance(scaler, AutoencoderScaler) and scaler.size == VAE_SIZE


# --------------------------------------------------------------------------------------------
# scale_frames: halving on out-of-memory, fallback
# --------------------------------------------------------------------------------------------


class _FakeScaler:
    """Marks each frame with its value + 1; raises MemoryError for chunks over ``max_ok``."""

    method = "fake"
    size = 4

    def __init__(
        self, max_ok: int, error: type[BaseException] = MemoryError, message: str = "simulated"
    ) -> None:
        self.max_ok = max_ok
        self.error = error
        self.message = message
        self.calls: list[int] = []

    def scale_chunk(self, frames, *, source_size=None):
        self.calls.append(len(frames))
        if len(frames) > self.max_ok:
            raise self.error(self.message)
        return [frame + 1 for frame in frames]


def _numbered_chunks(sizes):
    value = 0
    chunks = []
    for size in sizes:
        chunks.append([np.full((2, 2, 3), value + k, np.uint8) for k in range(size)])
        value += size
    return chunks


def test_scale_frames_passes_chunks_through_when_memory_suffices():
    scaler = _FakeScaler(max_ok=100)
    out = list(scale_frames(_numbered_chunks([5, 3]), scaler))
    assert [int(frame[0, 0, 0]) for frame in out] == list(range(1, 9))
    assert scaler.calls == [5, 3]


def test_scale_frames_halves_chunk_on_out_of_memory():
    scaler = _FakeScaler(max_ok=2)
    out = list(scale_frames(_numbered_chunks([8, 5]), scaler))
    assert [int(frame[0, 0, 0]) for frame in out] == list(range(1, 14))  # all frames, in order
    # 8 fails, 4 fails, then pieces of 2; the next chunk starts at the size that worked
    assert scaler.calls == [8, 4, 2, 2, 2, 2, 2, 2, 1]


def test_scale_frames_recognises_cuda_style_oom_errors():
    class OutOfMemoryError(RuntimeError):
        pass

    scaler = _FakeScaler(max_ok=1, error=OutOfMemoryError)
    out = list(scale_frames(_numbered_chunks([3]), scaler))
    assert len(out) == 3 and scaler.calls == [3, 1, 1, 1]


def test_scale_frames_raises_fallback_when_one_frame_fails():
    scaler = _FakeScaler(max_ok=0)
    with pytest.raises(ScaleFallback) as caught:
        list(scale_frames(_numbered_chunks([4]), scaler))
    assert scaler.calls == [4, 2, 1]
    assert "out of memory" in caught.value.reason and "\n" not in caught.value.reason
    assert isinstance(caught.value.__cause__, MemoryError)


def test_scale_frames_respects_min_chunk():
    scaler = _FakeScaler(max_ok=1)
    with pytest.raises(ScaleFallback):
        list(scale_frames(_numbered_chunks([8]), scaler, min_chunk=2))
    assert scaler.calls == [8, 4, 2]


def test_scale_frames_propagates_other_errors():
    scaler = _FakeScaler(max_ok=0, error=ValueError, message="bad frame")
    with pytest.raises(ValueError):
        list(scale_frames(_numbered_chunks([4]), scaler))
    assert scaler.calls == [4]


def test_float16_overflow_is_redone_in_float32(tmp_path):
    """A VAE whose float16 decode overflows (inf/NaN) falls back to float32, not garbage."""
    import torch

    kl = _tiny_kl()
    with torch.no_grad():  # weights stay float16-representable; their sums do not
        kl.decoder.conv_out.weight.fill_(20000.0)
        kl.decoder.conv_out.bias.fill_(0.0)
    kl.save_pretrained(tmp_path / "loud")
    frame = np.random.default_rng(2).integers(0, 256, (VAE_SIZE, VAE_SIZE, 3), dtype=np.uint8)
    with torch.no_grad():
        pixels = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1
        reference = kl.decode(kl.encode(pixels).latent_dist.mode()).sample
    expected = ((reference.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0)
    assert torch.isfinite(reference).all() and reference.abs().max() > 65504

    scaler = AutoencoderScaler(str(tmp_path / "loud"), size=VAE_SIZE, device="cpu", dtype="float16")
    assert scaler.dtype == torch.float16
    (out,) = scaler.scale_chunk([frame])
    assert scaler.dtype == torch.float32 and next(scaler.vae.parameters()).dtype == torch.float32
    assert np.abs(out.astype(int) - expected.numpy().astype(int)).max() <= 1


def test_preletterboxed_frames_with_source_size_keep_black_bars(vae_dirs):
    """The stage letterboxes each frame as it is decoded; the VAE still restores the bars."""
    from lib.media.scale import letterboxed_chunks

    root, _, _ = vae_dirs
    scaler = AutoencoderScaler(str(root / "kl"), size=VAE_SIZE, device="cpu")
    frame = np.random.default_rng(0).integers(0, 255, (30, 60, 3), dtype=np.uint8)
    (chunk,) = list(letterboxed_chunks([frame, frame, frame], size=VAE_SIZE, chunk_frames=5))
    assert len(chunk) == 3 and chunk[0].shape == (VAE_SIZE, VAE_SIZE, 3)
    out = scaler.scale_chunk(chunk, source_size=(60, 30))
    new_w, new_h, x0, y0 = letterbox_geometry(60, 30, VAE_SIZE)
    bars = out[0].copy()
    bars[y0 : y0 + new_h, x0 : x0 + new_w] = 0
    assert bars.max() == 0 and out[0][y0 : y0 + new_h].std() > 0
    assert [len(c) for c in letterboxed_chunks([frame] * 7, size=16, chunk_frames=3)] == [3, 3, 1]
