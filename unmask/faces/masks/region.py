"""The inference-time region estimate: where a worn mask is, from the (guessed) landmarks of a masked photo.

The pipeline's last resort for the region to recover, after a painted mask and the encoder's predicted one.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from unmask.errors import InputShapeError
from unmask.faces.io import check_landmarks68
from unmask.faces.masks.geometry import (
    _MAX_SUPERSAMPLE,
    _SHIFT,
    _SUPERSAMPLE_TARGET,
    _chaikin,
    _downsample,
    _fixed,
    _Frame,
    _limits,
)


def estimate_mask_region(landmarks68: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The lower-face region a worn mask covers, from landmarks, as float32 ``(H, W)`` in [0, 1].

    For a photo that already shows a mask: landmarks under a mask are the detector's guess, so the
    region is generous — from just below the eyes over the nose bridge, out past the jaw line, and
    below the chin. The app lets the user correct it.

    Args:
        landmarks68: ``(68, 2)`` iBUG landmarks in pixels.
        shape: ``(H, W)`` of the image.
    """
    lm = check_landmarks68(landmarks68)
    if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
        raise InputShapeError(f"shape must be (H, W), got {shape!r}.")
    height, width = int(shape[0]), int(shape[1])
    frame = _Frame(lm)
    uv, lim = frame.uv, _limits(frame)
    top = lim["top_min"]
    control = np.stack(
        [
            frame.jaw_at(1.0) + np.array([-0.10, 0.0]),
            np.array([uv[36:42, 0].mean(), top]),
            np.array([uv[28, 0], top]),
            np.array([uv[42:48, 0].mean(), top]),
            frame.jaw_at(15.0) + np.array([0.10, 0.0]),
        ]
    )
    control[[0, -1], 1] = np.maximum(control[[0, -1], 1], top)
    jaw = uv[14:1:-1].copy()
    direction = jaw - uv[30]
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    jaw += direction * 0.10
    jaw[:, 1] = np.maximum(jaw[:, 1], top)
    jaw[:, 1] += 0.15 * np.maximum(np.cos((np.arange(14, 1, -1) - 8.0) * (math.pi / 9.0)), 0.0)
    polygon = frame.to_image(np.concatenate([_chaikin(control, 2), jaw]))
    lo = np.floor(polygon.min(0)).astype(int) - 2
    hi = np.ceil(polygon.max(0)).astype(int) + 3
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], width), min(hi[1], height)
    region = np.zeros((height, width), dtype=np.float32)
    if x1 > x0 and y1 > y0:
        ss = int(min(max(math.ceil(_SUPERSAMPLE_TARGET / max(x1 - x0, y1 - y0)), 1), _MAX_SUPERSAMPLE))
        canvas = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss), dtype=np.uint8)
        line = cv2.LINE_AA if ss == 1 else cv2.LINE_8
        cv2.fillPoly(canvas, [_fixed(polygon, np.array([x0, y0], dtype=np.float64), ss)], 255, line, _SHIFT)
        region[y0:y1, x0:x1] = _downsample(canvas, ss)
    return region
