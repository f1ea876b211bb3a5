"""The base of paired sources and the per-item mask seed they share (no other data module imported here).

A paired source maps item indices (drawn by the task from ``(seed, step)``) to a batch of the
:mod:`unmask.data.batch` contract, so a resumed run needs no iterator replay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Stream of the trainer's ``batch_seed`` for mask drawing, apart from the task's own streams.
MASK_STREAM = 7


def mask_seed(seed: int, index: int) -> int:
    """The 31-bit mask seed of item ``index`` in a run seeded ``seed``.

    Equal to ``unmask.train.seeding.batch_seed(seed, index, stream=MASK_STREAM) % 2**31`` (a test checks
    it), computed here so that the data layer does not import the trainer.
    """
    state = np.random.SeedSequence([seed, index, 0, MASK_STREAM]).generate_state(2, dtype=np.uint32)
    return int(state.astype(np.uint64) @ np.array([1 << 31, 1], dtype=np.uint64)) % (1 << 31)


class PairSource:
    """Base: ``len(source)`` items; ``batch(indices, seed)`` returns the dict described above."""

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, indices: Sequence[int], seed: int = 0) -> dict[str, torch.Tensor]:
        raise NotImplementedError
