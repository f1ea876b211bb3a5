"""Image metrics of recovered faces: PSNR and SSIM inside and outside the mask.

SSIM follows Wang, Bovik, Sheikh and Simoncelli, "Image Quality Assessment: From Error Visibility to
Structural Similarity" (IEEE TIP 2004): an 11x11 Gaussian window with sigma 1.5 and the constants
``(0.01 L)^2`` and ``(0.03 L)^2`` for images in ``[0, 1]`` (``L = 1``). Used by the unmasking
evaluation and by the encoder's validation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Gaussian window of SSIM (Wang et al. 2004).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM ``(B, 1, H, W)`` of images ``(B, C, H, W)`` in ``[0, 1]`` (mean over channels)."""
    channels = a.shape[1]
    window = _gaussian_window(a.device, a.dtype).expand(channels, 1, -1, -1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [SSIM_WINDOW // 2] * 4, mode="reflect"), window, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    return (numerator / denominator).mean(dim=1, keepdim=True)


def region_quality(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample PSNR (dB) and SSIM inside and outside the mask.

    Args:
        pred, target: ``(B, 3, H, W)`` in ``[-1, 1]``.
        mask: ``(B, 1, H, W)``, 1 = occluded (a pixel counts as inside above 0.5).

    Returns:
        ``psnr_inside``, ``psnr_outside``, ``ssim_inside``, ``ssim_outside``, each ``(B,)``; NaN
        where a region is empty.
    """
    a = (pred.float().clamp(-1, 1) + 1) / 2
    b = (target.float().clamp(-1, 1) + 1) / 2
    inside = (mask.float() > 0.5).float()
    outside = 1.0 - inside
    squared = (a - b).pow(2).mean(dim=1, keepdim=True)
    ssim = ssim_map(a, b)
    out = {}
    for name, region in (("inside", inside), ("outside", outside)):
        count = region.sum(dim=(1, 2, 3))
        mse = (squared * region).sum(dim=(1, 2, 3)) / count.clamp_min(1)
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
        region_ssim = (ssim * region).sum(dim=(1, 2, 3)) / count.clamp_min(1)
        empty = count == 0
        out[f"psnr_{name}"] = psnr.masked_fill(empty, float("nan"))
        out[f"ssim_{name}"] = region_ssim.masked_fill(empty, float("nan"))
    return out
