"""Supervision of the encoder's occlusion-mask head (variant (a) of the unmasking encoder, issue 10).

:class:`MaskBCELoss` (``mask_bce``): binary cross-entropy of the head's logits against the true mask
of the training pair (1 = occluded; soft anti-aliased edges are soft targets).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from unmask.errors import InputShapeError
from unmask.losses.base import Loss


def check_mask(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputShapeError(f"{what} must be a (B, 1, H, W) mask, got {got}.")


class MaskBCELoss(Loss):
    """Mean binary cross-entropy with logits of a predicted occlusion mask.

    Args:
        pos_weight: weight of the occluded pixels' term (1: plain BCE); larger values counter a mask
            that covers only a small part of the image.
    """

    name: ClassVar[str] = "mask_bce"

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.pos_weight = float(pos_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """BCE of the head.

        Args:
            pred: mask logits ``(B, 1, H, W)`` (``sigmoid`` gives the occlusion probability).
            target: true mask ``(B, 1, h, w)`` in [0, 1], 1 = occluded; resized (bilinear) to ``(H, W)``
                when its size differs.
            mask: ignored.

        Returns:
            scalar, mean over pixels and batch.

        Raises:
            InputShapeError: shapes are not ``(B, 1, H, W)`` or the batch sizes differ.
        """
        check_mask(pred, "mask_bce prediction (logits)")
        check_mask(target, "mask_bce target")
        if pred.shape[0] != target.shape[0]:
            raise InputShapeError(f"mask_bce: {pred.shape[0]} predicted masks but {target.shape[0]} true ones.")
        target = target.to(pred)
        if target.shape[-2:] != pred.shape[-2:]:
            target = F.interpolate(target, size=pred.shape[-2:], mode="bilinear", align_corners=False)
        weight = None if self.pos_weight == 1.0 else torch.tensor(self.pos_weight, device=pred.device)
        return F.binary_cross_entropy_with_logits(pred, target.clamp(0, 1), pos_weight=weight)
