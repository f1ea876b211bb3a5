"""Bundles: the models a pipeline runs (generator, encoder, optional identity network) and their manifest.

* :mod:`unmask.bundle.manifest`: ``pipeline.json`` (:class:`BundleManifest`, :class:`ComponentSource`), reading,
  writing and the built-in manifests (``ffhq``);
* :mod:`unmask.bundle.build`: ``python -m unmask.bundle``, assembling a teaching bundle from trained models
  (it uses the pipeline, so only it and the command line sit above :mod:`unmask.pipeline`).
"""

from __future__ import annotations

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

__all__ = [
    "COMPONENTS_KEY",
    "COMPONENT_ROLES",
    "MANIFESTS_DIR",
    "PIPELINE_FILE",
    "REQUIRED_ROLES",
    "BundleManifest",
    "ComponentSource",
    "builtin_manifest",
    "builtin_manifests",
    "read_manifest",
    "write_manifest",
]
