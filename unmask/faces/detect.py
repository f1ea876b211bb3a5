"""Face detection with 5- and 68-point landmarks (iBUG 300-W order) behind one interface.

Backends, chosen by one argument to :func:`get_detector`:

* ``"dlib"`` (default, offline): dlib's HOG + linear-SVM frontal detector and the 68-point
  ensemble-of-regression-trees shape predictor (Kazemi & Sullivan, CVPR 2014) whose model file ships
  in the ``face-recognition-models`` package. The 5 points are derived from the 68.
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
#: dlib's HOG window is 80×80 px; faces smaller than that need the image upsampled.
_DLIB_WINDOW = 80
#: dlib HOG scores below this are "weak": kept, but sorted after confident faces (see ``_sorted``).
_DLIB_WEAK_SCORE = 0.3
#: Auto-upsampling stops once the upsampled image's long side would pass this (time grows ~4× a step).
_DLIB_MAX_UPSAMPLED_SIDE = 2048


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


def _sorted(faces: list[Face], weak_score: float = float("-inf")) -> list[Face]:
    """Largest first — but detections scoring below ``weak_score`` go after the confident ones, so that
    "the largest face" is never a large false positive (dlib's HOG finds a face in the astronaut's mission
    patch at score 0.07 on a JPEG copy of skimage's photo)."""
    return sorted(faces, key=lambda f: (f.score < weak_score, -f.area, -f.score))


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
        predictor_path: a 68-point ``shape_predictor`` ``.dat`` file; default from face-recognition-models.
    """

    def __init__(
        self,
        upsample: int | None = None,
        max_side: int | None = 1600,
        threshold: float = 0.0,
        predictor_path: str | os.PathLike | None = None,
    ) -> None:
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

    def _boxes(self, image: np.ndarray) -> tuple[list, list[float]]:
        if self.upsample is not None:
            rects, scores, _ = self._hog.run(image, int(self.upsample), self.threshold)
            return list(rects), list(scores)
        long_side = max(image.shape[:2])
        upsample = 0
        while True:
            rects, scores, _ = self._hog.run(image, upsample, self.threshold)
            if len(rects) or long_side * 2 ** (upsample + 1) > _DLIB_MAX_UPSAMPLED_SIDE:
                return list(rects), list(scores)
            upsample += 1

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
        rects, scores = self._boxes(small)
        faces = []
        for rect, score in zip(rects, scores):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64) / scale
            full = self._dlib.rectangle(*(int(round(v)) for v in box))
            shape = self._predictor(image, full)
            lm68 = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            lm5 = landmarks5_from_68(lm68)
            faces.append(Face(box=box.astype(np.float32), score=float(score), landmarks5=lm5, landmarks68=lm68))
        return _sorted(faces, _DLIB_WEAK_SCORE)


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


def face_size(face: Face) -> float:
    """A scale for ``face``: the distance between the eye centres in pixels."""
    left, right = face.landmarks5[0], face.landmarks5[1]
    return float(math.hypot(*(right - left)))
