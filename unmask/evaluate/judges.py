"""The networks that judge verification: the bundle's identity network and dlib's face ResNet.

A judge embeds a batch of aligned faces and scores pairs of embeddings as similarities (higher =
more alike), which is what :func:`unmask.evaluate.verification.verification_metrics` expects.

* ``teaching``: the bundle's identity network (for the teaching bundle, the teaching embedder, trained
  in the same procedural world as the encoders; cosine of unit embeddings).
* ``dlib``: dlib's 128-D face ResNet from ``face-recognition-models`` (:mod:`unmask.faces.embed`),
  trained on real faces and independent of this project; offline. It reads FFHQ-aligned crops, which
  it upsamples to its 150-px chip; the score is minus the Euclidean distance of the descriptors (dlib
  calls a pair the same person below 0.6).
"""

from __future__ import annotations

import numpy as np
import torch

from unmask.errors import ConfigError

JUDGES = ("teaching", "dlib")
#: Label of each judge in tables and figures.
JUDGE_NAMES = {"teaching": "teaching embedder", "dlib": "dlib ResNet (real faces)"}


class IdentityJudge:
    """The bundle's identity network: cosine of unit embeddings."""

    key = "teaching"

    def __init__(self, pipe) -> None:
        if pipe.identity_net is None:
            raise ConfigError("the bundle has no identity network to judge verification with.")
        self.pipe = pipe
        self.name = JUDGE_NAMES[self.key]

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> np.ndarray:
        """``(B, D)`` unit embeddings of ``(B, 3, S, S)`` faces in ``[-1, 1]``."""
        return self.pipe.identity_net.embed(images.to(self.pipe.device).float()).cpu().numpy()

    @staticmethod
    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(axis=1)


class DlibJudge:
    """dlib's 128-D face ResNet; similarity = minus the descriptor distance."""

    key = "dlib"

    def __init__(self) -> None:
        from unmask.faces.embed import DlibFaceEmbedder

        self.embedder = DlibFaceEmbedder()  # DependencyError with the install line when dlib is missing
        self.name = JUDGE_NAMES[self.key]

    def embed(self, images: torch.Tensor) -> np.ndarray:
        from unmask.faces.io import to_uint8

        return self.embedder.embed(list(to_uint8(images.detach().cpu().float())))

    @staticmethod
    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return -np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)


def build_judges(keys, pipe) -> tuple[dict[str, object], dict[str, str]]:
    """The judges that can run (``{key: judge}``) and those that cannot (``{key: reason}``)."""
    from unmask.errors import UnmaskError

    judges, skipped = {}, {}
    for key in keys:
        if key not in JUDGES:
            raise ConfigError(f"unknown judge {key!r}; choose from {list(JUDGES)}.")
        try:
            judges[key] = IdentityJudge(pipe) if key == "teaching" else DlibJudge()
        except UnmaskError as err:
            skipped[key] = str(err)
    return judges, skipped
