"""The offline teaching world: procedural faces with identities, attributes, cameras and masks.

Nothing here needs a download. For every masked face we hold the true unmasked face, its identity,
attributes, camera and exact 68-point landmarks, so every claim of the project (recovery, identity
preservation, verification, the joint losses) can be measured offline.

The world itself lives here: its factors (``params.py``, ``rng.py``), the :class:`FaceWorld` API
(``world.py``) and the painter (``render.py``). The datasets over it live in the data layer,
:mod:`unmask.data.world`, and are re-exported here on first use:

    >>> from unmask.synthetic import FaceWorld, WorldConfig, UnmaskingDataset
    >>> item = UnmaskingDataset(WorldConfig(size=64), length=10)[0]
    >>> item["masked"].shape, item["mask"].shape
    (torch.Size([3, 64, 64]), torch.Size([1, 64, 64]))

Command line: ``python -m unmask.synthetic export --preset standard --n 20000 --out DIR`` and
``python -m unmask.synthetic sheet --out sheet.png``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from unmask.synthetic.config import PRESETS, NuisancePreset, WorldConfig
from unmask.synthetic.world import ATTRIBUTE_NAMES, FaceWorld, RenderOutput

# The datasets import the world, so they load on first use (no import cycle).
_LAZY = {
    "IdentityDataset": "unmask.data.world",
    "ReIDSplit": "unmask.data.world",
    "UnmaskingDataset": "unmask.data.world",
    "VerificationPairs": "unmask.data.world",
    "ReIDSet": "unmask.data.identity",
}

if TYPE_CHECKING:  # pragma: no cover
    from unmask.data.identity import ReIDSet
    from unmask.data.world import IdentityDataset, ReIDSplit, UnmaskingDataset, VerificationPairs


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unmask.synthetic' has no attribute {name!r}")


__all__ = [
    "ATTRIBUTE_NAMES",
    "PRESETS",
    "FaceWorld",
    "IdentityDataset",
    "NuisancePreset",
    "ReIDSet",
    "ReIDSplit",
    "RenderOutput",
    "UnmaskingDataset",
    "VerificationPairs",
    "WorldConfig",
]
