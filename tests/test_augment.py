"""Tests for lib.media.augment: determinism, temporal consistency, shapes and known values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib.media.augment import (
    AUGMENTATION_TYPES,
    Augmentation,
    bilinear_remap,
    bilinear_remap_plan,
    elastic_displacement,
    make_augmentation,
)
from lib.utils import stable_seed

SEED = 1234


def _textured_frame(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture, so every geometric/photometric change shows."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 255, height)[:, None]
    cols = np.linspace(0, 255, width)[None, :]
    base = np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols) / 2], axis=-1)
    texture = rng.integers(-40, 41, size=(height, width, 3))
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def _augmentation_of_type(name: str, video_id: str = "vid-a", seed: int = SEED) -> Augmentation:
    return make_augmentation(video_id, AUGMENTATION_TYPES.index(name), seed)


def _contains_noise(augmentation: Augmentation) -> bool:
    if augmentation.name == "gaussian_noise":
        return True
    steps = augmentation.params.get("steps", [])
    return any(step["name"] == "gaussian_noise" for step in steps)


def test_ten_types_cycle_with_aug_idx():
    assert len(AUGMENTATION_TYPES) == 10
    names = [make_augmentation("v", aug_idx, SEED).name for aug_idx in range(23)]
    assert names[:10] == list(AUGMENTATION_TYPES)
    assert names[10:20] == list(AUGMENTATION_TYPES)
    assert names[22] == "brightness"


def test_negative_aug_idx_is_rejected():
    with pytest.raises(ValueError, match="aug_idx"):
        make_augmentation("v", -1, SEED)


def test_same_inputs_give_same_params_and_bitwise_same_frames():
    frames = [_textured_frame(seed=k) for k in range(3)]
    for aug_idx in range(20):
        first = make_augmentation("video-7", aug_idx, SEED)
        second = make_augmentation("video-7", aug_idx, SEED)
        assert first == second
        assert first.describe() == second.describe()
        for index, frame in enumerate(frames):
            np.testing.assert_array_equal(first.apply(frame, index), second.apply(frame, index))


def test_params_come_from_stable_seed_of_id_seed_and_index():
    augmentation = make_augmentation("video-7", 2, SEED)
    assert augmentation.seed == stable_seed("augment", SEED, "video-7", 2)
    rng = np.random.default_rng(augmentation.seed)
    assert augmentation.params == {"factor": round(float(rng.uniform(0.8, 1.2)), 4)}


def test_different_video_id_or_seed_gives_different_params():
    for aug_idx in range(10):
        a = make_augmentation("video-a", aug_idx, SEED)
        b = make_augmentation("video-b", aug_idx, SEED)
        c = make_augmentation("video-a", aug_idx, SEED + 1)
        assert a.seed != b.seed and a.seed != c.seed
        if a.name == "hflip":  # the only type without parameters
            assert a.params == b.params == {}
            continue
        assert a.params != b.params, a.name
        assert a.params != c.params, a.name


def test_params_in_documented_ranges():
    for k in range(300):
        augmentation = make_augmentation(f"v{k}", k, SEED)
        steps = (
            augmentation.params["steps"]
            if augmentation.name == "combination"
            else [{"name": augmentation.name, "params": augmentation.params}]
        )
        if augmentation.name == "combination":
            assert 2 <= len(steps) <= 3
            names = [step["name"] for step in steps]
            assert len(set(names)) == len(names) and "combination" not in names
        for step in steps:
            p = step["params"]
            if step["name"] == "rotation":
                assert -10 <= p["angle_deg"] <= 10
            elif step["name"] in ("brightness", "contrast", "saturation"):
                assert 0.8 <= p["factor"] <= 1.2
            elif step["name"] == "gaussian_noise":
                assert 2 <= p["sigma"] <= 8
            elif step["name"] == "gaussian_blur":
                assert 0.5 <= p["radius"] <= 2
            elif step["name"] == "affine":
                assert abs(p["translate_x"]) <= 0.1 and abs(p["translate_y"]) <= 0.1
                assert 0.9 <= p["scale"] <= 1.1 and abs(p["shear_deg"]) <= 10
            elif step["name"] == "elastic":
                assert 0.005 <= p["alpha"] <= 0.010 and 0.04 <= p["sigma"] <= 0.07


def test_describe_is_compact_sorted_json_that_round_trips():
    for aug_idx in range(10):
        augmentation = make_augmentation("video-x", aug_idx, SEED)
        text = augmentation.describe()
        assert " " not in text and "\n" not in text
        payload = json.loads(text)
        assert payload == {"name": augmentation.name, "params": augmentation.params}
        assert text == json.dumps(payload, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("name", AUGMENTATION_TYPES)
def test_same_transform_on_every_frame_except_noise(name):
    """Temporal consistency: one frame shown at different indices gets the same output."""
    frame = _textured_frame()
    for video_id in ("vid-a", "vid-b", "vid-c"):
        augmentation = _augmentation_of_type(name, video_id)
        outputs = [augmentation.apply(frame, index) for index in (0, 1, 57)]
        if _contains_noise(augmentation):
            assert not np.array_equal(outputs[0], outputs[1])
        else:
            np.testing.assert_array_equal(outputs[0], outputs[1])
            np.testing.assert_array_equal(outputs[0], outputs[2])


@pytest.mark.parametrize("name", AUGMENTATION_TYPES)
@pytest.mark.parametrize("shape", [(48, 64, 3), (17, 33, 3), (33, 17, 3), (1, 1, 3), (2, 5, 3)])
def test_dtype_and_shape_preserved(name, shape):
    frame = _textured_frame(shape[0], shape[1])
    before = frame.copy()
    for video_id in ("vid-a", "vid-b"):
        out = _augmentation_of_type(name, video_id).apply(frame, 3)
        assert out.dtype == np.uint8
        assert out.shape == shape
        assert out.flags.writeable and out.flags.c_contiguous
    np.testing.assert_array_equal(frame, before)  # input untouched


@pytest.mark.parametrize("name", [n for n in AUGMENTATION_TYPES if n != "brightness"])
def test_each_type_changes_a_textured_frame(name):
    frame = _textured_frame()
    out = _augmentation_of_type(name).apply(frame, 0)
    assert np.abs(out.astype(int) - frame).mean() > 0.5, name


def test_rejects_non_rgb_uint8_frames():
    augmentation = _augmentation_of_type("rotation")
    with pytest.raises(ValueError):
        augmentation.apply(np.zeros((8, 8), np.uint8), 0)
    with pytest.raises(ValueError):
        augmentation.apply(np.zeros((8, 8, 3), np.float32), 0)


def test_hflip_twice_is_identity_and_mirrors():
    frame = _textured_frame(17, 33)
    hflip = _augmentation_of_type("hflip")
    once = hflip.apply(frame, 0)
    np.testing.assert_array_equal(once[:, 0], frame[:, -1])
    np.testing.assert_array_equal(hflip.apply(once, 1), frame)


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.13, 1.2])
def test_brightness_scales_flat_grey(factor):
    flat = np.full((20, 30, 3), 100, np.uint8)
    out = Augmentation("brightness", {"factor": factor}).apply(flat, 0)
    assert np.all(np.abs(out.astype(float) - 100 * factor) <= 1.0)


def test_drawn_brightness_on_flat_grey():
    augmentation = _augmentation_of_type("brightness", "some-video")
    out = augmentation.apply(np.full((8, 8, 3), 100, np.uint8), 0)
    assert abs(float(out.mean()) - 100 * augmentation.params["factor"]) <= 1.0


def test_contrast_and_saturation_fix_flat_grey_and_move_colours():
    grey = np.full((10, 10, 3), 100, np.uint8)
    for name in ("contrast", "saturation"):
        np.testing.assert_array_equal(Augmentation(name, {"factor": 1.2}).apply(grey, 0), grey)
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 200
    colour[..., 1] = 100
    colour[..., 2] = 50
    more = Augmentation("saturation", {"factor": 1.2}).apply(colour, 0).astype(int)
    less = Augmentation("saturation", {"factor": 0.8}).apply(colour, 0).astype(int)
    spread = lambda image: (image[..., 0] - image[..., 2]).mean()  # noqa: E731
    assert spread(more) > spread(colour.astype(int)) > spread(less)


def test_noise_differs_across_frames_and_repeats_for_same_index():
    flat = np.full((40, 50, 3), 128, np.uint8)
    noise = Augmentation("gaussian_noise", {"sigma": 5.0}, seed=99)
    first, second = noise.apply(flat, 0), noise.apply(flat, 1)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(noise.apply(flat, 0), first)
    np.testing.assert_array_equal(
        Augmentation("gaussian_noise", {"sigma": 5.0}, seed=99).apply(flat, 1), second
    )
    residual = first.astype(float) - 128
    assert abs(residual.mean()) < 0.3
    assert 4.5 < residual.std() < 5.5  # sigma fixed per clip, in 0-255 units
    other_clip = Augmentation("gaussian_noise", {"sigma": 5.0}, seed=100).apply(flat, 0)
    assert not np.array_equal(other_clip, first)


def test_rotation_by_zero_and_blur_keep_flat_frame():
    flat = np.full((21, 31, 3), 77, np.uint8)
    np.testing.assert_array_equal(Augmentation("rotation", {"angle_deg": 0.0}).apply(flat, 0), flat)
    np.testing.assert_array_equal(
        Augmentation("gaussian_blur", {"radius": 1.5}).apply(flat, 0), flat
    )


def test_affine_identity_and_pure_translation():
    frame = _textured_frame(40, 60)
    identity = {"translate_x": 0.0, "translate_y": 0.0, "scale": 1.0, "shear_deg": 0.0}
    np.testing.assert_array_equal(Augmentation("affine", identity).apply(frame, 0), frame)
    shift = dict(identity, translate_x=0.1, translate_y=-0.1)  # +6 px right, 4 px up
    out = Augmentation("affine", shift).apply(frame, 0)
    np.testing.assert_array_equal(out[:-4, 6:], frame[4:, :-6])
    assert out[:, :6].max() == 0 and out[-4:].max() == 0  # uncovered area is black


def test_elastic_field_is_smooth_sized_and_cached():
    dy, dx = elastic_displacement(120, 160, alpha=0.01, sigma=0.04, seed=5)
    assert dy.shape == dx.shape == (120, 160) and dy.dtype == np.float32
    rms = float(np.sqrt(np.mean(dy**2)))
    assert 0.6 < rms < 1.8  # 1% of the 120-px short side, up to upsampling
    # Smooth: neighbours move together (white noise would give a ratio of sqrt(2)).
    assert np.diff(dy, axis=0).std() < 0.3 * dy.std()
    assert np.diff(dx, axis=1).std() < 0.3 * dx.std()
    assert not np.allclose(dy, dx)
    again = elastic_displacement(120, 160, alpha=0.01, sigma=0.04, seed=5)
    np.testing.assert_array_equal(dy, again[0])

    elastic = Augmentation("elastic", {"alpha": 0.01, "sigma": 0.04}, seed=5)
    frame = _textured_frame(120, 160)
    elastic.apply(frame, 0)
    cached = [value for value in elastic._cache.values()]
    elastic.apply(frame, 1)
    assert (
        len(elastic._cache) == 1
        and elastic._cache
        and list(elastic._cache.values())[0] is cached[0]
    )
    elastic.apply(_textured_frame(30, 40), 2)  # a new frame shape gets its own field
    assert len(elastic._cache) == 2


@pytest.mark.parametrize("shape", [(120, 160), (37, 23), (2, 3)])
def test_bilinear_remap_equals_scipy_map_coordinates(shape):
    # The elastic warp's fast path against the reference it replaced (per-channel
    # map_coordinates, order 1, reflect), with displacements that leave the frame.
    from scipy import ndimage

    height, width = shape
    rng = np.random.default_rng(7)
    frame = _textured_frame(height, width)
    dy, dx = rng.uniform(-4, 4, (2, *shape)).astype(np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None] + dy
    cols = np.arange(width, dtype=np.float32)[None, :] + dx
    reference = np.empty_like(frame)
    for channel in range(3):
        ndimage.map_coordinates(
            frame[:, :, channel], np.stack([rows, cols]), output=reference[:, :, channel],
            order=1, mode="reflect",
        )  # fmt: skip
    warped = bilinear_remap(frame, bilinear_remap_plan(rows, cols))
    difference = np.abs(warped.astype(int) - reference)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_combination_equals_its_steps_in_order():
    frame = _textured_frame()
    combination = _augmentation_of_type("combination", "combo-video")
    expected = frame
    for step_index, step in enumerate(combination.params["steps"]):
        step_seed = stable_seed(combination.seed, "step", step_index)
        expected = Augmentation(step["name"], step["params"], seed=step_seed).apply(expected, 4)
    np.testing.assert_array_equal(combination.apply(frame, 4), expected)


# ----------------------------------------------------------------------------- encode_clips


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    from hostile_media import write_video

    return write_video(tmp_path_factory.mktemp("src") / "src.mp4", frames=12, noise=True)


ENCODER = {"crf": 18, "preset": "veryfast", "encoder_threads": 2}


def _md5(path) -> str:
    import hashlib

    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_encode_clips_bytes_do_not_depend_on_the_other_clips(source_video, tmp_path):
    from lib.media.augment import encode_clips

    augs = [make_augmentation("v", k, SEED) for k in range(3)]
    together = [(a, tmp_path / f"all-{k}.mp4") for k, a in enumerate([None, *augs])]
    assert encode_clips(source_video, together, start=2, stop=9, **ENCODER) == [7] * 4
    alone = tmp_path / "alone-2.mp4"
    encode_clips(source_video, [(augs[1], alone)], start=2, stop=9, **ENCODER)
    assert _md5(alone) == _md5(together[2][1]), "a clip's bytes depend only on its own inputs"


def test_encode_clips_leaves_nothing_when_a_clip_fails(source_video, tmp_path):
    from lib.media.augment import encode_clips

    class Broken(Augmentation):
        def apply(self, frame, frame_index):
            raise RuntimeError("boom")

    clips = [(make_augmentation("v", 0, SEED), tmp_path / "a0.mp4"),
             (Broken(name="hflip", params={}), tmp_path / "a1.mp4")]  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        encode_clips(source_video, clips, **ENCODER)
    assert list(tmp_path.iterdir()) == [], "the clip written before the failure is removed"
