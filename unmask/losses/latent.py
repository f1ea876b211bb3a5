"""Latent-space regularisers for W+ encoders and inversion.

* :class:`WNormLoss` (pSp, Richardson et al. 2021, ``w_norm_lambda``): keeps ``w_plus`` near the
  generator's average latent, where StyleGAN2 renders realistic faces.
* :class:`DeltaLoss` (e4e, Tov et al., "Designing an Encoder for StyleGAN Image Manipulation",
  2021, ``delta_norm_lambda``): keeps every layer's code close to the first layer's, so the code
  stays near W (good editability) instead of wandering through W+.
* :class:`LatentDiscriminator` and the non-saturating losses with an R1 penalty (e4e's
  ``w_discriminator_lambda``): an adversarial prior that each code looks like a mapping-network
  output.
* :class:`TrueLatentLoss` (``w_plus_true``): the distance of the predicted ``w_plus`` to the TRUE W+ of
  the unmasked face. Only the teaching world and generator-sampled pairs know it
  (:mod:`unmask.synthetic.latent`, :mod:`unmask.data.generated`); real photos have none.

For these losses ``pred`` is ``w_plus`` ``(B, n_latent, D)``; ``target`` is the average latent
``(D,)``, ``(1, D)`` or ``(n_latent, D)`` for the w-norm, the true ``w_plus`` for the true-latent loss,
and ignored by the others.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from unmask.errors import ConfigError, InputShapeError
from unmask.losses.base import Loss

#: e4e's latent discriminator: 4 linear layers with leaky ReLU 0.2 between them.
DISCRIMINATOR_LAYERS = 4
LEAKY_SLOPE = 0.2
#: e4e's R1 weight on the latent discriminator (``--r1 10``).
DEFAULT_R1_GAMMA = 10.0


def check_w_plus(w_plus: torch.Tensor, what: str) -> None:
    if w_plus.ndim != 3:
        raise InputShapeError(f"{what} wants w_plus of shape (B, n_latent, D), got {tuple(w_plus.shape)}.")


class WNormLoss(Loss):
    """Mean L2 distance of each layer's code to the average latent (pSp's w-norm).

    pSp sums the norm of the whole ``(n_latent, D)`` offset; we average the per-layer norms
    instead, so the weight does not depend on ``n_latent`` (10 layers at 64 px, 18 at 1024 px).

    Args:
        start_from_latent_avg: measure ``w_plus − latent_avg`` (pSp's default for faces);
            ``False`` measures ``‖w_plus‖`` itself and ignores ``target``.
    """

    name: ClassVar[str] = "w_norm"

    def __init__(self, start_from_latent_avg: bool = True) -> None:
        super().__init__()
        self.start_from_latent_avg = bool(start_from_latent_avg)

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """w-norm.

        Args:
            pred: ``w_plus`` ``(B, n_latent, D)``.
            target: ``latent_avg`` ``(D,)``, ``(1, D)`` or ``(n_latent, D)``; required when
                ``start_from_latent_avg``.
            mask: ignored.

        Returns:
            scalar: mean over batch and layers of ``‖w_plus[b, i] − latent_avg[i]‖₂``.
        """
        check_w_plus(pred, "w-norm loss")
        offset = pred
        if self.start_from_latent_avg:
            if target is None:
                raise ConfigError("the w-norm loss needs latent_avg as target (the generator's mean_latent).")
            offset = pred - target.to(pred).reshape(-1, pred.shape[-1])[None]
        return offset.norm(dim=-1).mean()


class TrueLatentLoss(Loss):
    """Mean squared distance of the predicted W+ to the true W+ of the unmasked face.

    A supervision only a world with known latents allows: every training face there was drawn from a
    known z, whose mapping (broadcast to W+) is the batch's ``w_plus``. Squared, not a norm, so the
    gradient vanishes smoothly at the optimum.
    """

    name: ClassVar[str] = "w_plus_true"

    def __init__(self) -> None:  # explicit, so the combiner passes it no shared resources
        super().__init__()

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """True-latent loss.

        Args:
            pred: predicted ``w_plus`` ``(B, n_latent, D)``.
            target: true ``w_plus`` ``(B, n_latent, D)`` (the batch key ``w_plus``).
            mask: ignored.

        Returns:
            scalar: ``mean((pred - target)²)`` over batch, layers and dimensions; 0 at equality.

        Raises:
            InputShapeError: either is not ``(B, n_latent, D)`` or their shapes differ.
        """
        check_w_plus(pred, "true-latent loss (pred)")
        if target is None:
            raise InputShapeError("the true-latent loss needs the true w_plus of each face as target (batch key "
                                  "'w_plus'); only sources with known latents (world, generated) provide it.")
        check_w_plus(target, "true-latent loss (target)")
        if pred.shape != target.shape:
            raise InputShapeError(f"true-latent loss: predicted w_plus {tuple(pred.shape)} and true w_plus "
                                  f"{tuple(target.shape)} differ; the encoder's n_styles/style_dim must match the "
                                  "generator that drew the faces.")
        return (pred - target.to(pred)).pow(2).mean()


class DeltaLoss(Loss):
    """e4e's delta regulariser: ``Σ_{i ≥ 1} mean_b ‖w_plus[b, i] − w_plus[b, 0]‖₂``.

    Args:
        active_layers: only layers ``1 .. active_layers − 1`` count (e4e's progressive training
            adds one layer at a time); ``None`` = all layers. Settable between steps.
    """

    name: ClassVar[str] = "delta"

    def __init__(self, active_layers: int | None = None) -> None:
        super().__init__()
        self.active_layers = active_layers

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Delta norm.

        Args:
            pred: ``w_plus`` ``(B, n_latent, D)``.
            target: ignored.
            mask: ignored.

        Returns:
            scalar; 0 when every layer equals the first (a code in W).
        """
        check_w_plus(pred, "delta loss")
        layers = pred if self.active_layers is None else pred[:, : self.active_layers]
        deltas = layers[:, 1:] - layers[:, :1]
        return deltas.norm(dim=-1).mean(dim=0).sum()


class LatentDiscriminator(nn.Module):
    """e4e's latent-code discriminator: an MLP scoring whether a ``w`` came from the mapping network.

    Module names (``mlp.0``, ``mlp.2``, …) follow e4e's ``LatentCodesDiscriminator`` so its
    checkpoints' ``discriminator_state_dict`` loads with ``strict=True``.

    Args:
        style_dim: ``D``, the width of ``w``.
        n_layers: number of linear layers (leaky ReLU between them).
    """

    def __init__(self, style_dim: int = 512, n_layers: int = DISCRIMINATOR_LAYERS) -> None:
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"the latent discriminator needs at least one layer, got {n_layers}.")
        layers: list[nn.Module] = []
        for _ in range(n_layers - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(LEAKY_SLOPE)]
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)
        self.style_dim = style_dim

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Realness logits ``(N, 1)`` of codes ``(N, D)`` (or ``(B, L, D)``, flattened to ``N = B·L``)."""
        return self.mlp(w.reshape(-1, self.style_dim))


def discriminator_loss(discriminator: nn.Module, real_w: torch.Tensor, fake_w: torch.Tensor) -> torch.Tensor:
    """Non-saturating discriminator loss ``softplus(−D(real)) + softplus(D(fake))`` (fake detached)."""
    real = discriminator(real_w)
    fake = discriminator(fake_w.detach())
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def r1_penalty(discriminator: nn.Module, real_w: torch.Tensor,
               gamma: float = DEFAULT_R1_GAMMA) -> torch.Tensor:
    """R1 gradient penalty ``γ/2 · E‖∇_w D(w)‖²`` on real codes (Mescheder et al. 2018), as in e4e.

    Args:
        discriminator: the latent discriminator.
        real_w: ``(N, D)`` codes from the mapping network.
        gamma: R1 weight.
    """
    real_w = real_w.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real_w).sum(), real_w, create_graph=True)
    return gamma / 2 * grad.pow(2).reshape(len(grad), -1).sum(dim=1).mean()


class LatentAdversarialLoss(Loss):
    """Encoder-side non-saturating loss ``softplus(−D(w))`` on the codes of ``w_plus`` (e4e).

    The discriminator is trained by the trainer with :func:`discriminator_loss` and
    :func:`r1_penalty`; this loss only reads it, so it is not frozen here. Like e4e, it scores the
    first layer's code (the base ``w``), or every active layer with ``all_layers=True``.

    Args:
        discriminator: a :class:`LatentDiscriminator` (built with ``style_dim`` when omitted).
        style_dim: width of ``w`` for a new discriminator.
        all_layers: score every layer's code instead of only the first.
    """

    name: ClassVar[str] = "w_discriminator"

    def __init__(self, discriminator: nn.Module | None = None, style_dim: int = 512,
                 all_layers: bool = False) -> None:
        super().__init__()
        self.discriminator = discriminator if discriminator is not None else LatentDiscriminator(style_dim)
        self.all_layers = bool(all_layers)

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial loss for the encoder.

        Args:
            pred: ``w_plus`` ``(B, n_latent, D)`` or ``w`` ``(B, D)``.
            target: ignored.
            mask: ignored.
        """
        codes = pred if pred.ndim == 2 else (pred if self.all_layers else pred[:, 0])
        return F.softplus(-self.discriminator(codes)).mean()
