"""How verification pairs are split into folds: the LFW protocol's consecutive chunks.

Part of the pair protocol, so it lives in the data layer; :mod:`unmask.evaluate.verification` scores
folds made here. Numpy only.
"""

from __future__ import annotations

import numpy as np

#: Folds of the LFW protocol.
DEFAULT_FOLDS = 10


def default_folds(n_pairs: int, n_folds: int = DEFAULT_FOLDS) -> np.ndarray:
    """Fold index of each pair: ``n_folds`` consecutive, near-equal chunks (the order of ``pairs.txt``)."""
    folds = np.empty(n_pairs, dtype=np.int64)
    for i, chunk in enumerate(np.array_split(np.arange(n_pairs), n_folds)):
        folds[chunk] = i
    return folds
