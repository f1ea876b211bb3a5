"""The multi-scale image-gradient loss (the decoder's structure term) and its combiner entry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unmask.errors import ConfigError, InputShapeError
from unmask.losses.combiner import LossCombiner
from unmask.losses.reconstruction import GradientLoss, image_gradients


def test_gradients_of_a_ramp():
    ramp = torch.arange(5.0).expand(1, 1, 4, 5)
    dx, dy = image_gradients(ramp)
    assert dx.shape == (1, 1, 4, 4) and dy.shape == (1, 1, 3, 5)
    assert torch.equal(dx, torch.ones_like(dx)) and torch.equal(dy, torch.zeros_like(dy))


def test_zero_for_equal_and_offset_images_positive_for_blur():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    loss = GradientLoss()
    assert loss(target, target).item() == 0.0
    assert loss(target + 0.3, target).item() == pytest.approx(0.0, abs=1e-6)  # a flat shift has no edges
    blurred = F.avg_pool2d(target, 3, stride=1, padding=1)
    assert loss(blurred, target).item() > 0.1


def test_coarse_scales_and_gradient_flow():
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(1, 3, 16, 16, generator=gen)
    pred = torch.zeros_like(target, requires_grad=True)
    value = GradientLoss(scales=(1, 2, 4, 16))(pred, target)  # scale 16 leaves < 2 px: skipped
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    fine = GradientLoss(scales=(1,))(pred.detach(), target)
    assert fine.item() != pytest.approx(value.item())


def test_bad_input():
    with pytest.raises(ConfigError, match="scales"):
        GradientLoss(scales=(0,))
    with pytest.raises(InputShapeError, match="too small"):
        GradientLoss(scales=(4,))(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(InputShapeError, match="same"):
        GradientLoss()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4))


def test_combiner_builds_it_with_options():
    combiner = LossCombiner.from_config({"weights": {"l1": 1.0, "gradient": 0.5},
                                         "options": {"gradient": {"scales": [1, 2]}}})
    assert combiner.losses["gradient"].scales == (1, 2)
    target = torch.zeros(2, 3, 8, 8)
    pred = torch.rand(2, 3, 8, 8)
    total, logs = combiner({"recovered": pred, "target": target})
    assert set(logs) == {"l1", "gradient", "total"}
    assert total.item() == pytest.approx(logs["l1"] + 0.5 * logs["gradient"], rel=1e-6)
