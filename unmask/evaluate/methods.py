"""The methods of the paper's comparison (arXiv 2212.14110), each a way to turn a masked face into an output.

Every method that recovers a face runs through an :class:`~unmask.pipeline.UnmaskPipeline` assembled
by :meth:`UnmaskPipeline.from_manifest` from the bundle's generator and identity network and one encoder
folder; nothing here runs a model any other way.

=================  ===========================================================================
key                method
=================  ===========================================================================
``masked``         the masked input, no recovery
``generic``        the generic encoder (trained to invert unmasked faces, ``model.target:
                   generic``), given the masked face: it redraws the mask
``generic+refine`` the generic encoder, then W+ refined on the visible pixels
``optimize``       per-image optimisation of W+ from the mean latent on the visible pixels
``ceiling``        the generic inversion of the *unmasked* face (optionally refined): what generic
                   inversion draws when nothing is hidden. Not a bound: the unmasking encoders,
                   trained for the task, can beat it (the key keeps its old name)
``a``              unmasking variant (a): 3-channel encoder with an occlusion-mask head; the mask
                   is its own prediction
``b``              unmasking variant (b): 4-channel encoder given the true mask
``oracle``         the world's information ceiling (:mod:`unmask.synthetic.oracle`): the world's
                   painter draws the face with every visible factor true and every hidden one at
                   its best prediction from the visible ones; no model, no weights
=================  ===========================================================================

A method whose weights are absent is skipped, with the reason, never replaced by another model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from unmask.errors import UnmaskError

METHOD_KEYS = ("masked", "generic", "generic+refine", "optimize", "ceiling", "a", "b", "oracle")
#: Row label of each method in tables and figures.
METHOD_NAMES = {
    "masked": "masked input",
    "generic": "generic encoder",
    "generic+refine": "generic encoder + refine",
    "optimize": "per-image optimisation",
    "ceiling": "generic inversion of the unmasked face",
    "a": "unmasking (a), predicted mask",
    "b": "unmasking (b), given mask",
    "oracle": "oracle: visible factors true, hidden predicted",
}
#: Methods that optimise per image (slow: scored on fewer faces).
OPTIMIZING = ("generic+refine", "optimize")
#: Folders inside a bundle searched for each encoder when none is given (issue 10's names).
DEFAULT_FOLDERS = {"generic": "encoder_generic", "a": "encoder_a", "b": "encoder_mask_channel"}
#: How the generic baseline is trained, for the skip message.
GENERIC_RECIPE = "python -m unmask.train encoder --config configs/generic_teaching.yaml"


@dataclasses.dataclass
class Method:
    """One row of the comparison.

    Attributes:
        key: one of :data:`METHOD_KEYS`.
        pipe: the pipeline that recovers (``None`` for ``masked``).
        mode: the pipeline mode (``encoder``, ``encoder+refine``, ``optimize``).
        mask_source: the region the method is given: ``true`` (the pair's mask), ``predicted`` (the
            encoder head's) or ``none`` (the generic inversion of the unmasked face: every pixel visible).
        encoder_mask: the 4th channel of a mask-channel encoder: ``mask`` (the region above) or
            ``zeros`` (a generic encoder, which was trained without one).
        steps: optimisation steps (optimising modes).
        source: where the encoder came from (a folder), for the report.

    The ``oracle`` has no pipeline: it paints the world's faces, so it needs the faces' world views
    (``views`` in :meth:`recover`).
    """

    key: str
    pipe: object | None
    mode: str = "encoder"
    mask_source: str = "true"
    encoder_mask: str = "mask"
    steps: int | None = None
    source: str = ""

    @property
    def name(self) -> str:
        return METHOD_NAMES[self.key]

    @property
    def optimizing(self) -> bool:
        return self.mode != "encoder"

    def recover(self, masked: torch.Tensor, mask: torch.Tensor, target: torch.Tensor | None = None, *,
                seed: int = 0, views: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The method on a batch.

        Args:
            masked: ``(B, 3, S, S)`` masked faces in ``[-1, 1]``.
            mask: ``(B, 1, S, S)`` their true masks (1 = occluded).
            target: ``(B, 3, S, S)`` the unmasked faces (needed by ``ceiling`` only).
            views: ``(world, identities, image_ids, cameras)``: the teaching world and the ``(B,)`` views the
                faces are renders of (needed by ``oracle`` only).

        Returns:
            ``(output, recovered, region)``: the output face (recovered pixels over ``region``, the input's
            own pixels elsewhere), the generator's rendering, and the region used ``(B, 1, S, S)``.
        """
        if self.key == "oracle":
            return _oracle(masked, mask, views)
        if self.pipe is None:
            return masked, masked, mask
        if self.mask_source == "none":
            if target is None:
                raise UnmaskError("the generic inversion of the unmasked face needs that face: pass target.")
            zeros = torch.zeros_like(mask)
            recovered, _ = self.pipe.recover_batch(target, zeros, mode=self.mode, steps=self.steps, seed=seed)
            return composite(recovered.to(masked.device), masked, mask), recovered.to(masked.device), mask
        region = mask
        if self.mask_source == "predicted":
            region = self.pipe.predict_mask(masked).to(masked.device)
        encoder_mask = torch.zeros_like(region) if self.encoder_mask == "zeros" else None
        recovered, _ = self.pipe.recover_batch(masked, region, mode=self.mode, steps=self.steps, seed=seed,
                                               encoder_mask=encoder_mask)
        recovered = recovered.to(masked.device)
        return composite(recovered, masked, region), recovered, region


def _oracle(masked: torch.Tensor, mask: torch.Tensor, views: tuple | None):
    """The oracle's face (:mod:`unmask.synthetic.oracle`), quantised to 8 bits like the world's images."""
    from unmask.faces.io import from_uint8, to_uint8
    from unmask.synthetic.oracle import oracle_for

    if views is None:
        raise UnmaskError("the oracle paints the teaching world's faces: pass views=(world, identities, image_ids, "
                          "cameras).")
    world, identities, image_ids, cameras = views
    as_long = lambda x: torch.as_tensor(x, dtype=torch.long)  # noqa: E731
    painted = oracle_for(world).render(world, as_long(identities), as_long(image_ids), as_long(cameras),
                                       size=masked.shape[-1]).images
    recovered = from_uint8(to_uint8(painted), masked.device)
    return composite(recovered, masked, mask), recovered, mask


def composite(recovered: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The output face: recovered pixels where the mask is, the input's own pixels elsewhere."""
    return recovered * mask + masked * (1.0 - mask)


@dataclasses.dataclass
class MethodSet:
    """The methods that can run, the ones skipped (``{key: reason}``), and the bundle they share."""

    methods: dict[str, Method]
    skipped: dict[str, str]
    bundle: object


def bundle_root(model: str | os.PathLike) -> Path | None:
    """The local folder of a bundle name or folder (``None`` for a Hub repo or built-in manifest)."""
    from unmask.bundle.resolve import BUNDLES, WEIGHTS_DIR

    if str(model) in BUNDLES:
        return WEIGHTS_DIR / BUNDLES[str(model)]
    path = Path(model)
    return path if path.is_dir() else None


def _shown(path: Path | None) -> str:
    """``path`` relative to the working directory when it lies below it (reports stay portable)."""
    if path is None:
        return "BUNDLE/<folder>"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _encoder_config(folder: Path) -> dict:
    from unmask import hub

    return hub.read_config(folder / hub.CONFIG_NAME)


def _with_encoder(model: str | os.PathLike, folder: Path, device: str | torch.device):
    """The bundle's generator and identity network with the encoder at ``folder``, via ``from_manifest``."""
    from unmask.bundle import BundleManifest, ComponentSource, read_manifest
    from unmask.pipeline import UnmaskPipeline

    root = bundle_root(model)
    if root is None:
        raise UnmaskError(f"{model!s} is not a local bundle folder; pass the bundle as a folder to swap encoders.")
    manifest = read_manifest(root)
    # the pipeline derives these two from the encoder; the bundle's values belong to its own encoder
    settings = {k: v for k, v in manifest.settings.items() if k not in ("align_size", "mask_channel")}
    parts = {**manifest.components, "encoder": ComponentSource(path=str(folder))}
    return UnmaskPipeline.from_manifest(BundleManifest(settings=settings, components=parts), root=root,
                                        device=device)


def _check(kind: str, config: dict, n_latent: int) -> str | None:
    """Why an encoder config cannot serve as ``kind`` (``None`` when it can)."""
    if config.get("n_styles") != n_latent:
        return f"its n_styles={config.get('n_styles')} does not match the generator's n_latent={n_latent}"
    if kind == "a" and not config.get("mask_head", False):
        return "it has no occlusion-mask head (variant (a) needs encoder.mask_head: true)"
    if kind == "b" and config.get("input_nc") != 4:
        return f"it reads {config.get('input_nc')} channels, not RGB + mask (variant (b) needs input_nc: 4)"
    return None


def load_methods(model: str | os.PathLike = "teaching", *, generic: str | os.PathLike | None = None,
                 encoder_a: str | os.PathLike | None = None, encoder_b: str | os.PathLike | None = None,
                 keys: Sequence[str] = METHOD_KEYS, steps: int = 100, ceiling_refine: bool = False,
                 device: str | torch.device = "cpu") -> MethodSet:
    """Build the comparison's methods from a bundle and encoder folders.

    Each encoder defaults to the bundle folder's :data:`DEFAULT_FOLDERS` entry (e.g.
    ``weights/teaching/encoder_generic``) and, for the unmasking variants, to the bundle's own encoder when
    its config fits: ``mask_head`` for (a), ``input_nc: 4`` for (b).

    Args:
        model: the bundle (name or folder): its generator and identity network serve every method.
        generic, encoder_a, encoder_b: encoder folders (``save_pretrained`` format) or ``None`` (the defaults).
        keys: the methods wanted (:data:`METHOD_KEYS`).
        steps: optimisation steps of the optimising methods.
        ceiling_refine: refine the generic inversion of the unmasked face on every one of its pixels.
        device: where the models run.

    Returns:
        a :class:`MethodSet`; every wanted key is either in ``methods`` or in ``skipped`` with a reason.
    """
    from unmask.pipeline import UnmaskPipeline

    unknown = sorted(set(keys) - set(METHOD_KEYS))
    if unknown:
        raise UnmaskError(f"unknown methods {unknown}; choose from {list(METHOD_KEYS)}.")
    bundle = UnmaskPipeline.from_pretrained(model, device=device)
    root = bundle_root(model)
    own = getattr(bundle.encoder, "config", None)
    own_fits = {"a": bool(own is not None and getattr(own, "mask_head", False)),
                "b": bool(own is not None and getattr(own, "input_nc", 3) == 4)}
    pipes: dict[str, object] = {}
    reasons: dict[str, str] = {}
    sources: dict[str, str] = {}
    for kind, given in (("generic", generic), ("a", encoder_a), ("b", encoder_b)):
        folder = Path(given) if given else (root / DEFAULT_FOLDERS[kind] if root is not None else None)
        if folder is not None and (folder / "config.json").is_file():
            why = _check(kind, _encoder_config(folder), bundle.generator.n_latent)
            if why is None:
                pipes[kind], sources[kind] = _with_encoder(model, folder, device), _shown(folder)
            else:
                reasons[kind] = f"the encoder at {_shown(folder)} does not fit: {why}"
        elif given:
            reasons[kind] = f"no encoder at {_shown(folder)} (no config.json)"
        elif kind in own_fits and own_fits[kind]:
            pipes[kind], sources[kind] = bundle, f"{model} (bundle encoder)"
        elif kind == "generic":
            reasons[kind] = (f"no generic encoder: pass --generic-encoder DIR or put one at {_shown(folder)}; "
                             f"train it with `{GENERIC_RECIPE}`")
        else:
            need = "mask head" if kind == "a" else "mask channel"
            reasons[kind] = (f"no variant ({kind}) encoder: pass --encoder-{kind} DIR or put one at {_shown(folder)} "
                             f"(the bundle's encoder has no {need})")
    methods: dict[str, Method] = {}
    skipped: dict[str, str] = {}
    for key in keys:
        if key in ("masked", "oracle"):
            methods[key] = Method(key, None, source="the teaching world" if key == "oracle" else "")
            continue
        if key == "optimize":  # from the mean latent: needs only the generator (and the bundle's latent_avg)
            methods[key] = Method(key, bundle, mode="optimize", steps=steps, source=f"{model} (generator)")
            continue
        kind = "generic" if key in ("generic", "generic+refine", "ceiling") else key
        if kind not in pipes:
            skipped[key] = reasons[kind]
            continue
        pipe = pipes[kind]
        zeros = "zeros" if kind == "generic" else "mask"
        if key == "generic":
            methods[key] = Method(key, pipe, encoder_mask=zeros, source=sources[kind])
        elif key == "generic+refine":
            methods[key] = Method(key, pipe, mode="encoder+refine", encoder_mask=zeros, steps=steps,
                                  source=sources[kind])
        elif key == "ceiling":
            methods[key] = Method(key, pipe, mode="encoder+refine" if ceiling_refine else "encoder",
                                  mask_source="none", steps=steps, source=sources[kind])
        else:
            methods[key] = Method(key, pipe, mask_source="predicted" if key == "a" else "true", source=sources[kind])
    return MethodSet(methods=methods, skipped=skipped, bundle=bundle)
