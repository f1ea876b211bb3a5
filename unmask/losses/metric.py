"""Metric-learning losses for identity embeddings.

From "Joint Discriminative and Metric Embedding Learning for Person Re-Identification"
(Sabri, Randhawa, Doretto, arXiv 2212.14107). Three losses are joined:

* an **angular-margin softmax** (ArcFace form, Deng et al. 2019, with CosFace and the plain
  normalised softmax as options) on L2-normalised features and class weights. Normalising bounds
  the logits, so once a sample is well classified little gradient reaches the embedding;
* a **batch-hard triplet** loss (Hermans, Beyer, Leibe 2017) on the raw embedding, which keeps
  pulling the hardest positive closer and pushing the hardest negative away. With it, the paper
  finds the softmax margin unnecessary (``m = 0`` works as well);
* an **attribute** loss: binary cross-entropy over several attributes, so the embedding learns
  what stays the same across nuisance (pose, light, camera). Unknown labels are masked out.

:func:`joint_loss_section` writes the three as a :class:`~unmask.losses.combiner.LossCombiner`
section (``arcface``, ``triplet``, ``attributes``); :class:`JointMetricLoss` is that combiner
called with labels apart from the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from unmask.errors import ConfigError, InputShapeError
from unmask.losses.base import Loss
from unmask.models.embedding import cosine_logits

#: Margin kinds of :class:`AngularMarginSoftmax`.
MARGIN_KINDS = ("arcface", "cosface", "normface")
#: Default scale and margin of ArcFace (Deng et al. 2019).
DEFAULT_SCALE = 30.0
DEFAULT_ARC_MARGIN = 0.5
#: Target value marking an attribute label as unknown (CelebA's -1 must be mapped to 0 by the reader).
UNKNOWN_ATTRIBUTE = -1
# Keeps sqrt(1 - cos^2) differentiable at cos = +-1.
_SIN_EPS = 1e-7


class AngularMarginSoftmax(Loss):
    """Softmax cross-entropy on scaled cosines with a margin on the target class.

    For the target class ``y`` with angle ``θ_y`` between feature and class weight the logit is

    * ``arcface``  (additive angular margin): ``s · cos(θ_y + m)``
    * ``cosface``  (additive cosine margin):  ``s · (cos θ_y − m)``
    * ``normface`` (normalised softmax):      ``s · cos θ_y`` (same as either with ``m = 0``)

    and every other class keeps ``s · cos θ_j``. For ArcFace, when ``θ_y + m > π`` the curve
    ``cos(θ + m)`` would turn back up and reward a *larger* angle; there we use the CosFace-like
    ``cos θ − m·sin m`` fallback of the reference implementation so the logit keeps decreasing.

    The loss holds no parameters: the class weights live in the model (see
    :class:`unmask.models.embedding.IdentityEmbedder`), which passes cosines here.

    Args:
        scale: ``s``, the radius of the hypersphere the logits live on.
        margin: ``m`` (radians for ArcFace, cosine units for CosFace); ``0`` allowed.
        kind: one of :data:`MARGIN_KINDS`.
        label_smoothing: passed to cross-entropy.
    """

    name: ClassVar[str] = "arcface"

    def __init__(self, scale: float = DEFAULT_SCALE, margin: float = DEFAULT_ARC_MARGIN,
                 kind: str = "arcface", label_smoothing: float = 0.0) -> None:
        super().__init__()
        if kind not in MARGIN_KINDS:
            raise ConfigError(f"margin kind {kind!r} unknown; use one of {MARGIN_KINDS}.")
        if scale <= 0:
            raise ConfigError(f"softmax scale must be positive, got {scale}.")
        if margin < 0:
            raise ConfigError(f"margin must be >= 0, got {margin}.")
        self.scale = float(scale)
        self.margin = 0.0 if kind == "normface" else float(margin)
        self.kind = kind
        self.label_smoothing = float(label_smoothing)

    def margin_logits(self, cosine: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the margin applied to each row's target class.

        Args:
            cosine: ``(B, C)`` cosines between features and class weights.
            target: ``(B,)`` integer class labels in ``[0, C)``.

        Returns:
            ``(B, C)`` logits (``s · cos`` everywhere except the target entries).
        """
        _check_logits(cosine, target)
        target = target.long()
        cosine = cosine.clamp(-1.0, 1.0)
        cos_t = cosine.gather(1, target[:, None])
        m = self.margin
        if self.kind == "arcface" and m > 0:
            sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(_SIN_EPS))
            shifted = cos_t * math.cos(m) - sin_t * math.sin(m)  # cos(θ + m)
            # θ + m > π  <=>  cos θ < cos(π − m): beyond it use a monotone fallback.
            shifted = torch.where(cos_t > math.cos(math.pi - m), shifted, cos_t - m * math.sin(m))
        elif self.kind == "cosface":
            shifted = cos_t - m
        else:
            shifted = cos_t
        logits = cosine.scatter(1, target[:, None], shifted)
        return logits * self.scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy over margin logits.

        Args:
            pred: ``(B, C)`` cosines from :func:`cosine_logits`.
            target: ``(B,)`` integer identity labels.
            mask: ignored.

        Returns:
            scalar mean loss.
        """
        logits = self.margin_logits(pred, target)
        return F.cross_entropy(logits, target.long(), label_smoothing=self.label_smoothing)


def pairwise_distances(embeddings: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """All pairwise distances within a batch.

    Args:
        embeddings: ``(B, D)``.
        metric: ``"euclidean"`` (differentiable at 0) or ``"cosine"`` (``1 − cos``).

    Returns:
        ``(B, B)`` distances, zero on the diagonal.
    """
    if metric == "cosine":
        x = F.normalize(embeddings, dim=1)
        return (1.0 - x @ x.t()).clamp_min(0.0)
    if metric != "euclidean":
        raise ConfigError(f"distance metric {metric!r} unknown; use 'euclidean' or 'cosine'.")
    sq = (embeddings * embeddings).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.t()).clamp_min(0.0)
    # sqrt has an infinite gradient at 0 (the diagonal, duplicates): add eps only where it is 0.
    zero = d2 == 0
    return torch.sqrt(d2 + zero.to(d2.dtype) * 1e-16) * (~zero).to(d2.dtype)


def hardest_pairs(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each anchor, the hardest positive (farthest same label) and hardest negative (nearest other).

    Args:
        dist: ``(B, B)`` distances.
        labels: ``(B,)`` integer identities.

    Returns:
        ``(positive_index, negative_index, valid)``, each ``(B,)``; ``valid`` is False for anchors
        with no other sample of their identity or no sample of another identity in the batch.
    """
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    big = torch.finfo(dist.dtype).max
    pos_index = dist.masked_fill(~pos_mask, -1.0).argmax(1)
    neg_index = dist.masked_fill(~neg_mask, big).argmin(1)
    valid = pos_mask.any(1) & neg_mask.any(1)
    return pos_index, neg_index, valid


class BatchHardTriplet(Loss):
    """Batch-hard triplet loss (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", 2017).

    For every anchor ``a`` in a P×K batch: ``d⁺ = max_p d(a, p)`` over its own identity and
    ``d⁻ = min_n d(a, n)`` over the others; the loss is ``max(0, margin + d⁺ − d⁻)`` (hard margin)
    or ``softplus(d⁺ − d⁻)`` (soft margin, ``margin=None``), averaged over anchors that have both
    a positive and a negative.

    Args:
        margin: hard margin, or ``None`` for the soft margin.
        metric: ``"euclidean"`` or ``"cosine"`` (see :func:`pairwise_distances`).
    """

    name: ClassVar[str] = "triplet"

    def __init__(self, margin: float | None = 0.3, metric: str = "euclidean") -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ConfigError(f"triplet margin must be >= 0 or None (soft margin), got {margin}.")
        self.margin = margin
        self.metric = metric
        pairwise_distances(torch.zeros(1, 1), metric)  # validates the metric name now

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Triplet loss of a batch.

        Args:
            pred: ``(B, D)`` embeddings (the pre-neck feature of the embedder).
            target: ``(B,)`` integer identity labels.
            mask: ignored.

        Returns:
            scalar; 0 (still attached to the graph) when no anchor has a positive and a negative.
        """
        if pred.ndim != 2 or target.ndim != 1 or len(pred) != len(target):
            raise InputShapeError(f"triplet loss wants embeddings (B, D) and labels (B,), got "
                                  f"{tuple(pred.shape)} and {tuple(target.shape)}.")
        dist = pairwise_distances(pred, self.metric)
        pos, neg, valid = hardest_pairs(dist.detach(), target)
        if not bool(valid.any()):
            return pred.sum() * 0.0
        rows = torch.arange(len(target), device=pred.device)
        gap = dist[rows, pos] - dist[rows, neg]
        per_anchor = F.softplus(gap) if self.margin is None else F.relu(gap + self.margin)
        return per_anchor[valid].mean()


class AttributeLoss(Loss):
    """Binary cross-entropy over ``A`` binary attributes, ignoring unknown labels.

    Args:
        pos_weight: optional ``(A,)`` weight of positives per attribute (for rare attributes).
    """

    name: ClassVar[str] = "attributes"

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight).float())

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean BCE over the known labels.

        Args:
            pred: ``(B, A)`` logits.
            target: ``(B, A)`` labels in ``{0, 1}``; :data:`UNKNOWN_ATTRIBUTE` (-1) or NaN = unknown.
            mask: optional ``(B, A)``, 1 where the label is unknown (hidden), like image masks.

        Returns:
            scalar; 0 (attached to the graph) when no label is known.
        """
        if pred.shape != target.shape or pred.ndim != 2:
            raise InputShapeError(f"attribute loss wants logits and labels of the same (B, A) shape, got "
                                  f"{tuple(pred.shape)} and {tuple(target.shape)}.")
        target = target.to(pred.dtype)
        known = (target >= 0) & ~torch.isnan(target)
        if mask is not None:
            known = known & (mask.reshape(target.shape) < 0.5)
        if not bool(known.any()):
            return pred.sum() * 0.0
        per_entry = F.binary_cross_entropy_with_logits(pred, torch.where(known, target, torch.zeros_like(target)),
                                                       pos_weight=self.pos_weight, reduction="none")
        return per_entry[known].mean()


def joint_loss_section(arcface: float = 1.0, triplet: float = 1.0, attributes: float = 0.0, *,
                       scale: float = DEFAULT_SCALE, margin: float = 0.0, kind: str = "arcface",
                       triplet_margin: float | None = 0.3, triplet_metric: str = "euclidean") -> dict[str, Any]:
    """The paper's joint loss as a :class:`~unmask.losses.combiner.LossCombiner` ``losses:`` section.

    Args:
        arcface, triplet, attributes: loss weights (0: not built).
        scale, margin, kind: of :class:`AngularMarginSoftmax` (``margin`` defaults to 0 here: with the
            triplet loss the paper finds no margin needed).
        triplet_margin, triplet_metric: of :class:`BatchHardTriplet` (``None`` = soft margin).

    Returns:
        ``{"weights": {...}, "options": {...}}`` as ``configs/identity_teaching.yaml`` writes it.
    """
    return {"weights": {"arcface": float(arcface), "triplet": float(triplet), "attributes": float(attributes)},
            "options": {"arcface": {"scale": float(scale), "margin": float(margin), "kind": kind},
                        "triplet": {"margin": triplet_margin, "metric": triplet_metric}}}


class JointMetricLoss(torch.nn.Module):
    """Weighted sum of angular-margin softmax, batch-hard triplet and attribute losses.

    A thin adapter over :class:`~unmask.losses.combiner.LossCombiner` (the one loss path) for
    callers that hold labels apart from the model's outputs. Which feature each loss sees follows
    the batch-norm-neck design (Luo et al., "Bag of Tricks", 2019) that the paper builds on: the
    triplet loss sees the raw ``embedding`` (before the neck), where Euclidean distances are free;
    the softmax sees cosines of the ``neck`` feature, which the model computes as
    ``outputs["cosine"]``. A weight of 0 means the loss is not built and its outputs are not needed.

    Args:
        softmax_weight, triplet_weight, attribute_weight: loss weights.
        **options: ``scale``, ``margin``, ``kind``, ``triplet_margin``, ``triplet_metric`` of
            :func:`joint_loss_section`.

    Raises:
        ConfigError: neither the softmax nor the triplet weight is positive.
    """

    def __init__(self, softmax_weight: float = 1.0, triplet_weight: float = 1.0, attribute_weight: float = 0.0,
                 **options: Any) -> None:
        from unmask.losses.combiner import LossCombiner

        super().__init__()
        if softmax_weight <= 0 and triplet_weight <= 0:
            raise ConfigError("at least one of the softmax and triplet weights must be positive.")
        self.combiner = LossCombiner.from_config(
            joint_loss_section(softmax_weight, triplet_weight, attribute_weight, **options))

    def forward(self, outputs: Mapping[str, torch.Tensor], labels: torch.Tensor,
                attributes: torch.Tensor | None = None,
                attribute_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and the parts to log.

        Args:
            outputs: the embedder's output dict with ``embedding`` ``(B, D)``, ``cosine``
                ``(B, C)`` (when the softmax is on) and ``attributes`` ``(B, A)`` (when on).
            labels: ``(B,)`` integer identity labels.
            attributes: ``(B, A)`` attribute labels (-1 = unknown), needed when the attribute loss is on.
            attribute_mask: optional ``(B, A)``, 1 = unknown.

        Returns:
            ``(total, logs)``: scalar tensor and ``{name: float}`` for each built loss plus ``total``.
        """
        return self.combiner({**outputs, "labels": labels, "attribute_labels": attributes,
                              "attribute_mask": attribute_mask})


def _check_logits(cosine: torch.Tensor, target: torch.Tensor) -> None:
    if cosine.ndim != 2 or target.ndim != 1 or len(cosine) != len(target):
        raise InputShapeError(f"softmax loss wants cosines (B, C) and labels (B,), got {tuple(cosine.shape)} "
                              f"and {tuple(target.shape)}.")
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise InputShapeError(f"labels must be integers, got {target.dtype}.")
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= cosine.shape[1]):
        raise InputShapeError(f"labels must lie in [0, {cosine.shape[1]}), got [{int(target.min())}, "
                              f"{int(target.max())}]. Relabel identities contiguously and set num_classes.")


__all__ = [
    "MARGIN_KINDS", "UNKNOWN_ATTRIBUTE", "AngularMarginSoftmax", "AttributeLoss", "BatchHardTriplet",
    "JointMetricLoss", "cosine_logits", "hardest_pairs", "joint_loss_section", "pairwise_distances",
]
