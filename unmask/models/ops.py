"""Pure-PyTorch StyleGAN2 ops: FIR resampling (``upfirdn2d``) and bias + scaled leaky ReLU.

The reference StyleGAN2 implementations compile CUDA kernels for these two ops. Both are
small enough to express with standard PyTorch calls, which run on CPU and CUDA alike:

* ``upfirdn2d`` (upsample by zero insertion, FIR filter, downsample) becomes one depthwise
  ``conv2d`` with the flipped filter; downsampling is the convolution's stride, so no
  discarded outputs are computed.
* ``bias_leaky_relu`` is ``leaky_relu(x + b, 0.2) * sqrt(2)``; when autograd does not need
  the intermediate values it runs in place, saving three full passes over memory.

Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020
(StyleGAN2), appendix B (resampling filters) and the equalised-learning-rate activation gain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from unmask.errors import ConfigError

#: Negative slope of every leaky ReLU in StyleGAN2.
LEAKY_RELU_SLOPE = 0.2
#: Gain after the activation that keeps unit variance (He et al. for leaky ReLU, rounded to sqrt 2).
LEAKY_RELU_GAIN = math.sqrt(2.0)


def fir_kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    """A 2-D FIR filter from 1-D taps (outer product), normalised to sum to ``gain``.

    Args:
        taps: filter taps, e.g. ``(1, 3, 3, 1)`` for the StyleGAN2 binomial filter.
        gain: sum of the returned filter; ``factor ** 2`` after upsampling by ``factor`` keeps
            the mean intensity that zero insertion divides by ``factor ** 2``.

    Returns:
        ``(len(taps), len(taps))`` float32 tensor (on the current default device).

    Raises:
        ConfigError: no taps, or taps summing to zero.
    """
    values = [float(t) for t in taps]
    total = sum(values)
    if not values or total == 0.0:
        raise ConfigError(f"blur kernel {tuple(taps)} must have at least one tap and a non-zero sum, "
                          "e.g. (1, 3, 3, 1).")
    # Normalise in Python so the buffer can be built on the meta device as well.
    row = torch.tensor([v / total for v in values], dtype=torch.float32)
    return row[:, None] * row[None, :] * gain


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last if ``x`` is stored that way (and not also plainly contiguous), else contiguous."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def upfirdn2d(x: Tensor, kernel: Tensor, *, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, convolve with a 2-D FIR filter, downsample.

    Same definition as the reference ``upfirdn2d``: output size per axis is
    ``(L * up + pad0 + pad1 - K + down) // down``; negative pads crop.

    Args:
        x: ``(B, C, H, W)`` input.
        kernel: ``(K, K)`` filter (true convolution, i.e. flipped before correlating).
        up: integer upsampling factor (zeros inserted between samples).
        down: integer downsampling factor (the convolution's stride).
        pad: ``(pad0, pad1)`` added before/after on both spatial axes after upsampling.

    Returns:
        ``(B, C, H', W')`` tensor in ``x``'s memory format.
    """
    batch, channels, height, width = x.shape
    fmt = _memory_format(x)
    if up > 1:
        upsampled = x.new_zeros(batch, channels, height * up, width * up).contiguous(memory_format=fmt)
        upsampled[:, :, ::up, ::up] = x
        x = upsampled
    pad0, pad1 = pad
    padding: int | tuple[int, int] = 0
    if pad0 == pad1 and pad0 >= 0:
        padding = pad0  # let the convolution pad: saves one copy of the tensor
    else:
        if pad0 > 0 or pad1 > 0:
            x = F.pad(x, (max(pad0, 0), max(pad1, 0), max(pad0, 0), max(pad1, 0)))
        if pad0 < 0 or pad1 < 0:
            h, w = x.shape[-2:]
            x = x[:, :, max(-pad0, 0):h - max(-pad1, 0), max(-pad0, 0):w - max(-pad1, 0)]
    weight = kernel.to(dtype=x.dtype).flip((0, 1))
    weight = weight[None, None].expand(channels, 1, *kernel.shape).contiguous()
    return F.conv2d(x, weight, stride=down, padding=padding, groups=channels)


def bias_leaky_relu(x: Tensor, bias: Tensor | None = None, *, negative_slope: float = LEAKY_RELU_SLOPE,
                    gain: float = LEAKY_RELU_GAIN, inplace: bool = False) -> Tensor:
    """``leaky_relu(x + bias, negative_slope) * gain`` (the reference "fused leaky ReLU").

    Args:
        x: ``(B, C, ...)`` input.
        bias: optional ``(C,)`` bias added per channel before the activation.
        negative_slope: slope for negative inputs.
        gain: output scale.
        inplace: allow overwriting ``x`` when autograd does not need it (the caller promises
            that nobody else reads ``x`` afterwards). Ignored while gradients are recorded.

    Returns:
        Tensor shaped like ``x``.
    """
    bias_view = None if bias is None else bias.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))
    needs_graph = torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad))
    if inplace and not needs_graph:
        if bias_view is not None:
            x.add_(bias_view)
        return F.leaky_relu_(x, negative_slope).mul_(gain)
    if bias_view is not None:
        x = x + bias_view
    return F.leaky_relu(x, negative_slope) * gain
