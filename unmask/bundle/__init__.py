"""Bundles: the models a pipeline runs (generator, encoder, optional identity network) and their manifest.

* :mod:`unmask.bundle.manifest`: ``pipeline.json`` (:class:`BundleManifest`, :class:`ComponentSource`), reading,
  writing and the built-in manifests (``ffhq``);
* :mod:`unmask.bundle.worlds`: what a bundle's ``world`` means (:data:`WORLDS`);
* :mod:`unmask.bundle.resolve`: a bundle name, folder or Hub repo to its manifest, a manifest to its models,
  and :func:`available_bundles`;
* :mod:`unmask.bundle.build`: ``python -m unmask.bundle``, assembling a teaching bundle from trained models
  (it uses the pipeline, so only it and the command line sit above :mod:`unmask.pipeline`).

Names load on first use, so ``import unmask.pipeline`` (which reads the worlds) imports neither the Hub client
nor the manifests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    **dict.fromkeys(("COMPONENT_ROLES", "COMPONENTS_KEY", "MANIFESTS_DIR", "PIPELINE_FILE", "REQUIRED_ROLES",
                     "BundleManifest", "ComponentSource", "builtin_manifest", "builtin_manifests", "read_manifest",
                     "write_manifest"), "unmask.bundle.manifest"),
    **dict.fromkeys(("BUNDLES", "WEIGHTS_DIR", "available_bundles", "load_components", "resolve_bundle"),
                    "unmask.bundle.resolve"),
    **dict.fromkeys(("WORLDS", "World"), "unmask.bundle.worlds"),
}

if TYPE_CHECKING:  # pragma: no cover
    from unmask.bundle.manifest import (
        COMPONENT_ROLES,
        COMPONENTS_KEY,
        MANIFESTS_DIR,
        PIPELINE_FILE,
        REQUIRED_ROLES,
        BundleManifest,
        ComponentSource,
        builtin_manifest,
        builtin_manifests,
        read_manifest,
        write_manifest,
    )
    from unmask.bundle.resolve import BUNDLES, WEIGHTS_DIR, available_bundles, load_components, resolve_bundle
    from unmask.bundle.worlds import WORLDS, World


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unmask.bundle' has no attribute {name!r}")


__all__ = [
    "BUNDLES",
    "BundleManifest",
    "COMPONENTS_KEY",
    "COMPONENT_ROLES",
    "ComponentSource",
    "MANIFESTS_DIR",
    "PIPELINE_FILE",
    "REQUIRED_ROLES",
    "WEIGHTS_DIR",
    "WORLDS",
    "World",
    "available_bundles",
    "builtin_manifest",
    "builtin_manifests",
    "load_components",
    "read_manifest",
    "resolve_bundle",
    "write_manifest",
]
