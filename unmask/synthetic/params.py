"""Sampling the factors of the world: identity (fixed per identity), camera style, per-image nuisance.

Each group is drawn from its own counter-based stream (see ``rng``), so identity ``k`` has the same
factors in every batch, camera ``c`` the same style in every image, and an image is fully determined
by ``(seed, identity, image_id, camera)``. Values are returned as a dict of float32 tensors ``(B,)``.
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


def _categorical(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(probs), u, side="right"), len(probs) - 1)


def identity_params(seed: int, identities: np.ndarray, *, correlation: float = 0.0) -> dict[str, np.ndarray]:
    """Identity factors, fixed per identity: dict of float32 arrays ``(B,)``.

    ``*_u`` fields are raw uniforms kept for categorical choices; the others are physical values in
    canonical image fractions (see ``EYE_Y``) or in [0, 1]. ``correlation`` is the world's face
    correlation ρ (:mod:`unmask.synthetic.correlation`; 0: independent draws).
    """
    return identity_params_from_uniforms(identity_uniforms(seed, identities, correlation, IDENTITY_FIELDS))


def identity_params_from_uniforms(u: np.ndarray) -> dict[str, np.ndarray]:
    """``identity_params`` of given uniforms ``u (B, len(IDENTITY_FIELDS))`` in [0, 1)."""
    f = {name: u[:, i] for i, name in enumerate(IDENTITY_FIELDS)}
    # Smooth factors: centre the uniforms (a sum of two uniforms is bell shaped, like real faces).
    z = {name: f[name] * 2.0 - 1.0 for name in f}
    p: dict[str, np.ndarray] = {}
    p["male"] = (f["male_u"] < 0.5).astype(np.float32)
    male = p["male"] > 0.5
    p["head_w"] = 0.226 * (1.0 + 0.07 * z["head_w"] + 0.02 * male)
    p["jaw_w"] = 0.93 + 0.09 * z["jaw_w"] + 0.03 * male
    p["jaw_k"] = 2.0 + 1.3 * f["jaw_k"] + 0.4 * male
    p["chin_y"] = 0.885 + 0.02 * z["chin_y"]
    p["top_y"] = 0.165 + 0.015 * z["top_y"]
    p["skin_tone"] = np.clip(f["skin_tone"] ** 1.3, 0.0, 1.0)
    p["skin_warm"] = z["skin_warm"]
    p["eye_dx"] = HALF_INTEROCULAR * (1.0 + 0.06 * z["eye_dx"])
    p["eye_y"] = EYE_Y + 0.008 * z["eye_y"]
    p["eye_w"] = 0.058 * (1.0 + 0.1 * z["eye_w"])
    p["eye_h"] = 0.42 + 0.12 * z["eye_h"]  # half opening / half width
    p["eye_tilt"] = 0.12 * z["eye_tilt"]
    p["iris_col"] = _categorical(f["iris_u"], IRIS_P).astype(np.float32)
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
    style_p = np.where(male[:, None], HAIR_STYLE_P_MALE[None], HAIR_STYLE_P_FEMALE[None])
    p["hair_style"] = np.array([_categorical(f["style_u"][i : i + 1], style_p[i])[0]
                                for i in range(len(u))], dtype=np.float32)
    p["hair_col"] = _categorical(f["hair_col_u"], HAIR_COLOUR_P).astype(np.float32)
    p["hair_shade"] = 0.8 + 0.4 * f["hair_shade"]
    p["hairline"] = 0.245 + 0.035 * z["hairline"]
    p["hair_vol"] = np.where(p["hair_style"] == HAIR_BALD, 0.006, 0.012 + 0.035 * f["hair_vol"])
    p["part"] = 0.06 * z["part"]
    beard = np.where(male, _categorical(f["beard_u"], BEARD_P_MALE), BEARD_NONE)
    p["beard"] = beard.astype(np.float32)
    p["beard_density"] = 0.6 + 0.4 * f["beard_density"]
    # A fifth of identities wear glasses in most images; the rest almost never.
    p["glasses_p"] = np.where(f["glasses_u"] < 0.2, 0.9, 0.02).astype(np.float32)
    p["glasses_style"] = f["glasses_style"]
    p["glasses_col"] = np.minimum((f["glasses_col_u"] * len(FRAME_COLOURS)), len(FRAME_COLOURS) - 1)
    p["hat_p"] = np.where(f["hat_u"] < 0.1, 0.5, 0.05).astype(np.float32)
    bangs_p = np.where(p["hair_style"] == HAIR_BOB, 0.6, np.where(p["hair_style"] == HAIR_BALD, 0.0, 0.15))
    p["bangs"] = (f["bangs_u"] < bangs_p).astype(np.float32)
    p["ear_size"] = 1.0 + 0.15 * z["ear_size"]
    p["blush"] = f["blush"]
    p["cheek"] = f["cheek"]
    p["neck_w"] = 0.095 + 0.02 * f["neck_w"] + 0.012 * male
    p["tex_id"] = np.floor(f["tex_u"] * 1e6)
    return {k: np.asarray(v, dtype=np.float32) for k, v in p.items()}


def camera_params(seed: int, cameras: np.ndarray, strength: float) -> dict[str, np.ndarray]:
    """Camera styles, fixed per camera id: colour cast, light bias, background family and palette."""
    u = rng.uniform(seed, "camera", cameras, n=len(CAMERA_FIELDS))
    return camera_params_from_uniforms(u, np.asarray(cameras) % N_BG_FAMILIES, strength)


def camera_params_from_uniforms(u: np.ndarray, bg_family: np.ndarray, strength: float) -> dict[str, np.ndarray]:
    """``camera_params`` of given uniforms ``u (B, len(CAMERA_FIELDS))`` and background families ``(B,)``."""
    f = {name: u[:, i] for i, name in enumerate(CAMERA_FIELDS)}
    s = strength
    p = {
        "cast_r": 1.0 + s * 0.09 * (2 * f["cast_r"] - 1) + s * 0.05 * (2 * f["warm"] - 1),
        "cast_g": 1.0 + s * 0.05 * (2 * f["cast_g"] - 1),
        "cast_b": 1.0 + s * 0.09 * (2 * f["cast_b"] - 1) - s * 0.05 * (2 * f["warm"] - 1),
        "bg_family": np.asarray(bg_family).astype(np.float64),
        "bg_h1": f["bg_h1"], "bg_s1": 0.1 + 0.45 * f["bg_s1"], "bg_v1": 0.25 + 0.65 * f["bg_v1"],
        "bg_h2": (f["bg_h1"] + 0.15 * (2 * f["bg_h2"] - 1)) % 1.0, "bg_s2": 0.05 + 0.4 * f["bg_s2"],
        "bg_v2": 0.15 + 0.75 * f["bg_v2"],
        "light_az": math.radians(40.0) * s * (2 * f["light_az"] - 1),
        "light_el": np.radians(15.0 + 25.0 * f["light_el"]),
        "light_str": 0.85 + 0.3 * f["light_str"],
        "blur": f["blur"], "noise": f["noise"],
        "grad_angle": 2 * math.pi * f["grad_angle"], "contrast": 1.0 + s * 0.08 * (2 * f["contrast"] - 1),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in p.items()}


def image_params(
    seed: int, identities: np.ndarray, image_ids: np.ndarray, cameras: np.ndarray,
    preset: NuisancePreset, ident: dict[str, np.ndarray], cam: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Per-image nuisance: pose, light, expression, accessories drawn, degradations, textures."""
    u = rng.uniform(seed, "image", identities, image_ids, cameras, n=len(IMAGE_FIELDS))
    return image_params_from_uniforms(u, preset, ident, cam)


def image_params_from_uniforms(
    u: np.ndarray, preset: NuisancePreset, ident: dict[str, np.ndarray], cam: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """``image_params`` of given uniforms ``u (B, len(IMAGE_FIELDS))``, for this identity and camera."""
    f = {name: u[:, i] for i, name in enumerate(IMAGE_FIELDS)}
    z = {name: f[name] * 2.0 - 1.0 for name in f}
    pr = preset
    p: dict[str, np.ndarray] = {}
    p["roll"] = np.radians(pr.roll_deg) * z["roll"]
    p["yaw"] = pr.yaw * z["yaw"]
    p["scale"] = 1.0 + pr.scale_jitter * z["scale"]
    p["tx"] = pr.translate * z["tx"]
    p["ty"] = pr.translate * z["ty"]
    p["light_az"] = cam["light_az"] + np.radians(pr.light_jitter_deg) * z["light_az"]
    p["light_el"] = cam["light_el"] + np.radians(10.0) * z["light_el"]
    lo, hi = pr.light_strength
    p["light_str"] = (lo + (hi - lo) * f["light_str"]) * cam["light_str"]
    lo, hi = pr.ambient
    p["ambient"] = lo + (hi - lo) * f["ambient"]
    smiling = f["smile_u"] < pr.smile_p
    p["smile"] = np.where(smiling, 0.45 + 0.55 * f["smile_amt"], 0.2 * f["smile_amt"])
    mouth_open = f["open_u"] < pr.open_mouth_p
    p["mouth_open"] = np.where(mouth_open, 0.4 + 0.6 * f["open_amt"], 0.0)
    p["eyes_closed"] = (f["closed_u"] < pr.closed_eyes_p).astype(np.float32)
    p["brow_raise"] = 0.006 * z["brow_raise"]
    p["gaze_x"] = 0.25 * z["gaze_x"]
    p["gaze_y"] = 0.12 * z["gaze_y"]
    p["blur"] = pr.blur_px * f["blur"] * (0.6 + 0.4 * cam["blur"])
    p["noise"] = pr.noise * f["noise"] * (0.5 + 0.5 * cam["noise"])
    p["jpeg"] = pr.compression * f["jpeg"]
    p["bg_a"], p["bg_b"], p["bg_c"] = f["bg_a"], f["bg_b"], f["bg_c"]
    p["glasses"] = (f["glasses_draw"] < ident["glasses_p"]).astype(np.float32)
    p["hat"] = (f["hat_draw"] < ident["hat_p"]).astype(np.float32)
    p["hat_style"] = (f["hat_style"] < 0.5).astype(np.float32)
    p["hat_h"], p["hat_v"] = f["hat_h"], f["hat_v"]
    p["cloth_h"], p["cloth_s"], p["cloth_v"] = f["cloth_h"], f["cloth_s"], f["cloth_v"]
    p["tex_i"], p["tex_sx"], p["tex_sy"] = f["tex_i"], f["tex_sx"], f["tex_sy"]
    p["noise_i"], p["noise_sx"], p["noise_sy"] = f["noise_i"], f["noise_sx"], f["noise_sy"]
    p["exposure"] = 1.0 + 0.08 * pr.camera_strength * z["exposure"]
    return {k: np.asarray(v, dtype=np.float32) for k, v in p.items()}


def to_torch(params: dict[str, np.ndarray], device: torch.device | str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in params.items()}
