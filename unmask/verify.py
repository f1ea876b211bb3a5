"""Identity scoring and verification: does recovery help recognition? (Sabri et al., arXiv 2212.14107.)

* :func:`verify` (what :meth:`unmask.pipeline.UnmaskPipeline.verify` runs): the masked and the recovered face,
  each against an unmasked reference, scored by the bundle's identity network at its world's threshold
  (:data:`unmask.bundle.worlds.WORLDS`), or by dlib's face ResNet for a real photo the network does not know;
* :func:`identity_embedding`: unit embeddings of aligned faces by the bundle's identity network;
* the judges of ``python -m unmask.evaluate unmasking``: a batch of aligned faces embedded and pairs scored as
  similarities (higher = more alike), which is what :func:`unmask.evaluate.verification.verification_metrics`
  expects. ``teaching``: the bundle's identity network (cosine of unit embeddings). ``dlib``: dlib's 128-D
  face ResNet from ``face-recognition-models`` (:mod:`unmask.faces.embed`), trained on real faces and
  independent of this project, offline; it reads FFHQ-aligned crops, upsampled to its 150-px chip; the score
  is minus the Euclidean distance of the descriptors (dlib calls a pair the same person below 0.6).

A recovered face is a guess, never evidence of identity.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from unmask.bundle.worlds import WORLDS
from unmask.errors import ConfigError, UnmaskError
from unmask.faces.io import from_uint8, load_image, resize_image
from unmask.recovery import UnmaskResult


class Recovering(Protocol):
    """What verification needs of a pipeline (:class:`unmask.pipeline.UnmaskPipeline` has it all): verification
    takes the pipeline as an argument and never imports its module."""

    identity_net: torch.nn.Module | None
    config: Any
    device: torch.device
    size: int

    def __call__(self, image: Any, **kwargs: Any) -> UnmaskResult: ...

    def autocast(self) -> Any: ...

    def aligned_crops(self, photo: np.ndarray, mask: np.ndarray | None, *, aligned: bool, which: str,
                      size: int | None = None) -> list: ...


@dataclasses.dataclass(frozen=True)
class Verification:
    """Does recovery help recognition? Masked and recovered face, each against an unmasked reference.

    Attributes:
        network: the identity network that scored the pairs.
        metric: ``"cosine"`` (same person when above ``threshold``) or ``"distance"`` (when below).
        threshold: the network's decision threshold.
        masked: score of the masked input against the reference.
        recovered: score of the recovered face (recovered pixels inside the mask, input outside) against it.
    """

    network: str
    metric: str
    threshold: float
    masked: float
    recovered: float

    def same(self, score: float) -> bool:
        """The network's decision for ``score``."""
        return score > self.threshold if self.metric == "cosine" else score < self.threshold

    @property
    def same_masked(self) -> bool:
        return self.same(self.masked)

    @property
    def same_recovered(self) -> bool:
        return self.same(self.recovered)


def identity_embedding(pipe: Recovering, faces: Sequence[np.ndarray]) -> np.ndarray:
    """Unit-norm embeddings ``(N, D)`` of aligned uint8 faces ``(S, S, 3)`` with the bundle's identity network.

    Raises:
        ConfigError: the bundle has no identity network.
    """
    if pipe.identity_net is None:
        raise ConfigError("this bundle has no identity network; load one with an identity component "
                          "(e.g. 'teaching' or 'ffhq').")
    x = from_uint8(np.stack([resize_image(np.asarray(f), pipe.size) for f in faces]), pipe.device)
    with torch.no_grad(), pipe.autocast():
        return pipe.identity_net.embed(x).float().cpu().numpy()


def verify(pipe: Recovering, image: Any, reference: Any, *, result: UnmaskResult | None = None,
           aligned: bool = False, reference_aligned: bool | None = None,
           **call_kwargs: Any) -> tuple[Verification, UnmaskResult]:
    """Score the masked and the recovered face against an unmasked reference photo of the same person.

    The network is the bundle's identity network (IR-SE-50 for ffhq, the teaching embedder for teaching
    faces); a real photo (``aligned=False``) given to a bundle whose world's identity network knows no real
    faces (:attr:`unmask.bundle.worlds.World.identity_knows_photos`) is scored with dlib's 128-D face ResNet
    instead.

    Args:
        pipe: the pipeline that recovers ``image`` and whose identity network scores it.
        image: the masked photo (as in :meth:`UnmaskPipeline.__call__`).
        reference: an unmasked photo of the person (path, bytes, PIL or uint8 array).
        result: the result of ``pipe(image, ...)`` if already computed; else it is computed here.
        aligned: ``image`` is an aligned crop; ``reference_aligned`` (default: the same) for ``reference``.
        **call_kwargs: passed to :meth:`UnmaskPipeline.__call__` (``mode``, ``steps``, ``seed``, ``mask``).

    Returns:
        ``(Verification, UnmaskResult)``; the largest face of ``image`` is the one scored.

    Raises:
        ImageError / NoFaceError: either photo cannot be read or shows no face.
    """
    if result is None:
        result = pipe(image, aligned=aligned, **call_kwargs)
    ref_aligned = aligned if reference_aligned is None else reference_aligned
    reference = load_image(reference)
    face = result.faces[0]
    world = WORLDS[pipe.config.world]
    if pipe.identity_net is None or (not world.identity_knows_photos and not aligned):
        from unmask.faces.embed import DLIB_CHIP_SIZE, DLIB_DISTANCE_THRESHOLD, descriptor_distance

        # Real photos: crop the input and the output photo (recovered pixels pasted in) at dlib's own
        # resolution along the face's alignment, rather than upsampling the pipeline's small crop.
        size = 2 * DLIB_CHIP_SIZE
        transform = np.diag([size / pipe.size, size / pipe.size, 1.0]) @ face.transform
        photo = load_image(image)
        crops = [_warp_image(photo, transform, size), _warp_image(result.output, transform, size),
                 pipe.aligned_crops(reference, None, aligned=ref_aligned, which="largest", size=size)[0][0]]
        embedder = dlib_embedder()
        masked_e, recovered_e, ref_e = embedder.embed(crops, pipe.config.alignment)
        verification = Verification(embedder.name, "distance", DLIB_DISTANCE_THRESHOLD,
                                    descriptor_distance(masked_e, ref_e), descriptor_distance(recovered_e, ref_e))
    else:
        ref_crop = pipe.aligned_crops(reference, None, aligned=ref_aligned, which="largest")[0][0]
        alpha = face.mask[..., None]
        composite = (face.recovered * alpha + face.aligned_input * (1.0 - alpha)).round().astype(np.uint8)
        masked_e, recovered_e, ref_e = identity_embedding(pipe, [face.aligned_input, composite, ref_crop])
        threshold = pipe.config.identity_threshold
        threshold = world.identity_threshold if threshold is None else threshold
        name = f"{type(pipe.identity_net).__name__} ({world.identity_label})"
        verification = Verification(name, "cosine", float(threshold), float(masked_e @ ref_e),
                                    float(recovered_e @ ref_e))
    return verification, result


def _warp_image(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """The ``size``×``size`` crop that the 3×3 ``transform`` (photo → crop pixels) cuts out of ``image``."""
    import cv2

    return cv2.warpAffine(image, transform[:2].astype(np.float64), (size, size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REFLECT)


@functools.cache
def dlib_embedder():
    """One shared dlib face ResNet (loading it reads a 22 MB file); its calls hold no state between them."""
    from unmask.faces.embed import DlibFaceEmbedder

    return DlibFaceEmbedder()


# ---------------------------------------------------------------------------------------------- judges
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
        with self.pipe.autocast():
            return self.pipe.identity_net.embed(images.to(self.pipe.device).float()).float().cpu().numpy()

    @staticmethod
    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(axis=1)


class DlibJudge:
    """dlib's 128-D face ResNet; similarity = minus the descriptor distance."""

    key = "dlib"

    def __init__(self) -> None:
        self.embedder = dlib_embedder()  # DependencyError with the install line when dlib is missing
        self.name = JUDGE_NAMES[self.key]

    def embed(self, images: torch.Tensor) -> np.ndarray:
        from unmask.faces.io import to_uint8

        return self.embedder.embed(list(to_uint8(images.detach().cpu().float())))

    @staticmethod
    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return -np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)


def build_judges(keys, pipe) -> tuple[dict[str, object], dict[str, str]]:
    """The judges that can run (``{key: judge}``) and those that cannot (``{key: reason}``)."""
    judges, skipped = {}, {}
    for key in keys:
        if key not in JUDGES:
            raise ConfigError(f"unknown judge {key!r}; choose from {list(JUDGES)}.")
        try:
            judges[key] = IdentityJudge(pipe) if key == "teaching" else DlibJudge()
        except UnmaskError as err:
            skipped[key] = str(err)
    return judges, skipped
