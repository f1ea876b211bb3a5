"""A frozen generator and its mean latent: what the encoder trainer, the generated-pairs source, the pipeline and
the inversion share.

Only the generator interface is assumed (ARCHITECTURE.md "one generator interface", :class:`FrozenGenerator`):
the latent shape ``n_latent × style_dim``, ``mapping(z)``, ``synthesis(w_plus)``, ``mean_latent(n, seed=...)``,
truncation (:func:`truncate`) and the image ``size``. Three families implement it: StyleGAN2
(:class:`unmask.models.stylegan2.Generator`, W / W+), DCGAN (:class:`unmask.models.dcgan.DCGANGenerator`,
latent = z, ``n_latent = 1``, mean latent 0) and the teaching world's own painter
(:class:`unmask.models.painter.PainterGenerator`, latent = the world's factors, ``n_latent = 1``, mean latent 0).
A trained generator folder holds its mean latent beside the weights (:data:`LATENT_AVG_FILE`, written by
:func:`save_latent_avg`); elsewhere it is the generator's ``mean_latent``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from unmask.models.truncation import truncate  # noqa: F401 - part of the generator interface


@runtime_checkable
class FrozenGenerator(Protocol):
    """What the encoder, the losses, ``invert``, the generated pairs and the pipeline use of a generator.

    Attributes:
        size: side of the images it draws.
        style_dim: width of a latent (StyleGAN2: w; DCGAN: z).
        n_latent: latents per image in ``w_plus`` (StyleGAN2: ``2 log2(size) - 2``; DCGAN: 1).
    """

    size: int
    style_dim: int
    n_latent: int

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, style_dim) -> w (B, style_dim)`` (the identity for a DCGAN)."""

    def synthesis(self, w_plus: torch.Tensor, noise: list[torch.Tensor] | None = None,
                  randomize_noise: bool = False) -> torch.Tensor:
        """``w_plus (B, n_latent, style_dim) -> (B, 3, size, size)`` in about ``[-1, 1]``."""

    def mean_latent(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """The truncation centre ``(1, style_dim)``."""

    def make_noise(self, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh per-layer noise maps (an empty list for a family without noise inputs)."""


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
                                      device or generator_device(generator)).mean(0, keepdim=True)
    avg = avg.detach().float()
    avg = avg.reshape(-1, avg.shape[-1])[:1]
    return avg if device is None else avg.to(device)


def generator_device(generator: nn.Module) -> torch.device:
    """Where ``generator`` computes: its first parameter's device, else its first buffer's (the painter generator
    has no weights), else the CPU."""
    for tensor in (*generator.parameters(), *generator.buffers()):
        return tensor.device
    return torch.device("cpu")


def mapping_samples(generator: nn.Module, n: int, style_dim: int, seed: int, device: torch.device) -> torch.Tensor:
    """``generator.mapping`` of ``n`` seeded normal draws (drawn on the CPU, so the same on every device)."""
    rng = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(n, style_dim, generator=rng).to(device)
    with torch.no_grad():
        return generator.mapping(z)


def load_frozen_generator(source: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                          n_samples: int = 10_000, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A frozen generator and its mean latent ``(style_dim,)``.

    ``source`` is a folder or Hub repo in the ``save_pretrained`` format (any architecture), the name of a
    :data:`unmask.hub.REGISTRY` entry (e.g. ``"digiface-dcgan"``: converted on load, strict, digest checked), or a
    built-in painter of the teaching world (``"teaching-painter"``, ``"teaching-painter-128"``: no files,
    :data:`unmask.models.painter.BUILTIN_PAINTERS`).
    The mean latent is ``latent_avg.safetensors`` in the folder (as the trainers export it), else
    :func:`mean_latent` of ``n_samples`` mapped draws (the generator's own ``mean_latent``).
    """
    from unmask.hub import REGISTRY, from_pretrained
    from unmask.models.painter import BUILTIN_PAINTERS

    if str(source) in BUILTIN_PAINTERS:
        from unmask.models.painter import builtin_painter

        generator = builtin_painter(str(source)).to(map_location)
    elif str(source) in REGISTRY:
        from unmask.models.public import load_registered

        generator = load_registered(str(source)).to(map_location)
    else:
        generator = from_pretrained(source, map_location=map_location)
    generator.requires_grad_(False).eval()
    path = Path(source) / LATENT_AVG_FILE
    if path.is_file():
        from safetensors.torch import load_file

        latent_avg = load_file(str(path))["latent_avg"].to(map_location)
    else:
        latent_avg = mean_latent(generator, n_samples, seed=seed)
    return generator, latent_avg.float().reshape(-1)
