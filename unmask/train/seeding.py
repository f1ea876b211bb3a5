"""Seeds that are pure functions of ``(seed, step, process, stream)``: the basis of exact resumption."""

from __future__ import annotations

import random

import numpy as np
import torch


def batch_seed(seed: int, step: int, process_index: int = 0, stream: int = 0) -> int:
    """A 63-bit seed that is a pure function of ``(seed, step, process_index, stream)``.

    Use one ``stream`` per independent random thing in a step (data, noise, masks…), so adding
    one never shifts another.
    """
    seq = np.random.SeedSequence([seed, step, process_index, stream])
    return int(seq.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], dtype=np.uint64))


def seeded_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's legacy and torch's (every device's) global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))  # noqa: NPY002 - third-party code may draw from the legacy global RNG
    torch.manual_seed(seed)
