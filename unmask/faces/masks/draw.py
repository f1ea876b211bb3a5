"""Drawing a mask on a face: procedural fabric (surgical, cloth, patterned, N95, KN95) and real-mask photos.

Training pairs for unmasking are made the way MaskTheFace (Anwar & Raychowdhury, 2020) makes them:
a mask shape is fitted to the landmark geometry (:mod:`unmask.faces.masks.geometry`) and drawn over an
unmasked face, so the clean face is the target and the drawn pixels are the occlusion. Edges are
anti-aliased by supersampling (4× on small faces) and area averaging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from unmask.errors import ConfigError
from unmask.faces.io import check_landmarks68, check_rgb_uint8
from unmask.faces.masks.geometry import (
    _EYE_MARGIN,
    _MAX_SUPERSAMPLE,
    _MIN_MARGIN_PX,
    _SHIFT,
    _SUPERSAMPLE_TARGET,
    MASK_TYPES,
    PHOTO_MASK_TYPES,
    _downsample,
    _fixed,
    _Frame,
    _Jitter,
    _limits,
    _outline,
    _pick_type,
    _rng,
    _width,
)

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

# Drawing, in eye-distance units unless said otherwise.
_LOOP_THICKNESS = 0.035  # ear loops and straps
_HEM_THICKNESS = 0.05  # darker hem along the outline
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
