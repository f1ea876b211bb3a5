"""dlib's 128-D face ResNet on FFHQ-aligned crops: an offline verification network for real photos.

The network is ``dlib.face_recognition_model_v1`` with the weights shipped by the
``face_recognition_models`` package (``dlib_face_recognition_resnet_model_v1.dat``, a ResNet-29 trained on
about three million faces; dlib reports 99.38 % on LFW). dlib compares two faces by the Euclidean distance
of their descriptors and calls them the same person below 0.6.
"""

from __future__ import annotations

import numpy as np

from unmask.errors import DependencyError
from unmask.faces.io import check_rgb_uint8

#: dlib's decision rule: the same person when the descriptor distance is below this.
DLIB_DISTANCE_THRESHOLD = 0.6
#: Side of the chip dlib's ResNet reads (it resamples the face to 150×150 from the landmarks).
DLIB_CHIP_SIZE = 150
_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_INSTALL = "pip install dlib-bin face-recognition-models"


class DlibFaceEmbedder:
    """128-D descriptors of FFHQ-aligned face crops with dlib's face ResNet.

    The crops share the FFHQ template geometry, so the 68 template landmarks place the face for dlib's
    own chip extraction; no detection runs on the (possibly masked) crop.

    Raises:
        DependencyError: dlib or the face-recognition-models weights are missing.
    """

    name = "dlib ResNet-29 (face-recognition-models, 128-D)"

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as err:
            raise DependencyError(f"dlib's face ResNet needs dlib: {_INSTALL}") from err
        from unmask.faces.detect import dlib_models_dir

        path = dlib_models_dir() / _RESNET_FILE
        if not path.is_file():
            raise DependencyError(f"dlib's face ResNet weights are missing at {path}: {_INSTALL}")
        self._dlib = dlib
        self._net = dlib.face_recognition_model_v1(str(path))

    def embed(self, crops: list[np.ndarray], alignment: str = "ffhq") -> np.ndarray:
        """Descriptors ``(N, 128)`` float32 of N aligned uint8 crops ``(S, S, 3)`` (any S ≥ 16) of the crop
        ``alignment`` (:data:`unmask.faces.template.TEMPLATES`), whose template landmarks place the face."""
        import cv2

        from unmask.faces.template import template_landmarks

        out = []
        for crop in crops:
            crop = check_rgb_uint8(crop, "DlibFaceEmbedder.embed")
            if crop.shape[0] < DLIB_CHIP_SIZE:  # dlib samples a 150-px chip; give it at least that many pixels
                crop = cv2.resize(crop, (DLIB_CHIP_SIZE * 2, DLIB_CHIP_SIZE * 2), interpolation=cv2.INTER_CUBIC)
            size = crop.shape[0]
            points = self._dlib.points([self._dlib.point(int(round(x)), int(round(y)))
                                        for x, y in template_landmarks(size, alignment)])
            shape = self._dlib.full_object_detection(self._dlib.rectangle(0, 0, size - 1, size - 1), points)
            out.append(np.asarray(self._net.compute_face_descriptor(np.ascontiguousarray(crop), shape),
                                  dtype=np.float32))
        return np.stack(out)

    def embed_photo(self, photo: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        """The descriptor ``(128,)`` float32 of the face at ``landmarks68`` ``(68, 2)`` in a uint8 photo: dlib's own
        chip extraction from the photo, so several versions of one photo (unmasked, masked, recovered) can be
        judged at the same landmarks, with no detection on a masked face."""
        photo = check_rgb_uint8(photo, "DlibFaceEmbedder.embed_photo")
        points = np.asarray(landmarks68, dtype=np.float64)
        x0, y0 = np.floor(points.min(0)).astype(int)
        x1, y1 = np.ceil(points.max(0)).astype(int)
        shape = self._dlib.full_object_detection(
            self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
            self._dlib.points([self._dlib.point(int(round(x)), int(round(y))) for x, y in points]))
        return np.asarray(self._net.compute_face_descriptor(np.ascontiguousarray(photo), shape), dtype=np.float32)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two dlib descriptors ``(128,)``: below :data:`DLIB_DISTANCE_THRESHOLD` is a match."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
