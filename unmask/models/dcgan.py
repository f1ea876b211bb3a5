"""A DCGAN generator behind the frozen-generator interface (:mod:`unmask.models.generators`).

Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016:
z ``(B, z_dim)`` as a 1×1 map → a 4×4 transposed convolution → stride-2 transposed convolutions that double
the side and halve the channels, each followed by batch norm and ReLU → a last transposed convolution to RGB
and tanh. Images are ``(B, 3, size, size)`` in ``[-1, 1]``.

Under the interface its latent is z itself: ``mapping`` is the identity, ``n_latent = 1``, ``style_dim =
z_dim`` and the mean latent is 0 (z ~ N(0, I)), so an encoder predicts a ``(B, 1, z_dim)`` "W+" and
truncation scales z towards 0. Batch norm always uses its running statistics (:class:`FrozenBatchNorm2d`):
the generator is frozen, and its output must not depend on the batch or on ``train()``.

The public weights this serves (``REGISTRY["digiface-dcgan"]``) are the generator in the PyPI wheel
``gan-face-generate`` 1.1.1, trained on DigiFace-1M: :func:`convert_dcgan_checkpoint` reads that file's
``netG_state_dict`` (an ``nn.Sequential`` named ``main.<index>``) into this module's names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmask.errors import ConfigError, InputShapeError, WeightsError
from unmask.hub import HubModel, load_state_dict_strict
from unmask.models.truncation import truncate

#: Side of the first feature map (a 4×4 transposed convolution of the 1×1 z).
STEM_RESOLUTION = 4
#: Kernel of every transposed convolution (DCGAN's 4, with stride 2 and padding 1 doubling the side).
KERNEL = 4
#: The public file's key holding the generator weights.
CHECKPOINT_KEY = "netG_state_dict"
#: Modules per up-sampling stage in the public ``nn.Sequential`` (transposed conv, batch norm, ReLU).
_SEQUENTIAL_STRIDE = 3
#: Batch-norm epsilon of ``nn.BatchNorm2d``, which the public weights were trained with.
BN_EPS = 1e-5


@dataclass(frozen=True)
class DCGANConfig:
    """A DCGAN generator.

    Attributes:
        z_dim: size of z (the public DigiFace-1M generator: 100).
        base_channels: channels of the last hidden stage (DCGAN's ``ngf``, 64); stage ``i`` of ``n`` has
            ``base_channels * 2 ** (n - 1 - i)``.
        size: output side, a power of two >= 8.
        image_channels: 3 for RGB.
    """

    z_dim: int = 100
    base_channels: int = 64
    size: int = 64
    image_channels: int = 3

    def __post_init__(self) -> None:
        if self.size < 8 or self.size & (self.size - 1):
            raise ConfigError(f"DCGAN size must be a power of two >= 8, got {self.size}.")
        if self.z_dim < 1 or self.base_channels < 1 or self.image_channels < 1:
            raise ConfigError("DCGAN z_dim, base_channels and image_channels must be >= 1.")

    @property
    def n_stages(self) -> int:
        """Hidden stages (4 px, 8 px, …, size / 2 px)."""
        return int(math.log2(self.size)) - 2

    def channels(self, stage: int) -> int:
        """Channels of hidden stage ``stage`` (0 = the 4 px stem)."""
        return self.base_channels * 2 ** (self.n_stages - 1 - stage)


class FrozenBatchNorm2d(nn.Module):
    """Batch norm that always normalises with its running statistics (same names as ``nn.BatchNorm2d``)."""

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                            eps=self.eps)


class UpBlock(nn.Module):
    """Transposed convolution (no bias) → frozen batch norm → ReLU; ``stem`` maps 1 px to 4 px, else ×2."""

    def __init__(self, in_channels: int, out_channels: int, *, stem: bool = False) -> None:
        super().__init__()
        stride, padding = (1, 0) if stem else (2, 1)
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, KERNEL, stride, padding, bias=False)
        self.norm = FrozenBatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class DCGANGenerator(HubModel):
    """A DCGAN generator as a frozen generator: latent = z, ``n_latent = 1``, mean latent 0.

    Shapes: ``z`` is ``(B, z_dim)``; ``w_plus`` is ``(B, 1, z_dim)``; images ``(B, 3, size, size)`` in ``[-1, 1]``.

    Attributes:
        size / style_dim / n_latent: the interface's image side, latent width (``z_dim``) and layer count (1).
    """

    config_class: ClassVar[type] = DCGANConfig
    model_card_note: ClassVar[str] = (
        "DCGAN generator (Radford et al., ICLR 2016) in unmask's frozen-generator interface (latent = z). "
        "Converted from the PyPI wheel gan-face-generate 1.1.1 (code MIT, Chien Liu), trained on DigiFace-1M "
        "(Microsoft): the DigiFace-1M data and what is trained on it are for non-commercial research only."
    )

    def __init__(self, config: DCGANConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DCGANConfig()
        self.size = config.size
        self.style_dim = config.z_dim
        self.n_latent = 1
        self.stem = UpBlock(config.z_dim, config.channels(0), stem=True)
        self.blocks = nn.ModuleList(UpBlock(config.channels(i - 1), config.channels(i))
                                    for i in range(1, config.n_stages))
        self.to_rgb = nn.ConvTranspose2d(config.channels(config.n_stages - 1), config.image_channels, KERNEL, 2, 1,
                                         bias=False)

    def _check(self, name: str, x: Tensor, shape: tuple[int | None, ...], what: str) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise InputShapeError(f"{name} must be a float tensor of shape {what}, got {type(x).__name__}.")
        if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            raise InputShapeError(f"{name} must have shape {what} for this DCGAN, got {tuple(x.shape)}.")

    # ---------------------------------------------------------------- the generator interface
    def mapping(self, z: Tensor) -> Tensor:
        """The identity on ``z (B, z_dim)``: a DCGAN's latent is z itself."""
        self._check("z", z, (None, self.style_dim), f"(B, {self.style_dim})")
        return z

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> Tensor:
        """The mean of z ~ N(0, I): zeros ``(1, z_dim)`` (``n`` and ``seed`` are the interface's, unused)."""
        return torch.zeros(1, self.style_dim, device=self.to_rgb.weight.device)

    def make_noise(self, generator: torch.Generator | None = None) -> list[Tensor]:
        """No per-layer noise inputs: an empty list."""
        return []

    def synthesis(self, w_plus: Tensor, noise: list[Tensor] | None = None, randomize_noise: bool = False) -> Tensor:
        """``w_plus (B, 1, z_dim) -> image (B, 3, size, size)`` in ``[-1, 1]`` (``noise`` must be empty or None)."""
        self._check("w_plus", w_plus, (None, 1, self.style_dim), f"(B, 1, {self.style_dim})")
        if noise:
            raise InputShapeError("a DCGAN has no noise inputs; pass noise=None.")
        x = self.stem(w_plus[:, 0, :, None, None])
        for block in self.blocks:
            x = block(x)
        return torch.tanh(self.to_rgb(x))

    def forward(self, z: Tensor | None = None, *, w: Tensor | None = None, w_plus: Tensor | None = None,
                truncation: float = 1.0, truncation_latent: Tensor | None = None) -> Tensor:
        """Render from exactly one of ``z`` / ``w`` ``(B, z_dim)`` (the same here) or ``w_plus`` ``(B, 1, z_dim)``;
        ``truncation`` scales the latent towards ``truncation_latent`` (default 0)."""
        given = [name for name, v in (("z", z), ("w", w), ("w_plus", w_plus)) if v is not None]
        if len(given) != 1:
            raise InputShapeError(f"pass exactly one of z, w or w_plus; got {given or 'none'}.")
        latent = w_plus if w_plus is not None else self.mapping(z if z is not None else w)[:, None]
        centre = truncation_latent if truncation_latent is not None else self.mean_latent()
        return self.synthesis(truncate(latent, centre, truncation))


def _public_key_map(config: DCGANConfig) -> dict[str, str]:
    """Our parameter names keyed by the public ``main.<index>.<name>`` ones."""
    mapping = {}
    for stage in range(config.n_stages):
        ours = "stem" if stage == 0 else f"blocks.{stage - 1}"
        conv, norm = _SEQUENTIAL_STRIDE * stage, _SEQUENTIAL_STRIDE * stage + 1
        mapping[f"main.{conv}.weight"] = f"{ours}.conv.weight"
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"main.{norm}.{name}"] = f"{ours}.norm.{name}"
    mapping[f"main.{_SEQUENTIAL_STRIDE * config.n_stages}.weight"] = "to_rgb.weight"
    return mapping


def dcgan_config_from_state(state: Mapping[str, Tensor]) -> DCGANConfig:
    """Read the config of a public DCGAN ``nn.Sequential`` state from its shapes."""
    try:
        first = state["main.0.weight"]
        convs = sorted(int(k.split(".")[1]) for k in state if k.endswith(".weight") and state[k].dim() == 4)
        last = state[f"main.{convs[-1]}.weight"]
    except (KeyError, IndexError, AttributeError) as exc:
        raise WeightsError(f"not a DCGAN generator state (no main.<i>.weight transposed convolutions): {exc}.") from exc
    n_stages = len(convs) - 1
    return DCGANConfig(z_dim=int(first.shape[0]), base_channels=int(last.shape[0]), size=2 ** (n_stages + 2),
                       image_channels=int(last.shape[1]))


def convert_dcgan_checkpoint(ckpt: Mapping[str, Any], key: str = CHECKPOINT_KEY) -> DCGANGenerator:
    """The :class:`DCGANGenerator` of a public DCGAN checkpoint dict (its ``netG_state_dict``), loaded strictly.

    Raises:
        WeightsError: the dict holds no generator state under ``key``, or the names / shapes do not fit.
    """
    state = ckpt.get(key) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        found = sorted(ckpt) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise WeightsError(f"the DCGAN checkpoint has no {key!r} generator state (found {found}); is it the "
                           "gan-face-generate weights.tar?")
    config = dcgan_config_from_state(state)
    names = _public_key_map(config)
    unknown = sorted(set(state) - set(names))
    if unknown:
        raise WeightsError(f"the DCGAN checkpoint has keys this architecture does not know: {unknown[:5]}.")
    model = DCGANGenerator(config)
    load_state_dict_strict(model, {names[k]: v for k, v in state.items()}, source=f"DCGAN checkpoint [{key}]")
    return model.eval()
