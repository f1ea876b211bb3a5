"""Pixel reconstruction losses with separate weights inside and outside the mask.

Masked facial recovery (arXiv 2212.14110) treats the two regions differently: outside the mask
the output must *reproduce* the visible face, inside it the output must *hallucinate* a
plausible lower face. :class:`ReconstructionLoss` therefore weighs the two regions separately
and normalises each by its own pixel count, so a weight means the same thing whether the mask
covers 10 % or 60 % of the face.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unmask.errors import ConfigError, InputShapeError
from unmask.losses.base import Loss

#: Pixel error kinds: squared (L2, pSp's ``l2_lambda``) and absolute (L1).
KINDS = ("l2", "l1")
# Keeps the per-region mean finite when a region is empty (its sum is then 0 as well).
_EPS = 1e-8


def check_images(pred: torch.Tensor, target: torch.Tensor, what: str) -> None:
    """Raise :class:`InputShapeError` unless ``pred`` and ``target`` are equal-shape ``(B, C, H, W)``."""
    if pred.ndim != 4 or pred.shape != target.shape:
        raise InputShapeError(f"{what} compares two images of the same (B, C, H, W) shape, got "
                              f"{tuple(pred.shape)} and {tuple(target.shape)}; resize the output to the "
                              "target.")


def prepare_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Bring a mask to the image's batch, size, dtype and device.

    Args:
        mask: ``(B, 1, h, w)`` or ``(B, h, w)``, 1 = occluded; soft (feathered) values allowed.
        image: ``(B, C, H, W)``.

    Returns:
        ``(B, 1, H, W)`` mask in ``[0, 1]``; resized with area averaging (down) or bilinear (up).
    """
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, image.shape[0]):
        raise InputShapeError(f"mask must be (B, 1, H, W) with 1 = occluded, got {tuple(mask.shape)} for "
                              f"images {tuple(image.shape)}.")
    mask = mask.to(device=image.device, dtype=image.dtype)
    if mask.shape[-2:] != image.shape[-2:]:
        down = mask.shape[-1] >= image.shape[-1]
        mask = F.interpolate(mask, size=image.shape[-2:], mode="area" if down else "bilinear",
                             align_corners=None if down else False)
    return mask.clamp(0.0, 1.0)


def region_means(error: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean of a pixel error inside and outside the mask.

    Args:
        error: ``(B, C, H, W)`` non-negative pixel error.
        mask: ``(B, 1, H, W)`` in ``[0, 1]``, 1 = occluded.

    Returns:
        ``(inside, outside)``, each ``(B,)``: the error averaged over the pixels (and channels) of
        that region; 0 where the region is empty.
    """
    channels = error.shape[1]
    inside = (error * mask).sum(dim=(1, 2, 3)) / (mask.sum(dim=(1, 2, 3)) * channels + _EPS)
    visible = 1.0 - mask
    outside = (error * visible).sum(dim=(1, 2, 3)) / (visible.sum(dim=(1, 2, 3)) * channels + _EPS)
    return inside, outside


class ReconstructionLoss(Loss):
    """L2 or L1 pixel loss, weighted separately inside and outside the mask.

    ``loss = inside_weight · mean_inside(err) + outside_weight · mean_outside(err)``, each mean taken
    per sample over that region's pixels, then averaged over the batch. Without a mask it is the
    plain mean error over every pixel (the region weights do not apply).

    Args:
        kind: ``"l2"`` (squared error) or ``"l1"`` (absolute error).
        inside_weight: weight of the occluded region (what the model hallucinates).
        outside_weight: weight of the visible region (what the model must reproduce).
        use_mask: ``False`` ignores any mask and gives the plain mean over every pixel.
        name: the name this instance logs under (e.g. ``"l2_mask"``); defaults to ``kind``.
    """

    name: ClassVar[str] = "reconstruction"

    def __init__(self, kind: str = "l2", inside_weight: float = 1.0, outside_weight: float = 1.0,
                 *, use_mask: bool = True, name: str | None = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"reconstruction loss kind {kind!r} unknown; use one of {KINDS}.")
        if inside_weight < 0 or outside_weight < 0:
            raise ConfigError(f"region weights must be >= 0, got inside={inside_weight}, "
                              f"outside={outside_weight}.")
        self.kind = kind
        self.inside_weight = float(inside_weight)
        self.outside_weight = float(outside_weight)
        self.use_mask = bool(use_mask)
        self.name = name or kind  # type: ignore[misc]  # instance name, e.g. "l2_mask"

    def pixel_error(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = pred - target
        return diff * diff if self.kind == "l2" else diff.abs()

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted region loss.

        Args:
            pred: ``(B, C, H, W)`` output image in ``[-1, 1]``.
            target: ``(B, C, H, W)`` ground-truth image in ``[-1, 1]``.
            mask: optional ``(B, 1, H, W)``, 1 = occluded (resized to the images if needed).

        Returns:
            scalar loss.
        """
        check_images(pred, target, f"{self.name} loss")
        error = self.pixel_error(pred, target)
        if mask is None or not self.use_mask:
            return error.mean()
        inside, outside = region_means(error, prepare_mask(mask, pred))
        return (self.inside_weight * inside + self.outside_weight * outside).mean()


def l2() -> ReconstructionLoss:
    """Plain L2 over the whole image; the mask is ignored (pSp's ``l2_lambda``)."""
    return ReconstructionLoss("l2", use_mask=False, name="l2")


def l1() -> ReconstructionLoss:
    """Plain L1 over the whole image; the mask is ignored."""
    return ReconstructionLoss("l1", use_mask=False, name="l1")


def l2_mask() -> ReconstructionLoss:
    """L2 inside the mask only: the hallucinated region."""
    return ReconstructionLoss("l2", inside_weight=1.0, outside_weight=0.0, name="l2_mask")


def l1_mask() -> ReconstructionLoss:
    """L1 inside the mask only: the hallucinated region."""
    return ReconstructionLoss("l1", inside_weight=1.0, outside_weight=0.0, name="l1_mask")


def l2_visible() -> ReconstructionLoss:
    """L2 outside the mask only: the visible face."""
    return ReconstructionLoss("l2", inside_weight=0.0, outside_weight=1.0, name="l2_visible")


def l1_visible() -> ReconstructionLoss:
    """L1 outside the mask only: the visible face."""
    return ReconstructionLoss("l1", inside_weight=0.0, outside_weight=1.0, name="l1_visible")


#: Default scales of :class:`GradientLoss`: the image, then average-pooled by 2 and by 4.
GRADIENT_SCALES = (1, 2, 4)


def image_gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences ``(dx, dy)`` of ``(B, C, H, W)`` images: ``(B, C, H, W-1)`` and ``(B, C, H-1, W)``."""
    return images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :]


class GradientLoss(Loss):
    """Multi-scale image-gradient L1: edges and local structure at several scales.

    ``loss = mean over scales s of mean |∇ pool_s(pred) − ∇ pool_s(target)|`` with forward
    differences along x and y of the images average-pooled by ``s``. Pixel L1 alone forgives a
    blurred edge that is right on average; the gradient term does not, and the coarser scales
    compare the structure of eyes, mouth and hair lines rather than single-pixel noise.

    Args:
        scales: pooling factors (each >= 1); scales whose pooled side would be < 2 px are skipped.
    """

    name: ClassVar[str] = "gradient"

    def __init__(self, scales: tuple[int, ...] | list[int] = GRADIENT_SCALES) -> None:
        super().__init__()
        scales = tuple(int(s) for s in scales)
        if not scales or any(s < 1 for s in scales):
            raise ConfigError(f"gradient loss scales must be integers >= 1, e.g. {GRADIENT_SCALES}; got {scales}.")
        self.scales = scales

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient distance.

        Args:
            pred: ``(B, C, H, W)`` output image in ``[-1, 1]``.
            target: ``(B, C, H, W)`` ground truth in ``[-1, 1]``.
            mask: ignored (every region's structure counts the same).

        Returns:
            scalar loss.
        """
        check_images(pred, target, f"{self.name} loss")
        terms = []
        for scale in self.scales:
            if min(pred.shape[-2:]) // scale < 2:
                continue
            p = F.avg_pool2d(pred, scale) if scale > 1 else pred
            t = F.avg_pool2d(target, scale) if scale > 1 else target
            (pdx, pdy), (tdx, tdy) = image_gradients(p), image_gradients(t)
            terms.append(0.5 * ((pdx - tdx).abs().mean() + (pdy - tdy).abs().mean()))
        if not terms:
            raise InputShapeError(f"images of {tuple(pred.shape[-2:])} px are too small for gradient scales "
                                  f"{self.scales}; use images of at least 2 px per scale.")
        return torch.stack(terms).mean()
