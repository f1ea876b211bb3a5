"""Sampling the factors of the world: identity (fixed per identity), camera style, per-image nuisance.

Each group is drawn from its own counter-based stream (see ``rng``), so identity ``k`` has the same
factors in every batch, camera ``c`` the same style in every image, and an image is fully determined
by ``(seed, identity, image_id, camera)``. Values are returned as a dict of float32 tensors ``(B,)``.

The maps from uniforms to factors (``*_params_from_uniforms``) are the one implementation the world and the
painter generator (:class:`unmask.models.painter.PainterGenerator`) share. They are torch functions of
float64 uniforms, differentiable wherever the factor is a continuous function of its uniform (a threshold or a
categorical choice has no gradient), on any device. Every factor is computed in float64 and rounded once to
float32 at the end, so the factors of a world draw are the same bits on every call.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from unmask.synthetic import rng
from unmask.synthetic.config import NuisancePreset
from unmask.synthetic.correlation import identity_uniforms

# Categorical palettes. Colours are display RGB in [0, 1].
SKIN_PALETTE = np.array(
    [[0.97, 0.82, 0.72], [0.92, 0.72, 0.60], [0.82, 0.60, 0.46], [0.68, 0.47, 0.33],
     [0.50, 0.33, 0.22], [0.33, 0.21, 0.14]], dtype=np.float32)
HAIR_COLOURS = np.array(
    [[0.07, 0.055, 0.05], [0.20, 0.13, 0.08], [0.38, 0.25, 0.15], [0.80, 0.66, 0.42],
     [0.58, 0.25, 0.11], [0.66, 0.65, 0.64]], dtype=np.float32)  # black, dark brown, brown, blond, red, grey
HAIR_COLOUR_P = np.array([0.34, 0.24, 0.16, 0.13, 0.05, 0.08])
BLACK_HAIR, BLOND_HAIR = 0, 3
IRIS_COLOURS = np.array(
    [[0.30, 0.17, 0.08], [0.14, 0.08, 0.04], [0.42, 0.36, 0.17], [0.30, 0.45, 0.30],
     [0.32, 0.48, 0.68], [0.48, 0.53, 0.58]], dtype=np.float32)
IRIS_P = np.array([0.35, 0.25, 0.1, 0.08, 0.15, 0.07])
FRAME_COLOURS = np.array(
    [[0.05, 0.05, 0.05], [0.30, 0.18, 0.10], [0.75, 0.62, 0.30], [0.72, 0.72, 0.74]], dtype=np.float32)

# Hair styles and facial hair types.
HAIR_SHORT, HAIR_MEDIUM, HAIR_LONG, HAIR_BALD, HAIR_BOB = range(5)
HAIR_STYLE_P_MALE = np.array([0.55, 0.15, 0.05, 0.18, 0.07])
HAIR_STYLE_P_FEMALE = np.array([0.08, 0.30, 0.40, 0.0, 0.22])
HAIR_LENGTH = np.array([0.0, 0.64, 1.2, 0.0, 0.76], dtype=np.float32)  # bottom of the back hair (canonical y)
BEARD_NONE, BEARD_STUBBLE, BEARD_MOUSTACHE, BEARD_GOATEE, BEARD_FULL = range(5)
BEARD_P_MALE = np.array([0.45, 0.15, 0.10, 0.12, 0.18])

# Canonical face layout (fractions of the image side) of an FFHQ-aligned crop: eye centres near
# (0.376, 0.469) and (0.625, 0.469), mouth centre near (0.5, 0.703) -- see unmask.faces.align.
EYE_Y = 0.469
HALF_INTEROCULAR = 0.1245
MOUTH_Y = 0.703
# A yaw of 1 shifts the inner face this far (image fractions) against the head outline.
YAW_SHIFT = 0.05

IDENTITY_FIELDS = (
    "head_w", "jaw_w", "jaw_k", "chin_y", "top_y", "skin_tone", "skin_warm", "eye_dx", "eye_w", "eye_h",
    "eye_tilt", "iris_u", "iris_shade", "brow_thick", "brow_arch", "brow_y", "nose_len", "nose_w",
    "mouth_w", "lip_up", "lip_lo", "lip_red", "style_u", "hair_col_u", "hair_shade", "hairline",
    "hair_vol", "male_u", "beard_u", "glasses_u", "glasses_style", "glasses_col_u", "hat_u", "bangs_u",
    "part", "eye_y", "mouth_y", "ear_size", "blush", "neck_w", "tex_u", "beard_density", "brow_gap",
    "nose_bridge", "cheek", "lip_bow",
)
# Identity factors that are continuous: the "face code" used to measure distinguishability.
CONTINUOUS_IDENTITY = (
    "head_w", "jaw_w", "jaw_k", "chin_y", "skin_tone", "skin_warm", "eye_dx", "eye_w", "eye_h", "eye_tilt",
    "iris_shade", "brow_thick", "brow_arch", "brow_y", "nose_len", "nose_w", "mouth_w", "lip_up", "lip_lo",
    "lip_red", "hair_shade", "hairline", "hair_vol", "eye_y", "mouth_y", "ear_size", "blush", "neck_w",
    "brow_gap", "nose_bridge", "cheek", "lip_bow",
)
IMAGE_FIELDS = (
    "roll", "yaw", "scale", "tx", "ty", "light_az", "light_el", "light_str", "ambient", "smile_u",
    "smile_amt", "open_u", "open_amt", "closed_u", "brow_raise", "gaze_x", "gaze_y", "blur", "noise",
    "jpeg", "bg_a", "bg_b", "bg_c", "glasses_draw", "hat_draw", "hat_style", "hat_h", "hat_v", "cloth_h",
    "cloth_s", "cloth_v", "tex_i", "tex_sx", "tex_sy", "exposure", "noise_i", "noise_sx", "noise_sy",
)
#: Background families of the painter; camera ``c`` paints family ``c % N_BG_FAMILIES``.
N_BG_FAMILIES = 6
CAMERA_FIELDS = (
    "cast_r", "cast_g", "cast_b", "bg_h1", "bg_s1", "bg_v1", "bg_h2", "bg_s2", "bg_v2", "light_az",
    "light_el", "light_str", "blur", "noise", "grad_angle", "contrast", "warm",
)


def _cumulative(probs: np.ndarray) -> np.ndarray:
    """Cumulative probabilities of a categorical table, float64 (computed once, in numpy, for every device)."""
    return np.cumsum(probs)


_IRIS_CDF = _cumulative(IRIS_P)
_HAIR_COLOUR_CDF = _cumulative(HAIR_COLOUR_P)
_STYLE_CDF_MALE = _cumulative(HAIR_STYLE_P_MALE)
_STYLE_CDF_FEMALE = _cumulative(HAIR_STYLE_P_FEMALE)
_BEARD_CDF_MALE = _cumulative(BEARD_P_MALE)


def _categorical(u: torch.Tensor, cdf: np.ndarray) -> torch.Tensor:
    """Index of the bin of ``u`` in the cumulative table ``cdf``: the inverse CDF of a categorical (no gradient)."""
    table = torch.as_tensor(cdf, dtype=torch.float64, device=u.device)
    idx = torch.searchsorted(table, u.detach().double().contiguous(), right=True)
    return idx.clamp_max(len(cdf) - 1).double()


def _uniforms(u, n_fields: int, what: str) -> torch.Tensor:
    """``u`` as a float64 tensor ``(B, n_fields)`` (numpy arrays are converted; torch tensors keep their graph)."""
    t = torch.from_numpy(np.ascontiguousarray(u)) if isinstance(u, np.ndarray) else torch.as_tensor(u)
    if t.dim() != 2 or t.shape[1] != n_fields:
        from unmask.errors import InputShapeError

        raise InputShapeError(f"{what} uniforms must have shape (B, {n_fields}); got {tuple(t.shape)}.")
    return t.double()


def _rounded(p: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The factors in their output precision: float32, the world's (float64 only for finite-difference checks)."""
    return {k: v.to(dtype) for k, v in p.items()}


def _on(value, like: torch.Tensor) -> torch.Tensor:
    """A factor of another group (numpy or torch, float32) as a tensor on ``like``'s device, dtype kept."""
    t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    return t.to(like.device)


def identity_params(seed: int, identities: np.ndarray, *, correlation: float = 0.0) -> dict[str, torch.Tensor]:
    """Identity factors, fixed per identity: dict of float32 tensors ``(B,)`` (on the CPU).

    ``*_u`` fields are raw uniforms kept for categorical choices; the others are physical values in
    canonical image fractions (see ``EYE_Y``) or in [0, 1]. ``correlation`` is the world's face
    correlation ρ (:mod:`unmask.synthetic.correlation`; 0: independent draws).
    """
    return identity_params_from_uniforms(identity_uniforms(seed, identities, correlation, IDENTITY_FIELDS))


def identity_params_from_uniforms(u, *, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``identity_params`` of given uniforms ``u (B, len(IDENTITY_FIELDS))`` in [0, 1) (numpy or torch).

    Returns tensors ``(B,)`` of ``dtype`` (float32: the world's) on ``u``'s device; differentiable in ``u`` for the
    continuous factors.
    """
    u = _uniforms(u, len(IDENTITY_FIELDS), "identity")
    f = {name: u[:, i] for i, name in enumerate(IDENTITY_FIELDS)}
    # Smooth factors: centre the uniforms (a sum of two uniforms is bell shaped, like real faces).
    z = {name: f[name] * 2.0 - 1.0 for name in f}
    p: dict[str, torch.Tensor] = {}
    male_b = f["male_u"].detach() < 0.5
    male = male_b.double()
    p["male"] = male
    p["head_w"] = 0.226 * (1.0 + 0.07 * z["head_w"] + 0.02 * male)
    p["jaw_w"] = 0.93 + 0.09 * z["jaw_w"] + 0.03 * male
    p["jaw_k"] = 2.0 + 1.3 * f["jaw_k"] + 0.4 * male
    p["chin_y"] = 0.885 + 0.02 * z["chin_y"]
    p["top_y"] = 0.165 + 0.015 * z["top_y"]
    p["skin_tone"] = torch.clamp(f["skin_tone"] ** 1.3, 0.0, 1.0)
    p["skin_warm"] = z["skin_warm"]
    p["eye_dx"] = HALF_INTEROCULAR * (1.0 + 0.06 * z["eye_dx"])
    p["eye_y"] = EYE_Y + 0.008 * z["eye_y"]
    p["eye_w"] = 0.058 * (1.0 + 0.1 * z["eye_w"])
    p["eye_h"] = 0.42 + 0.12 * z["eye_h"]  # half opening / half width
    p["eye_tilt"] = 0.12 * z["eye_tilt"]
    p["iris_col"] = _categorical(f["iris_u"], _IRIS_CDF)
    p["iris_shade"] = 0.8 + 0.4 * f["iris_shade"]
    p["brow_thick"] = 0.009 + 0.008 * f["brow_thick"] + 0.003 * male
    p["brow_arch"] = 0.006 + 0.014 * f["brow_arch"]
    p["brow_y"] = 0.058 + 0.012 * z["brow_y"]  # brow centre above the eye centre
    p["brow_gap"] = 0.045 + 0.015 * z["brow_gap"]  # inner brow end from the face midline
    p["nose_len"] = 0.60 + 0.08 * z["nose_len"]  # nose tip at this share of eye -> mouth
    p["nose_w"] = 0.042 * (1.0 + 0.18 * z["nose_w"] + 0.05 * male)
    p["nose_bridge"] = 0.5 + 0.5 * f["nose_bridge"]
    p["mouth_y"] = MOUTH_Y + 0.012 * z["mouth_y"]
    p["mouth_w"] = 0.092 * (1.0 + 0.12 * z["mouth_w"])
    p["lip_up"] = 0.021 * (1.0 + 0.35 * z["lip_up"] - 0.1 * male)
    p["lip_lo"] = 0.028 * (1.0 + 0.35 * z["lip_lo"] - 0.1 * male)
    p["lip_red"] = f["lip_red"]
    p["lip_bow"] = 0.25 + 0.5 * f["lip_bow"]
    p["hair_style"] = torch.where(male_b, _categorical(f["style_u"], _STYLE_CDF_MALE),
                                  _categorical(f["style_u"], _STYLE_CDF_FEMALE))
    p["hair_col"] = _categorical(f["hair_col_u"], _HAIR_COLOUR_CDF)
    p["hair_shade"] = 0.8 + 0.4 * f["hair_shade"]
    p["hairline"] = 0.245 + 0.035 * z["hairline"]
    bald = p["hair_style"] == HAIR_BALD
    p["hair_vol"] = torch.where(bald, torch.full_like(f["hair_vol"], 0.006), 0.012 + 0.035 * f["hair_vol"])
    p["part"] = 0.06 * z["part"]
    p["beard"] = torch.where(male_b, _categorical(f["beard_u"], _BEARD_CDF_MALE),
                             torch.full_like(male, float(BEARD_NONE)))
    p["beard_density"] = 0.6 + 0.4 * f["beard_density"]
    # A fifth of identities wear glasses in most images; the rest almost never.
    p["glasses_p"] = _choose(f["glasses_u"].detach() < 0.2, 0.9, 0.02)
    p["glasses_style"] = f["glasses_style"]
    p["glasses_col"] = torch.clamp_max(f["glasses_col_u"].detach() * len(FRAME_COLOURS), len(FRAME_COLOURS) - 1)
    p["hat_p"] = _choose(f["hat_u"].detach() < 0.1, 0.5, 0.05)
    bangs_p = torch.where(p["hair_style"] == HAIR_BOB, 0.6, _choose(bald, 0.0, 0.15))
    p["bangs"] = (f["bangs_u"].detach() < bangs_p).double()
    p["ear_size"] = 1.0 + 0.15 * z["ear_size"]
    p["blush"] = f["blush"]
    p["cheek"] = f["cheek"]
    p["neck_w"] = 0.095 + 0.02 * f["neck_w"] + 0.012 * male
    p["tex_id"] = torch.floor(f["tex_u"].detach() * 1e6)
    return _rounded(p, dtype)


def _choose(condition: torch.Tensor, if_true: float, if_false: float) -> torch.Tensor:
    """``if_true`` where ``condition`` else ``if_false``, float64 (a constant per branch: no gradient)."""
    true = torch.full(condition.shape, if_true, dtype=torch.float64, device=condition.device)
    return torch.where(condition, true, torch.full_like(true, if_false))


def camera_params(seed: int, cameras: np.ndarray, strength: float) -> dict[str, torch.Tensor]:
    """Camera styles, fixed per camera id: colour cast, light bias, background family and palette."""
    u = rng.uniform(seed, "camera", cameras, n=len(CAMERA_FIELDS))
    return camera_params_from_uniforms(u, np.asarray(cameras) % N_BG_FAMILIES, strength)


def camera_params_from_uniforms(u, bg_family, strength: float, *,
                                dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``camera_params`` of given uniforms ``u (B, len(CAMERA_FIELDS))`` and background families ``(B,)``.

    Returns float32 tensors ``(B,)`` on ``u``'s device (the family is a number in ``0 .. N_BG_FAMILIES - 1``).
    """
    u = _uniforms(u, len(CAMERA_FIELDS), "camera")
    f = {name: u[:, i] for i, name in enumerate(CAMERA_FIELDS)}
    s = strength
    family = torch.as_tensor(np.asarray(bg_family) if not isinstance(bg_family, torch.Tensor) else bg_family)
    p = {
        "cast_r": 1.0 + s * 0.09 * (2 * f["cast_r"] - 1) + s * 0.05 * (2 * f["warm"] - 1),
        "cast_g": 1.0 + s * 0.05 * (2 * f["cast_g"] - 1),
        "cast_b": 1.0 + s * 0.09 * (2 * f["cast_b"] - 1) - s * 0.05 * (2 * f["warm"] - 1),
        "bg_family": family.to(u.device).double(),
        "bg_h1": f["bg_h1"], "bg_s1": 0.1 + 0.45 * f["bg_s1"], "bg_v1": 0.25 + 0.65 * f["bg_v1"],
        "bg_h2": (f["bg_h1"] + 0.15 * (2 * f["bg_h2"] - 1)) % 1.0, "bg_s2": 0.05 + 0.4 * f["bg_s2"],
        "bg_v2": 0.15 + 0.75 * f["bg_v2"],
        "light_az": math.radians(40.0) * s * (2 * f["light_az"] - 1),
        "light_el": (15.0 + 25.0 * f["light_el"]) * _DEG,
        "light_str": 0.85 + 0.3 * f["light_str"],
        "blur": f["blur"], "noise": f["noise"],
        "grad_angle": 2 * math.pi * f["grad_angle"], "contrast": 1.0 + s * 0.08 * (2 * f["contrast"] - 1),
    }
    return _rounded(p, dtype)


#: Degrees to radians, as ``np.radians`` computes it (``x * (pi / 180)``).
_DEG = math.pi / 180.0


def image_params(
    seed: int, identities: np.ndarray, image_ids: np.ndarray, cameras: np.ndarray,
    preset: NuisancePreset, ident: dict[str, torch.Tensor], cam: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per-image nuisance: pose, light, expression, accessories drawn, degradations, textures."""
    u = rng.uniform(seed, "image", identities, image_ids, cameras, n=len(IMAGE_FIELDS))
    return image_params_from_uniforms(u, preset, ident, cam)


def image_params_from_uniforms(
    u, preset: NuisancePreset, ident: dict[str, torch.Tensor], cam: dict[str, torch.Tensor], *,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """``image_params`` of given uniforms ``u (B, len(IMAGE_FIELDS))``, for this identity and camera.

    ``ident`` and ``cam`` are the float32 factors of :func:`identity_params_from_uniforms` and
    :func:`camera_params_from_uniforms`. Returns float32 tensors ``(B,)`` on ``u``'s device.
    """
    u = _uniforms(u, len(IMAGE_FIELDS), "image")
    f = {name: u[:, i] for i, name in enumerate(IMAGE_FIELDS)}
    z = {name: f[name] * 2.0 - 1.0 for name in f}
    # The camera's float32 factors enter as float32, as the world has always combined them (a float32 factor
    # times a Python number stays float32; with a float64 array it becomes float64).
    cam = {k: _on(cam[k], u) for k in ("light_az", "light_el", "light_str", "blur", "noise")}
    pr = preset
    p: dict[str, torch.Tensor] = {}
    p["roll"] = math.radians(pr.roll_deg) * z["roll"]
    p["yaw"] = pr.yaw * z["yaw"]
    p["scale"] = 1.0 + pr.scale_jitter * z["scale"]
    p["tx"] = pr.translate * z["tx"]
    p["ty"] = pr.translate * z["ty"]
    p["light_az"] = cam["light_az"] + math.radians(pr.light_jitter_deg) * z["light_az"]
    p["light_el"] = cam["light_el"] + math.radians(10.0) * z["light_el"]
    lo, hi = pr.light_strength
    p["light_str"] = (lo + (hi - lo) * f["light_str"]) * cam["light_str"]
    lo, hi = pr.ambient
    p["ambient"] = lo + (hi - lo) * f["ambient"]
    smiling = f["smile_u"].detach() < pr.smile_p
    p["smile"] = torch.where(smiling, 0.45 + 0.55 * f["smile_amt"], 0.2 * f["smile_amt"])
    mouth_open = f["open_u"].detach() < pr.open_mouth_p
    p["mouth_open"] = torch.where(mouth_open, 0.4 + 0.6 * f["open_amt"], torch.zeros_like(f["open_amt"]))
    p["eyes_closed"] = (f["closed_u"].detach() < pr.closed_eyes_p).double()
    p["brow_raise"] = 0.006 * z["brow_raise"]
    p["gaze_x"] = 0.25 * z["gaze_x"]
    p["gaze_y"] = 0.12 * z["gaze_y"]
    p["blur"] = pr.blur_px * f["blur"] * (0.6 + 0.4 * cam["blur"])
    p["noise"] = pr.noise * f["noise"] * (0.5 + 0.5 * cam["noise"])
    p["jpeg"] = pr.compression * f["jpeg"]
    p["bg_a"], p["bg_b"], p["bg_c"] = f["bg_a"], f["bg_b"], f["bg_c"]
    p["glasses"] = (f["glasses_draw"].detach() < _on(ident["glasses_p"], u)).double()
    p["hat"] = (f["hat_draw"].detach() < _on(ident["hat_p"], u)).double()
    p["hat_style"] = (f["hat_style"].detach() < 0.5).double()
    p["hat_h"], p["hat_v"] = f["hat_h"], f["hat_v"]
    p["cloth_h"], p["cloth_s"], p["cloth_v"] = f["cloth_h"], f["cloth_s"], f["cloth_v"]
    p["tex_i"], p["tex_sx"], p["tex_sy"] = f["tex_i"], f["tex_sx"], f["tex_sy"]
    p["noise_i"], p["noise_sx"], p["noise_sy"] = f["noise_i"], f["noise_sx"], f["noise_sy"]
    p["exposure"] = 1.0 + 0.08 * pr.camera_strength * z["exposure"]
    return _rounded(p, dtype)


def to_torch(params: dict[str, np.ndarray | torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Factors as float32 tensors on ``device`` (numpy arrays are converted)."""
    out = {}
    for k, v in params.items():
        t = torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
        out[k] = t.to(device)
    return out
