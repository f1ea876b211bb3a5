"""Losses under one contract: ``forward(pred, target, mask=None) -> scalar`` (see :class:`base.Loss`).

Names load on first access, so ``import unmask.losses`` stays cheap and never imports ``lpips``.

* reconstruction: :class:`ReconstructionLoss` (L2 / L1, separate weights inside and outside the mask)
* perceptual: :class:`PerceptualLoss` (LPIPS, optionally on the mask's bounding box)
* identity: :class:`IdentityLoss` (1 − cosine of a frozen identity network's embeddings)
* latent: :class:`WNormLoss`, :class:`DeltaLoss`, :class:`TrueLatentLoss`, :class:`LatentDiscriminator`,
  :class:`LatentAdversarialLoss`
* occlusion: :class:`MaskBCELoss` (the encoder's mask head against the true mask)
* metric: angular-margin softmax, batch-hard triplet, attributes (arXiv 2212.14107), ``joint_loss_section``
* combiner: :class:`LossCombiner` built from a ``{name: weight}`` table, registry :data:`LOSSES`
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "Loss": "base",
    "ReconstructionLoss": "reconstruction",
    "PerceptualLoss": "perceptual",
    "build_lpips": "perceptual",
    "IdentityLoss": "identity",
    "WNormLoss": "latent",
    "DeltaLoss": "latent",
    "TrueLatentLoss": "latent",
    "MaskBCELoss": "occlusion",
    "LatentDiscriminator": "latent",
    "LatentAdversarialLoss": "latent",
    "discriminator_loss": "latent",
    "r1_penalty": "latent",
    "LossCombiner": "combiner",
    "LOSSES": "combiner",
    "INPUTS": "combiner",
    "register_loss": "combiner",
    "loss_weights": "combiner",
    "AngularMarginSoftmax": "metric",
    "BatchHardTriplet": "metric",
    "AttributeLoss": "metric",
    "JointMetricLoss": "metric",
    "joint_loss_section": "metric",
}

if TYPE_CHECKING:  # pragma: no cover
    from unmask.losses.base import Loss
    from unmask.losses.combiner import INPUTS, LOSSES, LossCombiner, loss_weights, register_loss
    from unmask.losses.identity import IdentityLoss
    from unmask.losses.latent import (
        DeltaLoss,
        LatentAdversarialLoss,
        LatentDiscriminator,
        TrueLatentLoss,
        WNormLoss,
        discriminator_loss,
        r1_penalty,
    )
    from unmask.losses.metric import (
        AngularMarginSoftmax,
        AttributeLoss,
        BatchHardTriplet,
        JointMetricLoss,
        joint_loss_section,
    )
    from unmask.losses.occlusion import MaskBCELoss
    from unmask.losses.perceptual import PerceptualLoss, build_lpips
    from unmask.losses.reconstruction import ReconstructionLoss


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"unmask.losses.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'unmask.losses' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Loss",
    "ReconstructionLoss",
    "PerceptualLoss",
    "build_lpips",
    "IdentityLoss",
    "WNormLoss",
    "DeltaLoss",
    "TrueLatentLoss",
    "MaskBCELoss",
    "LatentDiscriminator",
    "LatentAdversarialLoss",
    "discriminator_loss",
    "r1_penalty",
    "LossCombiner",
    "LOSSES",
    "INPUTS",
    "register_loss",
    "loss_weights",
    "AngularMarginSoftmax",
    "BatchHardTriplet",
    "AttributeLoss",
    "JointMetricLoss",
    "joint_loss_section",
]
