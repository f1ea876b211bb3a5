"""Detection (offline dlib backend), FFHQ alignment and paste-back on real photos that packages ship.

Stated tolerances:
* eyes land on the FFHQ reference positions within 2 % of the crop side (5 px at 256) — for faces whose
  crop scale is set by the eye distance (2·|eye_to_eye| ≥ 1.8·|eye_to_mouth|, i.e. not strongly turned);
* the warp agrees with the returned transform within 0.15 px;
* paste_back of an unchanged crop is bit-exact outside the blend band and within 3 grey levels (mean)
  inside the face.
"""

from __future__ import annotations

import numpy as np
import pytest

from unmask.errors import ConfigError, DependencyError, ImageError, InputShapeError, NoFaceError
from unmask.faces.align import (
    FFHQ_EYE_LEFT,
    FFHQ_EYE_RIGHT,
    align_face,
    align_faces,
    apply_transform,
    default_region,
    face_region,
    paste_back,
    reference_points,
)
from unmask.faces.detect import Face, FaceDetector, get_detector

pytest.importorskip("dlib")

EYE_TOLERANCE = 0.02  # fraction of the crop side


@pytest.fixture(scope="module")
def detector():
    return get_detector("dlib")


@pytest.fixture(scope="module")
def astronaut_faces(detector, astronaut):
    return detector.detect(astronaut)


@pytest.fixture(scope="module")
def t1_faces(detector, t1):
    return detector.detect(t1)


def _eyes(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return landmarks68[36:42].mean(0), landmarks68[42:48].mean(0)


def _scaled_by_eyes(landmarks68: np.ndarray) -> bool:
    left, right = _eyes(landmarks68)
    mouth = (landmarks68[48] + landmarks68[54]) / 2
    return 2 * np.linalg.norm(right - left) >= 1.8 * np.linalg.norm(mouth - (left + right) / 2)


def test_astronaut_has_one_face(astronaut_faces, detector):
    assert isinstance(detector, FaceDetector)
    assert len(astronaut_faces) == 1
    face = astronaut_faces[0]
    assert isinstance(face, Face)
    assert face.landmarks68.shape == (68, 2) and face.landmarks5.shape == (5, 2)
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 220  # her face, not the mission patch
    left, right = _eyes(face.landmarks68)
    np.testing.assert_allclose(face.landmarks5[0], left, atol=1e-4)
    np.testing.assert_allclose(face.landmarks5[2], face.landmarks68[30])
    assert left[0] < right[0] and face.landmarks68[8, 1] > face.landmarks68[30, 1] > left[1]


def test_t1_has_six_faces(t1_faces):
    assert len(t1_faces) == 6
    # Largest first, except that weak detections (dlib score < 0.3) come after confident ones.
    keys = [(f.score < 0.3, -f.area) for f in t1_faces]
    assert keys == sorted(keys)
    assert sum(f.score >= 0.3 for f in t1_faces) >= 4
    centres = np.array([(f.box[:2] + f.box[2:]) / 2 for f in t1_faces])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(6) * 1e9
    assert gaps.min() > 50  # six different people, no duplicates


def test_detector_is_cached_and_backends_checked(detector):
    assert get_detector("dlib") is detector
    with pytest.raises(ConfigError, match="backend"):
        get_detector("opencv-haar")


def test_insightface_without_models_says_how_to_get_them(tmp_path):
    pytest.importorskip("insightface")
    with pytest.raises(DependencyError, match="backend='dlib'"):
        get_detector("insightface", root=str(tmp_path), allow_download=False)


def test_detect_rejects_non_images(detector):
    with pytest.raises(ImageError):
        detector.detect(np.zeros((64, 64), dtype=np.uint8))


def test_photo_without_a_face(detector):
    blank = np.full((96, 96, 3), 127, dtype=np.uint8)
    assert detector.detect(blank) == []
    with pytest.raises(NoFaceError, match="No face"):
        align_faces(blank, detector=detector)


@pytest.mark.parametrize("size", [64, 256, 1024])
def test_astronaut_eyes_at_ffhq_reference(astronaut, astronaut_faces, size):
    aligned = align_face(astronaut, astronaut_faces[0].landmarks68, size)
    assert aligned.crop.shape == (size, size, 3) and aligned.crop.dtype == np.uint8
    ref = reference_points(size)
    left, right = _eyes(aligned.landmarks68)
    np.testing.assert_allclose(left, ref["eye_left"], atol=EYE_TOLERANCE * size)
    np.testing.assert_allclose(right, ref["eye_right"], atol=EYE_TOLERANCE * size)
    np.testing.assert_allclose(apply_transform(aligned.transform, astronaut_faces[0].landmarks68), aligned.landmarks68)


def test_t1_eyes_at_ffhq_reference(t1, t1_faces):
    size = 256
    ref = reference_points(size)
    checked = 0
    for face in t1_faces:
        aligned = align_face(t1, face.landmarks68, size, face=face)
        assert aligned.face is face
        if not _scaled_by_eyes(face.landmarks68):
            continue  # a strongly turned head: FFHQ scales by the eye-mouth distance instead
        left, right = _eyes(aligned.landmarks68)
        np.testing.assert_allclose(left, ref["eye_left"], atol=EYE_TOLERANCE * size)
        np.testing.assert_allclose(right, ref["eye_right"], atol=EYE_TOLERANCE * size)
        checked += 1
    assert checked >= 4


def test_reference_points_scale_about_pixel_corners():
    ref = reference_points(1024)
    np.testing.assert_allclose(ref["eye_left"], FFHQ_EYE_LEFT)
    np.testing.assert_allclose(reference_points(256)["eye_right"], (FFHQ_EYE_RIGHT + 0.5) / 4 - 0.5)
    assert FFHQ_EYE_LEFT[0] == pytest.approx(0.375 * 1024 - 0.5)


@pytest.mark.parametrize("size, scale", [(64, 1.0), (64, 4.0), (256, 1.0), (256, 4.0)])
def test_warp_agrees_with_transform(astronaut_faces, size, scale):
    """A bright disc at the left eye lands where the transform says (pixel-centre conventions right to
    a fraction of a pixel), also through the area-averaging shrink (64 px from a 4× photo: ~11× down)."""
    cv2 = pytest.importorskip("cv2")
    landmarks = astronaut_faces[0].landmarks68 * scale
    photo = np.zeros((int(512 * scale), int(512 * scale), 3), dtype=np.uint8)
    eye = landmarks[36:42].mean(0)
    cv2.circle(photo, (int(round(eye[0] * 16)), int(round(eye[1] * 16))), int(6 * scale * 16), (255, 255, 255), -1,
               cv2.LINE_AA, 4)
    aligned = align_face(photo, landmarks, size)
    gray = aligned.crop[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:size, :size]
    centroid = np.array([(gray * xs).sum(), (gray * ys).sum()]) / gray.sum()
    np.testing.assert_allclose(centroid, apply_transform(aligned.transform, eye[None])[0], atol=0.15)


def test_align_faces_all_and_largest(t1, detector):
    all_faces = align_faces(t1, detector=detector, size=64, which="all")
    assert len(all_faces) == 6
    largest = align_faces(t1, detector=detector, size=64)
    assert len(largest) == 1
    np.testing.assert_array_equal(largest[0].crop, all_faces[0].crop)
    with pytest.raises(InputShapeError):
        align_faces(t1, detector=detector, which="some")


def test_align_faces_reads_grayscale_and_rgba_files(astronaut, detector, tmp_path):
    from PIL import Image

    Image.fromarray(astronaut).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(astronaut).convert("RGBA").save(tmp_path / "rgba.png")
    for name in ("gray.png", "rgba.png"):
        (aligned,) = align_faces(tmp_path / name, detector=detector, size=64)
        assert aligned.crop.shape == (64, 64, 3)


def test_face_at_the_border_is_padded(astronaut, astronaut_faces):
    # Cut the photo just left of her eyes: most of the FFHQ square now lies outside the photo.
    corner = np.ascontiguousarray(astronaut[60:, 200:])
    landmarks = astronaut_faces[0].landmarks68 - np.array([200, 60], dtype=np.float32)
    blurred = align_face(corner, landmarks, 128)
    raw = align_face(corner, landmarks, 128, blur_padding=False)
    assert blurred.crop.shape == (128, 128, 3)
    assert not np.array_equal(blurred.crop[:, :20], raw.crop[:, :20])  # reflected part was blurred and faded
    np.testing.assert_array_equal(blurred.crop[-40:, -30:], raw.crop[-40:, -30:])  # well inside the photo


def test_align_face_rejects_bad_landmarks(astronaut):
    with pytest.raises(InputShapeError):
        align_face(astronaut, np.zeros((5, 2)), 64)
    with pytest.raises(InputShapeError):
        align_face(astronaut, np.full((68, 2), np.nan), 64)
    with pytest.raises(ImageError, match="degenerate"):
        align_face(astronaut, np.full((68, 2), 100.0), 64)


def test_paste_back_of_unchanged_crop_reproduces_the_photo(astronaut, astronaut_faces):
    aligned = align_face(astronaut, astronaut_faces[0].landmarks68, 256)
    out = paste_back(astronaut, aligned.crop, aligned.transform)
    assert out.shape == astronaut.shape and out.dtype == np.uint8 and out is not astronaut
    changed = np.any(out != astronaut, axis=2)
    # Outside the blend band nothing changes at all: the band lies within the face's part of the photo.
    x0, y0, x1, y1 = astronaut_faces[0].box
    margin = 60
    outside = np.ones_like(changed)
    outside[int(y0) - margin : int(y1) + margin, int(x0) - margin : int(x1) + margin] = False
    assert not changed[outside].any()
    # Inside the face the round trip photo → crop → photo is nearly lossless.
    inner = astronaut_faces[0].box.astype(int) + np.array([15, 15, -15, -15])
    diff = np.abs(out.astype(int) - astronaut.astype(int))[inner[1] : inner[3], inner[0] : inner[2]]
    assert diff.mean() < 3.0


def test_paste_back_changes_only_the_region(astronaut, astronaut_faces):
    aligned = align_face(astronaut, astronaut_faces[0].landmarks68, 128)
    nothing = paste_back(astronaut, 255 - aligned.crop, aligned.transform, region=np.zeros((128, 128)))
    np.testing.assert_array_equal(nothing, astronaut)

    region = face_region(aligned.landmarks68, 128)
    assert region.shape == (128, 128) and region.max() == 1.0 and region[0, 0] == 0.0
    out = paste_back(astronaut, 255 - aligned.crop, aligned.transform, region=region, feather=0.01)
    nose = astronaut_faces[0].landmarks68[30].round().astype(int)
    assert abs(int(out[nose[1], nose[0]].mean()) - (255 - int(astronaut[nose[1], nose[0]].mean()))) < 40
    hair_top = (int(astronaut_faces[0].box[1]) - 30, int(nose[0]))
    np.testing.assert_array_equal(out[hair_top], astronaut[hair_top])
    assert default_region(64).shape == (64, 64)


def test_paste_back_rejects_bad_arguments(astronaut, astronaut_faces):
    aligned = align_face(astronaut, astronaut_faces[0].landmarks68, 64)
    with pytest.raises(InputShapeError):
        paste_back(astronaut, aligned.crop[:, :32], aligned.transform)
    with pytest.raises(InputShapeError):
        paste_back(astronaut, aligned.crop, np.zeros((3, 3)))
    with pytest.raises(InputShapeError):
        paste_back(astronaut, aligned.crop, aligned.transform, region=np.ones((32, 32)))
