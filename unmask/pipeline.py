"""``UnmaskPipeline``: the one inference class behind the app, the CLI and the notebooks.

photo → detect → FFHQ-align → unmasking encoder → W+ → [refine on visible pixels] → frozen
StyleGAN2 → recovered face → paste back into the photo (only the masked region changes).

The same class serves the real FFHQ models (Hub weights, non-commercial research licences) and
the teaching models trained on the procedural world (shipped in ``weights/teaching``). It only infers:
bundles are resolved by :mod:`unmask.bundle` (whose loading names it re-exports: :data:`WEIGHTS_DIR`,
:data:`BUNDLES`, :func:`available_bundles`) and verification is :mod:`unmask.verify`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unmask.bundle.resolve import BUNDLES, WEIGHTS_DIR, available_bundles
from unmask.bundle.worlds import WORLDS
from unmask.errors import ConfigError, InputShapeError, NoFaceError
from unmask.faces.io import from_uint8, resize_image, to_uint8
from unmask.faces.provenance import Parent, changed_box
from unmask.verify import Verification

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
        parent: the input as given (:class:`unmask.faces.provenance.Parent`: the file's bytes for a path or bytes),
            the parent ingredient of the saved photo's C2PA manifest.
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
        from unmask.faces.provenance import Provenance

        return Provenance(self.bundle, self.mode, regions=tuple(f.region for f in self.faces if f.region),
                          parent=self.parent)

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


class UnmaskPipeline:
    """Recover the face under a mask: the one inference class of unmask.

    Args:
        generator: a frozen generator (:class:`unmask.models.generators.FrozenGenerator`: StyleGAN2 or DCGAN).
        encoder: unmasking (or generic pSp/e4e) encoder mapping a face to W+.
        identity_net: optional module with ``embed(images) -> (B, D)`` for the identity score and
            the identity term of the refinement.
        config: :class:`PipelineConfig`.
        device: where the models run.
        precision: ``"auto"`` (bf16 where the CPU has bf16 matrix units or the GPU supports it, float32
            elsewhere; :func:`unmask.precision.resolve_precision`), ``"fp32"`` or ``"bf16"``. The models run
            under autocast; cosines, masks and images come back in float32. ``result.precision`` says which ran.

    Example:
        >>> pipe = UnmaskPipeline.from_pretrained("teaching")
        >>> result = pipe("masked.png", mode="encoder")
        >>> result.save("unmasked.png")  # XMP: the face region is synthesised
    """

    def __init__(self, generator: torch.nn.Module, encoder: torch.nn.Module,
                 identity_net: torch.nn.Module | None = None, *, config: PipelineConfig | None = None,
                 device: str | torch.device = "cpu", precision: str = "auto") -> None:
        from unmask.precision import resolve_precision

        self.config = config or PipelineConfig()
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.encoder = encoder.to(self.device).eval().requires_grad_(False)
        self.identity_net = None
        if identity_net is not None:
            self.identity_net = identity_net.to(self.device).eval().requires_grad_(False)
        # The only state a call leaves behind: two values computed on first use and never changed after,
        # so concurrent calls (the app runs up to 4) share them safely; two first calls at once may both
        # compute the value, and either result is the same.
        self._detector = None  # the face detector of config.detector
        self.bundle = "unnamed"  # from_pretrained names it; saved files record it
        self._cached_latent_avg: torch.Tensor | None = None  # see _latent_avg
        expected_nc = 4 if self.config.mask_channel else 3
        enc_cfg = getattr(self.encoder, "config", None)
        if enc_cfg is not None and getattr(enc_cfg, "input_nc", expected_nc) != expected_nc:
            raise ConfigError(f"pipeline mask_channel={self.config.mask_channel} needs an encoder with "
                              f"input_nc={expected_nc}, got {enc_cfg.input_nc}")

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike = "teaching", *, revision: str | None = None,
                        device: str | torch.device = "auto", precision: str = "auto",
                        **overrides: Any) -> UnmaskPipeline:
        """Load a bundle: ``"teaching"`` (shipped), ``"ffhq"`` (public Hub weights), or a folder/repo.

        A bundle is a folder (or Hub repo) with ``pipeline.json`` (a :class:`PipelineConfig` plus the
        sub-folder names of ``generator``, ``encoder`` and optionally ``identity``). ``"ffhq"`` is a
        built-in manifest (``unmask/bundle/manifests/ffhq.json``) naming :data:`unmask.hub.REGISTRY` entries:
        StyleGAN2-FFHQ, the e4e encoder and IR-SE-50. No unmasking encoder for FFHQ has been released,
        so that bundle runs the generic e4e inversion of the masked photo, refined on the visible
        pixels; all three files are non-commercial research only.

        Args:
            source: bundle name (``teaching``, ``digiface``, ``ffhq``), folder, or Hub repo id.
            revision: Hub revision for a repo id.
            device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``…
            precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (see :class:`UnmaskPipeline`).
            **overrides: fields of :class:`PipelineConfig` to change (e.g. ``refine_steps=20``).

        Raises:
            HubError / WeightsError: with what to do (e.g. the teaching weights are missing from a
                partial checkout, or the Hub is offline for ``"ffhq"``).
        """
        from unmask.bundle.resolve import BUNDLES, resolve_bundle
        from unmask.faces.provenance import bundle_name

        device = resolve_device(device)
        _check_overrides(overrides)
        manifest, root = resolve_bundle(source, revision=revision)
        pipe = cls.from_manifest(manifest, root=root, revision=revision, device=device, precision=precision,
                                 **overrides)
        named = root is None or str(source) in BUNDLES  # a built-in manifest or a shipped bundle: its name
        pipe.bundle = str(source) if named else bundle_name(source, revision)
        return pipe

    @classmethod
    def from_manifest(cls, manifest: Any, *, root: str | os.PathLike | None = None, revision: str | None = None,
                      device: str | torch.device = "cpu", precision: str = "auto",
                      **overrides: Any) -> UnmaskPipeline:
        """Assemble a pipeline from a bundle manifest: the one bundle builder of unmask.

        ``from_pretrained``, ``python -m unmask.convert`` and ``python -m unmask.bundle`` all go
        through here; :meth:`save_pretrained` writes the result as a bundle folder.

        Args:
            manifest: a :class:`unmask.bundle.BundleManifest` or its JSON dict: :class:`PipelineConfig`
                fields plus ``components`` naming each model's source (a bundle subfolder, a
                ``{"registry": NAME}`` entry, a ``{"path": FOLDER}`` or a ``{"path": FILE, "kind": KIND}``
                public checkpoint). ``align_size`` and ``mask_channel`` default to what the encoder takes.
            root: the bundle folder or Hub repo that ``subfolder`` components live in.
            revision / device / precision / overrides: as in :meth:`from_pretrained`.
        """
        from unmask import hub
        from unmask.bundle.manifest import BundleManifest
        from unmask.bundle.resolve import encoder_settings, load_components

        if not isinstance(manifest, BundleManifest):
            manifest = BundleManifest.from_json(manifest)
        models = load_components(manifest, root=root, revision=revision)
        config = hub.parse_config(PipelineConfig, {**encoder_settings(models["encoder"]), **manifest.settings,
                                                   **overrides}, source=str(root or "manifest"))
        return cls(models["generator"], models["encoder"], models.get("identity"), config=config, device=device,
                   precision=precision)

    def save_pretrained(self, folder: str | os.PathLike, *, references: dict[str, Any] | None = None) -> Path:
        """Write the bundle (``pipeline.json`` + one sub-folder per model).

        Args:
            references: ``{role: ComponentSource}`` for models the manifest names instead of copying them (e.g.
                ``{"generator": ComponentSource(registry="digiface-dcgan")}``: weights that load from an installed
                package or the Hub, whose licence does not let the bundle redistribute them).
        """
        from unmask import bundle

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        components = {"generator": self.generator, "encoder": self.encoder, "identity": self.identity_net}
        sources = dict(references or {})
        for role, model in components.items():
            if model is not None and role not in sources:
                model.save_pretrained(folder / role)
                sources[role] = bundle.ComponentSource(subfolder=role)
        bundle.write_manifest(folder, bundle.BundleManifest(settings=dataclasses.asdict(self.config),
                                                            components=sources))
        return folder

    # ------------------------------------------------------------------ inference
    @property
    def size(self) -> int:
        return self.config.align_size

    def detector(self):
        if self._detector is None:
            from unmask.faces.detect import get_detector

            self._detector = get_detector(self.config.detector)
        return self._detector

    def __call__(self, image: Any, *, mode: str | None = None, steps: int | None = None, seed: int = 0,
                 mask: np.ndarray | None = None, aligned: bool = False, which: str = "largest",
                 progress: ProgressFn | None = None) -> UnmaskResult:
        """Recover the faces under masks in ``image``.

        Args:
            image: path, bytes, PIL image or uint8 ``(H, W, 3)`` array.
            mode: ``"encoder"`` (one forward pass), ``"encoder+refine"`` (then optimise W+ on the
                visible pixels) or ``"optimize"`` (optimise from ``latent_avg``; the generic baseline);
                ``None`` takes the bundle's ``config.default_mode``.
            steps: optimisation steps for the two optimising modes (defaults from the config).
            seed: seed of the optimisation noise (results are deterministic for a seed).
            mask: optional occlusion mask (1 = covered), float ``(H, W)`` in the coordinates of ``image``;
                by default the encoder's mask head predicts it (:meth:`predict_mask`) where the encoder
                has one, and otherwise it is estimated from the landmarks (the lower face a mask covers).
                The mask decides both the refinement's visible pixels and the paste-back region.
            aligned: ``image`` is already an FFHQ-aligned face crop: skip detection.
            which: ``"largest"`` face or ``"all"`` faces.
            progress: optional ``callback(fraction, message)``.

        Raises:
            ImageError / NoFaceError: the image cannot be read or shows no face.
        """
        mode = self.config.default_mode if mode is None else mode
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        from unmask.faces.io import load_image

        report = progress or (lambda fraction, message: None)
        timings: dict[str, float] = {}
        start = t0 = time.perf_counter()
        photo = load_image(image)
        if mask is not None:
            mask = np.asarray(mask, dtype=np.float32)
            if mask.ndim == 3:
                mask = mask[..., 0] if mask.shape[-1] in (1, 3, 4) else mask[0]
            if mask.shape != photo.shape[:2]:
                raise InputShapeError(f"mask has shape {mask.shape} but the image is {photo.shape[:2]}; give a "
                                      "mask of the image's height and width (1 = covered).")
            if mask.max() > 1.0:
                mask = mask / 255.0
        timings["load"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report(0.05, "finding faces")
        crops = self.aligned_crops(photo, mask, aligned=aligned, which=which)
        timings["detect"] = time.perf_counter() - t0

        output = photo.copy()
        faces: list[FaceResult] = []
        mask_source = "painted" if mask is not None else "predicted" if self.has_mask_head else "estimated"
        for i, (crop, crop_mask, transform, box) in enumerate(crops):
            encoded = None
            if mask_source == "predicted":  # one encoder pass: the W+ it also yields is reused below
                t0 = time.perf_counter()
                predicted, w_plus = self._predict(from_uint8(crop, self.device))
                crop_mask = predicted[0, 0].cpu().numpy()
                encoded = None if self.config.mask_channel else w_plus  # a mask-channel encoder reads the mask
                timings["mask"] = timings.get("mask", 0.0) + time.perf_counter() - t0

            def face_progress(fraction: float, message: str, i=i) -> None:
                report(0.1 + 0.85 * (i + fraction) / len(crops), message)

            face, face_timings = self._recover(crop, crop_mask, transform, box, mask_source, mode=mode, steps=steps,
                                               seed=seed, progress=face_progress, w_plus=encoded)
            for key, value in face_timings.items():
                timings[key] = timings.get(key, 0.0) + value
            t0 = time.perf_counter()
            pasted = self._paste(output, face)
            face.region, output = changed_box(output, pasted), pasted
            timings["paste"] = timings.get("paste", 0.0) + time.perf_counter() - t0
            faces.append(face)
        timings["total"] = time.perf_counter() - start
        report(1.0, "done")
        return UnmaskResult(output=output, faces=faces, mode=mode, timings=timings, bundle=self.bundle,
                            precision=self.precision.precision, parent=Parent.of(image))

    # ------------------------------------------------------------------ stages
    def aligned_crops(self, photo: np.ndarray, mask: np.ndarray | None, *, aligned: bool, which: str,
                      size: int | None = None):
        """Detect and align: the faces of ``photo`` as aligned crops with their masks.

        Args:
            photo: uint8 ``(H, W, 3)``.
            mask: the caller's mask in photo coordinates (``None``: the landmark estimate,
                :func:`unmask.faces.masks.region.estimate_mask_region`).
            aligned / which: as in :meth:`__call__`.
            size: side of the crops (default: the bundle's ``align_size``).

        Returns:
            a list of ``(crop uint8 (S, S, 3), mask float32 (S, S), transform 3×3 photo → crop, box or None)``.
        """
        from unmask.faces.align import align_face
        from unmask.faces.masks.region import estimate_mask_region

        size = size or self.size
        if aligned:
            h, w = photo.shape[:2]
            transform = np.array([[size / w, 0, 0], [0, size / h, 0], [0, 0, 1]], dtype=np.float64)
            crop = resize_image(photo, size)
            if mask is not None:
                crop_mask = _resize_mask(mask, size)
            else:
                from unmask.faces.template import template_landmarks

                crop_mask = estimate_mask_region(template_landmarks(size, self.config.alignment), (size, size))
            return [(crop, crop_mask.astype(np.float32), transform, None)]
        faces = self.detector().detect(photo)
        if not faces:
            raise NoFaceError("no face found in the image. Use a photo where the face is visible, frontal and at "
                              "least ~80 px wide, or pass an already aligned face crop with aligned=True.")
        if which == "largest":
            faces = faces[:1]
        elif which != "all":
            raise ConfigError(f"which must be 'largest' or 'all', got {which!r}")
        from unmask.faces.template import alignment_template

        template = alignment_template(self.config.alignment)
        crops = []
        for face in faces:
            al = align_face(photo, face.landmarks68, size=size, template=template)
            if mask is not None:
                crop_mask = _warp_mask(mask, al.transform, size)
            else:
                crop_mask = estimate_mask_region(al.landmarks68, (size, size))
            crops.append((al.crop, crop_mask.astype(np.float32), al.transform, face.box))
        return crops

    @property
    def has_mask_head(self) -> bool:
        """Whether the encoder predicts the occlusion mask (then it replaces the landmark estimate)."""
        return bool(getattr(self.encoder, "has_mask_head", False))

    @torch.no_grad()
    def predict_mask(self, masked: torch.Tensor) -> torch.Tensor:
        """The encoder head's occlusion mask of aligned faces, binarised at :data:`MASK_THRESHOLD`.

        Args:
            masked: ``(B, 3, S, S)`` aligned faces in ``[-1, 1]`` (resized to the encoder's input size and
                the mask back to ``S``).

        Returns:
            ``(B, 1, S, S)`` float in ``{0, 1}``, 1 = occluded.

        Raises:
            ConfigError: the encoder has no mask head (give a mask, or let the landmarks estimate it).
        """
        return self._predict(masked)[0]

    @torch.no_grad()
    def _predict(self, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predict_mask`'s mask and the W+ that the same encoder pass yields, ``(B, n_latent, style_dim)``
        (the encoding of ``masked`` resized to the encoder's input, without a mask channel)."""
        if not self.has_mask_head:
            raise ConfigError("this bundle's encoder has no mask head; pass the mask yourself or call the pipeline "
                              "without one to use the landmark estimate.")
        if masked.ndim != 4 or masked.shape[1] != 3:
            raise InputShapeError(f"predict_mask expects aligned faces (B, 3, S, S), got {tuple(masked.shape)}.")
        x = masked.to(self.device).float()
        size = x.shape[-1]
        enc_size = self.encoder.config.input_size
        if size != enc_size:
            x = F.interpolate(x, size=(enc_size, enc_size), mode="bilinear", align_corners=False, antialias=True)
        with self.autocast():
            w_plus, logits = self.encoder(x, with_mask=True)
        prob = torch.sigmoid(logits.float())
        if size != enc_size:
            prob = F.interpolate(prob, size=(size, size), mode="bilinear", align_corners=False)
        return (prob >= MASK_THRESHOLD).float(), w_plus.float()

    @torch.no_grad()
    def _encode(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        from unmask.models.encoder import encoder_input

        enc_size = getattr(getattr(self.encoder, "config", None), "input_size", x.shape[-1])
        with self.autocast():
            return self.encoder(encoder_input(x, m, mask_channel=self.config.mask_channel, size=enc_size)).float()

    def autocast(self):
        """The models' autocast context for :attr:`precision` (a no-op in float32); outputs need ``.float()``."""
        from unmask.precision import autocast

        return autocast(self.precision, self.device)

    def _render(self, w_plus: torch.Tensor, size: int) -> torch.Tensor:
        with self.autocast():
            img = self.generator.synthesis(w_plus, randomize_noise=False).float()
        if img.shape[-1] != size:
            img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return img.clamp(-1, 1)

    def recover_batch(self, masked: torch.Tensor, mask: torch.Tensor, *, mode: str = "encoder",
                      steps: int | None = None, seed: int = 0, progress: ProgressFn | None = None,
                      timings: dict[str, float] | None = None, encoder_mask: torch.Tensor | None = None,
                      w_plus: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Recover a batch of aligned masked faces (no detection, no paste-back).

        Args:
            masked: ``(B, 3, S, S)`` aligned faces in ``[-1, 1]``.
            mask: ``(B, 1, S, S)``, 1 = occluded: the pixels the refinement does not fit.
            mode / steps / seed: as in :meth:`__call__`.
            encoder_mask: the 4th input channel of a mask-channel encoder, ``(B, 1, S, S)`` (default:
                ``mask``). Zeros give a generic inversion encoder that was trained without masks what it
                saw in training, while the refinement still fits only the visible pixels.
            w_plus: the encoder's W+ of ``masked`` when it is already known, ``(B, n_latent, style_dim)``
                (e.g. from the mask head's pass); then the encoder does not run again.
            progress: optional ``callback(fraction, message)``.
            timings: optional dict that receives ``encode``, ``refine`` and ``render`` seconds.

        Returns:
            ``(recovered (B, 3, S, S) in [-1, 1], w_plus (B, n_latent, style_dim))``: the generator's
            rendering, not yet composited with the visible pixels.
        """
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if masked.ndim != 4 or masked.shape[1] != 3 or mask.shape != (masked.shape[0], 1, *masked.shape[2:]):
            raise InputShapeError(f"expected masked (B, 3, S, S) and mask (B, 1, S, S), got {tuple(masked.shape)} "
                                  f"and {tuple(mask.shape)}")
        report = progress or (lambda fraction, message: None)
        timings = timings if timings is not None else {}
        x, m = masked.to(self.device).float(), mask.to(self.device).float()
        t0 = time.perf_counter()
        latent_avg = self._latent_avg()
        if mode == "optimize":
            w_plus = latent_avg.expand(x.shape[0], self.generator.n_latent, -1).clone()
        else:
            report(0.1, "encoding")
            if w_plus is None:
                w_plus = self._encode(x, m if encoder_mask is None else encoder_mask.to(self.device).float())
            w_plus = w_plus.to(self.device)
        timings["encode"] = time.perf_counter() - t0
        if mode != "encoder":
            from unmask.invert import InversionConfig, invert

            refine = mode == "encoder+refine"
            n = steps if steps is not None else (self.config.refine_steps if refine else self.config.optimize_steps)
            cfg = InversionConfig(steps=int(n), lr=self.config.refine_lr if refine else self.config.optimize_lr,
                                  seed=seed, w_norm_weight=self.config.w_norm_weight,
                                  identity_weight=self.config.identity_weight if self.identity_net else 0.0)
            t0 = time.perf_counter()

            def cb(step: int, total: int, logs: dict) -> None:
                report(0.2 + 0.7 * step / max(total, 1), f"optimising {step}/{total}")

            with self.autocast():
                result = invert(self.generator, x, m, init_w_plus=w_plus, latent_avg=latent_avg, config=cfg,
                                identity_net=self.identity_net, callback=cb)
            w_plus = result.w_plus.detach()
            timings["refine"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            recovered = self._render(w_plus, x.shape[-1])
        timings["render"] = time.perf_counter() - t0
        return recovered, w_plus

    def _recover(self, crop: np.ndarray, crop_mask: np.ndarray, transform: np.ndarray, box: np.ndarray | None,
                 mask_source: str, *, mode: str, steps: int | None, seed: int, progress: ProgressFn,
                 w_plus: torch.Tensor | None = None) -> tuple[FaceResult, dict[str, float]]:
        timings: dict[str, float] = {}
        x = from_uint8(crop, self.device)
        m = torch.from_numpy(crop_mask)[None, None].to(self.device)
        recovered, w_plus = self.recover_batch(x, m, mode=mode, steps=steps, seed=seed, progress=progress,
                                               timings=timings, w_plus=w_plus)
        similarity = None
        if self.identity_net is not None:
            t0 = time.perf_counter()
            with torch.no_grad(), self.autocast():
                emb = self.identity_net.embed(torch.cat([recovered, x]))
            similarity = float((emb[0] * emb[1]).sum())
            timings["identity"] = time.perf_counter() - t0
        face = FaceResult(aligned_input=crop, recovered=to_uint8(recovered)[0], mask=crop_mask,
                          identity_similarity=similarity, w_plus=w_plus[0].cpu(), transform=transform, box=box,
                          mask_source=mask_source)
        return face, timings

    # ------------------------------------------------------------------ verification
    def verify(self, image: Any, reference: Any, *, result: UnmaskResult | None = None, aligned: bool = False,
               reference_aligned: bool | None = None, **call_kwargs: Any) -> tuple[Verification, UnmaskResult]:
        """Score the masked and the recovered face against an unmasked reference photo of the same person:
        :func:`unmask.verify.verify` with this pipeline (same arguments)."""
        from unmask.verify import verify

        return verify(self, image, reference, result=result, aligned=aligned, reference_aligned=reference_aligned,
                      **call_kwargs)

    def _latent_avg(self) -> torch.Tensor:
        """The average w ``(1, style_dim)``: the encoder's ``latent_avg``, else the generator's mean latent
        (computed once: 4096 mapping passes)."""
        if self._cached_latent_avg is None:
            from unmask.models.generators import mean_latent

            self._cached_latent_avg = mean_latent(self.generator, 4096, seed=0, encoder=self.encoder,
                                                  device=self.device)
        return self._cached_latent_avg

    def _paste(self, photo: np.ndarray, face: FaceResult) -> np.ndarray:
        """Blend the recovered crop into the photo over the (grown, feathered) mask region only."""
        from unmask.faces.align import paste_back

        # Grow the mask so the seam falls on recovered skin, and feather by half the growth: the blend
        # band (about ±2σ) then stays between the mask edge and twice the growth, clear of the eyes.
        region = _grow(face.mask, self.config.blend_dilation)
        return paste_back(photo, face.recovered, face.transform, region=region,
                          feather=self.config.blend_dilation / 2)


# ---------------------------------------------------------------------- small helpers
def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return np.clip(resize_image(mask.astype(np.float32), size), 0.0, 1.0)


def _warp_mask(mask: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.clip(cv2.warpAffine(mask.astype(np.float32), transform[:2].astype(np.float64), (size, size),
                                  flags=cv2.INTER_LINEAR, borderValue=0.0), 0.0, 1.0)


def _grow(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Dilate a soft mask by ``fraction`` of its side (at least one pixel)."""
    import cv2

    radius = max(1, round(fraction * mask.shape[0]))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.clip(cv2.dilate(mask.astype(np.float32), kernel), 0.0, 1.0)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_overrides(overrides: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown PipelineConfig fields {unknown}; known: {sorted(known)}.")


__all__ = ["UnmaskPipeline", "UnmaskResult", "FaceResult", "PipelineConfig", "Verification", "MODES", "MASK_SOURCES",
           "BUNDLES", "WEIGHTS_DIR", "available_bundles", "resolve_device"]
