"""Image metrics of recovered faces (PSNR, SSIM and a perceptual distance inside and outside the
mask) and of predicted occlusion masks (IoU with the true mask).

SSIM follows Wang, Bovik, Sheikh and Simoncelli, "Image Quality Assessment: From Error Visibility to
Structural Similarity" (IEEE TIP 2004): an 11x11 Gaussian window with sigma 1.5 and the constants
``(0.01 L)^2`` and ``(0.03 L)^2`` for images in ``[0, 1]`` (``L = 1``). Used by the unmasking
evaluation and by the encoder's validation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from unmask.errors import InputShapeError

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


def region_perceptual(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-sample perceptual distance inside and outside the mask.

    A perceptual network sees a whole face, so a region is scored by substitution: the inside
    distance compares ``pred`` with the target's own pixels pasted over the outside (only the masked
    region differs), and the outside distance pastes the target over the inside. A region where
    ``pred`` equals the target scores exactly 0; the distances of different methods on the same faces
    and masks are comparable (the region's share of the image is the same for all).

    Args:
        pred, target: ``(B, 3, H, W)`` in ``[-1, 1]``.
        mask: ``(B, 1, H, W)``, 1 = occluded (a pixel counts as inside above 0.5, as in
            :func:`region_quality`).
        distance: per-sample distance ``(B, 3, H, W) x 2 -> (B,)`` (e.g. LPIPS).

    Returns:
        ``perceptual_inside`` and ``perceptual_outside``, each ``(B,)``; NaN where a region is empty.
    """
    if pred.shape != target.shape or mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise InputShapeError(f"expected pred and target (B, 3, H, W) and mask (B, 1, H, W), got "
                              f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(mask.shape)}.")
    pred, target = pred.float().clamp(-1, 1), target.float().clamp(-1, 1)
    inside = (mask.float() > 0.5).float()
    out = {}
    for name, region in (("inside", inside), ("outside", 1.0 - inside)):
        only_region = pred * region + target * (1.0 - region)
        value = distance(only_region, target).reshape(len(pred)).float()
        out[f"perceptual_{name}"] = value.masked_fill(region.sum(dim=(1, 2, 3)) == 0, float("nan"))
    return out


#: IoU when both the prediction and the target are empty: they agree perfectly.
EMPTY_IOU = 1.0


def mask_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-image IoU ``|P ∩ T| / |P ∪ T|`` of binarised masks.

    Args:
        pred: ``(B, 1, H, W)`` occlusion probabilities in [0, 1] (``sigmoid`` of a head's logits);
            a pixel is predicted occluded where ``pred >= threshold``.
        target: ``(B, 1, H, W)`` true mask, 1 = occluded; soft (anti-aliased) edges count as
            occluded where ``target >= 0.5``.
        threshold: decision threshold on ``pred``, in (0, 1).

    Returns:
        ``(B,)`` float IoU in [0, 1]. Empty masks: if both are empty the IoU is
        :data:`EMPTY_IOU` (1, nothing to find and nothing found); if only one is empty the
        union is non-empty and the IoU is 0. Average with ``.mean()`` for a batch score.

    Raises:
        InputShapeError: shapes differ or are not (B, 1, H, W), or the threshold is outside (0, 1).
    """
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(f"{name} must be a (B, 1, H, W) mask, got {got}.")
    if pred.shape != target.shape:
        raise InputShapeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape; "
                              "resize the prediction to the target's size first.")
    if not 0.0 < threshold < 1.0:
        raise InputShapeError(f"threshold must lie in (0, 1), got {threshold}; pass probabilities, not logits.")
    p = (pred >= threshold).flatten(1)
    t = (target >= 0.5).flatten(1)
    intersection = (p & t).sum(dim=1).float()
    union = (p | t).sum(dim=1).float()
    return torch.where(union > 0, intersection / union.clamp_min(1.0), torch.full_like(union, EMPTY_IOU))
