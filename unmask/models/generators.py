"""A frozen generator and its mean latent: what the encoder trainer, the generated-pairs source, the pipeline and
the inversion share.

Only the generator interface is assumed (ARCHITECTURE.md "one generator interface"): ``mapping(z)``, a
``mean_latent(n, seed=...)`` where the family has one, and ``style_dim``. A trained generator folder holds its
mean latent beside the weights (:data:`LATENT_AVG_FILE`, written by :func:`save_latent_avg`); elsewhere it is the
mean of mapped samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

#: Mean-latent file that the generator trainers export beside the weights.
LATENT_AVG_FILE = "latent_avg.safetensors"


def save_latent_avg(folder: str | os.PathLike, latent_avg: torch.Tensor) -> None:
    """Write ``latent_avg`` ``(style_dim,)`` to ``folder/latent_avg.safetensors``."""
    from safetensors.torch import save_file

    save_file({"latent_avg": latent_avg.detach().float().reshape(-1).contiguous().cpu()},
              str(Path(folder) / LATENT_AVG_FILE))


def mean_latent(generator: nn.Module, n_samples: int, *, seed: int = 0, encoder: nn.Module | None = None,
                device: str | torch.device | None = None, style_dim: int | None = None) -> torch.Tensor:
    """The average w, ``(1, style_dim)`` float32 (no gradient).

    The ``encoder``'s ``latent_avg`` where it holds a non-zero one (pSp / e4e store the average they were trained
    around), else ``generator.mean_latent(n_samples, seed=seed)``, else (a family without one) the mean of
    ``mapping`` over ``n_samples`` seeded normal draws (of ``style_dim``, default ``generator.style_dim``).
    """
    avg = getattr(encoder, "latent_avg", None) if encoder is not None else None
    with torch.no_grad():
        if avg is None or not torch.any(avg != 0):
            if callable(getattr(generator, "mean_latent", None)):
                avg = generator.mean_latent(n_samples, seed=seed)
            else:
                avg = mapping_samples(generator, n_samples, style_dim or generator.style_dim, seed,
                                      device or next(generator.parameters()).device).mean(0, keepdim=True)
    avg = avg.detach().float()
    avg = avg.reshape(-1, avg.shape[-1])[:1]
    return avg if device is None else avg.to(device)


def mapping_samples(generator: nn.Module, n: int, style_dim: int, seed: int, device: torch.device) -> torch.Tensor:
    """``generator.mapping`` of ``n`` seeded normal draws (drawn on the CPU, so the same on every device)."""
    rng = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(n, style_dim, generator=rng).to(device)
    with torch.no_grad():
        return generator.mapping(z)


def load_frozen_generator(source: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                          n_samples: int = 10_000, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A frozen generator (any architecture saved with ``save_pretrained``) and its mean latent ``(style_dim,)``.

    The mean latent is ``latent_avg.safetensors`` in the folder (as the trainers export it), else
    :func:`mean_latent` of ``n_samples`` mapped draws.
    """
    from unmask.hub import from_pretrained

    generator = from_pretrained(source, map_location=map_location)
    generator.requires_grad_(False).eval()
    path = Path(source) / LATENT_AVG_FILE
    if path.is_file():
        from safetensors.torch import load_file

        latent_avg = load_file(str(path))["latent_avg"].to(map_location)
    else:
        latent_avg = mean_latent(generator, n_samples, seed=seed)
    return generator, latent_avg.float().reshape(-1)
