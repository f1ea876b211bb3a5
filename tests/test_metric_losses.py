"""Metric losses: hand-computed angular-margin logits, batch-hard triplet picks, masked attributes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unmask.errors import ConfigError, InputShapeError
from unmask.losses.metric import (
    AngularMarginSoftmax,
    AttributeLoss,
    BatchHardTriplet,
    JointMetricLoss,
    cosine_logits,
    hardest_pairs,
    joint_loss_section,
    pairwise_distances,
)


def test_arcface_target_logit_is_s_cos_theta_plus_m():
    cosine = torch.tensor([[0.5, 0.2, -0.1], [0.3, 0.9, 0.0]])
    target = torch.tensor([0, 1])
    loss = AngularMarginSoftmax(scale=10.0, margin=0.3, kind="arcface")
    logits = loss.margin_logits(cosine, target)
    assert logits[0, 0].item() == pytest.approx(10 * math.cos(math.acos(0.5) + 0.3), abs=1e-5)
    assert logits[1, 1].item() == pytest.approx(10 * math.cos(math.acos(0.9) + 0.3), abs=1e-5)
    # every non-target logit is s·cos θ
    assert logits[0, 1:].tolist() == pytest.approx([2.0, -1.0], abs=1e-6)
    assert logits[1, [0, 2]].tolist() == pytest.approx([3.0, 0.0], abs=1e-6)
    expected = F.cross_entropy(logits, target)
    assert loss(cosine, target).item() == pytest.approx(expected.item(), abs=1e-6)


def test_arcface_fallback_beyond_pi_keeps_logit_decreasing():
    m = 0.5
    loss = AngularMarginSoftmax(scale=1.0, margin=m)
    cosine = torch.tensor([[-0.99, 0.0]])  # θ ≈ 3.0 rad, θ + m > π
    logit = loss.margin_logits(cosine, torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(-0.99 - m * math.sin(m), abs=1e-6)


def test_cosface_normface_and_zero_margin():
    cosine = torch.tensor([[0.6, 0.1]])
    target = torch.tensor([0])
    assert AngularMarginSoftmax(5.0, 0.2, "cosface").margin_logits(cosine, target)[0, 0].item() == pytest.approx(2.0)
    assert AngularMarginSoftmax(5.0, 0.2, "normface").margin_logits(cosine, target)[0, 0].item() == pytest.approx(3.0)
    assert AngularMarginSoftmax(5.0, 0.0, "arcface").margin_logits(cosine, target)[0, 0].item() == pytest.approx(3.0)


def test_arcface_gradient_finite_at_cos_one_and_bad_labels_refused():
    features = torch.tensor([[1.0, 0.0]], requires_grad=True)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    AngularMarginSoftmax(30.0, 0.5)(cosine_logits(features, weight), torch.tensor([0])).backward()
    assert torch.isfinite(features.grad).all()
    with pytest.raises(InputShapeError):
        AngularMarginSoftmax()(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ConfigError):
        AngularMarginSoftmax(kind="sphereface")


def _line(values):
    return torch.tensor(values, dtype=torch.float32)[:, None]


def test_triplet_picks_hardest_positive_and_negative():
    # 1-D embeddings: identity 0 at 0, 1, 5; identity 1 at 3, 10.
    x = _line([0.0, 1.0, 5.0, 3.0, 10.0])
    labels = torch.tensor([0, 0, 0, 1, 1])
    pos, neg, valid = hardest_pairs(pairwise_distances(x), labels)
    assert pos.tolist() == [2, 2, 0, 4, 3]
    assert neg.tolist() == [3, 3, 3, 1, 2]
    assert valid.all()
    # d+ - d-: a0: 5-3, a1: 4-2, a2: 5-2, a3: 7-2, a4: 7-5
    gaps = torch.tensor([2.0, 2.0, 3.0, 5.0, 2.0])
    hard = BatchHardTriplet(margin=0.3)(x, labels)
    assert hard.item() == pytest.approx(torch.relu(gaps + 0.3).mean().item(), abs=1e-5)
    soft = BatchHardTriplet(margin=None)(x, labels)
    assert soft.item() == pytest.approx(F.softplus(gaps).mean().item(), abs=1e-5)


def test_triplet_ignores_anchors_without_positive_and_zero_when_satisfied():
    x = _line([0.0, 0.1, 10.0])
    labels = torch.tensor([0, 0, 1])  # anchor 2 has no positive
    loss = BatchHardTriplet(margin=1.0)(x, labels)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    x2 = _line([0.0, 0.1, 0.5])
    # a0: d+=0.1, d-=0.5 -> 0.6; a1: d+=0.1, d-=0.4 -> 0.7
    assert BatchHardTriplet(margin=1.0)(x2, labels).item() == pytest.approx(0.65, abs=1e-5)


def test_triplet_gradient_finite_with_duplicate_embeddings():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    BatchHardTriplet(margin=0.3)(x, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(x.grad).all()


def test_cosine_metric_distances():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    d = pairwise_distances(x, "cosine")
    assert d.flatten().tolist() == pytest.approx([0, 1, 2, 1, 0, 1, 2, 1, 0], abs=1e-6)


def test_attribute_loss_masks_unknown_labels():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], requires_grad=True)
    target = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, float("nan")]])
    loss = AttributeLoss()(logits, target)
    known = [(0, 0, 1.0), (0, 2, 0.0), (1, 0, 0.0), (1, 1, 1.0)]
    by_hand = sum(F.binary_cross_entropy_with_logits(logits[i, j], torch.tensor(t)) for i, j, t in known) / 4
    assert loss.item() == pytest.approx(by_hand.item(), abs=1e-6)
    # a mask (1 = unknown) hides entries too
    mask = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    masked = AttributeLoss()(logits, target, mask)
    expected = (F.binary_cross_entropy_with_logits(logits[0, 0], torch.tensor(1.0))
                + F.binary_cross_entropy_with_logits(logits[1, 1], torch.tensor(1.0))) / 2
    assert masked.item() == pytest.approx(expected.item(), abs=1e-6)
    nothing = AttributeLoss()(logits, torch.full((2, 3), -1.0))
    nothing.backward()
    assert nothing.item() == 0.0


def test_joint_loss_is_weighted_sum():
    torch.manual_seed(0)
    emb = torch.randn(8, 4)
    cosine = torch.rand(8, 3) * 2 - 1
    attrs = torch.randn(8, 2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    attr_labels = torch.randint(0, 2, (8, 2)).float()
    joint = JointMetricLoss(0.5, 2.0, 0.25, scale=16.0, margin=0.2, triplet_margin=0.3)
    total, logs = joint({"embedding": emb, "cosine": cosine, "attributes": attrs}, labels, attr_labels)
    expected = (0.5 * AngularMarginSoftmax(16.0, 0.2)(cosine, labels) + 2.0 * BatchHardTriplet(0.3)(emb, labels)
                + 0.25 * AttributeLoss()(attrs, attr_labels))
    assert total.item() == pytest.approx(expected.item(), abs=1e-5)
    assert set(logs) == {"arcface", "triplet", "attributes", "total"}
    only_triplet = JointMetricLoss(0.0, 1.0)
    assert only_triplet.combiner.names == ["triplet"]  # arcface and attributes are not built
    _, logs = only_triplet({"embedding": emb}, labels)
    assert set(logs) == {"triplet", "total"}
    with pytest.raises(ConfigError, match="softmax and triplet"):
        JointMetricLoss(0.0, 0.0)


def test_joint_loss_section_builds_the_same_loss_in_the_combiner():
    """Identity training's losses: section gives the numbers of the joint loss, term by term."""
    from unmask.losses.combiner import LossCombiner

    torch.manual_seed(1)
    outputs = {"embedding": torch.randn(8, 4), "cosine": torch.rand(8, 3) * 2 - 1, "attributes": torch.randn(8, 2)}
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    attr_labels = torch.randint(0, 2, (8, 2)).float()
    section = joint_loss_section(1.0, 1.0, 0.5, margin=0.1, triplet_margin=None)
    total, logs = LossCombiner.from_config(section)({**outputs, "labels": labels, "attribute_labels": attr_labels})
    parts = {"arcface": AngularMarginSoftmax(30.0, 0.1)(outputs["cosine"], labels),
             "triplet": BatchHardTriplet(None)(outputs["embedding"], labels),
             "attributes": AttributeLoss()(outputs["attributes"], attr_labels)}
    assert logs == pytest.approx({**{k: v.item() for k, v in parts.items()},
                                  "total": (parts["arcface"] + parts["triplet"] + 0.5 * parts["attributes"]).item()})
    assert total.item() == logs["total"]
