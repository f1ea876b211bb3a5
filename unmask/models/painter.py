"""The teaching world's exact generator: the world's own painter behind the frozen-generator interface.

Every teaching face is a deterministic function of its factors (:mod:`unmask.synthetic`), and the teaching latent z
is those factors in Gaussian coordinates (:mod:`unmask.synthetic.latent`). :class:`PainterGenerator` paints a z
with the same code the world renders with, so ``G(z)`` of a world draw's z *is* that draw, bit for bit, and no
teaching result is capped by a learned decoder's blur. Unlike a learned StyleGAN2 it needs no training and is
about 12x cheaper on a CPU (``python -m unmask.bench generator``).

The interface (:class:`unmask.models.generators.FrozenGenerator`):

* ``style_dim = N_FACTORS`` (102 named coordinates, :data:`unmask.synthetic.latent.FACTOR_NAMES`), ``n_latent = 1``;
* ``mapping`` is the identity (the latent *is* z), there are no noise inputs;
* the **mean latent** is ``z = 0``: every factor at its median (``u = 0.5``). It is the world's median face: the
  continuous factors at their middle value, and each discrete choice at the category that holds the median (a
  woman with medium-length hair, no glasses, no hat, neutral expression, the median camera). Truncation
  (``truncate(z, 0, psi)``) pulls every factor towards that median in Gaussian coordinates.

**Gradients.** z -> uniforms -> factors -> image is one torch graph. Every continuous factor that changes the
picture gets its gradient (checked against finite differences in ``tests/test_painter_generator.py``). The backward
of the world's quantisers is straight-through: the compression's level banding passes the gradient unchanged, and a
texture shift (an integer number of pixels) passes the texture's slope. The **discrete choices** (sex, hair style
and colour, beard type, glasses, hat, bangs, iris colour, expression switches, texture indices: the coordinates in
:data:`unmask.synthetic.latent.DISCRETE_FACTORS`) get **no gradient**: their forward pass is a threshold on a
uniform, and a soft gate would change the picture between categories that the world never draws. An encoder learns
them from a latent loss; an optimisation keeps them where they start.

**Edge width.** ``edge`` widens every anti-aliasing ramp of the painter (1 = exact, the default). Wider ramps give
a feature's edge a gradient over more pixels, so an optimisation can start soft and end exact (coarse to fine, as
soft rasterisers do): :func:`edge_schedule`.

Example:
    >>> g = PainterGenerator(PainterConfig(size=64))
    >>> z = torch.randn(4, g.style_dim)
    >>> g(z).shape
    torch.Size([4, 3, 64, 64])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from unmask.errors import ConfigError, InputShapeError
from unmask.hub.model import HubModel
from unmask.models.truncation import truncate
from unmask.synthetic.config import PRESETS, SIZES, WorldConfig
from unmask.synthetic.latent import (
    DISCRETE_FACTORS,
    FACTOR_NAMES,
    N_FACTORS,
    TEXTURE_SELECTORS,
    factor_params,
    z_to_factors,
)
from unmask.synthetic.world import FaceWorld, RenderOutput

#: Names :func:`unmask.models.generators.load_frozen_generator` resolves to a painter with no files needed.
BUILTIN_PAINTERS = {"teaching-painter": 64, "teaching-painter-64": 64, "teaching-painter-128": 128}


@dataclass(frozen=True)
class PainterConfig:
    """The world a painter generator paints.

    Attributes:
        size: image side in pixels (one of the world's sizes: 32, 64, 128, 256).
        preset: the world's nuisance preset (``unmask.synthetic.PRESETS``): how the image factors map to pose,
            light, expression and degradation.
        seed: the world seed (it seeds the texture banks; the factors come from z).
    """

    size: int = 64
    preset: str = "standard"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"PainterConfig.size={self.size} is not supported; use one of {SIZES}.")
        if self.preset not in PRESETS:
            raise ConfigError(f"Unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}.")

    @property
    def z_names(self) -> tuple[str, ...]:
        """The names of z's coordinates: the world's factors (what marks a teaching generator's latent)."""
        return FACTOR_NAMES

    def world_config(self) -> WorldConfig:
        return WorldConfig(size=self.size, preset=self.preset, seed=self.seed)


class PainterGenerator(HubModel):
    """The world's painter as a frozen generator: ``z (B, N_FACTORS)`` -> the world's face of z.

    It has no weights (its ``model.safetensors`` is empty): the config names the world it paints.

    Attributes:
        size / style_dim / n_latent: image side, latent width (the world's factors) and layer count (1).
        edge: default anti-aliasing ramp width of :meth:`synthesis` (1 = exact).
        straight_through: backward of the quantisers (see the module docstring); False gives their true
            derivative, zero.
        discrete_latents: ``(1, 1, N_FACTORS)`` bool, True for the coordinates that act only through a threshold
            (:data:`unmask.synthetic.latent.DISCRETE_FACTORS`) or also select a texture
            (:data:`unmask.synthetic.latent.TEXTURE_SELECTORS`); :func:`unmask.invert.invert` keeps them fixed.
    """

    config_class: ClassVar[type] = PainterConfig
    #: What a bundle card names as this part's training command: there is none to run.
    training_command: ClassVar[str] = ("none: the world's own painter is exact "
                                       "(`python -m unmask.bundle --generator teaching-painter`)")
    model_card_note: ClassVar[str] = (
        "The teaching world's painter (unmask.synthetic) as a frozen generator: latent = the world's factors in "
        "Gaussian coordinates, exact by construction (no learned weights). Procedural faces only; it draws no real "
        "face."
    )

    def __init__(self, config: PainterConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PainterConfig()
        self.world = FaceWorld(config.world_config())
        self.size = config.size
        self.style_dim = N_FACTORS
        self.n_latent = 1
        self.edge = 1.0
        self.straight_through = True
        discrete = torch.tensor([name in DISCRETE_FACTORS or name in TEXTURE_SELECTORS for name in FACTOR_NAMES])
        self.register_buffer("discrete_latents", discrete.reshape(1, 1, -1), persistent=False)

    # ---------------------------------------------------------------- checks
    def _check(self, name: str, x: Tensor, shape: tuple[int | None, ...], what: str) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise InputShapeError(f"{name} must be a float tensor of shape {what}, got {type(x).__name__}.")
        if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            raise InputShapeError(f"{name} must have shape {what} for the painter generator (the world's "
                                  f"{N_FACTORS} factors), got {tuple(x.shape)}.")

    def _w_plus(self, w_plus: Tensor) -> Tensor:
        self._check("w_plus", w_plus, (None, 1, self.style_dim), f"(B, 1, {self.style_dim})")
        return w_plus

    # ---------------------------------------------------------------- the generator interface
    def mapping(self, z: Tensor) -> Tensor:
        """The identity on ``z (B, N_FACTORS)``: the latent is z itself."""
        self._check("z", z, (None, self.style_dim), f"(B, {self.style_dim})")
        return z

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> Tensor:
        """``z = 0``, every factor at its median: zeros ``(1, N_FACTORS)`` (``n`` and ``seed`` are unused)."""
        return torch.zeros(1, self.style_dim)

    def make_noise(self, generator: torch.Generator | None = None) -> list[Tensor]:
        """No per-layer noise inputs: an empty list."""
        return []

    def factors(self, w_plus: Tensor, *, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """The world's factors of each latent, ``(B,)`` tensors named as ``FaceWorld.params`` names them (float32,
        the world's precision; float64 for finite-difference checks)."""
        return factor_params(self.world, z_to_factors(self._w_plus(w_plus)[:, 0]), dtype=dtype)

    def render(self, w_plus: Tensor, *, size: int | None = None, edge: float | None = None,
               dtype: torch.dtype = torch.float32) -> RenderOutput:
        """Images, exact landmarks and attributes of ``w_plus (B, 1, N_FACTORS)``, all differentiable where the
        factors are continuous.

        Args:
            size: image side (default ``config.size``; any of the world's sizes).
            edge: ramp width (default :attr:`edge`; 1 = exact).
            dtype: precision of the factors and the painting (float32 is the world's; float64 for
                finite-difference checks).

        Returns:
            ``RenderOutput`` with images ``(B, 3, size, size)`` in [-1, 1], landmarks ``(B, 68, 2)`` in pixels and
            attributes ``(B, A)``; its ids are -1 (a z names no world id).
        """
        p = self.factors(w_plus, dtype=dtype)
        images, landmarks = self.world.paint(p, size=size or self.size, edge=self.edge if edge is None else edge,
                                             straight_through=self.straight_through, dtype=dtype)
        none = torch.full((w_plus.shape[0],), -1, dtype=torch.long)
        return RenderOutput(images, landmarks, self.world.attributes(p), none, none.clone(), none.clone())

    def synthesis(self, w_plus: Tensor, noise: list[Tensor] | None = None, randomize_noise: bool = False, *,
                  edge: float | None = None, size: int | None = None) -> Tensor:
        """``w_plus (B, 1, N_FACTORS) -> image (B, 3, size, size)`` in [-1, 1] (``noise`` must be empty or None)."""
        if noise:
            raise InputShapeError("the painter generator has no noise inputs; pass noise=None.")
        return self.render(w_plus, size=size, edge=edge).images

    def landmarks(self, w_plus: Tensor, *, size: int | None = None) -> Tensor:
        """The exact 68 iBUG landmarks of each latent, ``(B, 68, 2)`` pixel (x, y), differentiable."""
        p = self.factors(w_plus)
        from unmask.synthetic import geometry

        size = size or self.size
        return geometry.to_image(geometry.landmarks_canonical(p, geometry.derived(p)), p, size)

    def forward(self, z: Tensor | None = None, *, w: Tensor | None = None, w_plus: Tensor | None = None,
                truncation: float = 1.0, truncation_latent: Tensor | None = None) -> Tensor:
        """Render from exactly one of ``z`` / ``w`` ``(B, N_FACTORS)`` (the same here) or ``w_plus``
        ``(B, 1, N_FACTORS)``; ``truncation`` scales the latent towards ``truncation_latent`` (default 0)."""
        given = [name for name, v in (("z", z), ("w", w), ("w_plus", w_plus)) if v is not None]
        if len(given) != 1:
            raise InputShapeError(f"pass exactly one of z, w or w_plus; got {given or 'none'}.")
        latent = w_plus if w_plus is not None else self.mapping(z if z is not None else w)[:, None]
        centre = truncation_latent if truncation_latent is not None else self.mean_latent().to(latent)
        return self.synthesis(truncate(latent, centre, truncation))


def edge_schedule(step: int, steps: int, *, start: float = 4.0, exact_from: float = 0.6) -> float:
    """Coarse-to-fine ramp width for step ``step`` of ``steps``: from ``start`` down to 1 (exact), geometrically,
    reaching 1 at the share ``exact_from`` of the run and staying exact after it.

    >>> [round(edge_schedule(s, 10), 2) for s in (0, 3, 6, 9)]
    [4.0, 1.85, 1.0, 1.0]
    """
    if steps <= 1 or start <= 1.0:
        return 1.0
    t = step / max(1.0, exact_from * (steps - 1))
    return 1.0 if t >= 1.0 else float(math.exp(math.log(start) * (1.0 - t)))


def builtin_painter(name: str) -> PainterGenerator:
    """The painter of a built-in name (:data:`BUILTIN_PAINTERS`): the standard world at that size, seed 0."""
    if name not in BUILTIN_PAINTERS:
        raise ConfigError(f"unknown built-in painter {name!r}; known: {sorted(BUILTIN_PAINTERS)}.")
    return PainterGenerator(PainterConfig(size=BUILTIN_PAINTERS[name]))


__all__ = ["BUILTIN_PAINTERS", "PainterConfig", "PainterGenerator", "builtin_painter", "edge_schedule"]
