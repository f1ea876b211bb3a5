"""Synthetic protective masks drawn on 68 iBUG landmarks, with the exact occlusion they cause.

* :mod:`unmask.faces.masks.geometry`: the face frame and every type's outline (:func:`mask_outline`), with
  the guarantees (nose tip and mouth covered, eyes clear), and the type names (:data:`MASK_TYPES`,
  :data:`PHOTO_MASK_TYPES`, :func:`check_mask_type`);
* :mod:`unmask.faces.masks.draw`: :func:`draw_mask`, procedural fabric and real-mask photo textures
  (:func:`mask_texture`, :func:`available_mask_types`);
* :mod:`unmask.faces.masks.region`: :func:`estimate_mask_region`, the landmark estimate that the pipeline
  falls back on at inference.

The shape is procedural rather than a warped template, so one code path serves 1024-px photos and the
64-px images of the synthetic teaching world (which calls :func:`draw_mask` with its own analytic
landmarks), and every pixel of the occlusion mask is known exactly.
"""

from __future__ import annotations

from unmask.faces.masks.draw import available_mask_types, draw_mask, mask_texture
from unmask.faces.masks.geometry import MASK_TYPES, PHOTO_MASK_TYPES, check_mask_type, mask_outline
from unmask.faces.masks.region import estimate_mask_region

__all__ = [
    "MASK_TYPES",
    "PHOTO_MASK_TYPES",
    "available_mask_types",
    "check_mask_type",
    "draw_mask",
    "estimate_mask_region",
    "mask_outline",
    "mask_texture",
]
