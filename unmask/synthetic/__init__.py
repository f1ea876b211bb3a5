"""The offline teaching world: procedural faces with identities, attributes, cameras and masks.

Nothing here needs a download. For every masked face we hold the true unmasked face, its identity,
attributes, camera and exact 68-point landmarks, so every claim of the project (recovery, identity
preservation, verification, the joint losses) can be measured offline.

The world itself lives here: its factors (``params.py``, ``rng.py``), the :class:`FaceWorld` API
(``world.py``) and the painter (``render.py``). The datasets over it live in the data layer,
:mod:`unmask.data.world` (the world is ground; the data layer builds on it, never the reverse):

    >>> from unmask.synthetic import FaceWorld, WorldConfig
    >>> from unmask.data.world import UnmaskingDataset
    >>> item = UnmaskingDataset(WorldConfig(size=64), length=10)[0]
    >>> item["masked"].shape, item["mask"].shape
    (torch.Size([3, 64, 64]), torch.Size([1, 64, 64]))

Command line: ``python -m unmask.data export --preset standard --n 20000 --out DIR`` and
``python -m unmask.data sheet --out sheet.png``.
"""

from __future__ import annotations

from unmask.synthetic.config import PRESETS, NuisancePreset, WorldConfig
from unmask.synthetic.latent import FACTOR_NAMES, factors_to_z, render_z, world_z, z_to_factors
from unmask.synthetic.world import ATTRIBUTE_NAMES, FaceWorld, RenderOutput

__all__ = [
    "ATTRIBUTE_NAMES",
    "FACTOR_NAMES",
    "PRESETS",
    "FaceWorld",
    "NuisancePreset",
    "RenderOutput",
    "WorldConfig",
    "factors_to_z",
    "render_z",
    "world_z",
    "z_to_factors",
]
