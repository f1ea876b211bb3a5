"""StyleGAN2 generator and discriminator in pure PyTorch (no compiled ops).

Karras, Laine, Aittala, Hellsten, Lehtinen, Aila: "Analyzing and Improving the Image Quality of
StyleGAN", CVPR 2020 (StyleGAN2), config F: mapping network, weight (de)modulation, skip
generator, residual discriminator with minibatch standard deviation.

Module, parameter and buffer names and shapes are those of rosinality/stylegan2-pytorch
(``model.py``), so the public ``g_ema`` of ``stylegan2-ffhq-config-f.pt`` (size 1024,
style_dim 512, n_mlp 8, channel_multiplier 2) loads with ``strict=True`` and renders the same
image for the same latent and noise. Blur filters are persistent ``kernel`` buffers and the
fixed noise maps are ``noises.noise_i`` buffers, as in that checkpoint.

Speed: one switch, :meth:`Generator.set_modconv_impl`, picks how modulated convolutions run.
By default, inference on CPU runs one dense convolution per image (the reference uses one
grouped convolution, kept as ``"grouped"``), and training (autograd recording) scales the
inputs, runs one convolution with the shared weight over the batch and demodulates the outputs
(the reference's ``fused_modconv=False``, here ``"batched"``), whose backward has no per-sample
slices. On CPU the activations run in ``channels_last`` layout. All are tested equal to the
plain path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmask.errors import ConfigError, InputShapeError
from unmask.hub import HubModel
from unmask.models.ops import bias_leaky_relu, fir_kernel, upfirdn2d
from unmask.models.truncation import truncate
from unmask.precision import float32

#: Largest channel count of the config-F table (used up to 32 px).
TABLE_MAX_CHANNELS = 512
#: Above 32 px the config-F table is ``CHANNEL_BASE * channel_multiplier / resolution``:
#: 64 -> 256*cm, 128 -> 128*cm, 256 -> 64*cm, 512 -> 32*cm, 1024 -> 16*cm.
CHANNEL_BASE = 16384
#: Smallest image size supported (4x4 constant input plus at least two upsampling blocks).
MIN_SIZE = 16
#: Resolution of the learned constant input.
CONSTANT_RESOLUTION = 4
#: Added to the sum of squared weights before the rsqrt of demodulation (paper eq. 3).
DEMODULATION_EPS = 1e-8
#: Added before the rsqrt of pixel norm and the sqrt of minibatch stddev.
NORM_EPS = 1e-8
#: Residual blocks sum two branches; dividing by sqrt 2 keeps unit variance.
RESIDUAL_GAIN = 1.0 / math.sqrt(2.0)
UPSAMPLE_FACTOR = 2

ModconvImpl = Literal["auto", "grouped", "per_sample", "batched"]
MODCONV_IMPLS: tuple[str, ...] = ("auto", "grouped", "per_sample", "batched")


# --------------------------------------------------------------------------- configs
def _check_size(size: int, what: str) -> None:
    if not isinstance(size, int) or size < MIN_SIZE or size & (size - 1):
        raise ConfigError(f"{what} size must be a power of two >= {MIN_SIZE} (e.g. 256 or 1024), got {size!r}.")


def _check_channels(channel_multiplier: int, channel_max: int, channel_scale: float) -> None:
    if channel_multiplier < 1:
        raise ConfigError(f"channel_multiplier must be >= 1 (2 for config F), got {channel_multiplier}.")
    if channel_max < 1:
        raise ConfigError(f"channel_max must be >= 1, got {channel_max}.")
    if not channel_scale > 0:
        raise ConfigError(f"channel_scale must be > 0, got {channel_scale}.")


def stylegan2_channels(resolution: int, channel_multiplier: int = 2, channel_max: int = 512,
                       channel_scale: float = 1.0) -> int:
    """Feature channels at ``resolution`` in StyleGAN2 config F (the rosinality table).

    ``min(512, 16384 * channel_multiplier / resolution)``, i.e. 512 up to 32 px, then
    256, 128, 64, 32, 16 times ``channel_multiplier`` at 64 ... 1024 px; then scaled by
    ``channel_scale`` (for small teaching models) and capped at ``channel_max``.
    """
    table = min(TABLE_MAX_CHANNELS, CHANNEL_BASE * channel_multiplier // resolution)
    return max(1, min(channel_max, round(table * channel_scale)))


@dataclass(frozen=True)
class GeneratorConfig:
    """StyleGAN2 generator hyper-parameters; the defaults are FFHQ config F at 1024 px.

    Attributes:
        size: output resolution, a power of two >= 16.
        style_dim: size of z and w.
        n_mlp: fully connected layers of the mapping network.
        channel_multiplier: 2 for config F (scales the channels above 32 px).
        lr_mlp: learning-rate multiplier of the mapping network (equalised learning rate).
        blur_kernel: 1-D taps of the resampling filter.
        channel_max: cap on every layer's channels (default reproduces the reference table).
        channel_scale: factor on the table before the cap (small CPU models); 1.0 = reference.
        z_names: names of the first ``len(z_names)`` coordinates of z, e.g. a teaching generator's
            ``unmask.synthetic.latent.FACTOR_NAMES`` (its z is the world's factors); the other
            coordinates are unnamed. Empty (default) for generators with an abstract z (FFHQ).
    """

    size: int = 1024
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    lr_mlp: float = 0.01
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    channel_max: int = 512
    channel_scale: float = 1.0
    z_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_size(self.size, "generator")
        if len(self.z_names) > self.style_dim or len(set(self.z_names)) != len(self.z_names):
            raise ConfigError(f"z_names must be at most style_dim={self.style_dim} distinct names, got "
                              f"{len(self.z_names)} ({len(set(self.z_names))} distinct).")
        _check_channels(self.channel_multiplier, self.channel_max, self.channel_scale)
        if self.style_dim < 1 or self.n_mlp < 0:
            raise ConfigError(f"style_dim must be >= 1 and n_mlp >= 0, got {self.style_dim} and {self.n_mlp}.")
        if not self.lr_mlp > 0:
            raise ConfigError(f"lr_mlp must be > 0 (0.01 in StyleGAN2), got {self.lr_mlp}.")
        if not self.blur_kernel or sum(self.blur_kernel) == 0:
            raise ConfigError(f"blur_kernel needs taps with a non-zero sum, e.g. (1, 3, 3, 1); got {self.blur_kernel}.")

    def channels(self, resolution: int) -> int:
        """Feature channels of the generator at ``resolution``."""
        return stylegan2_channels(resolution, self.channel_multiplier, self.channel_max, self.channel_scale)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """StyleGAN2 residual discriminator hyper-parameters (defaults: config F at 1024 px).

    Attributes:
        size: input resolution, a power of two >= 16.
        channel_multiplier: 2 for config F.
        blur_kernel: 1-D taps of the downsampling filter.
        channel_max: cap on every layer's channels.
        channel_scale: factor on the channel table before the cap; 1.0 = reference.
        stddev_group: samples per minibatch-stddev group (``min(batch, stddev_group)`` are used).
        stddev_feat: number of stddev channels appended (channels are split into this many groups).
    """

    size: int = 1024
    channel_multiplier: int = 2
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    channel_max: int = 512
    channel_scale: float = 1.0
    stddev_group: int = 4
    stddev_feat: int = 1

    def __post_init__(self) -> None:
        _check_size(self.size, "discriminator")
        _check_channels(self.channel_multiplier, self.channel_max, self.channel_scale)
        if not self.blur_kernel or sum(self.blur_kernel) == 0:
            raise ConfigError(f"blur_kernel needs taps with a non-zero sum, e.g. (1, 3, 3, 1); got {self.blur_kernel}.")
        if self.stddev_group < 1 or self.stddev_feat < 1:
            raise ConfigError("stddev_group and stddev_feat must be >= 1, got "
                              f"{self.stddev_group} and {self.stddev_feat}.")
        if self.channels(CONSTANT_RESOLUTION) % self.stddev_feat:
            raise ConfigError(f"stddev_feat {self.stddev_feat} must divide the {self.channels(4)} channels at 4 px.")

    def channels(self, resolution: int) -> int:
        """Feature channels of the discriminator at ``resolution``."""
        return stylegan2_channels(resolution, self.channel_multiplier, self.channel_max, self.channel_scale)


# --------------------------------------------------------------------------- blocks
class PixelNorm(nn.Module):
    """Normalise each latent to unit root-mean-square: ``(B, D) -> (B, D)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + NORM_EPS)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored ~N(0, 1/lr_mul²), scaled at run time.

    Keys: ``weight (out, in)``, ``bias (out,)``. With ``activation`` the bias goes through the
    scaled leaky ReLU.
    """

    def __init__(self, in_dim: int, out_dim: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in) -> (B, out)``."""
        if self.activation:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul, inplace=True)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate. Keys: ``weight (out, in, k, k)`` and optional ``bias``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, H', W')``."""
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class BiasLeakyReLU(nn.Module):
    """Per-channel bias, leaky ReLU (0.2) and gain sqrt 2. Key: ``bias (C,)`` (the reference FusedLeakyReLU)."""

    def __init__(self, channels: int, *, bias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: Tensor, *, inplace: bool = False) -> Tensor:
        return bias_leaky_relu(x, self.bias, inplace=inplace)


class Blur(nn.Module):
    """FIR filter with padding, no resampling. Key: ``kernel (K, K)`` (persistent buffer)."""

    def __init__(self, taps: tuple[int, ...], pad: tuple[int, int], *, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain))
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling ``(B, C, H, W) -> (B, C, 2H, 2W)``. Key: ``kernel (K, K)`` (sums to 4)."""

    def __init__(self, taps: tuple[int, ...], factor: int = UPSAMPLE_FACTOR) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=factor**2))
        self.factor = factor
        excess = len(taps) - factor
        self.pad = ((excess + 1) // 2 + factor - 1, excess // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per sample by a style (StyleGAN2 eq. 1-3).

    ``w' = scale * weight * s`` with ``s = modulation(w)`` per input channel, then (if
    ``demodulate``) each output filter is divided by its L2 norm (eps 1e-8). With ``upsample``
    the convolution is a stride-2 transposed convolution followed by the blur filter; with
    ``downsample`` the blur filter is followed by a stride-2 convolution (as in the reference).

    Keys: ``weight (1, out, in, k, k)``, ``modulation.{weight,bias}`` (bias initialised to 1),
    ``blur.kernel`` when resampling.

    Attributes:
        impl: how the per-sample weights are applied; every choice gives the same result.

            * ``"grouped"``: build each sample's weight and run all samples as one grouped
              convolution (the reference's fused path).
            * ``"per_sample"``: build each sample's weight and run one dense convolution per
              sample (the fastest inference path on CPU).
            * ``"batched"``: never build per-sample weights: scale the inputs by the style, run
              one ordinary convolution over the whole batch with the shared weight, then scale
              the outputs by the demodulation coefficients (the reference's
              ``fused_modconv=False``). The training path: its backward is one convolution
              backward, where the other two pay per-sample slices (``per_sample`` costs O(B²)).
            * ``"auto"`` (default): ``batched`` while autograd records, otherwise
              ``per_sample`` on CPU and ``grouped`` elsewhere.

            Set it for a whole generator with :meth:`Generator.set_modconv_impl`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, *,
                 demodulate: bool = True, upsample: bool = False, downsample: bool = False,
                 blur_kernel: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if upsample and downsample:
            raise ConfigError("a modulated conv resamples one way: pass upsample or downsample, not both.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.downsample = downsample
        self.impl: ModconvImpl = "auto"
        if upsample:
            # The transposed conv grows each side by kernel_size - 1; the blur pads so that the
            # result is exactly twice the input size.
            excess = (len(blur_kernel) - UPSAMPLE_FACTOR) - (kernel_size - 1)
            pad = ((excess + 1) // 2 + UPSAMPLE_FACTOR - 1, excess // 2 + 1)
            self.blur = Blur(blur_kernel, pad, gain=UPSAMPLE_FACTOR**2)
        if downsample:
            # The blur pads so that the stride-2, unpadded conv gives exactly half the input size.
            excess = (len(blur_kernel) - UPSAMPLE_FACTOR) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, ((excess + 1) // 2, excess // 2))
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = 0 if downsample else kernel_size // 2

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"upsample={self.upsample}, downsample={self.downsample}, demodulate={self.demodulate}")

    def modulated_weight(self, w: Tensor) -> Tensor:
        """Per-sample weights ``(B, out, in, k, k)`` for styles ``w (B, style_dim)``."""
        style = self.modulation(w)
        weight = self.weight * (self.scale * style[:, None, :, None, None])
        if self.demodulate:
            demod = torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + DEMODULATION_EPS)
            weight = weight * demod[:, :, None, None, None]
        return weight

    def resolved_impl(self, x: Tensor, w: Tensor) -> str:
        """The implementation ``forward`` uses for these inputs (``impl`` with ``"auto"`` resolved)."""
        impl = self.impl
        if impl not in MODCONV_IMPLS:
            raise ConfigError(f"modconv impl must be one of {MODCONV_IMPLS}, got {impl!r}.")
        if impl != "auto":
            return impl
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or self.weight.requires_grad):
            return "batched"
        return "per_sample" if x.device.type == "cpu" else "grouped"

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x (B, in, H, W)``, ``w (B, style_dim)`` -> ``(B, out, H', W')``: ``2H`` when upsampling, ``H/2`` when
        downsampling, else ``H``."""
        impl = self.resolved_impl(x, w)
        if self.downsample:
            x = self.blur(x)
        if impl == "batched":
            out = self._batched(x, w)
        elif impl == "grouped" or x.shape[0] == 1:
            out = self._grouped(x, self.modulated_weight(w))
        else:
            weight = self.modulated_weight(w)
            out = torch.cat([self._grouped(x[i:i + 1], weight[i:i + 1]) for i in range(x.shape[0])])
        return self.blur(out) if self.upsample else out

    def _conv(self, x: Tensor, weight: Tensor, groups: int) -> Tensor:
        """The (transposed, strided or plain) convolution with ``weight (groups*out, in, k, k)``."""
        if self.upsample:
            k = self.kernel_size
            weight = weight.reshape(groups, self.out_channels, self.in_channels, k, k).transpose(1, 2)
            weight = weight.reshape(groups * self.in_channels, self.out_channels, k, k)
            return F.conv_transpose2d(x, weight, stride=UPSAMPLE_FACTOR, groups=groups)
        stride = UPSAMPLE_FACTOR if self.downsample else 1
        return F.conv2d(x, weight, stride=stride, padding=self.padding, groups=groups)

    def _grouped(self, x: Tensor, weight: Tensor) -> Tensor:
        # One group per sample; for a single sample this is a plain dense convolution, which
        # keeps x's memory format (a channels_last input stays channels_last).
        batch, _, height, width = x.shape
        k = self.kernel_size
        if batch > 1:
            x = x.reshape(1, batch * self.in_channels, height, width)
        out = self._conv(x, weight.reshape(batch * self.out_channels, self.in_channels, k, k), groups=batch)
        return out if batch == 1 else out.view(batch, self.out_channels, *out.shape[-2:])

    def _batched(self, x: Tensor, w: Tensor) -> Tensor:
        # conv(x * s, W) * d equals conv(x, W * s * d) because s scales input channels and d
        # output channels; d² = s² · sum_k W² is a (B, in) @ (in, out) product.
        style = self.modulation(w)
        weight = self.weight[0] * self.scale
        out = self._conv(x * style[:, :, None, None], weight, groups=1)
        if self.demodulate:
            with float32(x):  # the norm stays float32 under bf16 autocast (a bf16 product loses 3 digits)
                demod = torch.rsqrt(style.float().square() @ weight.float().square().sum(dim=(2, 3)).t()
                                    + DEMODULATION_EPS)
            out = out * demod[:, :, None, None].to(out.dtype)
        return out


class NoiseInjection(nn.Module):
    """Adds per-pixel noise times a learned scalar. Key: ``weight (1,)``, initialised to 0."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None, *, inplace: bool = False) -> Tensor:
        """``x (B, C, H, W)``; ``noise`` broadcastable to ``(B, 1, H, W)`` or None for fresh N(0, 1)."""
        if noise is None:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        scaled = self.weight.to(x.dtype) * noise.to(x.dtype)
        if inplace and not (torch.is_grad_enabled() and (x.requires_grad or scaled.requires_grad)):
            return x.add_(scaled)
        return x + scaled


class ConstantInput(nn.Module):
    """Learned 4x4 constant the synthesis starts from. Key: ``input (1, C, 4, 4)``."""

    def __init__(self, channels: int, size: int = CONSTANT_RESOLUTION) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv, noise, bias and leaky ReLU. Keys: ``conv.*``, ``noise.weight``, ``activate.bias``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, *,
                 upsample: bool = False, blur_kernel: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = BiasLeakyReLU(out_channels)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None) -> Tensor:
        """``x (B, in, H, W)``, ``w (B, style_dim)`` -> ``(B, out, H', W')``."""
        # The conv output is a fresh tensor only this block sees, so inference may update it in place.
        out = self.noise(self.conv(x, w), noise, inplace=True)
        return self.activate(out, inplace=True)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus the upsampled skip image.

    Keys: ``conv.*``, ``bias (1, 3, 1, 1)``, ``upsample.kernel`` when ``upsample``.
    """

    def __init__(self, in_channels: int, style_dim: int, *, upsample: bool = True,
                 blur_kernel: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, w: Tensor, skip: Tensor | None = None) -> Tensor:
        """``x (B, C, H, W)``, ``w (B, style_dim)``, ``skip (B, 3, H/2, W/2)`` -> ``(B, 3, H, W)``."""
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# --------------------------------------------------------------------------- generator
class Generator(HubModel):
    """StyleGAN2 generator (config F by default): mapping network and skip synthesis network.

    Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020.
    State-dict compatible with rosinality/stylegan2-pytorch ``Generator`` (``g_ema``).

    Shapes: ``z`` and ``w`` are ``(B, style_dim)``; ``w_plus`` is ``(B, n_latent, style_dim)``
    with ``n_latent = 2 * log2(size) - 2``; images are ``(B, 3, size, size)``, roughly in
    ``[-1, 1]`` for trained weights.

    Attributes:
        n_latent: number of style vectors in ``w_plus``.
        num_layers: number of noise inputs (``noises.noise_0 .. noise_{num_layers-1}``).
        channels_last: run activations in channels_last layout; ``None`` (default) means on CPU
            only, where it is faster. Not saved; the result is the same either way.
    """

    config_class: ClassVar[type] = GeneratorConfig
    model_card_note: ClassVar[str] = (
        "StyleGAN2 generator (Karras et al., CVPR 2020) in pure PyTorch, state-dict compatible "
        "with rosinality/stylegan2-pytorch."
    )

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        self.size = config.size
        self.style_dim = config.style_dim
        self.log_size = int(math.log2(config.size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.channels_last: bool | None = None
        blur = tuple(config.blur_kernel)
        ch = config.channels

        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(config.style_dim, config.style_dim, lr_mul=config.lr_mlp, activation=True)
            for _ in range(config.n_mlp)
        ])
        self.input = ConstantInput(ch(CONSTANT_RESOLUTION))
        self.conv1 = StyledConv(ch(4), ch(4), 3, config.style_dim, blur_kernel=blur)
        self.to_rgb1 = ToRGB(ch(4), config.style_dim, upsample=False, blur_kernel=blur)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = ch(4)
        for log_res in range(3, self.log_size + 1):
            out_channels = ch(2**log_res)
            self.convs.append(StyledConv(in_channels, out_channels, 3, config.style_dim, upsample=True,
                                         blur_kernel=blur))
            self.convs.append(StyledConv(out_channels, out_channels, 3, config.style_dim, blur_kernel=blur))
            self.to_rgbs.append(ToRGB(out_channels, config.style_dim, blur_kernel=blur))
            in_channels = out_channels
        # Fixed noise maps, one per StyledConv: 4, 8, 8, 16, 16, ... size px.
        self.noises = nn.Module()
        for i, res in enumerate(self.noise_resolutions()):
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))

    # ---------------------------------------------------------------- helpers
    def noise_resolutions(self) -> list[int]:
        """Resolution of each noise input, in layer order (length ``num_layers``)."""
        return [CONSTANT_RESOLUTION] + [2**r for r in range(3, self.log_size + 1) for _ in range(2)]

    def _device(self) -> torch.device:
        return self.input.input.device

    def set_modconv_impl(self, impl: ModconvImpl) -> None:
        """The one switch for how every modulated convolution runs (see :class:`ModulatedConv2d`).

        ``"auto"`` (default) trains with ``"batched"`` and infers with ``"per_sample"`` on CPU,
        ``"grouped"`` elsewhere; the others force one path for every call. All give the same result.
        """
        if impl not in MODCONV_IMPLS:
            raise ConfigError(f"modconv impl must be one of {MODCONV_IMPLS}, got {impl!r}.")
        for module in self.modules():
            if isinstance(module, ModulatedConv2d):
                module.impl = impl

    def make_noise(self, generator: torch.Generator | None = None) -> list[Tensor]:
        """Fresh N(0, 1) noise maps ``(1, 1, r, r)``, one per layer, on the model's device.

        Args:
            generator: random generator for reproducible noise; drawn on its device, then moved.
        """
        device = generator.device if generator is not None else self._device()
        return [torch.randn(1, 1, r, r, generator=generator, device=device).to(self._device())
                for r in self.noise_resolutions()]

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> Tensor:
        """Mean of ``n`` mapped latents ``(1, style_dim)``, the usual truncation centre.

        Latents are drawn on the CPU with ``seed`` so the result is the same on every device.
        """
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.style_dim, generator=gen)
        param = self.input.input
        return self.mapping(z.to(device=param.device, dtype=param.dtype)).mean(dim=0, keepdim=True)

    def _check(self, name: str, x: Tensor, shape: tuple[int | None, ...], what: str) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise InputShapeError(f"{name} must be a float tensor of shape {what}, got {type(x).__name__}"
                                  + (f" of dtype {x.dtype}" if isinstance(x, Tensor) else "") + ".")
        if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            raise InputShapeError(f"{name} must have shape {what} for this {self.size}px generator, "
                                  f"got {tuple(x.shape)}.")

    # ---------------------------------------------------------------- networks
    def mapping(self, z: Tensor) -> Tensor:
        """Mapping network: pixel norm then ``n_mlp`` layers, ``z (B, style_dim) -> w (B, style_dim)``."""
        self._check("z", z, (None, self.style_dim), f"(B, {self.style_dim})")
        with float32(z):  # a tiny MLP: w, the latent everything inverts into, stays float32 under bf16 autocast
            return self.style(z)

    def synthesis(self, w_plus: Tensor, noise: list[Tensor] | None = None, randomize_noise: bool = False) -> Tensor:
        """Synthesis network: ``w_plus (B, n_latent, style_dim) -> image (B, 3, size, size)``.

        Args:
            w_plus: one style per layer; ``w_plus[:, 0]`` drives the 4 px conv, ``[:, 1]`` the
                first ToRGB and the 8 px upsampling conv, and so on as in the reference.
            noise: ``num_layers`` tensors broadcastable to ``(B, 1, r, r)`` (see
                :meth:`noise_resolutions`), or None.
            randomize_noise: with ``noise=None``, draw fresh noise instead of the stored
                ``noises.noise_i`` buffers (which make the output deterministic).
        """
        self._check("w_plus", w_plus, (None, self.n_latent, self.style_dim),
                    f"(B, {self.n_latent}, {self.style_dim})")
        batch = w_plus.shape[0]
        noise_list: list[Tensor | None]
        if noise is None:
            noise_list = ([None] * self.num_layers if randomize_noise
                          else [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)])
        else:
            if len(noise) != self.num_layers:
                raise InputShapeError(f"noise must be a list of {self.num_layers} tensors (one per layer), "
                                      f"got {len(noise)}.")
            for i, (n, r) in enumerate(zip(noise, self.noise_resolutions())):
                if not isinstance(n, Tensor) or n.dim() != 4 or tuple(n.shape[1:]) != (1, r, r) \
                        or n.shape[0] not in (1, batch):
                    got = tuple(n.shape) if isinstance(n, Tensor) else type(n).__name__
                    raise InputShapeError(f"noise[{i}] must have shape (1 or B, 1, {r}, {r}), got {got}.")
            noise_list = list(noise)

        channels_last = self.channels_last if self.channels_last is not None else w_plus.device.type == "cpu"
        x = self.input(batch)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv1(x, w_plus[:, 0], noise_list[0])
        skip = self.to_rgb1(x, w_plus[:, 1])
        for block, (up_conv, conv, to_rgb) in enumerate(zip(self.convs[::2], self.convs[1::2], self.to_rgbs)):
            i = 1 + 2 * block
            x = up_conv(x, w_plus[:, i], noise_list[i])
            x = conv(x, w_plus[:, i + 1], noise_list[i + 1])
            skip = to_rgb(x, w_plus[:, i + 2], skip)
        return skip.contiguous()

    def forward(self, z: Tensor | None = None, *, w: Tensor | None = None, w_plus: Tensor | None = None,
                truncation: float = 1.0, truncation_latent: Tensor | None = None,
                noise: list[Tensor] | None = None, randomize_noise: bool = False,
                return_latents: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Render images from exactly one of ``z``, ``w`` or ``w_plus``.

        Args:
            z: ``(B, style_dim)`` Gaussian latents, mapped by :meth:`mapping`.
            w: ``(B, style_dim)`` intermediate latents, used for every layer.
            w_plus: ``(B, n_latent, style_dim)`` one latent per layer.
            truncation: ``psi`` in ``w' = mean + psi * (w - mean)``; 1 leaves w unchanged.
            truncation_latent: the truncation centre, ``(1, style_dim)`` or broadcastable to the
                latent; if None and ``truncation != 1``, :meth:`mean_latent` is computed (pass it
                once yourself to avoid recomputing it per call).
            noise: see :meth:`synthesis`.
            randomize_noise: see :meth:`synthesis`.
            return_latents: also return the ``w_plus`` actually rendered.

        Returns:
            ``(B, 3, size, size)`` images, and ``(B, n_latent, style_dim)`` if ``return_latents``.
        """
        given = [name for name, v in (("z", z), ("w", w), ("w_plus", w_plus)) if v is not None]
        if len(given) != 1:
            raise InputShapeError(f"pass exactly one of z, w or w_plus; got {given or 'none'}.")
        if z is not None:
            latent = self.mapping(z)
        elif w is not None:
            self._check("w", w, (None, self.style_dim), f"(B, {self.style_dim})")
            latent = w
        else:
            self._check("w_plus", w_plus, (None, self.n_latent, self.style_dim),
                        f"(B, {self.n_latent}, {self.style_dim})")
            latent = w_plus
        if truncation != 1.0:
            centre = truncation_latent if truncation_latent is not None else self.mean_latent()
            latent = truncate(latent, centre, truncation)
        if latent.dim() == 2:
            latent = latent[:, None, :].expand(-1, self.n_latent, -1)
        image = self.synthesis(latent, noise=noise, randomize_noise=randomize_noise)
        return (image, latent) if return_latents else image


# --------------------------------------------------------------------------- discriminator
class ConvLayer(nn.Sequential):
    """[blur,] equalised conv [, bias + leaky ReLU] — keys ``{0,1,2}.*`` as in the reference.

    Without downsampling: ``0`` conv, ``1`` activation. With it: ``0`` blur (``kernel``),
    ``1`` stride-2 conv, ``2`` activation. The conv only has a bias when there is no activation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, downsample: bool = False,
                 blur_kernel: tuple[int, ...] = (1, 3, 3, 1), bias: bool = True, activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            excess = (len(blur_kernel) - UPSAMPLE_FACTOR) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, ((excess + 1) // 2, excess // 2)))
            stride, padding = UPSAMPLE_FACTOR, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(BiasLeakyReLU(out_channels, bias=bias))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            # The activation always follows a conv whose output nobody else holds.
            x = layer(x, inplace=True) if isinstance(layer, BiasLeakyReLU) else layer(x)
        return x


class ResBlock(nn.Module):
    """Residual downsampling block: two 3x3 convs and a 1x1 skip, summed / sqrt 2."""

    def __init__(self, in_channels: int, out_channels: int, blur_kernel: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, blur_kernel=blur_kernel,
                              activate=False, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, H/2, W/2)``."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) * RESIDUAL_GAIN


class Discriminator(HubModel):
    """StyleGAN2 residual discriminator with minibatch standard deviation (config F).

    Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020.
    State-dict compatible with rosinality/stylegan2-pytorch ``Discriminator``.

    ``forward(img (B, 3, size, size)) -> (B, 1)`` real/fake logits. ``B`` must be divisible by
    ``min(B, stddev_group)``.
    """

    config_class: ClassVar[type] = DiscriminatorConfig
    model_card_note: ClassVar[str] = (
        "StyleGAN2 discriminator (Karras et al., CVPR 2020) in pure PyTorch, state-dict compatible "
        "with rosinality/stylegan2-pytorch."
    )

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        self.size = config.size
        blur = tuple(config.blur_kernel)
        ch = config.channels
        log_size = int(math.log2(config.size))
        layers: list[nn.Module] = [ConvLayer(3, ch(config.size), 1)]
        in_channels = ch(config.size)
        for log_res in range(log_size, 2, -1):
            out_channels = ch(2 ** (log_res - 1))
            layers.append(ResBlock(in_channels, out_channels, blur))
            in_channels = out_channels
        self.convs = nn.Sequential(*layers)
        self.stddev_group = config.stddev_group
        self.stddev_feat = config.stddev_feat
        self.final_conv = ConvLayer(in_channels + config.stddev_feat, ch(4), 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch(4) * CONSTANT_RESOLUTION**2, ch(4), activation=True),
            EqualLinear(ch(4), 1),
        )

    def minibatch_stddev(self, x: Tensor) -> Tensor:
        """Append the across-group feature stddev as ``stddev_feat`` channels: ``(B, C, H, W) -> (B, C+f, H, W)``.

        Samples ``b`` and ``b + B/G`` (G = group size) share a group, as in the reference.
        """
        batch, channels, height, width = x.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            raise InputShapeError(f"the discriminator's batch ({batch}) must be divisible by "
                                  f"min(batch, stddev_group={self.stddev_group}); use a batch of "
                                  f"{self.stddev_group}, a multiple of it, or fewer than it.")
        grouped = x.reshape(group, -1, self.stddev_feat, channels // self.stddev_feat, height, width)
        std = torch.sqrt(grouped.var(dim=0, unbiased=False) + NORM_EPS)  # (B/G, F, C/F, H, W)
        std = std.mean(dim=(2, 3, 4))  # (B/G, F)
        std = std[:, :, None, None].repeat(group, 1, height, width)
        return torch.cat([x, std.to(x.dtype)], dim=1)

    def forward(self, img: Tensor) -> Tensor:
        """``img (B, 3, size, size)`` in ``[-1, 1]`` -> logits ``(B, 1)``."""
        if not isinstance(img, Tensor) or img.dim() != 4 or tuple(img.shape[1:]) != (3, self.size, self.size):
            got = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            raise InputShapeError(f"the discriminator expects images of shape (B, 3, {self.size}, {self.size}), "
                                  f"got {got}; resize or crop to {self.size} px.")
        out = self.final_conv(self.minibatch_stddev(self.convs(img)))
        return self.final_linear(out.flatten(1))


__all__ = [
    "Discriminator",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "stylegan2_channels",
]
