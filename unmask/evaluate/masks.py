"""Occlusion-mask metrics: intersection over union of a predicted mask with the true one."""

from __future__ import annotations

import torch

from unmask.errors import InputShapeError

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
