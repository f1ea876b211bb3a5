"""Validation image grids: tiling and saving the images a task returns from ``validation_step``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def tile_images(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile ``(B, 3, H, W)`` images in ``[-1, 1]`` into one ``(3, H', W')`` grid in ``[0, 1]``."""
    images = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    ncol = math.ceil(b / nrow)
    grid = torch.ones(c, ncol * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(b):
        r, q = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y:y + h, x:x + w] = images[i]
    return grid


def save_png(grid: torch.Tensor, path: Path) -> None:
    """Write a ``(3, H, W)`` grid in ``[0, 1]`` as an 8-bit PNG (parent folders created)."""
    from PIL import Image

    array = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
