"""Image metrics of recovered faces (unmask.evaluate.metrics)."""

from __future__ import annotations

import torch

from unmask.evaluate.metrics import region_quality, ssim_map


def test_region_quality():
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, :, 8:] = 1
    noisy = (target + 0.2 * torch.randn_like(target)).clamp(-1, 1)
    same = region_quality(target, target, mask)
    assert torch.allclose(same["ssim_outside"], torch.ones(2), atol=1e-4)
    assert (same["psnr_inside"][0] > 60) and torch.isnan(same["psnr_inside"][1])
    worse = region_quality(noisy, target, mask)
    assert (worse["psnr_outside"] < 30).all() and (worse["ssim_outside"] < 0.99).all()


def test_ssim_map_is_one_on_equal_images_and_symmetric():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 24, 24, generator=gen)
    b = (a + 0.1 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    assert ssim_map(a, a).shape == (2, 1, 24, 24)
    assert torch.allclose(ssim_map(a, a), torch.ones(2, 1, 24, 24), atol=1e-4)
    assert torch.allclose(ssim_map(a, b), ssim_map(b, a), atol=1e-6)
    assert (ssim_map(a, b) < 1).all()
