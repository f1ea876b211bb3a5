"""The one batch-key contract of the data layer.

Every source in :mod:`unmask.data` (paired unmasking data, identity images, re-id and verification
views) returns a batch as a ``dict`` of tensors whose keys come from :data:`BATCH_KEYS`:

============== ========================== ==================================================================
key            shape, dtype               meaning
============== ========================== ==================================================================
``masked``     ``(B, 3, H, W)`` float     the face with its mask drawn on, in ``[-1, 1]``
``target``     ``(B, 3, H, W)`` float     the same face unmasked, in ``[-1, 1]`` (equal outside the mask)
``mask``       ``(B, 1, H, W)`` float     occlusion in ``[0, 1]``, 1 = covered (zeros where nothing is)
``image``      ``(B, 3, H, W)`` float     a face for identity work, in ``[-1, 1]``
``identity``   ``(B,)`` int64             the source's identity label (its docstring says which numbering;
                                          evaluation sets use raw person ids, ``0`` distractor, ``-1`` junk)
``camera``     ``(B,)`` int64             camera id, ``-1`` where unknown
``attributes`` ``(B, A)`` float           binary attributes in ``{0, 1}``, ``-1`` where unknown; ``A`` may be 0
``w_plus``     ``(B, n_latent, D)`` float the true extended latent, where one is known
============== ========================== ==================================================================

Training (the encoder, generator and identity tasks), evaluation and export all read these keys and
no others; :func:`check_batch` enforces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from unmask.errors import InputShapeError

#: The keys a batch may hold, everywhere in the project.
BATCH_KEYS: tuple[str, ...] = ("masked", "target", "mask", "image", "identity", "camera", "attributes", "w_plus")
#: Keys holding float images ``(B, 3, H, W)`` in ``[-1, 1]``.
IMAGE_KEYS: tuple[str, ...] = ("masked", "target", "image")
#: Keys holding int64 labels ``(B,)``.
LABEL_KEYS: tuple[str, ...] = ("identity", "camera")
_NDIM = {"masked": 4, "target": 4, "image": 4, "mask": 4, "identity": 1, "camera": 1, "attributes": 2, "w_plus": 3}


def check_batch(batch: Mapping[str, torch.Tensor], who: str = "batch") -> Mapping[str, torch.Tensor]:
    """``batch`` unchanged if it keeps the contract above, else :class:`InputShapeError` saying what is off.

    Checks the keys, that every value is a tensor with the documented rank and dtype kind, that
    images have 3 channels and masks 1, and that all values share one batch size.
    """
    unknown = sorted(set(batch) - set(BATCH_KEYS))
    if unknown:
        raise InputShapeError(f"{who} has keys {unknown} outside the batch contract {BATCH_KEYS}; "
                              "rename them (see unmask.data.batch).")
    sizes = set()
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor) or value.ndim != _NDIM[key]:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InputShapeError(f"{who}[{key!r}] must be a tensor of rank {_NDIM[key]}, got {got}.")
        if key in LABEL_KEYS and value.dtype != torch.int64:
            raise InputShapeError(f"{who}[{key!r}] must be int64 labels, got {value.dtype}.")
        if key not in LABEL_KEYS and not value.is_floating_point():
            raise InputShapeError(f"{who}[{key!r}] must be a float tensor, got {value.dtype}.")
        channels = 3 if key in IMAGE_KEYS else 1 if key == "mask" else None
        if channels is not None and value.shape[1] != channels:
            raise InputShapeError(f"{who}[{key!r}] must have {channels} channel(s), got shape {tuple(value.shape)}.")
        sizes.add(value.shape[0])
    if len(sizes) > 1:
        raise InputShapeError(f"{who} mixes batch sizes {sorted(sizes)}: every value needs the same first dim.")
    return batch


def stack_items(items: Sequence[Mapping[str, object]], keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Stack per-item dicts (``image`` ``(3, H, W)``, ``identity`` an int, …) into one batch.

    Args:
        items: one dict per item, all with the same keys.
        keys: keys to stack (default: those of the first item).
    """
    keys = list(items[0]) if keys is None and items else list(keys or ())
    out = {}
    for key in keys:
        values = [torch.as_tensor(item[key]) for item in items]
        out[key] = torch.stack(values).long() if key in LABEL_KEYS else torch.stack(values).float()
    return out
