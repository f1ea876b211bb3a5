"""What a recovery takes and gives: the settings of a bundle (:class:`PipelineConfig`), the faces a photo is cut
into (:class:`AlignedFace`, :class:`PreparedPhoto`) and the results (:class:`FaceResult`, :class:`UnmaskResult`).

:class:`unmask.pipeline.UnmaskPipeline` produces them and :mod:`unmask.verify` reads them; both import them from
here, so neither imports the other's module to name a type.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unmask.bundle.worlds import WORLDS
from unmask.errors import ConfigError

MODES = ("encoder", "encoder+refine", "optimize")
#: Where the region to recover came from, in order of preference: the user's, the encoder's, the landmarks'.
MASK_SOURCES = ("painted", "predicted", "estimated")
#: Probability above which the encoder head's pixel counts as occluded (the threshold of ``mask_iou``).
MASK_THRESHOLD = 0.5
ProgressFn = Callable[[float, str], None]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How a bundle of models is used.

    Attributes:
        world: what the models were trained on, a key of :data:`unmask.bundle.worlds.WORLDS` (``"teaching"``:
            procedural faces; ``"ffhq"``: real photos); every world-specific behaviour reads its traits.
        align_size: side of the FFHQ-aligned crop given to the encoder.
        mask_channel: the encoder takes the occlusion mask as a 4th input channel.
        refine_steps: default optimisation steps for ``encoder+refine``.
        optimize_steps: default steps for ``optimize`` (from ``latent_avg``).
        refine_lr: Adam learning rate of the refinement (starting from the encoder's guess).
        optimize_lr: Adam learning rate of ``optimize`` (from ``latent_avg``; the StyleGAN2 projector's 0.1).
        identity_weight: weight of the identity term during refinement (0 disables it).
        w_norm_weight: weight of the latent prior during refinement.
        blend_dilation: fraction of the crop by which the mask is grown before pasting back (the blend
            is feathered by half of it).
        detector: face detector backend for photos.
        description: shown in the app (what the models are, licence).
        identity_threshold: cosine of the identity network above which two faces are the same person
            (``None``: the world's ``identity_threshold``).
        default_mode: the mode used when a caller gives none (``encoder`` for the teaching bundle, whose
            refinement lowers in-mask quality; ``encoder+refine`` for ffhq, whose generic e4e encoder
            redraws the mask unless W+ is refined on the visible pixels).
        alignment: the crop its generator draws, a key of :data:`unmask.faces.template.TEMPLATES`: ``ffhq``
            (FFHQ's alignment) or ``digiface`` (the DigiFace-1M DCGAN's tighter crop, aligned by a similarity fit
            to its landmark template); photos are aligned to it and pasted back from it.
    """

    world: str = "teaching"
    align_size: int = 64
    mask_channel: bool = True
    refine_steps: int = 60
    optimize_steps: int = 300
    refine_lr: float = 0.03
    optimize_lr: float = 0.1
    identity_weight: float = 0.1
    w_norm_weight: float = 1e-3
    blend_dilation: float = 0.03
    detector: str = "dlib"
    description: str = ""
    default_mode: str = "encoder"
    identity_threshold: float | None = None
    alignment: str = "ffhq"

    def __post_init__(self) -> None:
        from unmask.faces.template import check_alignment

        check_alignment(self.alignment)
        if self.default_mode not in MODES:
            raise ConfigError(f"default_mode must be one of {MODES}, got {self.default_mode!r}")
        if self.world not in WORLDS:
            raise ConfigError(f"world must be one of {sorted(WORLDS)}, got {self.world!r}")
        if self.align_size < 16 or self.align_size & (self.align_size - 1):
            raise ConfigError(f"align_size must be a power of two >= 16, got {self.align_size}")


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    """One face of a photo, cut out and aligned for the models (what :meth:`UnmaskPipeline.prepare` finds).

    Attributes:
        crop: the aligned masked face, uint8 ``(S, S, 3)``.
        mask: occlusion mask in crop coordinates, float32 ``(S, S)`` (1 = covered): the caller's (``"painted"``)
            or the landmarks' (``"estimated"``); for ``"predicted"`` it is the landmark estimate that the encoder's
            mask head replaces when the face is recovered.
        mask_source: one of :data:`MASK_SOURCES`.
        transform: 3×3 matrix mapping photo pixels to crop pixels.
        box: face box in the photo ``(x0, y0, x1, y1)``, ``None`` for an aligned input.
    """

    crop: np.ndarray
    mask: np.ndarray
    mask_source: str
    transform: np.ndarray
    box: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class PreparedPhoto:
    """A decoded photo and its aligned faces, ready for :meth:`UnmaskPipeline.recover_faces`.

    Attributes:
        photo: uint8 ``(H, W, 3)``.
        faces: the faces to recover, largest first.
        timings: seconds spent so far (``load``, ``detect``).
        parent: the input as given (a path, encoded bytes, an array…), the parent ingredient of the output's C2PA
            manifest; read (:meth:`unmask.faces.provenance.Parent.of`) only when a file is written.
    """

    photo: np.ndarray
    faces: tuple[AlignedFace, ...]
    timings: dict[str, float]
    parent: Any = None


@dataclasses.dataclass
class FaceResult:
    """Result for one face of the photo.

    Attributes:
        aligned_input: the FFHQ-aligned masked face, uint8 ``(S, S, 3)``.
        recovered: the recovered (unmasked) face, uint8 ``(S, S, 3)``.
        mask: occlusion mask used, float32 ``(S, S)`` in crop coordinates, 1 = covered.
        mask_source: where ``mask`` came from: ``"painted"`` (given by the caller), ``"predicted"`` (by the
            encoder's mask head) or ``"estimated"`` (from the landmarks); see :data:`MASK_SOURCES`.
        identity_similarity: cosine between identity embeddings of the recovered face and the masked
            input (``None`` without an identity network).
        w_plus: the W+ latent ``(n_latent, 512)``.
        transform: 3×3 matrix mapping photo pixels to crop pixels.
        box: face box in the photo ``(x0, y0, x1, y1)`` or ``None`` for an aligned input.
        region: box ``(x0, y0, x1, y1)`` of the photo's pixels that pasting this face changed (the mask region and
            its feathered edge: what is synthesised), ``None`` if none changed.
    """

    aligned_input: np.ndarray
    recovered: np.ndarray
    mask: np.ndarray
    identity_similarity: float | None
    w_plus: torch.Tensor
    transform: np.ndarray
    box: np.ndarray | None
    mask_source: str = "estimated"
    region: tuple[int, int, int, int] | None = None


@dataclasses.dataclass
class UnmaskResult:
    """What ``UnmaskPipeline.__call__`` returns.

    Attributes:
        output: the photo with every processed face recovered, uint8 ``(H, W, 3)``.
        faces: one :class:`FaceResult` per processed face, largest first.
        mode: the inversion mode used.
        timings: seconds spent per stage (``load``, ``detect``, ``encode``, ``refine``, ``render``,
            ``paste``, ``total``).
        precision: what the models ran in, ``"fp32"`` or ``"bf16"`` (see :class:`UnmaskPipeline`).
        bundle: the name of the bundle that recovered it (recorded in saved files).
        parent: the input as given (a path, encoded bytes, an array…), the parent ingredient of the saved photo's
            C2PA manifest; read (:meth:`unmask.faces.provenance.Parent.of`) only when :attr:`provenance` is asked for.
    """

    output: np.ndarray
    faces: list[FaceResult]
    mode: str
    timings: dict[str, float]
    precision: str = "fp32"
    bundle: str = "unnamed"
    parent: Any = None

    @property
    def provenance(self):
        """What ``output`` is, for its file's metadata (:class:`unmask.faces.provenance.Provenance`): partly
        synthesised (IPTC ``compositeWithTrainedAlgorithmicMedia``), the bundle, the mode, each face's region, the
        input photo (the C2PA manifest's parent ingredient)."""
        from unmask.faces.provenance import Parent, Provenance

        return Provenance(self.bundle, self.mode, regions=tuple(f.region for f in self.faces if f.region),
                          parent=Parent.of(self.parent))

    def save(self, path: str | os.PathLike, *, label: bool = False, **save_kwargs: Any) -> Path:
        """Write ``output`` to ``path`` (``.png``, ``.jpg`` or ``.webp``) with :attr:`provenance` in its XMP and a
        signed C2PA manifest (:mod:`unmask.faces.provenance`).

        Args:
            label: also add a visible "face region synthesised" band below the photo (off by default here and
                in the CLI; the app's downloadable photo always has it).
            **save_kwargs: passed to Pillow (e.g. ``quality=90``).
        """
        from unmask.faces.provenance import save_image

        return save_image(path, self.output, self.provenance, label=label, **save_kwargs)

    # Convenience accessors for the common one-face case.
    @property
    def aligned_input(self) -> np.ndarray:
        return self.faces[0].aligned_input

    @property
    def recovered(self) -> np.ndarray:
        return self.faces[0].recovered

    @property
    def mask(self) -> np.ndarray:
        return self.faces[0].mask

    @property
    def identity_similarity(self) -> float | None:
        return self.faces[0].identity_similarity


