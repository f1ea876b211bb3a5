"""The offline teaching world: procedural faces with identities, attributes, cameras and masks.

Nothing here needs a download. For every masked face we hold the true unmasked face, its identity,
attributes, camera and exact 68-point landmarks, so every claim of the project (recovery, identity
preservation, verification, the joint losses) can be measured offline.

    >>> from unmask.synthetic import FaceWorld, WorldConfig, UnmaskingDataset
    >>> item = UnmaskingDataset(WorldConfig(size=64), length=10)[0]
    >>> item["masked"].shape, item["mask"].shape
    (torch.Size([3, 64, 64]), torch.Size([1, 64, 64]))

Command line: ``python -m unmask.synthetic export --preset standard --n 20000 --out DIR`` and
``python -m unmask.synthetic sheet --out sheet.png``.
"""

from unmask.synthetic.config import PRESETS, NuisancePreset, WorldConfig
from unmask.synthetic.datasets import IdentityDataset, ReIDSet, ReIDSplit, UnmaskingDataset, VerificationPairs
from unmask.synthetic.latent import FACTOR_NAMES, factors_to_z, render_z, world_z, z_to_factors
from unmask.synthetic.render import ATTRIBUTE_NAMES, FaceWorld, RenderOutput

__all__ = [
    "ATTRIBUTE_NAMES",
    "FACTOR_NAMES",
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
    "factors_to_z",
    "render_z",
    "world_z",
    "z_to_factors",
]
