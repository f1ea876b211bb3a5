"""Face geometry shared by the renderer and the landmarks, so that landmarks are exact by construction.

All positions are in *canonical* coordinates: fractions of the image side of an unposed face (the
FFHQ-aligned layout of ``params.EYE_Y``). The pose (roll, scale, translation) maps canonical points
to the image; ``to_image`` applies it, and the renderer applies its inverse to the pixel grid.
"""

from __future__ import annotations

import math

import torch

from unmask.synthetic.params import YAW_SHIFT

# Geometry constants shared by the renderer and the landmark function (canonical units).
WIDEST_BELOW_EYE = 0.005  # the face is widest this far below the eye line
CHIN_DROP_OPEN = 0.012  # an open mouth lowers the chin by this much
NOSE_TOP_ABOVE_EYE = 0.03
NOSTRIL_BELOW_TIP = 0.022
NOSE_TIP_YAW_GAIN = 0.6  # the nose tip, being nearer the camera, moves more under yaw
SMILE_LIFT = 0.018
SMILE_WIDEN = 0.12
MOUTH_GAP = 0.03
OUTLINE_YAW_SHARE = 0.2  # the head outline moves this share of the inner-face yaw shift
CLOSED_EYE_OPEN = 0.05


def derived(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Quantities used by both rendering and landmarks: dict of ``(B,)`` tensors."""
    g: dict[str, torch.Tensor] = {}
    g["shift_f"] = p["yaw"] * YAW_SHIFT
    g["shift_o"] = g["shift_f"] * OUTLINE_YAW_SHARE
    g["y0"] = p["eye_y"] + WIDEST_BELOW_EYE
    g["chin"] = p["chin_y"] + CHIN_DROP_OPEN * p["mouth_open"]
    g["jaw_len"] = g["chin"] - g["y0"]
    g["aj"] = p["head_w"] * p["jaw_w"]
    g["open_eye"] = (1.0 - p["eyes_closed"] * (1.0 - CLOSED_EYE_OPEN)) * (1.0 - 0.25 * p["smile"])
    g["eye_hu"] = p["eye_h"] * p["eye_w"] * g["open_eye"]  # upper-lid height above the eye axis
    g["eye_hl"] = 0.55 * p["eye_h"] * p["eye_w"] * g["open_eye"]  # lower-lid depth below it
    g["brow_cy"] = p["eye_y"] - p["brow_y"] - p["brow_raise"]
    g["brow_in"] = p["brow_gap"]
    g["brow_out"] = p["eye_dx"] + 1.3 * p["eye_w"]
    g["nose_top"] = p["eye_y"] - NOSE_TOP_ABOVE_EYE
    g["nose_tip"] = p["eye_y"] + p["nose_len"] * (p["mouth_y"] - p["eye_y"])
    g["nostril_y"] = g["nose_tip"] + NOSTRIL_BELOW_TIP
    g["mouth_w"] = p["mouth_w"] * (1.0 + SMILE_WIDEN * p["smile"])
    g["lift"] = SMILE_LIFT * p["smile"]
    g["gap"] = MOUTH_GAP * p["mouth_open"]
    return g


def outline_half_width(s: torch.Tensor, p: dict[str, torch.Tensor], g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Half width of the lower face at jaw parameter ``s`` in [0, 1] (0 = widest line, 1 = chin)."""
    k = _b(p["jaw_k"], s)
    a = _b(p["head_w"], s)
    aj = _b(g["aj"], s)
    s = s.clamp(0.0, 1.0)
    return (a + (aj - a) * s) * (1.0 - s.pow(k)).clamp_min(0.0).pow(1.0 / k)


def outline_shift(s: torch.Tensor, g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Horizontal yaw shift of the outline at jaw parameter ``s``: the chin follows the inner face."""
    so, sf = _b(g["shift_o"], s), _b(g["shift_f"], s)
    return so + (sf - so) * s.clamp(0.0, 1.0).square()


def upper_lip_thickness(mx: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Upper-lip thickness at relative mouth position ``mx`` in [-1, 1], with a cupid's-bow dip."""
    base = _b(p["lip_up"], mx) * (1.0 - mx.square()).clamp_min(0.0).sqrt()
    return base * (1.0 - 0.45 * _b(p["lip_bow"], mx) * torch.exp(-(mx / 0.13).square()))


def lower_lip_thickness(mx: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    return _b(p["lip_lo"], mx) * (1.0 - mx.square()).clamp_min(0.0).pow(0.7)


def lip_line(mx: torch.Tensor, p: dict[str, torch.Tensor], g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Canonical y of the line where the lips meet (top of the opening when the mouth is open)."""
    return _b(p["mouth_y"], mx) - _b(g["gap"], mx) * 0.3 - _b(g["lift"], mx) * mx.square()


def _b(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sample ``(B,)`` tensor against ``like`` of shape ``(B, ...)``."""
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def landmarks_canonical(p: dict[str, torch.Tensor], g: dict[str, torch.Tensor]) -> torch.Tensor:
    """The 68 iBUG landmarks in canonical coordinates, ``(B, 68, 2)`` as (x, y)."""
    b = p["yaw"].shape[0]
    dev = p["yaw"].device
    pts = torch.zeros(b, 68, 2, device=dev, dtype=p["yaw"].dtype)
    col = lambda t: t[:, None]  # noqa: E731
    mid_f = 0.5 + g["shift_f"]
    # Jaw 0..16: image left (subject's right) around the chin to image right.
    phi = torch.arange(9, device=dev, dtype=torch.float32) * (math.pi / 16.0)
    s = torch.sin(phi)[None, :].clamp_min(0.0).pow(2.0 / col(p["jaw_k"]))  # (B, 9)
    w = outline_half_width(s, p, g)
    sh = outline_shift(s, g)
    y = col(g["y0"]) + col(g["jaw_len"]) * s
    pts[:, 0:9, 0] = 0.5 + sh - w
    pts[:, 0:9, 1] = y
    pts[:, 9:17, 0] = (0.5 + sh + w)[:, :8].flip(1)
    pts[:, 9:17, 1] = y[:, :8].flip(1)
    # Brows 17..21 (image left, outer -> inner) and 22..26 (inner -> outer), along the brow centre line.
    t = torch.linspace(0.0, 1.0, 5, device=dev)[None, :]
    bx = col(g["brow_out"]) + (col(g["brow_in"]) - col(g["brow_out"])) * t  # distance from the midline
    by = brow_centre_y(bx, p, g)
    pts[:, 17:22, 0] = col(mid_f) - bx
    pts[:, 17:22, 1] = by
    pts[:, 22:27, 0] = col(mid_f) + bx.flip(1)
    pts[:, 22:27, 1] = by.flip(1)
    # Nose bridge 27..30 (top -> tip), nostril base 31..35 (image left -> right).
    t4 = torch.linspace(0.0, 1.0, 4, device=dev)[None, :]
    ny = col(g["nose_top"]) + (col(g["nose_tip"]) - col(g["nose_top"])) * t4
    pts[:, 27:31, 0] = col(mid_f) + col(g["shift_f"]) * NOSE_TIP_YAW_GAIN * t4
    pts[:, 27:31, 1] = ny
    nb = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], device=dev)[None, :]
    pts[:, 31:36, 0] = col(mid_f + g["shift_f"] * NOSE_TIP_YAW_GAIN * 0.8) + nb * col(p["nose_w"]) * 0.85
    pts[:, 31:36, 1] = col(g["nostril_y"]) - 0.006 * nb.abs()
    # Eyes 36..41 (image left: outer, upper x2, inner, lower x2) and 42..47 (image right: inner ...).
    ex = torch.tensor([1.0, 0.4, -0.4, -1.0, -0.4, 0.4], device=dev)[None, :]  # + = outer
    upper = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 0.0], device=dev)[None, :]
    lower = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 1.0], device=dev)[None, :]
    ey = eye_lid_offset(ex, upper, lower, p, g)
    pts[:, 36:42, 0] = col(mid_f) - (col(p["eye_dx"]) + ex * col(p["eye_w"]))
    pts[:, 36:42, 1] = col(p["eye_y"]) + ey
    ex_r = torch.tensor([-1.0, -0.4, 0.4, 1.0, 0.4, -0.4], device=dev)[None, :]
    ey_r = eye_lid_offset(ex_r, upper, lower, p, g)
    pts[:, 42:48, 0] = col(mid_f) + (col(p["eye_dx"]) + ex_r * col(p["eye_w"]))
    pts[:, 42:48, 1] = col(p["eye_y"]) + ey_r
    # Outer lips 48..59 and inner lips 60..67.
    mw = col(g["mouth_w"])
    mxo = torch.tensor([-1.0, -0.6, -0.25, 0.0, 0.25, 0.6, 1.0, 0.6, 0.25, 0.0, -0.25, -0.6], device=dev)[None]
    top = torch.tensor([0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], device=dev, dtype=torch.bool)[None]
    mxo = mxo.expand(b, -1)
    line = lip_line(mxo, p, g)
    low_inner = line + col(g["gap"]) * (1.0 - mxo.square())
    y_top = line - upper_lip_thickness(mxo, p)
    y_bot = low_inner + lower_lip_thickness(mxo, p)
    pts[:, 48:60, 0] = col(mid_f) + mxo * mw
    pts[:, 48:60, 1] = torch.where(top, y_top, y_bot)
    pts[:, [48, 54], 1] = line[:, [0, 6]]
    mxi = torch.tensor([-0.85, -0.35, 0.0, 0.35, 0.85, 0.35, 0.0, -0.35], device=dev)[None].expand(b, -1)
    topi = torch.tensor([0, 1, 1, 1, 0, 0, 0, 0], device=dev, dtype=torch.bool)[None]
    line_i = lip_line(mxi, p, g)
    pts[:, 60:68, 0] = col(mid_f) + mxi * mw
    pts[:, 60:68, 1] = torch.where(topi, line_i, line_i + col(g["gap"]) * (1.0 - mxi.square()))
    pts[:, [60, 64], 1] = line_i[:, [0, 4]] + 0.5 * col(g["gap"]) * (1.0 - 0.85**2)
    return pts


def brow_centre_y(bx: torch.Tensor, p: dict[str, torch.Tensor], g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Canonical y of the brow centre line at distance ``bx`` from the face midline (arched)."""
    bin_, bout = _b(g["brow_in"], bx), _b(g["brow_out"], bx)
    t = ((bx - bin_) / (bout - bin_)).clamp(0.0, 1.0)
    arch = _b(p["brow_arch"], bx) * (1.0 - ((t - 0.55) / 0.55).square())
    return _b(g["brow_cy"], bx) + 0.006 - arch + 0.004 * t


def eye_lid_offset(ex, upper, lower, p, g):
    """y offset (canonical) of the eyelid at relative position ``ex`` (+1 = outer corner) from the eye
    centre: on the upper lid where ``upper``, the lower lid where ``lower``, the axis otherwise."""
    shape = (1.0 - ex.square()).clamp_min(0.0)
    up = -_b(g["eye_hu"], ex) * shape.pow(0.8) * (1.0 + 0.15 * ex)
    lo = _b(g["eye_hl"], ex) * shape
    tilt = -_b(p["eye_tilt"], ex) * ex * _b(p["eye_w"], ex)
    return tilt + upper * up + lower * lo


def to_image(points: torch.Tensor, p: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Canonical ``(B, N, 2)`` points -> pixel coordinates (pixel centres at integers)."""
    c, s = torch.cos(p["roll"])[:, None], torch.sin(p["roll"])[:, None]
    sc = p["scale"][:, None]
    x, y = points[..., 0] - 0.5, points[..., 1] - 0.5
    xi = 0.5 + p["tx"][:, None] + sc * (c * x - s * y)
    yi = 0.5 + p["ty"][:, None] + sc * (s * x + c * y)
    return torch.stack([xi * size - 0.5, yi * size - 0.5], dim=-1)
