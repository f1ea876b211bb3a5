"""The one learning-rate schedule shared by the trainers and the inversion."""

from __future__ import annotations

import math

import pytest
import torch

from unmask.errors import ConfigError
from unmask.invert import learning_rate
from unmask.optim import lr_factor, set_lr


def test_warmup_then_cosine_to_the_floor():
    factors = [lr_factor(s, 100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # the first step already moves
    assert factors[10] == 1.0 and factors[55] == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert all(a >= b for a, b in zip(factors[10:], factors[11:])) and factors[-1] > 0.1
    assert lr_factor(100, 100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)
    assert [lr_factor(s, 100, warmup=10, schedule="constant") for s in (0, 9, 10, 99)] == [0.1, 1.0, 1.0, 1.0]


def test_projector_form_starts_at_zero_and_decays_late():
    assert lr_factor(0.0, 1.0, warmup=0.05, decay_start=0.75, warmup_from_zero=True) == 0.0
    assert lr_factor(0.5, 1.0, warmup=0.05, decay_start=0.75, warmup_from_zero=True) == 1.0
    assert lr_factor(0.875, 1.0, warmup=0.05, decay_start=0.75) == pytest.approx(0.5)
    # the inversion's schedule is this function: StyleGAN2 projector's ramps
    for t in (0.01, 0.3, 0.8, 0.99):
        ramp = 0.5 - 0.5 * math.cos(min(1.0, (1.0 - t) / 0.25) * math.pi)
        assert learning_rate(t, 0.1) == pytest.approx(0.1 * ramp * min(1.0, t / 0.05), abs=1e-15)


def test_bad_schedule_and_set_lr():
    with pytest.raises(ConfigError, match="schedule must be one of"):
        lr_factor(0, 10, schedule="linear")
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        lr_factor(0, 10, min_ratio=1.5)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 2.0})
    set_lr(opt.param_groups, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
