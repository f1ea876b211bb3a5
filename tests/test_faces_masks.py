"""Synthetic masks: every type covers the nose tip and the mouth and leaves the eyes free, on real photos,
aligned crops of 64–1024 px, and on analytic landmarks; seeded; anti-aliased; estimate_mask_region."""

from __future__ import annotations

import numpy as np
import pytest

from unmask.errors import ConfigError, InputShapeError
from unmask.faces.masks import MASK_TYPES, PHOTO_MASK_TYPES, draw_mask, estimate_mask_region, mask_outline, mask_texture

COVERED = [30, *range(48, 68)]  # nose tip and every mouth point
EYES = list(range(36, 48))


def _at(values: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    idx = np.round(landmarks).astype(int)
    return values[idx[:, 1], idx[:, 0]]


def _check_cover(occlusion: np.ndarray, landmarks: np.ndarray, what: str) -> None:
    at = _at(occlusion, landmarks)
    assert at[COVERED].min() >= 0.999, f"{what}: nose tip / mouth not covered: {at[COVERED].min():.3f}"
    assert at[EYES].max() == 0.0, f"{what}: an eye point is covered: {at[EYES].max():.3f}"


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut):
    pytest.importorskip("dlib")
    from unmask.faces.detect import get_detector

    return get_detector("dlib").detect(astronaut)[0].landmarks68


@pytest.fixture(scope="module")
def aligned(astronaut, astronaut_landmarks):
    from unmask.faces.align import align_face

    return {size: align_face(astronaut, astronaut_landmarks, size) for size in (64, 128, 256, 1024)}


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_every_type_covers_nose_and_mouth_not_eyes_on_crops(aligned, mask_type):
    for size in (64, 128, 256):
        face = aligned[size]
        for seed in range(4):
            masked, occlusion = draw_mask(face.crop, face.landmarks68, mask_type, seed=seed)
            assert masked.shape == face.crop.shape and masked.dtype == np.uint8
            assert occlusion.shape == (size, size) and occlusion.dtype == np.float32
            assert 0.0 <= occlusion.min() and occlusion.max() <= 1.0
            _check_cover(occlusion, face.landmarks68, f"{mask_type} {size}px seed {seed}")
            # Only covered pixels change.
            free = occlusion == 0
            np.testing.assert_array_equal(masked[free], face.crop[free])
            assert np.abs(masked.astype(int) - face.crop.astype(int))[occlusion > 0.99].mean() > 3


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_every_type_on_the_six_people_of_t1(t1, mask_type):
    pytest.importorskip("dlib")
    from unmask.faces.detect import get_detector

    faces = get_detector("dlib").detect(t1)
    for k, face in enumerate(faces):
        _, occlusion = draw_mask(t1, face.landmarks68, mask_type, seed=k)
        _check_cover(occlusion, face.landmarks68, f"{mask_type} t1 face {k}")


def test_large_crop_and_random_types(aligned):
    face = aligned[1024]
    _, occlusion = draw_mask(face.crop, face.landmarks68, "surgical_blue", seed=0)
    _check_cover(occlusion, face.landmarks68, "1024 px")
    edge = (occlusion > 0.02) & (occlusion < 0.98)
    assert 0 < edge.sum() < 0.02 * occlusion.size  # anti-aliased, and only along the outline
    small = aligned[64]
    for seed in range(40):
        _, occlusion = draw_mask(small.crop, small.landmarks68, "random", seed=seed)
        _check_cover(occlusion, small.landmarks68, f"random seed {seed}")


def test_analytic_landmarks_on_a_plain_image(aligned):
    """The synthetic world passes its own landmarks: any image with 68 points works, at any scale."""
    template = aligned[256].landmarks68 / 256.0
    for size in (48, 64, 160):
        landmarks = template * size
        image = np.full((size, size, 3), 180, dtype=np.uint8)
        for mask_type in MASK_TYPES:
            masked, occlusion = draw_mask(image, landmarks, mask_type, seed=size)
            _check_cover(occlusion, landmarks, f"{mask_type} analytic {size}px")
            assert 0.1 < occlusion.mean() < 0.6


def test_seeds_make_it_reproducible(aligned):
    face = aligned[128]
    a = draw_mask(face.crop, face.landmarks68, "cloth_pattern", seed=7)
    b = draw_mask(face.crop, face.landmarks68, "cloth_pattern", seed=7)
    c = draw_mask(face.crop, face.landmarks68, "cloth_pattern", seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    gen_a, gen_b = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(
        draw_mask(face.crop, face.landmarks68, seed=gen_a)[1], draw_mask(face.crop, face.landmarks68, seed=gen_b)[1]
    )


def test_types_look_different(aligned):
    face = aligned[128]
    colours = {}
    for mask_type in MASK_TYPES:
        masked, occlusion = draw_mask(face.crop, face.landmarks68, mask_type, seed=0)
        colours[mask_type] = masked[occlusion > 0.99].mean(0)
    assert colours["surgical_blue"][2] > colours["surgical_blue"][0] + 30  # blue
    assert colours["surgical_green"][1] > colours["surgical_green"][0] + 30  # green
    assert colours["black"].mean() < 60 < colours["surgical_white"].mean()
    assert colours["n95"].mean() > 150


def test_outline_is_in_pixels(aligned):
    face = aligned[256]
    body, loops = mask_outline(face.landmarks68, "kn95", seed=0)
    assert body.ndim == 2 and body.shape[1] == 2 and len(loops) == 2
    assert body[:, 1].min() > face.landmarks68[36:48, 1].max()  # the top edge is below the eyes
    assert body[:, 1].max() > face.landmarks68[57, 1]  # and the bottom below the lower lip


def test_bad_arguments(aligned):
    face = aligned[64]
    with pytest.raises(ConfigError, match="surgical_blue"):
        draw_mask(face.crop, face.landmarks68, "bandana")
    with pytest.raises(ConfigError, match="empty list of mask types"):
        draw_mask(face.crop, face.landmarks68, ())
    with pytest.raises(ConfigError, match="'bandana'"):
        draw_mask(face.crop, face.landmarks68, ["random", "bandana"])
    with pytest.raises(InputShapeError):
        draw_mask(face.crop, face.landmarks68[:5])
    with pytest.raises(InputShapeError):
        draw_mask(face.crop[..., 0], face.landmarks68)
    with pytest.raises(InputShapeError, match="eye centres"):
        draw_mask(face.crop, np.zeros((68, 2)))


def test_estimate_mask_region(aligned, astronaut, astronaut_landmarks):
    for image, landmarks in ((aligned[256].crop, aligned[256].landmarks68), (astronaut, astronaut_landmarks)):
        region = estimate_mask_region(landmarks, image.shape[:2])
        assert region.shape == image.shape[:2] and region.dtype == np.float32
        _check_cover(region, landmarks, "estimated region")
        assert _at(region, landmarks)[8] > 0.99  # down to the chin
        # Generous: it contains (nearly all of) a drawn surgical mask's body.
        _, occlusion = draw_mask(image, landmarks, "surgical_white", seed=1)
        assert (occlusion * region).sum() > 0.85 * occlusion.sum()
    with pytest.raises(InputShapeError):
        estimate_mask_region(astronaut_landmarks, (0, 5))


@pytest.mark.parametrize("mask_type", PHOTO_MASK_TYPES)
def test_photo_textured_masks_keep_the_guarantees_and_the_photos_colours(aligned, astronaut, astronaut_landmarks,
                                                                          mask_type):
    pytest.importorskip("insightface")
    texture = mask_texture(mask_type)
    assert texture.ndim == 3 and texture.shape[2] == 3 and min(texture.shape[:2]) > 80
    for size in (64, 256):
        face = aligned[size]
        masked, occlusion = draw_mask(face.crop, face.landmarks68, mask_type, seed=size)
        _check_cover(occlusion, face.landmarks68, f"{mask_type} {size}px")
        np.testing.assert_array_equal(masked[occlusion == 0], face.crop[occlusion == 0])
    masked, occlusion = draw_mask(astronaut, astronaut_landmarks, mask_type, seed=0)
    _check_cover(occlusion, astronaut_landmarks, f"{mask_type} on the photo")
    inside = masked[occlusion > 0.99].astype(np.float64)
    # The fabric is the photo's: its mean colour within 25 levels, and the photo's folds and weave, not flat.
    assert np.abs(inside.mean(0) - texture.reshape(-1, 3).mean(0)).max() < 25, inside.mean(0)
    assert inside.std(0).mean() > 4.0
    a, _ = draw_mask(astronaut, astronaut_landmarks, mask_type, seed=0)
    np.testing.assert_array_equal(a, masked)  # seeded


def test_photo_textures_say_what_to_install_without_insightface(monkeypatch, aligned):
    import importlib.util

    from unmask.faces.masks import draw as masks_draw

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "insightface"
                        else real_find_spec(name, *a))
    monkeypatch.setattr(masks_draw, "_texture_cache", {})
    face = aligned[64]
    with pytest.raises(ConfigError, match="ships inside insightface.*pip install"):
        draw_mask(face.crop, face.landmarks68, "photo_blue", seed=0)
    draw_mask(face.crop, face.landmarks68, "random", seed=0)  # the procedural types need nothing
    with pytest.raises(ConfigError, match="not a photo-textured mask"):
        mask_texture("surgical_blue")
