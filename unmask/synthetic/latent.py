"""The teaching world's latent: z is the world's own factors in Gaussian coordinates.

Every teaching face is a deterministic function of uniform draws ``u`` in [0, 1): the identity,
camera and image fields of :mod:`unmask.synthetic.params`. The map

    z_i = Φ⁻¹(u_i)        u_i = Φ(z_i)        (Φ: the standard normal CDF)

turns them into a standard-normal vector, so ``z ~ N(0, I)`` is exactly the world's distribution
and the face of any z can be painted. Coordinates are in :data:`FACTOR_NAMES` order: the
identity fields, then the camera fields, then the background family, then the image fields,
each name prefixed by its group (``"identity.nose_w"``, ``"image.yaw"``, ``"camera.light_az"``).
A generator's ``style_dim`` is usually larger; the dimensions after the factors are padding that
the world ignores.

Discrete choices are functions of a uniform too, so the map stays a function of z:

* the params' own rules, e.g. ``male = u < 0.5``, hair style and iris colour by the inverse CDF of
  their categorical tables, texture index ``floor(u * 16)``, texture shifts ``floor(u * size)``;
* the background family, which the world takes from the camera id (``camera % 6``), is
  ``floor(6 u)`` of the coordinate ``"camera.bg_family"``; a world draw of camera ``c`` gets the
  centre of its bin, ``u = (c % 6 + 0.5) / 6``.

:data:`DISCRETE_FACTORS` names every coordinate that only acts through such a rule (the face
jumps where ``u`` crosses a threshold and is flat in between).

One difference from the world's own draws: the world has ``n_cameras`` fixed cameras, so its
camera coordinates take only that many values; a z drawn from N(0, I) draws a fresh camera for
each image (a world with unboundedly many cameras).

Precision: the map is computed in float64. ``z`` of a world draw, kept in float64, paints the
world's own render bit for bit; in float32 the factors move by about 1e-7 (the face by as much).

    >>> from unmask.synthetic import FaceWorld, WorldConfig
    >>> world = FaceWorld(WorldConfig(size=64))
    >>> z = world_z(world, torch.arange(4), torch.zeros(4, dtype=torch.long), torch.arange(4))
    >>> render_z(world, z).images.shape
    torch.Size([4, 3, 64, 64])
"""

from __future__ import annotations

import numpy as np
import torch

from unmask.errors import InputShapeError
from unmask.synthetic import params as P
from unmask.synthetic import rng
from unmask.synthetic.correlation import identity_uniforms
from unmask.synthetic.world import FaceWorld, RenderOutput

#: Names of the z coordinates, in order (stored with a teaching generator's config).
FACTOR_NAMES: tuple[str, ...] = (
    tuple(f"identity.{name}" for name in P.IDENTITY_FIELDS)
    + tuple(f"camera.{name}" for name in P.CAMERA_FIELDS)
    + ("camera.bg_family",)
    + tuple(f"image.{name}" for name in P.IMAGE_FIELDS)
)
N_FACTORS = len(FACTOR_NAMES)
_IDENTITY = slice(0, len(P.IDENTITY_FIELDS))
_CAMERA = slice(_IDENTITY.stop, _IDENTITY.stop + len(P.CAMERA_FIELDS))
_BG_FAMILY = _CAMERA.stop
_IMAGE = slice(_BG_FAMILY + 1, N_FACTORS)

#: Coordinates that act only through a threshold or quantile rule (see the module docstring).
DISCRETE_FACTORS: frozenset[str] = frozenset(
    [f"identity.{name}" for name in ("iris_u", "style_u", "hair_col_u", "male_u", "beard_u", "glasses_u",
                                     "glasses_col_u", "hat_u", "bangs_u", "tex_u")]
    + ["camera.bg_family"]
    + [f"image.{name}" for name in ("smile_u", "open_u", "closed_u", "glasses_draw", "hat_draw", "hat_style",
                                    "tex_i", "tex_sx", "tex_sy", "noise_i", "noise_sx", "noise_sy")]
)

#: Continuous coordinates that *also* select something discrete: ``image.bg_a`` picks the background's texture
#: (``floor(16 u)``) and ``image.bg_b`` / ``image.bg_c`` its integer shift (``floor(size u)``, a pixel per
#: ``1 / size`` of u) while they shade the background's colours and gradient. Their gradient exists (the colours;
#: the shift straight-through), but a gradient step of a few hundredths of u jumps to another texture or shift, so
#: an optimisation keeps them where they start (:attr:`unmask.models.painter.PainterGenerator.discrete_latents`).
TEXTURE_SELECTORS: frozenset[str] = frozenset({"image.bg_a", "image.bg_b", "image.bg_c"})

#: The range of ``rng.uniform`` is the multiples of 2⁻⁵³ in [0, 1 - 2⁻⁵³]; factors are clipped to
#: [U_MIN, U_MAX] so that every z is finite and every factor a value the world can draw (u = 0, drawn
#: with probability 2⁻⁵³, becomes 2⁻⁵³).
U_MIN = 2.0**-53
U_MAX = 1.0 - 2.0**-53


def _check_factors(factors: torch.Tensor) -> None:
    if not isinstance(factors, torch.Tensor) or factors.dim() != 2 or factors.shape[1] != N_FACTORS:
        got = tuple(factors.shape) if isinstance(factors, torch.Tensor) else type(factors).__name__
        raise InputShapeError(f"factors must be a (B, {N_FACTORS}) tensor of uniforms in FACTOR_NAMES order, "
                              f"got {got}.")
    if not factors.is_floating_point() or bool(((factors < 0) | (factors > 1) | factors.isnan()).any()):
        raise InputShapeError("factors must be floating-point uniforms in [0, 1]; map Gaussian latents with "
                              "z_to_factors(z) first.")


def factors_to_z(factors: torch.Tensor, style_dim: int | None = None, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian coordinates ``z = Φ⁻¹(u)`` of factor uniforms, padded to ``style_dim``.

    Args:
        factors: ``(B, N_FACTORS)`` uniforms in [0, 1] in :data:`FACTOR_NAMES` order.
        style_dim: length of the returned z (``>= N_FACTORS``); ``None`` returns only the factors.
        generator: fills the padding with N(0, 1) draws from it, as the padding of a z drawn from
            N(0, I) would be; ``None`` fills it with zeros. (A StyleGAN2 mapping network starts with
            a pixel norm over all of z, so the padding changes what the network sees; use the same
            choice in training and in use.)

    Returns:
        ``(B, style_dim)`` float64 on the factors' device.
    """
    _check_factors(factors)
    z = torch.special.ndtri(factors.double().clamp(U_MIN, U_MAX))
    if style_dim is None or style_dim == N_FACTORS:
        return z
    if style_dim < N_FACTORS:
        raise InputShapeError(f"style_dim={style_dim} cannot hold the world's {N_FACTORS} factors; "
                              f"use a generator with style_dim >= {N_FACTORS}.")
    shape = (z.shape[0], style_dim - N_FACTORS)
    if generator is None:
        pad = torch.zeros(shape, dtype=z.dtype, device=z.device)
    else:
        pad = torch.randn(shape, generator=generator, dtype=z.dtype, device=generator.device).to(z.device)
    return torch.cat([z, pad], dim=1)


def z_to_factors(z: torch.Tensor) -> torch.Tensor:
    """Factor uniforms ``u = Φ(z)`` of the first :data:`N_FACTORS` coordinates (the padding is ignored).

    Args:
        z: ``(B, D)`` with ``D >= N_FACTORS``, any floating dtype.

    Returns:
        ``(B, N_FACTORS)`` float64 in [U_MIN, U_MAX].
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] < N_FACTORS or not z.is_floating_point():
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise InputShapeError(f"z must be a float (B, D) tensor with D >= {N_FACTORS} (the world's factors), "
                              f"got {got}.")
    if bool(z[:, :N_FACTORS].isnan().any()):
        raise InputShapeError("z has NaN entries in its factor coordinates.")
    return torch.special.ndtr(z[:, :N_FACTORS].double()).clamp(U_MIN, U_MAX)


def world_factors(world: FaceWorld, identities, image_ids, cameras) -> torch.Tensor:
    """The uniforms the world draws for these faces: ``(B, N_FACTORS)`` float64.

    Args:
        world: the world (its seed names the draws).
        identities, image_ids, cameras: ``(B,)`` integer ids, as for ``FaceWorld.render``.
    """
    world.params(identities, image_ids, cameras)  # validates the ids with the world's own messages
    ids, img, cams = (np.asarray(torch.as_tensor(x).cpu(), dtype=np.int64) for x in (identities, image_ids, cameras))
    seed = world.config.seed
    ident = identity_uniforms(seed, ids, world.config.face_correlation, P.IDENTITY_FIELDS)
    cam = rng.uniform(seed, "camera", cams, n=len(P.CAMERA_FIELDS))
    family = ((cams % P.N_BG_FAMILIES) + 0.5) / P.N_BG_FAMILIES
    image = rng.uniform(seed, "image", ids, img, cams, n=len(P.IMAGE_FIELDS))
    return torch.from_numpy(np.concatenate([ident, cam, family[:, None], image], axis=1))


def world_z(world: FaceWorld, identities, image_ids, cameras, style_dim: int | None = None, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """The true z of world faces: ``factors_to_z(world_factors(...))``, ``(B, style_dim)`` float64."""
    return factors_to_z(world_factors(world, identities, image_ids, cameras), style_dim, generator=generator)


def factor_params(world: FaceWorld, factors: torch.Tensor, *,
                  dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The world's factors (as ``FaceWorld.params`` names them) for given uniforms.

    The one map from uniforms to factors (:mod:`unmask.synthetic.params`), in torch: differentiable in the
    continuous coordinates, on the factors' device.

    Args:
        world: supplies the nuisance preset.
        factors: ``(B, N_FACTORS)`` uniforms in :data:`FACTOR_NAMES` order.

        dtype: the factors' precision: float32 is the world's; float64 keeps a finite-difference check above
            the factors' rounding.

    Returns:
        dict of tensors ``(B,)``, usable as ``FaceWorld.render(..., overrides=...)`` or ``FaceWorld.paint``.
    """
    _check_factors(factors)
    u = factors.double()
    preset = world.config.nuisance
    family = torch.floor(u[:, _BG_FAMILY].detach() * P.N_BG_FAMILIES).clamp_max(P.N_BG_FAMILIES - 1)
    ident = P.identity_params_from_uniforms(u[:, _IDENTITY], dtype=dtype)
    cam = P.camera_params_from_uniforms(u[:, _CAMERA], family, preset.camera_strength, dtype=dtype)
    image = P.image_params_from_uniforms(u[:, _IMAGE], preset, ident, cam, dtype=dtype)
    return {**ident, **{f"cam_{k}": v for k, v in cam.items()}, **image}


def render_z(world: FaceWorld, z: torch.Tensor, *, size: int | None = None) -> RenderOutput:
    """Paint the face of each z with the world's painter.

    Args:
        world: the world (preset, seed of its texture banks, default size).
        z: ``(B, D)`` latents, ``D >= N_FACTORS``; coordinates past the factors are ignored.
        size: output side in pixels (default ``world.config.size``).

    Returns:
        ``RenderOutput`` with images ``(B, 3, size, size)`` in [-1, 1], exact landmarks and
        attributes. Its ``identities``, ``image_ids`` and ``cameras`` are -1: a z names no world id.
    """
    with torch.no_grad():
        params = factor_params(world, z_to_factors(z))
        images, landmarks = world.paint(params, size=size)
    none = torch.full((z.shape[0],), -1, dtype=torch.long)
    return RenderOutput(images, landmarks, world.attributes(params), none, none.clone(), none.clone())


__all__ = [
    "DISCRETE_FACTORS",
    "FACTOR_NAMES",
    "TEXTURE_SELECTORS",
    "N_FACTORS",
    "factor_params",
    "factors_to_z",
    "render_z",
    "world_factors",
    "world_z",
    "z_to_factors",
]
