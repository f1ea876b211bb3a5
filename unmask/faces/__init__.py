"""Real-photo face pipeline: loading, detection with 68 landmarks, FFHQ alignment, paste-back, masks.

``from unmask.faces import align_faces, paste_back, draw_mask`` — submodules load on first use, so
importing this package does not import OpenCV or dlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "MAX_PIXELS": "unmask.faces.io",
    "load_image": "unmask.faces.io",
    "Face": "unmask.faces.detect",
    "FaceDetector": "unmask.faces.detect",
    "get_detector": "unmask.faces.detect",
    "landmarks5_from_68": "unmask.faces.detect",
    "AlignedFace": "unmask.faces.align",
    "FFHQ_EYE_LEFT": "unmask.faces.align",
    "FFHQ_EYE_RIGHT": "unmask.faces.align",
    "FFHQ_MOUTH": "unmask.faces.align",
    "reference_points": "unmask.faces.align",
    "align_face": "unmask.faces.align",
    "align_faces": "unmask.faces.align",
    "paste_back": "unmask.faces.align",
    "face_region": "unmask.faces.align",
    "default_region": "unmask.faces.align",
    "MASK_TYPES": "unmask.faces.masks",
    "PHOTO_MASK_TYPES": "unmask.faces.masks",
    "available_mask_types": "unmask.faces.masks",
    "draw_mask": "unmask.faces.masks",
    "mask_outline": "unmask.faces.masks",
    "estimate_mask_region": "unmask.faces.masks.region",
}

if TYPE_CHECKING:  # pragma: no cover
    from unmask.faces.align import (
        FFHQ_EYE_LEFT,
        FFHQ_EYE_RIGHT,
        FFHQ_MOUTH,
        AlignedFace,
        align_face,
        align_faces,
        default_region,
        face_region,
        paste_back,
        reference_points,
    )
    from unmask.faces.detect import Face, FaceDetector, get_detector, landmarks5_from_68
    from unmask.faces.io import MAX_PIXELS, load_image
    from unmask.faces.masks import (
        MASK_TYPES,
        PHOTO_MASK_TYPES,
        available_mask_types,
        draw_mask,
        estimate_mask_region,
        mask_outline,
    )


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unmask.faces' has no attribute {name!r}")


__all__ = [
    "AlignedFace",
    "FFHQ_EYE_LEFT",
    "FFHQ_EYE_RIGHT",
    "FFHQ_MOUTH",
    "Face",
    "FaceDetector",
    "MASK_TYPES",
    "MAX_PIXELS",
    "PHOTO_MASK_TYPES",
    "align_face",
    "align_faces",
    "available_mask_types",
    "default_region",
    "draw_mask",
    "estimate_mask_region",
    "face_region",
    "get_detector",
    "landmarks5_from_68",
    "load_image",
    "mask_outline",
    "paste_back",
    "reference_points",
]
