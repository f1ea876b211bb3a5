"""The truncation trick, shared by every generator family (kept apart so a model module can use it without
importing the generator loaders of :mod:`unmask.models.generators`)."""

from __future__ import annotations

import torch


def truncate(latent: torch.Tensor, centre: torch.Tensor | None, psi: float) -> torch.Tensor:
    """``centre + psi (latent - centre)``: the truncation trick (Karras et al. 2019), for any family.

    Args:
        latent: ``(B, D)`` or ``(B, n_latent, D)``.
        centre: ``(1, D)``, ``(D,)`` or broadcastable to ``latent`` (the mean latent); ``None`` with ``psi = 1``.
        psi: 1 leaves ``latent`` unchanged.
    """
    if psi == 1.0:
        return latent
    if centre is None:
        raise ValueError("truncation with psi != 1 needs the mean latent (centre).")
    centre = centre.to(latent)
    if latent.dim() == 3 and centre.dim() == 2:
        centre = centre[:, None, :]
    return centre + psi * (latent - centre)
