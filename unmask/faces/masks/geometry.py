"""Mask geometry: the face frame, the outline of each mask type, and the coverage raster shared by drawing and
the region estimate.

All geometry is built in a *face frame*: origin at the midpoint of the eye centres, ``u`` along the
eye line, ``v`` perpendicular to it pointing towards the mouth, both in units of the eye distance.
Guarantees, for every type and every seed:

* the nose tip (point 30) and all mouth points (48–67) are covered (occlusion = 1);
* no eye point (36–47) is covered (occlusion = 0).

Both are enforced constructively (the top edge never rises above the lowest eye point plus a margin)
and then made certain, when drawing, by stamping a small dilated hull of the nose-tip and mouth points
into the mask and clearing dilated eye contours from it — which changes nothing on ordinary faces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from unmask.errors import ConfigError, InputShapeError
from unmask.faces.io import check_landmarks68

#: Every mask type :func:`draw_mask` can draw (``"random"`` picks one of these uniformly).
MASK_TYPES: tuple[str, ...] = (
    "surgical_blue",
    "surgical_green",
    "surgical_white",
    "cloth",
    "cloth_pattern",
    "n95",
    "kn95",
    "black",
)

#: Surgical masks textured with photos of real masks: insightface's ``data/images/mask_{black,blue,green,white}.jpg``
#: (needs ``insightface``, in requirements-dev.txt), mapped onto the surgical outline. Drawn only by name:
#: ``"random"`` and the teaching world keep to the procedural :data:`MASK_TYPES`. The photos are read from the
#: installed package at run time, not redistributed; their terms are insightface's.
PHOTO_MASK_TYPES: tuple[str, ...] = ("photo_black", "photo_blue", "photo_green", "photo_white")

# Geometry, in eye-distance units unless said otherwise.
_EYE_MARGIN = 0.12  # minimum gap between the lowest eye point and the mask's top edge
_COVER_MARGIN = 0.10  # minimum gap by which nose tip and mouth points lie inside the mask
_MIN_MARGIN_PX = 1.6  # margins are never thinner than this many pixels (anti-aliased edge ~1 px)
_SUPERSAMPLE_TARGET = 256  # supersample until the region of interest is about this many pixels
_MAX_SUPERSAMPLE = 4


# --------------------------------------------------------------------------------------------- frame


class _Frame:
    """Face frame: ``image = origin + scale·(u·ex + v·ey)``; ``uv`` holds the 68 landmarks in it."""

    __slots__ = ("origin", "axes", "scale", "uv", "limits")

    def __init__(self, landmarks68: np.ndarray) -> None:
        lm = landmarks68.astype(np.float64)
        eye_left, eye_right = lm[36:42].sum(0) / 6.0, lm[42:48].sum(0) / 6.0
        along = eye_right - eye_left
        scale = math.hypot(along[0], along[1])
        if not np.isfinite(scale) or scale < 1.0:
            raise InputShapeError(
                f"The eye centres are {scale:.2f} px apart; landmarks must be in pixels of a face at least "
                "a few pixels wide (68-point iBUG order)."
            )
        ex = along / scale
        self.axes = np.array([ex, [-ex[1], ex[0]]])  # rows: u axis, v axis (v points towards the mouth)
        self.origin = (eye_left + eye_right) * 0.5
        self.scale = scale
        self.uv = (lm - self.origin) @ self.axes.T / scale
        self.limits: dict[str, float] | None = None

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        return self.origin + (uv @ self.axes) * self.scale

    def jaw_at(self, index: float) -> np.ndarray:
        """Jaw contour (points 0–16) interpolated at a fractional index, in face units."""
        lo = int(min(max(math.floor(index), 0), 15))
        t = index - lo
        return self.uv[lo] * (1.0 - t) + self.uv[lo + 1] * t


def _chaikin(points: np.ndarray, iterations: int, closed: bool = False, cut: float = 0.25) -> np.ndarray:
    """Chaikin corner cutting. New points are convex combinations of neighbours, so the curve never leaves
    the control polygon's hull — the top edge cannot rise above its control points. The scheme is linear,
    so it is one cached matrix product."""
    key = (len(points), iterations, closed, cut)
    matrix = _chaikin_cache.get(key)
    if matrix is None:
        matrix = np.eye(len(points))
        for _ in range(iterations):
            n = len(matrix)
            step = np.zeros((2 * n if closed else 2 * (n - 1) + 2, n))
            for i in range(n if closed else n - 1):
                j = (i + 1) % n
                row = 2 * i + (0 if closed else 1)
                step[row, i], step[row, j] = 1.0 - cut, cut
                step[row + 1, i], step[row + 1, j] = cut, 1.0 - cut
            if not closed:
                step[0, 0] = step[-1, n - 1] = 1.0
            matrix = step @ matrix
        _chaikin_cache[key] = matrix
    return matrix @ points


_chaikin_cache: dict[tuple, np.ndarray] = {}


class _Jitter:
    """All random draws of one mask, taken from the generator in two calls (per-draw numpy calls cost
    microseconds each, and a 64-px mask must take well under a millisecond)."""

    __slots__ = ("_uniform", "_normal", "_i", "_j")
    _N_UNIFORM, _N_NORMAL = 64, 16

    def __init__(self, rng: np.random.Generator) -> None:
        self._uniform = rng.random(self._N_UNIFORM).tolist()
        self._normal = rng.standard_normal(self._N_NORMAL).tolist()
        self._i = self._j = 0

    def uniform(self, lo: float, hi: float) -> float:
        value = self._uniform[self._i % self._N_UNIFORM]
        self._i += 1
        return lo + (hi - lo) * value

    def integer(self, n: int) -> int:
        return min(int(self.uniform(0.0, n)), n - 1)

    def normal(self, scale: float) -> float:
        value = self._normal[self._j % self._N_NORMAL]
        self._j += 1
        return value * scale


# ------------------------------------------------------------------------------------------ outlines


def _limits(frame: _Frame) -> dict[str, float]:
    """Where the top edge may run: below the eyes, above the nose tip (face units). Cached on the frame."""
    if frame.limits is not None:
        return frame.limits
    uv = frame.uv
    px = 1.0 / frame.scale  # one pixel in face units
    eye_margin = max(_EYE_MARGIN, _MIN_MARGIN_PX * px)
    cover = max(_COVER_MARGIN, _MIN_MARGIN_PX * px)
    lowest_eye = float(uv[36:48, 1].max()) + eye_margin
    highest_ok = float(uv[30, 1]) - 1.5 * cover
    if highest_ok < lowest_eye:  # squashed landmarks: split the difference, the stamps below settle it
        lowest_eye = highest_ok = 0.5 * (lowest_eye + highest_ok)
    frame.limits = {"top_min": lowest_eye, "top_max": highest_ok, "cover": cover}
    return frame.limits


def _top_edge(frame: _Frame, jit: _Jitter, fit: tuple, sag: tuple, side_index: tuple, out: tuple):
    """Control points of the top edge (left side, under left eye, nose bridge, under right eye, right side)
    and the jaw indices where the sides meet the jaw."""
    uv, lim = frame.uv, _limits(frame)
    bridge = uv[28] + (uv[29] - uv[28]) * jit.uniform(*fit)
    top = min(max(float(bridge[1]), lim["top_min"]), lim["top_max"])
    points = [np.array([uv[28, 0] + (uv[29, 0] - uv[28, 0]) * 0.5, top])]
    sides = []
    for sign, eye in ((-1.0, slice(36, 42)), (1.0, slice(42, 48))):
        index = jit.uniform(*side_index)
        index = index if sign < 0 else 16.0 - index
        side = frame.jaw_at(index) + np.array([sign * jit.uniform(*out), 0.0])
        side[1] = max(side[1], lim["top_min"])
        under_eye = np.array([uv[eye, 0].sum() / 6.0, max(top + jit.uniform(*sag), lim["top_min"])])
        sides.append((index, side, under_eye))
    (li, left, under_left), (ri, right, under_right) = sides
    control = np.stack([left, under_left, points[0], under_right, right])
    return control, li, ri


def _jaw_bottom(frame: _Frame, jit: _Jitter, left_index: float, right_index: float, out, chin_drop):
    """The lower outline along the jaw from the right side to the left, pushed out and below the chin."""
    uv = frame.uv
    centre = uv[30]
    push = jit.uniform(*out)
    drop = jit.uniform(*chin_drop)
    indices = np.arange(math.floor(right_index), math.ceil(left_index) - 1, -1)
    jaw = uv[indices].copy()
    direction = jaw - centre
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    jaw += direction * push
    # Under the chin the fabric hangs lower: a bump centred on point 8, fading out by points 4 and 12.
    jaw[:, 1] += drop * np.maximum(np.cos((indices - 8.0) * (math.pi / 9.0)), 0.0)
    return jaw


def _ear_loops(frame: _Frame, top_left, top_right, jit: _Jitter, low_index: float) -> list[np.ndarray]:
    """Loops from the mask's side corners back to the ears (jaw points 0 and 16, pushed outwards)."""
    loops = []
    for sign, corner, ear_index, low in ((-1, top_left, 0.0, low_index), (1, top_right, 16.0, 16.0 - low_index)):
        ear = frame.jaw_at(ear_index) + np.array([sign * jit.uniform(0.08, 0.16), jit.uniform(-0.05, 0.05)])
        bottom = frame.jaw_at(low) + np.array([sign * 0.03, 0.0])
        loops.append(_chaikin(np.stack([corner, ear, bottom]), 2))
    return loops


def _outline_fabric(frame: _Frame, jit: _Jitter, kind: str):
    """Surgical and cloth masks: top edge over the nose bridge, sides at the jaw, bottom under the chin."""
    if kind == "surgical":
        fit, sag, side, out, chin = (0.0, 0.7), (0.02, 0.10), (1.2, 2.0), (0.0, 0.06), (0.05, 0.15)
        smooth = 2
    else:
        fit, sag, side, out, chin = (0.05, 0.75), (0.0, 0.08), (1.0, 1.8), (0.02, 0.10), (0.10, 0.22)
        smooth = 3
    control, li, ri = _top_edge(frame, jit, fit, sag, side, out)
    top = _chaikin(control, smooth)
    bottom = _jaw_bottom(frame, jit, li, ri, out, chin)
    body = np.concatenate([top, bottom])
    loops = _ear_loops(frame, control[0], control[-1], jit, low_index=jit.uniform(3.2, 4.2))
    return body, loops, {"top": top}


def _outline_n95(frame: _Frame, jit: _Jitter):
    """A moulded cup: a super-ellipse from the nose bridge to under the chin, head straps to the sides."""
    uv, lim = frame.uv, _limits(frame)
    bridge = uv[28] + (uv[29] - uv[28]) * jit.uniform(0.0, 0.6)
    top = min(max(float(bridge[1]), lim["top_min"]), lim["top_max"])
    bottom = max(float(uv[8, 1]) + jit.uniform(0.0, 0.12), float(uv[48:68, 1].max()) + 2 * lim["cover"])
    centre_u = 0.5 * (uv[28, 0] + uv[57, 0])
    centre_v = 0.5 * (top + bottom)
    half_h = 0.5 * (bottom - top)
    exponent = jit.uniform(2.2, 3.0)
    mouth_v = float(uv[[48, 54], 1].mean())
    t = min(abs(mouth_v - centre_v) / half_h, 0.95)
    reach = (1.0 - t**exponent) ** (1.0 / exponent)  # half-width fraction available at mouth height
    jaw_half = 0.5 * float(uv[12, 0] - uv[4, 0])
    need = max(abs(uv[48, 0] - centre_u), abs(uv[54, 0] - centre_u)) + 2 * lim["cover"]
    half_w = max(jaw_half * jit.uniform(0.95, 1.08), need / reach)
    angles = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
    c, s = np.cos(angles), np.sin(angles)
    body = np.stack(
        [
            centre_u + half_w * np.sign(c) * np.abs(c) ** (2.0 / exponent),
            centre_v + half_h * np.sign(s) * np.abs(s) ** (2.0 / exponent),
        ],
        axis=1,
    )
    straps = []
    for sign, index in ((-1, 1.0), (1, 15.0)):
        for height in (0.3, 0.75):
            start = np.array([centre_u + sign * half_w * 0.92, top + height * (bottom - top)])
            end = frame.jaw_at(index if height < 0.5 else (3.5 if sign < 0 else 12.5)) + np.array([sign * 0.35, 0.0])
            straps.append(np.stack([start, end]))
    extras = {"centre": np.array([centre_u, centre_v]), "half": np.array([half_w, half_h])}
    return body, straps, extras


def _outline_kn95(frame: _Frame, jit: _Jitter):
    """A folded KN95: pointed over the nose and under the chin, a vertical seam, ear loops."""
    uv, lim = frame.uv, _limits(frame)
    bridge = uv[28] + (uv[29] - uv[28]) * jit.uniform(0.0, 0.5)
    top = min(max(float(bridge[1]), lim["top_min"]), lim["top_max"])
    peak = np.array([float(uv[28, 0]), top])
    mouth_low = float(uv[48:68, 1].max())
    chin = np.array([float(uv[8, 0]), max(float(uv[8, 1]) + jit.uniform(0.0, 0.12), mouth_low + 3 * lim["cover"])])
    corners = []
    for sign, index in ((-1.0, jit.uniform(1.4, 2.2)), (1.0, 16.0 - jit.uniform(1.4, 2.2))):
        side = frame.jaw_at(index) + np.array([sign * jit.uniform(0.0, 0.05), 0.0])
        side[1] = max(side[1], lim["top_min"]) + jit.uniform(0.05, 0.15)
        mouth_corner = uv[48] if sign < 0 else uv[54]
        low_u = side[0] * 0.95 + peak[0] * 0.05
        if sign * (low_u - mouth_corner[0]) < 2 * lim["cover"]:
            low_u = mouth_corner[0] + sign * 2 * lim["cover"]
        low = np.array([low_u, max(mouth_low + lim["cover"], side[1] + 0.3)])
        corners.append((side, low))
    (lt, lb), (rt, rb) = corners
    body = _chaikin(np.stack([peak, rt, rb, chin, lb, lt]), 1, closed=True, cut=0.08)
    loops = _ear_loops(frame, lt, rt, jit, low_index=jit.uniform(3.5, 4.5))
    return body, loops, {"seam": np.stack([peak, chin])}


def mask_outline(landmarks68: np.ndarray, mask_type: str | Sequence[str],
                 seed: int | np.random.Generator | None = None):
    """The polygon of a mask in image pixels, ``(N, 2)`` float64, and its loops/straps ``[(M, 2), ...]``."""
    lm = check_landmarks68(landmarks68)
    jit = _Jitter(_rng(seed))
    mask_type = _pick_type(mask_type, jit)
    frame = _Frame(lm)
    body, loops, _, _ = _outline(frame, jit, mask_type)
    return frame.to_image(body), [frame.to_image(loop) for loop in loops]


def _outline(frame: _Frame, jit: _Jitter, mask_type: str):
    if mask_type.startswith("surgical") or mask_type in PHOTO_MASK_TYPES:
        body, loops, extras = _outline_fabric(frame, jit, "surgical")
        family = "surgical"
    elif mask_type in ("cloth", "cloth_pattern"):
        body, loops, extras = _outline_fabric(frame, jit, "cloth")
        family = "cloth"
    elif mask_type == "black":
        family = "surgical" if jit.uniform(0.0, 1.0) < 0.5 else "cloth"
        body, loops, extras = _outline_fabric(frame, jit, family)
    elif mask_type == "n95":
        body, loops, extras = _outline_n95(frame, jit)
        family = "n95"
    else:
        body, loops, extras = _outline_kn95(frame, jit)
        family = "kn95"
    return body, loops, extras, family


# ------------------------------------------------------------------------------------------- raster
_SHIFT = 4  # OpenCV fixed-point fraction bits: vertices snap to 1/16 px


def _fixed(points: np.ndarray, offset: np.ndarray, ss: int) -> np.ndarray:
    """Image points to fixed-point coordinates of an ``ss``× canvas of the ROI (pixel centres preserved:
    ``x_ss = (x + 0.5)·ss − 0.5``)."""
    gain = float(ss * (1 << _SHIFT))
    shift = ((0.5 - offset) * ss - 0.5) * (1 << _SHIFT)
    return np.rint(points * gain + shift).astype(np.int32)


def _width(pixels: float, ss: int) -> int:
    return max(int(round(pixels * ss)), 1)


def _downsample(canvas: np.ndarray, ss: int) -> np.ndarray:
    """Coverage in [0, 1] at 1× from an ``ss``× 0/255 canvas (area average = exact box-filtered coverage)."""
    if ss > 1:
        canvas = cv2.resize(canvas, (canvas.shape[1] // ss, canvas.shape[0] // ss), interpolation=cv2.INTER_AREA)
    return canvas.astype(np.float32) * np.float32(1.0 / 255.0)


# ------------------------------------------------------------------------------------------- helpers
def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def check_mask_type(mask_type: str | Sequence[str]) -> None:
    """Raise ``ConfigError`` unless ``mask_type`` is a type name, ``"random"``, or a non-empty list of those."""
    choices = (mask_type,) if isinstance(mask_type, str) else tuple(mask_type)
    if not choices:
        raise ConfigError("an empty list of mask types; give at least one (or 'random').")
    for name in choices:
        if name != "random" and name not in MASK_TYPES and name not in PHOTO_MASK_TYPES:
            raise ConfigError(f"Unknown mask type {name!r}; choose 'random' or one of "
                              f"{', '.join(MASK_TYPES + PHOTO_MASK_TYPES)}.")


def _pick_type(mask_type: str | Sequence[str], jit: _Jitter) -> str:
    check_mask_type(mask_type)
    if not isinstance(mask_type, str):  # a list: one of its entries, then as that entry
        mask_type = mask_type[jit.integer(len(mask_type))]
    if mask_type == "random":
        return MASK_TYPES[jit.integer(len(MASK_TYPES))]
    return mask_type
