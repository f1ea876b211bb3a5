"""What a bundle's ``world`` (the faces its models were trained on) means for the code that runs it.

A bundle's manifest names its world (``"world": "teaching"``); everything that differs between worlds is a
field of :class:`World` here, so the pipeline, the verification and the app read traits, never names. A new
family of bundles is a new row.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class World:
    """The traits of one world.

    Attributes:
        faces: what the models were trained on (shown in reports).
        identity_label: what the bundle's identity network is, in verification reports.
        identity_threshold: cosine of that network above which two faces are the same person (a bundle's
            ``identity_threshold`` setting overrides it).
        identity_knows_photos: the identity network was trained on real faces, so it can score a real photo;
            when not, a real (unaligned) photo is scored by dlib's face ResNet instead.
    """

    faces: str
    identity_label: str
    identity_threshold: float
    identity_knows_photos: bool


#: Every world a bundle can declare.
#: teaching: the accuracy-maximising threshold (0.382, 94.9 % accurate) of the teaching embedder on 2,000 unmasked
#: pairs (``VerificationPairs(WorldConfig(size=64, preset="standard", seed=1), pairs_per_fold=100)``; held-out
#: identities). ffhq: InsightFace_Pytorch's default verification threshold for IR-SE-50, 1.54 on the squared
#: distance of unit embeddings, i.e. cosine 1 - 1.54 / 2.
WORLDS: dict[str, World] = {
    "teaching": World(faces="procedural teaching faces", identity_label="teaching embedder",
                      identity_threshold=0.38, identity_knows_photos=False),
    "ffhq": World(faces="real photos (FFHQ)", identity_label="IR-SE-50",
                  identity_threshold=1.0 - 1.54 / 2.0, identity_knows_photos=True),
    # The DigiFace-1M DCGAN's bundle carries no identity network (none trained on real faces is offline), so
    # verification scores photos with dlib's face ResNet; the threshold is only read if one is added.
    "digiface": World(faces="DigiFace-1M synthetic photos (DCGAN, 64 px)", identity_label="dlib face ResNet",
                      identity_threshold=0.38, identity_knows_photos=False),
}
