"""P×K batch sampler for batch-hard triplet mining.

Batch-hard mining (Hermans, Beyer, Leibe 2017) needs every batch to hold several images of each
identity it contains: ``P`` identities × ``K`` images each. The sampler is deterministic given
``seed`` and the epoch set with :meth:`PKSampler.set_epoch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from unmask.errors import ConfigError


class PKSampler(Sampler[list[int]]):
    """Yields batches of ``P·K`` dataset indices: ``P`` distinct identities, ``K`` images of each.

    One epoch visits every image of every identity (with ``min_images`` or more images) once,
    as ``ceil(n / K)`` chunks of ``K`` per identity; the last chunk of an identity is filled by
    re-drawing from its own images, and identities with fewer than ``K`` images are drawn with
    replacement. Batches are formed by picking ``P`` distinct identities that still have chunks
    left, each chance proportional to its remaining chunks; the epoch ends when fewer than ``P``
    identities remain. Use it as a DataLoader's ``batch_sampler``.

    Args:
        labels: identity label of every dataset item (any hashable integers).
        p: identities per batch.
        k: images per identity.
        seed: base seed; with the epoch it fixes the order.
        min_images: identities with fewer images are skipped (2 keeps a positive for each anchor).
    """

    def __init__(self, labels: Sequence[int] | np.ndarray | torch.Tensor, p: int, k: int, *,
                 seed: int = 0, min_images: int = 2) -> None:
        if p < 2 or k < 1:
            raise ConfigError(f"P×K sampling needs P >= 2 identities and K >= 1 images, got P={p}, K={k}.")
        labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.epoch = 0
        ids, inverse = np.unique(labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(ids)))[:-1]
        groups = np.split(order, bounds)
        self._groups = [g for g in groups if len(g) >= max(1, min_images)]
        if len(self._groups) < self.p:
            raise ConfigError(f"P×K sampling needs at least P={self.p} identities with {min_images}+ images, "
                              f"the dataset has {len(self._groups)}. Lower P or add data.")
        self._cache: tuple[int, list[list[int]]] | None = None
        self._epoch_lengths: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: each epoch has its own deterministic order."""
        self.epoch = int(epoch)

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def _batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks: list[list[np.ndarray]] = []
        for group in self._groups:
            if len(group) < self.k:
                picks = rng.choice(group, size=self.k, replace=True)
            else:
                picks = rng.permutation(group)
                short = -len(picks) % self.k
                if short:
                    picks = np.concatenate([picks, rng.choice(group, size=short, replace=False)])
            chunks.append(list(picks.reshape(-1, self.k)))
        remaining = np.array([len(c) for c in chunks])
        batches: list[list[int]] = []
        while np.count_nonzero(remaining) >= self.p:
            chosen = rng.choice(len(chunks), size=self.p, replace=False, p=remaining / remaining.sum())
            batch: list[int] = []
            for i in chosen:
                batch.extend(int(x) for x in chunks[i].pop())
                remaining[i] -= 1
            batches.append(batch)
        self._cache = (self.epoch, batches)
        return batches

    def batch_for_step(self, step: int) -> list[int]:
        """The batch of global step ``step`` when epochs follow each other (0, 1, 2, …).

        A pure function of ``(seed, step)``: a trainer can resume at any step without replaying
        an iterator. The current epoch is left unchanged.
        """
        if step < 0:
            raise ConfigError(f"step must be >= 0, got {step}.")
        saved = self.epoch
        try:
            epoch, offset = 0, step
            while True:
                if epoch == len(self._epoch_lengths):
                    self.epoch = epoch
                    self._epoch_lengths.append(len(self._batches()))
                if offset < self._epoch_lengths[epoch]:
                    self.epoch = epoch
                    return list(self._batches()[offset])
                offset -= self._epoch_lengths[epoch]
                epoch += 1
        finally:
            self.epoch = saved

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())
