"""``UnmaskPipeline``: the one inference class behind the app, the CLI and the notebooks.

photo → detect → align → unmasking encoder → W+ → [refine on visible pixels] → frozen generator → recovered
face → paste back into the photo (only the masked region changes). Three stages that a server may call one by
one (:mod:`unmask.serving` batches the middle one across concurrent requests): :meth:`~UnmaskPipeline.prepare`
(decode, detect, align), :meth:`~UnmaskPipeline.recover_faces` (the models), :meth:`~UnmaskPipeline.compose`
(paste back). Settings and results are :mod:`unmask.recovery`'s types, loading is :mod:`unmask.loading`'s,
bundles are :mod:`unmask.bundle`'s (:data:`WEIGHTS_DIR`, :data:`BUNDLES`, :func:`available_bundles` are
re-exported) and verification is :mod:`unmask.verify`'s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from unmask.bundle.resolve import BUNDLES, WEIGHTS_DIR, available_bundles
from unmask.errors import ConfigError, InputShapeError, NoFaceError
from unmask.faces.io import from_uint8, resize_image, to_uint8
from unmask.faces.provenance import changed_box
from unmask.loading import BundleLoading
from unmask.precision import resolve_device
from unmask.recovery import (
    MASK_SOURCES,
    MASK_THRESHOLD,
    MODES,
    AlignedFace,
    FaceResult,
    PipelineConfig,
    PreparedPhoto,
    ProgressFn,
    UnmaskResult,
)

if TYPE_CHECKING:  # pragma: no cover
    from unmask.verify import Verification


def _silent(fraction: float, message: str) -> None:
    """A progress callback that reports nowhere."""


class UnmaskPipeline(BundleLoading):
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
        # The only state a call leaves behind: two values computed on first use and never changed after, so
        # concurrent calls share them safely (two first calls may both compute one; either result is the same).
        self._detector = None  # the face detector of config.detector
        self.bundle = "unnamed"  # from_pretrained names it; saved files record it
        self._cached_latent_avg: torch.Tensor | None = None  # see _latent_avg
        expected_nc = 4 if self.config.mask_channel else 3
        enc_cfg = getattr(self.encoder, "config", None)
        if enc_cfg is not None and getattr(enc_cfg, "input_nc", expected_nc) != expected_nc:
            raise ConfigError(f"pipeline mask_channel={self.config.mask_channel} needs an encoder with "
                              f"input_nc={expected_nc}, got {enc_cfg.input_nc}")

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
        """Recover the faces under masks in ``image``: :meth:`prepare`, :meth:`recover_faces`, :meth:`compose`.

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
        mode = self.resolve_mode(mode)
        report = progress or _silent
        start = time.perf_counter()
        report(0.05, "finding faces")
        prepared = self.prepare(image, mask=mask, aligned=aligned, which=which)
        faces = self.recover_faces(prepared.faces, mode=mode, steps=steps, seed=seed, timings=prepared.timings,
                                   progress=lambda fraction, message: report(0.1 + 0.85 * fraction, message))
        result = self.compose(prepared, faces, mode=mode, start=start)
        report(1.0, "done")
        return result

    def resolve_mode(self, mode: str | None) -> str:
        """``mode``, or the bundle's ``default_mode`` for ``None``; checked against :data:`MODES`."""
        mode = self.config.default_mode if mode is None else mode
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        return mode

    def prepare(self, image: Any, *, mask: np.ndarray | None = None, aligned: bool = False,
                which: str = "largest") -> PreparedPhoto:
        """Decode ``image`` and cut out its faces, aligned (no model runs). Arguments as in :meth:`__call__`."""
        from unmask.faces.io import load_image

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        photo = load_image(image)
        if mask is not None:
            mask = _photo_mask(mask, photo.shape[:2])
        timings["load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        crops = self.aligned_crops(photo, mask, aligned=aligned, which=which)
        timings["detect"] = time.perf_counter() - t0
        source = "painted" if mask is not None else "predicted" if self.has_mask_head else "estimated"
        faces = tuple(AlignedFace(crop, crop_mask, source, transform, box) for crop, crop_mask, transform, box in crops)
        return PreparedPhoto(photo=photo, faces=faces, timings=timings, parent=image)

    def recover_faces(self, faces: Sequence[AlignedFace], *, mode: str | None = None, steps: int | None = None,
                      seed: int = 0, progress: ProgressFn | None = None,
                      timings: dict[str, float] | None = None) -> list[FaceResult]:
        """Run the models on aligned faces: the mask head's mask (where a face's source is ``"predicted"``), W+,
        the generator's rendering and the identity score.

        In ``encoder`` mode the faces go through the models as one batch (the faces of a photo, or those of
        concurrent requests that :class:`unmask.serving.BatchingPipeline` gathers); the optimising modes recover
        one face at a time, each from ``seed``, so that no face's result depends on the others.

        Args:
            faces: from :meth:`prepare` (of one photo or several).
            mode / steps / seed / progress: as in :meth:`__call__`.
            timings: optional dict that the stages' seconds are added to (``mask``, ``encode``, ``refine``,
                ``render``, ``identity``).

        Returns:
            one :class:`FaceResult` per face, in order (``region`` is set by :meth:`compose`).
        """
        mode = self.resolve_mode(mode)
        timings = timings if timings is not None else {}
        report = progress or _silent
        if mode == "encoder" or len(faces) <= 1:
            return self._recover_together(faces, mode=mode, steps=steps, seed=seed, progress=report, timings=timings)
        results: list[FaceResult] = []
        for i, face in enumerate(faces):
            def face_progress(fraction: float, message: str, i: int = i) -> None:
                report((i + fraction) / len(faces), message)

            results += self._recover_together([face], mode=mode, steps=steps, seed=seed, progress=face_progress,
                                              timings=timings)
        return results

    def _recover_together(self, faces: Sequence[AlignedFace], *, mode: str, steps: int | None, seed: int,
                          progress: ProgressFn, timings: dict[str, float]) -> list[FaceResult]:
        """:meth:`recover_faces` of ``faces`` as one batch."""
        if not faces:
            return []

        def add(key: str, seconds: float) -> None:
            timings[key] = timings.get(key, 0.0) + seconds

        x = from_uint8(np.stack([face.crop for face in faces]), self.device)
        masks = np.stack([face.mask for face in faces]).astype(np.float32)
        predict = [i for i, face in enumerate(faces) if face.mask_source == "predicted"]
        w_plus = None
        if predict:
            t0 = time.perf_counter()
            predicted, predicted_w = self._predict(x[predict])  # one encoder pass: its W+ is reused below
            masks[predict] = predicted[:, 0].cpu().numpy()
            add("mask", time.perf_counter() - t0)
            if not self.config.mask_channel and mode != "optimize":  # a mask-channel encoder reads the mask
                t0 = time.perf_counter()
                w_plus = torch.empty(len(faces), *predicted_w.shape[1:], device=self.device)
                w_plus[predict] = predicted_w
                rest = [i for i in range(len(faces)) if i not in set(predict)]
                if rest:
                    w_plus[rest] = self._encode(x[rest], torch.from_numpy(masks[rest])[:, None].to(self.device))
                    add("encode", time.perf_counter() - t0)
        m = torch.from_numpy(masks)[:, None].to(self.device)
        stage: dict[str, float] = {}
        recovered, w_plus = self.recover_batch(x, m, mode=mode, steps=steps, seed=seed, progress=progress,
                                               timings=stage, w_plus=w_plus)
        for key, value in stage.items():
            add(key, value)
        similarity: list[float | None] = [None] * len(faces)
        if self.identity_net is not None:
            t0 = time.perf_counter()
            with torch.no_grad(), self.autocast():
                emb = self.identity_net.embed(torch.cat([recovered, x]))
            similarity = (emb[:len(faces)] * emb[len(faces):]).sum(dim=1).float().tolist()
            add("identity", time.perf_counter() - t0)
        recovered_u8, w_plus = to_uint8(recovered), w_plus.cpu()
        return [FaceResult(aligned_input=face.crop, recovered=recovered_u8[i], mask=masks[i],
                           identity_similarity=similarity[i], w_plus=w_plus[i], transform=face.transform, box=face.box,
                           mask_source=face.mask_source) for i, face in enumerate(faces)]

    def compose(self, prepared: PreparedPhoto, faces: Sequence[FaceResult], *, mode: str,
                start: float | None = None) -> UnmaskResult:
        """Paste the recovered faces into the photo (only their mask regions change) and record each face's
        changed region; ``start`` (a ``time.perf_counter()``) times the whole recovery as ``total``."""
        timings = dict(prepared.timings)
        t0 = time.perf_counter()
        output = prepared.photo
        for face in faces:
            pasted = self._paste(output, face)  # a new array: the photo itself is never written to
            face.region, output = changed_box(output, pasted), pasted
        timings["paste"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - start if start is not None else sum(timings.values())
        return UnmaskResult(output=output if faces else prepared.photo.copy(), faces=list(faces), mode=mode,
                            timings=timings, bundle=self.bundle, precision=self.precision.precision,
                            parent=prepared.parent)

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
        if mode == "optimize":
            w_plus = self._latent_avg().expand(x.shape[0], self.generator.n_latent, -1).clone()
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
                result = invert(self.generator, x, m, init_w_plus=w_plus, latent_avg=self._latent_avg(), config=cfg,
                                identity_net=self.identity_net, callback=cb)
            w_plus = result.w_plus.detach()
            timings["refine"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            recovered = self._render(w_plus, x.shape[-1])
        timings["render"] = time.perf_counter() - t0
        return recovered, w_plus

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
def _photo_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A caller's mask as float32 ``(H, W)`` in [0, 1] for a photo of ``shape`` (a channel dimension is dropped,
    0–255 values are scaled)."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim == 3:
        mask = mask[..., 0] if mask.shape[-1] in (1, 3, 4) else mask[0]
    if mask.shape != shape:
        raise InputShapeError(f"mask has shape {mask.shape} but the image is {shape}; give a mask of the image's "
                              "height and width (1 = covered).")
    return mask / 255.0 if mask.max() > 1.0 else mask


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


__all__ = ["UnmaskPipeline", "UnmaskResult", "FaceResult", "PipelineConfig", "AlignedFace", "PreparedPhoto", "MODES",
           "MASK_SOURCES", "MASK_THRESHOLD", "BUNDLES", "WEIGHTS_DIR", "available_bundles", "resolve_device"]
