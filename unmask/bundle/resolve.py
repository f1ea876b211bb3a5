"""Bundle resolution: a bundle name, folder or Hub repo to its manifest; a manifest to its models.

:meth:`unmask.pipeline.UnmaskPipeline.from_pretrained` and ``from_manifest`` (the one bundle builder,
which ``python -m unmask.convert`` and ``python -m unmask.bundle`` also use) call these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unmask.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from unmask.bundle.manifest import BundleManifest

#: Folder of the weights that ship with the repository (teaching models).
WEIGHTS_DIR = Path(os.environ.get("UNMASK_WEIGHTS", Path(__file__).resolve().parents[2] / "weights"))
#: Short names of the shipped bundles: name -> folder under :data:`WEIGHTS_DIR`. The first is the offline default
#: of the app's ``auto``: ``digiface`` measured worse than the masked input on real photos (README, "The digiface
#: bundle"), so ``teaching`` stays first.
BUNDLES = {"teaching": "teaching", "digiface": "digiface"}


def resolve_bundle(source: str | os.PathLike, *, revision: str | None = None
                   ) -> tuple[BundleManifest, str | os.PathLike | None]:
    """The manifest of a bundle and the root its ``subfolder`` components live in (``None`` for a built-in one).

    Args:
        source: a built-in manifest name (``"ffhq"``), a shipped bundle (``"teaching"``), a folder or a Hub repo id.
        revision: Hub revision for a repo id.

    Raises:
        HubError / WeightsError: with what to do (e.g. the teaching weights are missing from a partial checkout).
    """
    from unmask import bundle

    name = str(source)
    if name in bundle.builtin_manifests():
        return bundle.builtin_manifest(name), None
    folder = WEIGHTS_DIR / BUNDLES[name] if name in BUNDLES else None
    if folder is not None and not (folder / bundle.PIPELINE_FILE).is_file():
        raise WeightsError(f"the {name} weights are missing: {folder / bundle.PIPELINE_FILE} not found. They "
                           f"ship with the repository under weights/{BUNDLES[name]}; use a full clone (git lfs is "
                           "not needed), or set UNMASK_WEIGHTS to the folder that holds them.")
    root = folder if folder is not None else source
    return bundle.read_manifest(root, revision=revision), root


def load_components(manifest: BundleManifest, *, root: str | os.PathLike | None = None,
                    revision: str | None = None) -> dict[str, torch.nn.Module]:
    """``{role: model}`` for every component of ``manifest``; an identity network loses its training classifier.

    A component is a bundle ``subfolder`` (under ``root``), a :data:`unmask.hub.REGISTRY` entry, a model folder
    or Hub repo (``path``), a built-in teaching painter (``path``: ``teaching-painter``, see
    :data:`unmask.models.painter.BUILTIN_PAINTERS`), or a public checkpoint file with its converter (``path`` +
    ``kind``); a pSp / e4e file that holds both the encoder and the generator is read once.
    """
    from unmask import hub
    from unmask.bundle.manifest import ComponentSource
    from unmask.models import public

    checkpoints: dict[str, dict[str, Any]] = {}  # a pSp / e4e file holds both encoder and generator

    def load(part: ComponentSource) -> torch.nn.Module:
        if part.registry is not None:
            return public.load_registered(part.registry)
        if part.subfolder is not None:
            if root is None:
                raise WeightsError(f"component subfolder {part.subfolder!r} needs the bundle folder it lives "
                                   "in; load the bundle with UnmaskPipeline.from_pretrained(folder).")
            return hub.from_pretrained(root, subfolder=part.subfolder, revision=revision)
        if part.kind is None:
            from unmask.models.painter import BUILTIN_PAINTERS, builtin_painter

            if part.path in BUILTIN_PAINTERS:  # the teaching world's painter: no files to load
                return builtin_painter(part.path)
            return hub.from_pretrained(part.path)
        if part.path not in checkpoints:
            checkpoints[part.path] = hub.load_legacy_checkpoint(part.path)
        return public.convert_public(checkpoints[part.path], part.kind)

    models = {role: load(part) for role, part in manifest.components.items()}
    identity = models.get("identity")
    if hasattr(identity, "without_classifier"):  # the pipeline only embeds
        models["identity"] = identity.without_classifier()
    return models


def encoder_settings(encoder: torch.nn.Module) -> dict[str, Any]:
    """The pipeline settings an encoder decides: its crop size and whether it takes the mask as a 4th channel."""
    encoder_config = getattr(encoder, "config", None)
    if encoder_config is None:
        return {}
    return {"align_size": encoder_config.input_size, "mask_channel": getattr(encoder_config, "input_nc", 3) == 4}


def available_bundles(*, ask_hub: bool = True) -> Sequence[str]:
    """Bundle names that can load here: the built-in manifests (``ffhq``) first when all their registry files are
    in the Hugging Face cache or the Hub answers for them (see :func:`unmask.hub.registered_available`), then
    the shipped bundles whose files exist and whose registry components are installed (``digiface`` needs the
    ``gan-face-generate`` package)."""
    from unmask import bundle, hub

    names = []
    for name, sub in BUNDLES.items():
        path = WEIGHTS_DIR / sub / bundle.PIPELINE_FILE
        if path.is_file() and all(part.registry is None or hub.registered_available(part.registry, ask_hub=False)
                                  for part in bundle.read_manifest(path.parent).components.values()):
            names.append(name)
    for name in reversed(bundle.builtin_manifests()):
        parts = bundle.builtin_manifest(name).components.values()
        if all(part.registry is not None and hub.registered_available(part.registry, ask_hub=ask_hub)
               for part in parts):
            names.insert(0, name)
    return names
