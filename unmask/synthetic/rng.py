"""Counter-based random numbers: the same key always gives the same numbers, whatever the batch.

Identity ``k`` must look the same whether it is rendered alone or in a batch of 256, on CPU or GPU.
A stateful generator cannot promise that; hashing the key (seed, stream, identity, image, camera)
with SplitMix64 can. The numbers are small (a few dozen per image), so they are made in numpy
``uint64`` (which wraps on overflow exactly like the reference algorithm) and then moved to torch.
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on a ``uint64`` array."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def stream_id(name: str) -> int:
    """A stable integer for a stream name (crc32, identical on every platform and run)."""
    return zlib.crc32(name.encode("utf-8"))


def hash_keys(seed: int, stream: str, *keys: np.ndarray | int) -> np.ndarray:
    """Hash ``(seed, stream, *keys)`` elementwise into ``uint64`` values.

    Args:
        seed: world seed.
        stream: name that separates independent uses (``"identity"``, ``"image"``, ...).
        *keys: integer arrays (broadcast together) or ints, e.g. identity ids and image ids.

    Returns:
        ``uint64`` array with the broadcast shape of ``keys``.
    """
    with np.errstate(over="ignore"):
        h = _mix(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN)
        h = _mix(h ^ np.uint64(stream_id(stream)))
        for key in keys:
            k = np.asarray(key, dtype=np.int64).astype(np.uint64)
            h = _mix(h + _GOLDEN + k * _MIX2)
    return h


def uniform(seed: int, stream: str, *keys: np.ndarray | int, n: int) -> np.ndarray:
    """``n`` uniform numbers in [0, 1) per key: float64 array of shape ``(len(keys[0]), n)``."""
    base = np.atleast_1d(hash_keys(seed, stream, *keys))
    counters = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = _mix(base[:, None] + counters[None, :] * _GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def randint(seed: int, stream: str, *keys: np.ndarray | int, high: int) -> np.ndarray:
    """One integer in ``[0, high)`` per key (int64 array)."""
    return np.minimum((uniform(seed, stream, *keys, n=1)[:, 0] * high).astype(np.int64), high - 1)
