"""Synthetic protective masks drawn on 68 iBUG landmarks, with the exact occlusion they cause.

Training pairs for unmasking are made the way MaskTheFace (Anwar & Raychowdhury, 2020) makes them:
a mask shape is fitted to the landmark geometry and drawn over an unmasked face, so the clean face
is the target and the drawn pixels are the occlusion. Here the shape is procedural rather than a
warped template, so one code path serves 1024-px photos and the 64-px images of the synthetic
teaching world (which calls :func:`draw_mask` with its own analytic landmarks), and every pixel of
the occlusion mask is known exactly.

All geometry is built in a *face frame*: origin at the midpoint of the eye centres, ``u`` along the
eye line, ``v`` perpendicular to it pointing towards the mouth, both in units of the eye distance.
Guarantees, for every type and every seed:

* the nose tip (point 30) and all mouth points (48–67) are covered (occlusion = 1);
* no eye point (36–47) is covered (occlusion = 0).

Both are enforced constructively (the top edge never rises above the lowest eye point plus a margin)
and then made certain by stamping a small dilated hull of the nose-tip and mouth points into the mask
and clearing dilated eye contours from it — which changes nothing on ordinary faces.

Edges are anti-aliased by supersampling (4× on small faces) and area averaging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from unmask.errors import ConfigError, InputShapeError
from unmask.faces.io import check_landmarks68, check_rgb_uint8

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

# Base colours (RGB) of the fabric; each draw jitters them.
_SURGICAL_COLOURS = {
    "surgical_blue": (118, 170, 214),
    "surgical_green": (128, 192, 172),
    "surgical_white": (236, 238, 240),
}
_CLOTH_COLOURS = (
    (32, 42, 74),  # navy
    (120, 122, 128),  # grey
    (40, 40, 44),  # charcoal
    (168, 36, 48),  # red
    (226, 160, 176),  # pink
    (206, 188, 156),  # beige
    (92, 104, 60),  # olive
    (62, 110, 170),  # denim
    (236, 236, 230),  # white
    (120, 70, 140),  # purple
)
_RESPIRATOR_COLOURS = ((242, 242, 236), (236, 232, 216), (226, 230, 236))
_BLACK = (26, 26, 30)

# Geometry, in eye-distance units unless said otherwise.
_EYE_MARGIN = 0.12  # minimum gap between the lowest eye point and the mask's top edge
_COVER_MARGIN = 0.10  # minimum gap by which nose tip and mouth points lie inside the mask
_MIN_MARGIN_PX = 1.6  # margins are never thinner than this many pixels (anti-aliased edge ~1 px)
_LOOP_THICKNESS = 0.035  # ear loops and straps
_HEM_THICKNESS = 0.05  # darker hem along the outline
_SUPERSAMPLE_TARGET = 256  # supersample until the region of interest is about this many pixels
_MAX_SUPERSAMPLE = 4
_NOISE_TILE = 256  # side of the cached fabric-grain texture
_LIGHTING_STRENGTH = 0.35  # how much of the photo's local brightness the fabric picks up
_LIGHTING_RESOLUTION = 64  # the photo's brightness is smoothed at about this many pixels

_noise_cache: dict[str, np.ndarray] = {}
_texture_cache: dict[str, np.ndarray] = {}
_TEXTURE_INSET = 0.03  # fraction trimmed from each side of a mask photo (its edge and ear-loop seams)


def mask_texture(mask_type: str) -> np.ndarray:
    """The photo of a real mask behind ``mask_type`` (one of :data:`PHOTO_MASK_TYPES`): float32 RGB ``(h, w, 3)``.

    Raises:
        ConfigError: unknown type, or insightface (which ships the photos) is not installed.
    """
    if mask_type not in PHOTO_MASK_TYPES:
        raise ConfigError(f"{mask_type!r} is not a photo-textured mask; choose one of {', '.join(PHOTO_MASK_TYPES)}.")
    texture = _texture_cache.get(mask_type)
    if texture is None:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("insightface")
        path = (Path(spec.origin).parent / "data" / "images" / f"mask_{mask_type.removeprefix('photo_')}.jpg"
                if spec is not None and spec.origin else None)
        if path is None or not path.is_file():
            raise ConfigError(f"the {mask_type!r} mask is textured with a photo that ships inside insightface, "
                              "which is not installed here: pip install -r requirements-dev.txt (or pip install "
                              f"insightface), or use a procedural type ({', '.join(MASK_TYPES)}).")
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        dy, dx = int(rgb.shape[0] * _TEXTURE_INSET), int(rgb.shape[1] * _TEXTURE_INSET)
        texture = np.ascontiguousarray(rgb[dy:rgb.shape[0] - dy, dx:rgb.shape[1] - dx], dtype=np.float32)
        _texture_cache[mask_type] = texture
    return texture


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


# ------------------------------------------------------------------------------------------- drawing


def draw_mask(
    image: np.ndarray,
    landmarks68: np.ndarray,
    mask_type: str | Sequence[str] = "random",
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a synthetic protective mask on the face with ``landmarks68``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (a photo or an aligned crop of any size).
        landmarks68: ``(68, 2)`` iBUG landmarks in the image's pixels.
        mask_type: one of :data:`MASK_TYPES`, ``"random"`` (one of those), one of :data:`PHOTO_MASK_TYPES`, or
            a list of such names: the seed picks one of its entries (``("random", "photo_blue")``: half the
            draws procedural, half the blue mask photo).
        seed: int, ``np.random.Generator`` or None — drives the jitter of colour, texture, shape and fit.

    Returns:
        ``(masked, occlusion)``: ``masked`` uint8 ``(H, W, 3)`` (a new array), ``occlusion`` float32
        ``(H, W)`` in [0, 1], 1 where the mask (body, loops, straps) covers the face, anti-aliased edge.
    """
    image = check_rgb_uint8(image, "draw_mask")
    lm = check_landmarks68(landmarks68)
    jit = _Jitter(_rng(seed))
    mask_type = _pick_type(mask_type, jit)
    frame = _Frame(lm)
    body, loops, extras, family = _outline(frame, jit, mask_type)

    height, width = image.shape[:2]
    body_px = frame.to_image(body)
    loops_px = [frame.to_image(loop) for loop in loops]
    loop_thickness = max(_LOOP_THICKNESS * frame.scale, 0.8)
    everything = np.concatenate([body_px, *loops_px]) if loops_px else body_px
    pad = loop_thickness + 2.0
    x0 = int(max(math.floor(everything[:, 0].min() - pad), 0))
    y0 = int(max(math.floor(everything[:, 1].min() - pad), 0))
    x1 = int(min(math.ceil(everything[:, 0].max() + pad) + 1, width))
    y1 = int(min(math.ceil(everything[:, 1].max() + pad) + 1, height))
    masked = image.copy()
    occlusion = np.zeros((height, width), dtype=np.float32)
    if x1 <= x0 or y1 <= y0:
        return masked, occlusion
    roi_w, roi_h = x1 - x0, y1 - y0
    offset = np.array([x0, y0], dtype=np.float64)
    ss = int(min(max(math.ceil(_SUPERSAMPLE_TARGET / max(roi_w, roi_h)), 1), _MAX_SUPERSAMPLE))

    # Coverage of the body, then guarantee the nose tip and mouth are in and the eyes are out.
    lim = _limits(frame)
    line = cv2.LINE_AA if ss == 1 else cv2.LINE_8  # supersampled canvases are averaged instead
    body_canvas = np.zeros((roi_h * ss, roi_w * ss), dtype=np.uint8)
    cv2.fillPoly(body_canvas, [_fixed(body_px, offset, ss)], 255, line, _SHIFT)
    core = np.concatenate([lm[30:36], lm[48:60]]).astype(np.float32)
    core = _fixed(cv2.convexHull(core)[:, 0, :], offset, ss)
    cv2.fillPoly(body_canvas, [core], 255, line, _SHIFT)
    cv2.polylines(body_canvas, [core], True, 255, _width(2 * lim["cover"] * frame.scale, ss), line, _SHIFT)
    loop_canvas = np.zeros_like(body_canvas)
    if loops_px:
        cv2.polylines(loop_canvas, [_fixed(p, offset, ss) for p in loops_px], False, 255, _width(loop_thickness, ss),
                      line, _SHIFT)
    eye_margin_px = max(_EYE_MARGIN * frame.scale * 0.5, _MIN_MARGIN_PX)
    eyes = [_fixed(lm[36:42], offset, ss), _fixed(lm[42:48], offset, ss)]
    for canvas in (body_canvas, loop_canvas):
        cv2.fillPoly(canvas, eyes, 0, line, _SHIFT)
        cv2.polylines(canvas, eyes, True, 0, _width(2 * eye_margin_px, ss), line, _SHIFT)
    body_alpha = _downsample(body_canvas, ss)
    loop_alpha = _downsample(loop_canvas, ss)

    # Fabric colour over the region of interest, evaluated in face coordinates.
    grid_u, grid_v = _face_grid(frame, offset, roi_w, roi_h)
    colour = _fabric(
        mask_type, family, jit, grid_u, grid_v, body, extras, frame, image[y0:y1, x0:x1], body_alpha, offset
    )
    hem = np.zeros((roi_h, roi_w), dtype=np.uint8)  # a shading detail: drawn at 1×, anti-aliased by OpenCV
    cv2.polylines(hem, [_fixed(body_px, offset, 1)], True, 46, _width(_HEM_THICKNESS * frame.scale, 1), cv2.LINE_AA,
                  _SHIFT)
    colour *= (1.0 - hem.astype(np.float32) * (1.0 / 255.0))[:, :, None]
    loop_colour = np.clip(_jitter_colour(_loop_base(mask_type, family), jit, 0.04), 0, 255)

    roi = image[y0:y1, x0:x1].astype(np.float32)
    la, ba = loop_alpha[:, :, None], body_alpha[:, :, None]
    roi = roi + (loop_colour - roi) * la
    roi = roi + (colour - roi) * ba
    masked[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
    occlusion[y0:y1, x0:x1] = 1.0 - (1.0 - loop_alpha) * (1.0 - body_alpha)
    return masked, occlusion


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


def _face_grid(frame: _Frame, offset: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates ``(u, v)`` of every ROI pixel, each ``(h, w)`` float32 (broadcast, not copied)."""
    inv = frame.axes / frame.scale  # rows map (x − origin) to (u, v)
    base = offset - frame.origin
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    u = np.float32(inv[0, 0]) * xs + np.float32(inv[0, 1]) * ys + np.float32(inv[0] @ base)
    v = np.float32(inv[1, 0]) * xs + np.float32(inv[1, 1]) * ys + np.float32(inv[1] @ base)
    return u, v


def _noise(h: int, w: int, jit: _Jitter) -> np.ndarray:
    """A crop of the cached fabric-grain tile (unit variance, slightly blurred), at a random offset."""
    tile = _noise_cache.get("grain")
    if tile is None:
        raw = np.random.default_rng(20230101).standard_normal((_NOISE_TILE, _NOISE_TILE)).astype(np.float32)
        tile = cv2.GaussianBlur(raw, (0, 0), 0.7, borderType=cv2.BORDER_REFLECT)
        tile /= tile.std()
        _noise_cache["grain"] = tile
    if h > _NOISE_TILE or w > _NOISE_TILE:
        tile = np.tile(tile, (h // _NOISE_TILE + 2, w // _NOISE_TILE + 2))
    oy = jit.integer(tile.shape[0] - h + 1)
    ox = jit.integer(tile.shape[1] - w + 1)
    return tile[oy : oy + h, ox : ox + w]


def _jitter_colour(base, jit: _Jitter, amount: float) -> np.ndarray:
    base = np.asarray(base, dtype=np.float32)
    gain = np.array([1.0 + jit.normal(amount) for _ in range(3)], dtype=np.float32)
    return base * gain + np.float32(jit.normal(255 * amount / 2))


def _loop_base(mask_type: str, family: str):
    if mask_type in ("black", "photo_black"):
        return _BLACK
    if family in ("n95",):
        return (238, 238, 232)
    return (236, 238, 240)


def _fabric(mask_type, family, jit, u, v, body, extras, frame, photo_roi, alpha, offset) -> np.ndarray:
    """RGB float32 ``(h, w, 3)`` of the mask material over the ROI: colour, pattern, folds, shading, grain."""
    h, w = alpha.shape
    u_c = float(body[:, 0].sum()) / len(body)
    half_w = max(float(body[:, 0].max() - body[:, 0].min()) * 0.5, 1e-3)
    top, bottom = float(body[:, 1].min()), float(body[:, 1].max())
    across = (u - u_c) / half_w  # −1 .. 1 from cheek to cheek
    light = jit.uniform(-0.12, 0.12)
    shade = 1.0 - jit.uniform(0.10, 0.22) * across * across + light * across
    grain_amount = 6.0
    if mask_type in PHOTO_MASK_TYPES:
        # The photo spans the body's extent in the face frame, its pleats along the eye line; the photo has
        # its own folds and weave, so only the cheek-to-cheek curvature and the lighting are added.
        colour = _texture_on(mask_texture(mask_type), u, v, body, flip=jit.uniform(0.0, 1.0) < 0.5)
        colour *= np.float32(1.0 + jit.normal(0.03))
        base = None
        shade = 1.0 - jit.uniform(0.06, 0.14) * across * across + light * across
        grain_amount = 1.0
    elif family == "surgical" and mask_type != "black":
        base = _jitter_colour(_SURGICAL_COLOURS.get(mask_type, _SURGICAL_COLOURS["surgical_blue"]), jit, 0.03)
        # Three horizontal pleats: each band brightens towards its top fold and darkens into the next.
        pleats = 3 + jit.integer(2)
        s = (v - top) * (1.0 / max(bottom - top, 1e-3))
        phase = (s * (pleats + 1.5) - 0.6) % 1.0
        inside = (s > 0.12) & (s < 0.82)
        shade = shade + np.where(inside, jit.uniform(0.08, 0.14) * (0.5 - phase), 0.0)
    elif mask_type == "cloth_pattern":
        first = jit.integer(len(_CLOTH_COLOURS))
        second = (first + 1 + jit.integer(len(_CLOTH_COLOURS) - 1)) % len(_CLOTH_COLOURS)
        c1 = _jitter_colour(_CLOTH_COLOURS[first], jit, 0.05)
        c2 = _jitter_colour(_CLOTH_COLOURS[second], jit, 0.05)
        weight = _pattern(jit, u, v, frame.scale)
        base = None
        colour = c1 * (1.0 - weight[:, :, None]) + c2 * weight[:, :, None]
        grain_amount = 8.0
    elif mask_type == "black":
        base = _jitter_colour(_BLACK, jit, 0.15)
        grain_amount = 3.0
    elif family == "cloth":
        base = _jitter_colour(_CLOTH_COLOURS[jit.integer(len(_CLOTH_COLOURS))], jit, 0.05)
        grain_amount = 9.0
    else:  # respirators: a dome, brighter in the middle
        base = _jitter_colour(_RESPIRATOR_COLOURS[jit.integer(len(_RESPIRATOR_COLOURS))], jit, 0.02)
        if family == "n95":
            cu, cv = extras["centre"]
            hu, hv = extras["half"]
            r2 = ((u - cu) / hu) ** 2 + ((v - cv) / hv) ** 2
            shade = 1.04 - 0.20 * r2 + light * across
        else:
            seam_u = float(extras["seam"][:, 0].mean())
            side = np.where(u < seam_u, 1.0 + light, 1.0 - light)
            shade = (1.0 - 0.14 * across * across) * side
            seam = np.exp(-(((u - seam_u) * frame.scale / max(0.02 * frame.scale, 0.7)) ** 2))
            shade = shade - 0.18 * seam
        grain_amount = 4.0
    if base is not None:
        colour = np.empty((h, w, 3), dtype=np.float32)
        colour[:] = base

    # Borrow the photo's lighting: fabric is darker where the face under it is in shadow.
    # The blur is wide (a quarter of the eye distance), so it is computed on a ≤ 64-px copy.
    lum = cv2.cvtColor(np.ascontiguousarray(photo_roi), cv2.COLOR_RGB2GRAY)
    factor = max(max(h, w) // _LIGHTING_RESOLUTION, 1)
    if factor > 1:
        lum = cv2.resize(lum, (max(w // factor, 1), max(h // factor, 1)), interpolation=cv2.INTER_AREA)
    lum = cv2.GaussianBlur(lum.astype(np.float32), (0, 0), max(0.25 * frame.scale / factor, 0.8))
    if factor > 1:
        lum = cv2.resize(lum, (w, h), interpolation=cv2.INTER_LINEAR)
    weight_sum = float(alpha.sum())
    if weight_sum > 1.0:
        mean_lum = float((lum * alpha).sum()) / weight_sum
        ratio = np.minimum(np.maximum(lum * (1.0 / max(mean_lum, 1.0)), 0.6), 1.4) ** _LIGHTING_STRENGTH
        shade = shade * ratio
    out = colour * np.asarray(shade, dtype=np.float32)[:, :, None]
    out += (_noise(h, w, jit) * grain_amount)[:, :, None]
    if family == "n95" and jit.uniform(0.0, 1.0) < 0.3:  # exhalation valve on one cheek
        cu, cv = extras["centre"]
        hu, _ = extras["half"]
        side = 1.0 if jit.uniform(0.0, 1.0) < 0.5 else -1.0
        centre = frame.to_image(np.array([[cu + side * 0.45 * hu, cv + 0.1]]))[0] - offset
        radius = 0.16 * frame.scale
        if radius >= 1.5:
            tone = jit.uniform(140, 200)
            centre_fp = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
            cv2.circle(out, centre_fp, int(round(radius * 16)), (tone, tone, tone * 1.02), -1, cv2.LINE_AA, 4)
            cv2.circle(out, centre_fp, int(round(radius * 16)), (tone * 0.7,) * 3, 1, cv2.LINE_AA, 4)
    return out


def available_mask_types() -> tuple[str, ...]:
    """Every type :func:`draw_mask` can draw here: :data:`MASK_TYPES`, and :data:`PHOTO_MASK_TYPES` where
    insightface (which ships their photos) is installed."""
    try:
        mask_texture(PHOTO_MASK_TYPES[0])
    except ConfigError:
        return MASK_TYPES
    return MASK_TYPES + PHOTO_MASK_TYPES


def _texture_on(texture: np.ndarray, u: np.ndarray, v: np.ndarray, body: np.ndarray, *, flip: bool) -> np.ndarray:
    """``texture`` stretched over the face-frame bounding box of ``body``, sampled at every ``(u, v)``."""
    u0, v0 = body.min(0)
    u1, v1 = body.max(0)
    h, w = u.shape[0], max(u.shape[1], v.shape[1])
    # Resample the photo to about the ROI's size first (area filter: no aliasing), then map it.
    small = cv2.resize(texture, (max(w, 2), max(h, 2)), interpolation=cv2.INTER_AREA)
    su = np.broadcast_to((u - u0) / max(u1 - u0, 1e-6), (h, w))
    sv = np.broadcast_to((v - v0) / max(v1 - v0, 1e-6), (h, w))
    if flip:
        su = 1.0 - su
    map_x = np.ascontiguousarray(su * (small.shape[1] - 1), dtype=np.float32)
    map_y = np.ascontiguousarray(sv * (small.shape[0] - 1), dtype=np.float32)
    return cv2.remap(small, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _pattern(jit: _Jitter, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Weight in [0, 1] of the second colour: stripes, dots or checks, softened to about one pixel."""
    kind = jit.integer(3)
    freq = jit.uniform(2.5, 5.0)  # repeats per eye distance
    sharp = max(min(scale / freq / 3.0, 6.0), 0.5)  # ~pixels per half period: no aliasing on small faces
    if kind == 0:
        angle = jit.uniform(0.0, math.pi)
        t = u * math.cos(angle) + v * math.sin(angle)
        return np.clip(0.5 + sharp * np.sin(2 * math.pi * freq * t), 0.0, 1.0)
    if kind == 1:
        fu = (u * freq) % 1.0 - 0.5
        fv = (v * freq + 0.5 * (np.floor(u * freq) % 2)) % 1.0 - 0.5
        dist = np.sqrt(fu * fu + fv * fv)
        radius = jit.uniform(0.18, 0.32)
        return np.clip((radius - dist) * (scale / freq) + 0.5, 0.0, 1.0)
    a = np.clip(0.5 + sharp * np.sin(2 * math.pi * freq * u), 0.0, 1.0)
    b = np.clip(0.5 + sharp * np.sin(2 * math.pi * freq * v), 0.0, 1.0)
    return 0.5 * (a + b)


# ------------------------------------------------------------------------------------ mask estimation


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
