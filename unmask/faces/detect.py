"""Face detection with 5- and 68-point landmarks (iBUG 300-W order) behind one interface.

Backends, chosen by one argument to :func:`get_detector`:

* ``"dlib"`` (default, offline): dlib's HOG + linear-SVM frontal detector and the 68-point
  ensemble-of-regression-trees shape predictor (Kazemi & Sullivan, CVPR 2014) whose model file ships
  in the ``face-recognition-models`` package. The 5 points are derived from the 68. A protective mask
  hides the nose and mouth that the HOG filters key on, so masked faces score below dlib's usual
  threshold (about −0.9 to 0.3): the detector also takes candidates down to −0.7 and keeps every weak
  one (< 0.3) only if its landmark fit is a plausible face with skin around the eyes
  (:func:`plausible_face`) — which also drops the mission-patch "face" on the astronaut's suit.
* ``"insightface"`` (needs the network once): the ``buffalo_l`` package — SCRFD detector with 5
  keypoints and the 68-point 3D landmark network (x, y kept). Models are downloaded into
  ``~/.insightface/models`` on first use.

All backends take and return RGB ``uint8 (H, W, 3)`` images and pixel coordinates ``(x, y)`` with the
centre of the top-left pixel at ``(0, 0)``. Faces are sorted largest first (weak detections last).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from unmask.errors import ConfigError, DependencyError, ImageError

#: 5-point order used everywhere (insightface / ArcFace convention): image-left eye, image-right eye,
#: nose tip, image-left mouth corner, image-right mouth corner.
LANDMARKS5_NAMES = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")

# iBUG 68-point index ranges (0-based).
JAW = slice(0, 17)
EYE_LEFT = slice(36, 42)  # image-left eye (the subject's right eye)
EYE_RIGHT = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
MOUTH = slice(48, 68)

_DLIB_INSTALL = "pip install dlib-bin face-recognition-models   (or: pip install dlib face-recognition-models)"
_DLIB_MODEL = "shape_predictor_68_face_landmarks.dat"
#: dlib HOG scores below this are "weak": kept, but sorted after confident faces (see ``_sorted``).
_DLIB_WEAK_SCORE = 0.3
#: Auto-upsampling stops once the upsampled image's long side would pass this (time grows ~4× a step).
_DLIB_MAX_UPSAMPLED_SIDE = 2048
#: Default HOG threshold for *masked-face* candidates (see ``DlibDetector``'s ``masked_threshold``).
#: On the masked benchmark (``python -m unmask.bench faces --masked-only``: 8 mask types on the 8 faces of
#: the astronaut, t1.jpg and Tom Hanks) the faces found / false positives are: plain HOG 22/64 / 7,
#: −0.6 51/64 / 4, −0.7 58/64 / 4, −0.8 58/64 / 5.
_DLIB_MASKED_THRESHOLD = -0.7
#: A candidate below ``threshold`` must show this fraction of skin-coloured pixels around the eyes.
_MIN_SKIN_FRACTION = 0.25
# Chai & Ngan (1999) skin cluster in YCrCb (OpenCV's 8-bit Cr, Cb).
_SKIN_CR = (133, 173)
_SKIN_CB = (77, 127)
#: Below this mean chroma (|Cr − 128| + |Cb − 128|) a region counts as grey: skin colour is not judged.
_MIN_CHROMA = 2.0


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixel coordinates.

    Attributes:
        box: ``(4,)`` float32 ``x0, y0, x1, y1``.
        score: detector confidence (backend-specific scale; higher is surer).
        landmarks5: ``(5, 2)`` float32, order :data:`LANDMARKS5_NAMES`.
        landmarks68: ``(68, 2)`` float32, iBUG 300-W order.
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray
    landmarks68: np.ndarray

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image) -> list[Face]`` (RGB uint8 ``(H, W, 3)``, faces largest first, weak
    detections after confident ones)."""

    def detect(self, image: np.ndarray) -> list[Face]: ...


def landmarks5_from_68(landmarks68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from 68 iBUG points: ``(68, 2) -> (5, 2)`` float32."""
    lm = np.asarray(landmarks68, dtype=np.float32)
    return np.stack(
        [lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0), lm[NOSE_TIP], lm[MOUTH_LEFT], lm[MOUTH_RIGHT]]
    ).astype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise ImageError(f"detect() needs an RGB uint8 (H, W, 3) array, got {got}; use unmask.faces.load_image().")
    return np.ascontiguousarray(image)


def _sorted(faces: list[Face], weak_score: float = float("-inf"), low_score: float = float("-inf")) -> list[Face]:
    """Largest first — but detections scoring below ``weak_score`` go after the confident ones, so that
    "the largest face" is never a large false positive (dlib's HOG finds a face in the astronaut's mission
    patch at score 0.07 on a JPEG copy of skimage's photo), and those below ``low_score`` (masked-face
    candidates) after those."""
    return sorted(faces, key=lambda f: (f.score < weak_score, f.score < low_score, -f.area, -f.score))


def skin_fraction(image: np.ndarray, landmarks68: np.ndarray) -> float:
    """Fraction of skin-coloured pixels (YCrCb cluster of Chai & Ngan, 1999) in the band from the
    eyebrows to just below the eyes, eyes themselves excluded — the part of a face a protective mask
    leaves bare. ``image`` RGB uint8 ``(H, W, 3)``, ``landmarks68`` ``(68, 2)``; returns a float in [0, 1],
    or NaN where the band has no colour to judge (a grey photo: mean chroma below 2 levels)."""
    import cv2

    lm = np.asarray(landmarks68, dtype=np.float64)
    eye_left, eye_right = lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0)
    along = eye_right - eye_left
    dist = math.hypot(*along)
    if dist < 2.0:
        return 0.0
    down = np.array([-along[1], along[0]]) / dist  # perpendicular to the eye line, towards the mouth
    below = 0.25 * dist * down
    band = np.concatenate([lm[17:27], lm[36:48] + below])  # brows above, the eyes lowered by d/4 below
    x0, y0 = np.floor(band.min(0)).astype(int)
    x1, y1 = np.ceil(band.max(0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    region = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    offset = np.array([x0, y0])
    cv2.fillPoly(region, [np.round(cv2.convexHull(band.astype(np.float32))[:, 0] - offset).astype(np.int32)], 1)
    for eye in (EYE_LEFT, EYE_RIGHT):
        cv2.fillPoly(region, [np.round(lm[eye] - offset).astype(np.int32)], 0)
    ycrcb = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[:, :, 1], ycrcb[:, :, 2]
    skin = (cr >= _SKIN_CR[0]) & (cr <= _SKIN_CR[1]) & (cb >= _SKIN_CB[0]) & (cb <= _SKIN_CB[1])
    inside = region.astype(bool)
    if not inside.any():
        return 0.0
    chroma = np.abs(cr[inside].astype(np.float32) - 128.0) + np.abs(cb[inside].astype(np.float32) - 128.0)
    if float(chroma.mean()) < _MIN_CHROMA:
        return float("nan")
    return float(skin[inside].mean())


def plausible_face(image: np.ndarray, face: Face, min_skin: float = _MIN_SKIN_FRACTION) -> bool:
    """Whether ``face``'s 68-point fit looks like an upright face that a mask may cover below the eyes.

    Checks (eye distance ``d`` = distance of the eye centres): ``0.2 ≤ d / box width ≤ 0.65`` (turned
    faces reach 0.23); the eye line tilted less than 40°; the nose tip 0.1–1.3 ``d`` below the eye line
    and within 1.0 ``d`` of its middle sideways; the eye centres inside the box; and at least
    ``min_skin`` of the band around the eyes skin-coloured (:func:`skin_fraction`; not judged on grey
    photos). The skin test is what rejects the textured false positives (a mission patch, a shirt print)
    whose landmark fit is otherwise face-like.
    """
    lm = face.landmarks68.astype(np.float64)
    eye_left, eye_right = lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0)
    along = eye_right - eye_left
    dist = math.hypot(*along)
    width = float(face.box[2] - face.box[0])
    if width <= 0 or not 0.2 <= dist / width <= 0.65:
        return False
    if abs(math.degrees(math.atan2(along[1], along[0]))) > 40.0:
        return False
    ex = along / dist
    nose = lm[NOSE_TIP] - (eye_left + eye_right) / 2
    across, down = nose @ ex / dist, (ex[0] * nose[1] - ex[1] * nose[0]) / dist
    if not (0.1 <= down <= 1.3 and abs(across) <= 1.0):
        return False
    x0, y0, x1, y1 = face.box
    for eye in (eye_left, eye_right):
        if not (x0 <= eye[0] <= x1 and y0 <= eye[1] <= y1):
            return False
    skin = skin_fraction(image, lm)
    return bool(math.isnan(skin) or skin >= min_skin)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two ``x0, y0, x1, y1`` boxes over the smaller one's area."""
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / smaller) if smaller > 0 else 0.0


def dlib_models_dir() -> Path:
    """The ``models/`` folder of the ``face_recognition_models`` package, found without importing it
    (its ``__init__`` imports the deprecated ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(f"The dlib landmark model is missing: {_DLIB_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibDetector:
    """dlib HOG detector + 68-point shape predictor (offline).

    Args:
        upsample: times to double the image before HOG detection. ``None`` (auto) starts at 0 and
            doubles again while nothing is found and the long side stays ≤ 2048 px — dlib's 80-px
            window then reaches 40- and 20-px faces.
        max_side: the image is downscaled so its long side is at most this for *detection* (boxes
            are scaled back; landmarks are always fitted at full resolution). ``None`` = never.
        threshold: dlib's ``adjust_threshold``; raise it (e.g. 0.3) to drop weak detections.
        masked_threshold: HOG candidates down to this score are considered — masked faces score about
            −0.9 to 0.3 because the mask hides the nose and mouth gradients. Every *weak* detection
            (score < 0.3, masked candidates included) is then kept only when its 68-point fit is a
            plausible upright face (:func:`plausible_face`: eye distance vs box, eyes inside the box,
            nose below and between the eyes, skin-coloured pixels around the eyes, where a mask never
            reaches) and does not cover half of a stronger face. Confident detections are untouched.
            ``None``: the plain HOG detector (every detection ≥ ``threshold``, no checks).
        predictor_path: a 68-point ``shape_predictor`` ``.dat`` file; default from face-recognition-models.
    """

    def __init__(
        self,
        upsample: int | None = None,
        max_side: int | None = 1600,
        threshold: float = 0.0,
        masked_threshold: float | None = _DLIB_MASKED_THRESHOLD,
        predictor_path: str | os.PathLike | None = None,
    ) -> None:
        if masked_threshold is not None and masked_threshold > threshold:
            raise ConfigError(
                f"masked_threshold ({masked_threshold}) must not exceed threshold ({threshold}); "
                "pass masked_threshold=None to turn masked-face candidates off."
            )
        try:
            import dlib
        except ImportError as err:
            raise DependencyError(f"The dlib backend needs dlib: {_DLIB_INSTALL}") from err
        path = Path(predictor_path) if predictor_path is not None else dlib_models_dir() / _DLIB_MODEL
        if not path.is_file():
            raise DependencyError(f"dlib shape predictor not found at {path}: {_DLIB_INSTALL}")
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.upsample = upsample
        self.max_side = max_side
        self.threshold = threshold
        self.masked_threshold = masked_threshold

    def _faces(self, image: np.ndarray, small: np.ndarray, scale: float, upsample: int) -> list[Face]:
        """HOG boxes on ``small`` (``scale``× the photo), landmarks fitted on the full photo.

        With ``masked_threshold`` set, every weak detection (score < 0.3, which includes all masked-face
        candidates) must pass :func:`plausible_face`, and one that covers half of a stronger face is
        dropped (a box around a face and its surroundings is no second face)."""
        lowest = self.threshold if self.masked_threshold is None else self.masked_threshold
        rects, scores, _ = self._hog.run(small, upsample, lowest)
        faces: list[Face] = []
        for rect, score in sorted(zip(rects, scores), key=lambda rs: -rs[1]):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64) / scale
            if self.masked_threshold is not None and score < _DLIB_WEAK_SCORE:
                if any(_overlap(box, f.box) >= 0.5 for f in faces):
                    continue
            full = self._dlib.rectangle(*(int(round(v)) for v in box))
            shape = self._predictor(image, full)
            lm68 = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            face = Face(box=box.astype(np.float32), score=float(score), landmarks5=landmarks5_from_68(lm68),
                        landmarks68=lm68)
            if self.masked_threshold is None or score >= _DLIB_WEAK_SCORE or plausible_face(image, face):
                faces.append(face)
        return faces

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _check_image(image)
        scale = 1.0
        small = image
        long_side = max(image.shape[:2])
        if self.max_side is not None and long_side > self.max_side:
            import cv2

            scale = self.max_side / long_side
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        if self.upsample is not None:
            return _sorted(self._faces(image, small, scale, int(self.upsample)), _DLIB_WEAK_SCORE, self.threshold)
        long_side = max(small.shape[:2])
        upsample = 0
        while True:
            faces = self._faces(image, small, scale, upsample)
            if faces or long_side * 2 ** (upsample + 1) > _DLIB_MAX_UPSAMPLED_SIDE:
                return _sorted(faces, _DLIB_WEAK_SCORE, self.threshold)
            upsample += 1


class InsightFaceDetector:
    """insightface ``buffalo_l``: SCRFD boxes + 5 keypoints, and the 68-point 3D landmark model.

    Args:
        name: insightface model package name.
        root: folder holding ``models/<name>``; insightface downloads there on first use.
        det_size: detector input size.
        allow_download: when False, a missing model package raises :class:`DependencyError` at once
            instead of trying the network.
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(
        self,
        name: str = "buffalo_l",
        root: str | os.PathLike = "~/.insightface",
        det_size: tuple[int, int] = (640, 640),
        allow_download: bool = True,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        install = "pip install insightface onnxruntime"
        if importlib.util.find_spec("insightface") is None or importlib.util.find_spec("onnxruntime") is None:
            raise DependencyError(f"The insightface backend needs insightface and onnxruntime: {install}")
        model_dir = Path(root).expanduser() / "models" / name
        hint = (
            f"insightface downloads the {name!r} models into {model_dir} on first use; run once with network "
            f"access, or unzip {name}.zip there by hand. Offline, use backend='dlib'."
        )
        if not allow_download and not any(model_dir.glob("*.onnx")):
            raise DependencyError(f"insightface models not found in {model_dir}. {hint}")
        try:
            from insightface.app import FaceAnalysis

            self._app = FaceAnalysis(
                name=name,
                root=str(Path(root).expanduser()),
                allowed_modules=["detection", "landmark_3d_68"],
                providers=list(providers),
            )
            self._app.prepare(ctx_id=-1, det_size=tuple(det_size))
        except Exception as err:  # noqa: BLE001 - network, zip and onnx failures all mean "models unavailable"
            raise DependencyError(f"Could not load insightface models ({type(err).__name__}: {err}). {hint}") from err
        if "landmark_3d_68" not in self._app.models:
            raise DependencyError(f"The {name!r} package has no 68-point landmark model. {hint}")

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _check_image(image)
        found = self._app.get(np.ascontiguousarray(image[:, :, ::-1]))  # insightface expects BGR
        faces = []
        for f in found:
            lm68 = np.asarray(f.landmark_3d_68, dtype=np.float32)[:, :2]
            lm5 = np.asarray(f.kps, dtype=np.float32) if f.kps is not None else landmarks5_from_68(lm68)
            faces.append(
                Face(
                    box=np.asarray(f.bbox, dtype=np.float32)[:4],
                    score=float(f.det_score),
                    landmarks5=lm5,
                    landmarks68=lm68,
                )
            )
        return _sorted(faces)


_BACKENDS = {"dlib": DlibDetector, "insightface": InsightFaceDetector}


@functools.lru_cache(maxsize=8)
def _cached(backend: str, options: tuple) -> FaceDetector:
    return _BACKENDS[backend](**dict(options))


def get_detector(backend: str = "dlib", **kw) -> FaceDetector:
    """A face detector for ``backend`` (``"dlib"`` or ``"insightface"``), built once per options.

    Keyword arguments go to :class:`DlibDetector` or :class:`InsightFaceDetector`.

    Raises:
        DependencyError: the backend's package or model files are missing (the message says how to
            install them).
        ConfigError: unknown backend.
    """
    if backend not in _BACKENDS:
        raise ConfigError(f"Unknown face detector backend {backend!r}; choose one of {sorted(_BACKENDS)}.")
    options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kw.items()))
    return _cached(backend, options)
