"""Identity loss: 1 − cosine similarity of identity embeddings (pSp's ``id_lambda`` term).

The recovered face must stay the same person as the ground truth (arXiv 2212.14110); pSp
(Richardson et al. 2021) measures that with a frozen ArcFace IR-SE-50. Here any frozen module
with ``embed(images) -> (B, D)`` serves: IR-SE-50 / iresnet for real faces
(:mod:`unmask.models.identity`), or the teaching identity network for the synthetic world.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from unmask.errors import ConfigError, InputShapeError
from unmask.losses.base import FrozenNetworkMixin, Loss


@runtime_checkable
class Embedder(Protocol):
    """What the identity loss needs: ``embed((B, 3, H, W) in [-1, 1]) -> (B, D)`` L2-normalised."""

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...


class IdentityLoss(FrozenNetworkMixin, Loss):
    """Mean ``1 − cos(embed(pred), embed(target))`` with a frozen identity network.

    The target embedding is computed without gradient; gradients flow through the frozen
    network into ``pred`` only. Embeddings are re-normalised, so a network that returns raw
    features works as well.

    Args:
        identity_net: an ``nn.Module`` with ``embed(images) -> (B, D)``. It is frozen
            (``requires_grad_(False)``) and kept in ``eval()`` for the loss's lifetime.
    """

    name: ClassVar[str] = "identity"
    frozen_modules: ClassVar[tuple[str, ...]] = ("identity_net",)

    def __init__(self, identity_net: nn.Module) -> None:
        super().__init__()
        if not isinstance(identity_net, nn.Module) or not callable(getattr(identity_net, "embed", None)):
            raise ConfigError("the identity loss needs a module with embed(images) -> (B, D), e.g. "
                              "unmask.models.identity's IR-SE-50 or the teaching identity network; got "
                              f"{type(identity_net).__name__}.")
        self.identity_net = identity_net
        self.freeze()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``(B, D)`` of ``(B, 3, H, W)`` images in ``[-1, 1]``."""
        embedding = self.identity_net.embed(images)
        if embedding.ndim != 2 or len(embedding) != len(images):
            raise InputShapeError(f"identity_net.embed must return (B, D), got {tuple(embedding.shape)} for "
                                  f"{len(images)} images.")
        return F.normalize(embedding, dim=1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Identity distance.

        Args:
            pred: ``(B, 3, H, W)`` output in ``[-1, 1]``.
            target: ``(B, 3, H, W)`` ground truth in ``[-1, 1]``, or precomputed target embeddings ``(B, D)``.
            mask: ignored (the identity network sees whole faces).

        Returns:
            scalar in ``[0, 2]``.
        """
        if target.ndim == 2:
            target_embedding = F.normalize(target.detach(), dim=1)
        else:
            with torch.no_grad():
                target_embedding = self.embed(target)
        cosine = (self.embed(pred) * target_embedding).sum(dim=1)
        return (1.0 - cosine).clamp_min(0.0).mean()
