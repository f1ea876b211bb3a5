"""The one loss contract every loss in unmask follows."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Loss(nn.Module):
    """Base class: an ``nn.Module`` with a ``name`` and ``forward(pred, target, mask=None) -> scalar``.

    ``pred`` and ``target`` are what the loss compares: images ``(B, 3, H, W)`` in ``[-1, 1]`` for
    image losses, latents ``(B, n_latent, 512)`` for latent losses, embeddings or logits and
    integer labels for metric losses. ``mask`` is ``(B, 1, H, W)``, 1 where the face is occluded,
    for losses that weigh regions differently; others ignore it. Frozen networks inside a loss
    call ``requires_grad_(False)`` and stay in ``eval()`` even when the loss is put in train mode.
    """

    name: ClassVar[str] = "loss"

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class FrozenNetworkMixin:
    """Keeps sub-networks listed in ``frozen_modules`` frozen and in eval mode."""

    frozen_modules: ClassVar[tuple[str, ...]] = ()

    def freeze(self) -> None:
        for name in self.frozen_modules:
            module = getattr(self, name)
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)  # type: ignore[misc]
        for name in self.frozen_modules:
            getattr(self, name).eval()
        return self
