"""Masked faces on real photos that packages ship (issue 12): the dlib backend's masked-face candidates.

Masks are drawn by :func:`unmask.faces.masks.draw_mask` on the dlib landmarks of the unmasked photo;
the unmasked detection is the truth (IoU ≥ 0.5). Numbers asserted here are the ones measured by
``python -m unmask.bench faces --masked-only`` (threshold −0.7), not looser.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unmask.bench.faces import box_iou
from unmask.errors import ConfigError
from unmask.faces.detect import Face, get_detector, landmarks5_from_68, plausible_face, skin_fraction
from unmask.faces.io import load_image
from unmask.faces.masks import MASK_TYPES, draw_mask

pytest.importorskip("dlib")

ROOT = Path(__file__).resolve().parents[1]
PHOTO_ASTRONAUT = ROOT / "demo" / "examples" / "photo_astronaut.jpg"
#: Her face in demo/examples/photo_astronaut.jpg (dlib HOG box at threshold −0.7; score −0.37).
ASTRONAUT_FACE = np.array([169, 77, 273, 181], dtype=np.float32)
#: The mission patch on her suit, which the plain HOG detector takes for a face (score 0.10).
MISSION_PATCH = np.array([131, 333, 218, 419], dtype=np.float32)


@pytest.fixture(scope="module")
def detector():
    return get_detector("dlib")


@pytest.fixture(scope="module")
def plain():
    return get_detector("dlib", masked_threshold=None)


@pytest.fixture(scope="module")
def photo_astronaut():
    return load_image(PHOTO_ASTRONAUT)


@pytest.fixture(scope="session")
def hanks(t1_path):
    return load_image(t1_path.parent / "Tom_Hanks_54745.png")


def _masked(image, faces, mask_type):
    for i, face in enumerate(faces):
        image, _ = draw_mask(image, face.landmarks68, mask_type, seed=i)
    return image


def _found(found, truth) -> int:
    return sum(max((box_iou(f.box, t.box) for f in found), default=0.0) >= 0.5 for t in truth)


def test_shipped_masked_photo_finds_the_face_not_the_patch(detector, plain, photo_astronaut):
    before = plain.detect(photo_astronaut)
    assert [box_iou(f.box, MISSION_PATCH) > 0.9 for f in before] == [True]  # the bug of issue 12
    faces = detector.detect(photo_astronaut)
    assert len(faces) == 1
    assert box_iou(faces[0].box, ASTRONAUT_FACE) > 0.9
    assert -0.7 <= faces[0].score < 0.0  # a masked-face candidate, not a confident detection
    x_eyes = faces[0].landmarks5[:2, 0]
    assert 169 < x_eyes[0] < x_eyes[1] < 273


@pytest.mark.parametrize("mask_type", ["surgical_blue", "surgical_green", "surgical_white", "cloth", "n95"])
def test_masked_astronaut_is_found(detector, plain, astronaut, mask_type):
    truth = plain.detect(astronaut)
    masked = _masked(astronaut, truth, mask_type)
    assert _found(plain.detect(masked), truth) == 0  # the plain HOG detector misses every one of these
    faces = detector.detect(masked)
    assert faces and box_iou(faces[0].box, truth[0].box) >= 0.5
    assert all(box_iou(f.box, MISSION_PATCH) < 0.1 for f in faces)


def test_masked_hanks_is_found_for_every_mask_type(detector, plain, hanks):
    truth = plain.detect(hanks)
    assert len(truth) == 1
    for mask_type in MASK_TYPES:
        faces = detector.detect(_masked(hanks, truth, mask_type))
        assert len(faces) == 1, mask_type
        assert box_iou(faces[0].box, truth[0].box) >= 0.5, mask_type


@pytest.mark.slow
def test_masked_t1_faces_are_found(detector, plain, t1):
    truth = plain.detect(t1)
    assert len(truth) == 6
    measured = {"surgical_blue": 6, "surgical_green": 6, "surgical_white": 6, "n95": 6, "kn95": 6, "black": 5}
    for mask_type, expected in measured.items():
        found = detector.detect(_masked(t1, truth, mask_type))
        assert _found(found, truth) >= expected, mask_type
        assert _found(plain.detect(_masked(t1, truth, mask_type)), truth) < expected, mask_type


def test_unmasked_detections_are_unchanged(detector, plain, astronaut, t1):
    for image in (astronaut, t1):
        new, old = detector.detect(image), plain.detect(image)
        assert len(new) == len(old)
        for a, b in zip(new, old):
            np.testing.assert_array_equal(a.box, b.box)
            assert a.score == b.score


def _face_at(image, box, detector) -> Face:
    rect = detector._dlib.rectangle(*(int(v) for v in box))
    lm = np.array([[p.x, p.y] for p in detector._predictor(image, rect).parts()], dtype=np.float32)
    return Face(box=np.asarray(box, np.float32), score=0.0, landmarks5=landmarks5_from_68(lm), landmarks68=lm)


def test_plausibility_rejects_the_patch_and_keeps_faces(detector, photo_astronaut, hanks):
    face = _face_at(photo_astronaut, ASTRONAUT_FACE, detector)
    patch = _face_at(photo_astronaut, MISSION_PATCH, detector)
    assert skin_fraction(photo_astronaut, face.landmarks68) > 0.8
    assert skin_fraction(photo_astronaut, patch.landmarks68) < 0.05
    assert plausible_face(photo_astronaut, face) and not plausible_face(photo_astronaut, patch)
    grey = _face_at(hanks, (16, 26, 102, 112), detector)
    assert np.isnan(skin_fraction(hanks, grey.landmarks68))  # no colour to judge: not held against it
    assert plausible_face(hanks, grey)
    squashed = Face(box=np.array([0, 0, 400, 400], np.float32), score=0.0, landmarks5=face.landmarks5,
                    landmarks68=face.landmarks68)
    assert not plausible_face(photo_astronaut, squashed)  # eyes 0.1 box widths apart


def test_masked_threshold_above_threshold_is_a_config_error():
    with pytest.raises(ConfigError, match="masked_threshold"):
        get_detector("dlib", threshold=-0.5, masked_threshold=0.0)


@pytest.mark.slow
def test_teaching_pipeline_unmasks_the_face_of_the_shipped_photo(photo_astronaut):
    from unmask.pipeline import UnmaskPipeline

    result = UnmaskPipeline.from_pretrained("teaching")(photo_astronaut)
    assert len(result.faces) == 1
    assert box_iou(result.faces[0].box, ASTRONAUT_FACE) > 0.9
    assert box_iou(result.faces[0].box, MISSION_PATCH) == 0.0
