"""P×K sampler: batch composition, determinism per seed and epoch, coverage."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from unmask.data.sampler import PKSampler
from unmask.errors import ConfigError

# 6 identities with 8, 5, 4, 3, 6 and 1 images (identity 50 has one image only).
LABELS = np.repeat([10, 20, 30, 40, 41, 50], [8, 5, 4, 3, 6, 1])


def test_batches_are_p_identities_times_k_images():
    sampler = PKSampler(LABELS, p=3, k=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        assert len(batch) == 12
        counts = Counter(LABELS[batch].tolist())
        assert len(counts) == 3 and set(counts.values()) == {4}


def test_one_epoch_covers_every_image_once_and_skips_singletons():
    labels = np.repeat(np.arange(6), 4)
    batches = list(PKSampler(labels, p=3, k=4, seed=1))
    assert sorted(i for b in batches for i in b) == list(range(24))
    sampler = PKSampler(LABELS, p=2, k=2, seed=1)
    seen = {i for batch in sampler for i in batch}
    assert int(np.nonzero(LABELS == 50)[0][0]) not in seen


def test_deterministic_per_seed_and_epoch():
    a, b = PKSampler(LABELS, 2, 3, seed=7), PKSampler(LABELS, 2, 3, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKSampler(LABELS, 2, 3, seed=8)) != list(PKSampler(LABELS, 2, 3, seed=7))


def test_small_identities_drawn_with_replacement():
    labels = np.repeat([0, 1, 2], [2, 2, 2])
    batches = list(PKSampler(labels, p=3, k=4, seed=0))
    assert len(batches) == 1
    assert Counter(labels[batches[0]].tolist()) == {0: 4, 1: 4, 2: 4}


def test_too_few_identities_raises():
    with pytest.raises(ConfigError):
        PKSampler(LABELS, p=6, k=2)  # identity 50 has one image, so only 5 qualify
    with pytest.raises(ConfigError):
        PKSampler(LABELS, p=1, k=2)


def test_batch_for_step_walks_through_epochs():
    sampler = PKSampler(LABELS, 2, 2, seed=3)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    steps = [sampler.batch_for_step(s) for s in range(len(epoch0) + len(epoch1))]
    assert steps == epoch0 + epoch1
    assert sampler.epoch == 1  # unchanged
    assert PKSampler(LABELS, 2, 2, seed=3).batch_for_step(len(epoch0) + 1) == epoch1[1]
