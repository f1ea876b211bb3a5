"""Bundle manifests: a bundle's ``pipeline.json`` (pipeline settings plus where each model comes from).

A component is a subfolder of the bundle (what ``save_pretrained`` writes), a :data:`unmask.hub.REGISTRY`
entry, or a path (a model folder, or a public checkpoint file with its converter ``kind``). The built-in
manifests (``manifests/<name>.json`` beside this module) assemble bundles from public weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unmask.errors import WeightsError
from unmask.hub import REGISTRY, read_config, resolve_file

#: The manifest of a bundle folder (or Hub repo): pipeline settings plus a ``components`` table.
PIPELINE_FILE = "pipeline.json"
COMPONENTS_KEY = "components"
#: Roles a bundle fills; ``generator`` and ``encoder`` are required.
COMPONENT_ROLES = ("generator", "encoder", "identity")
REQUIRED_ROLES = ("generator", "encoder")
#: Built-in manifests (bundles assembled from public weights), one ``<name>.json`` each.
MANIFESTS_DIR = Path(__file__).resolve().parent / "manifests"


@dataclasses.dataclass(frozen=True)
class ComponentSource:
    """Where one model of a bundle comes from: exactly one of ``subfolder``, ``registry`` or ``path``.

    In a manifest a component is either a string (a ``subfolder``, what ``save_pretrained`` writes)
    or an object with these keys.

    Attributes:
        subfolder: a folder inside the bundle, in the ``save_pretrained`` format.
        registry: a :data:`REGISTRY` name: downloaded at its pinned revision, converted with its ``kind``.
        path: a model folder or Hub repo id in the ``save_pretrained`` format or, with ``kind``, a
            public checkpoint file.
        kind: the converter of the file at ``path`` (``unmask.models.public.KINDS``).
    """

    subfolder: str | None = None
    registry: str | None = None
    path: str | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("subfolder", "registry", "path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise WeightsError(f"a bundle component needs exactly one of 'subfolder', 'registry' or 'path', got "
                               f"{given or 'none'}.")
        if self.kind is not None and self.path is None:
            raise WeightsError("'kind' names the converter of a checkpoint file and goes with 'path' only.")
        if self.registry is not None and self.registry not in REGISTRY:
            raise WeightsError(f"unknown public weights {self.registry!r}; known: {sorted(REGISTRY)}.")

    @classmethod
    def from_json(cls, raw: Any, *, source: str) -> ComponentSource:
        """Parse a manifest entry: a subfolder name, or an object with the fields above."""
        if isinstance(raw, str):
            return cls(subfolder=raw)
        if not isinstance(raw, Mapping):
            raise WeightsError(f"{source}: a component must be a subfolder name or an object, got {raw!r}.")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise WeightsError(f"{source}: component keys {unknown} are unknown; use {fields}.")
        return cls(**{k: str(v) for k, v in raw.items()})

    def to_json(self) -> str | dict[str, str]:
        if self.subfolder is not None:
            return self.subfolder
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class BundleManifest:
    """A bundle's recipe: pipeline settings (``PipelineConfig`` fields) and where each model comes from.

    Attributes:
        settings: the pipeline's settings as plain JSON values; the pipeline validates them.
        components: ``{role: ComponentSource}`` with ``generator``, ``encoder`` and optionally ``identity``.
    """

    settings: Mapping[str, Any]
    components: Mapping[str, ComponentSource]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], *, source: str = "manifest") -> BundleManifest:
        """Parse a manifest dict (the content of ``pipeline.json``)."""
        if not isinstance(raw, Mapping):
            raise WeightsError(f"{source} is not a JSON object.")
        settings = {k: v for k, v in raw.items() if k != COMPONENTS_KEY}
        parts = raw.get(COMPONENTS_KEY, {})
        if not isinstance(parts, Mapping):
            raise WeightsError(f"{source}: {COMPONENTS_KEY!r} must map roles to components, got {parts!r}.")
        unknown = sorted(set(parts) - set(COMPONENT_ROLES))
        if unknown:
            raise WeightsError(f"{source} names components {unknown}; a bundle has {list(COMPONENT_ROLES)}.")
        for role in REQUIRED_ROLES:
            if role not in parts:
                raise WeightsError(f"{source} names no {role!r} component.")
        components = {role: ComponentSource.from_json(parts[role], source=f"{source} [{role}]")
                      for role in COMPONENT_ROLES if parts.get(role)}
        return cls(settings=dict(settings), components=components)

    def to_json(self) -> dict[str, Any]:
        return {**self.settings, COMPONENTS_KEY: {role: c.to_json() for role, c in self.components.items()}}


def read_manifest(source: str | os.PathLike, *, revision: str | None = None) -> BundleManifest:
    """The manifest of a bundle folder or Hub repo (its ``pipeline.json``)."""
    path = resolve_file(source, PIPELINE_FILE, revision=revision)
    return BundleManifest.from_json(read_config(path), source=f"{source}/{PIPELINE_FILE}")


def builtin_manifests() -> list[str]:
    """Names of the built-in manifests (``unmask/bundle/manifests/*.json``), e.g. ``["ffhq"]``."""
    return sorted(p.stem for p in MANIFESTS_DIR.glob("*.json"))


def builtin_manifest(name: str) -> BundleManifest:
    """The built-in manifest ``name`` (a bundle assembled from :data:`REGISTRY` entries)."""
    path = MANIFESTS_DIR / f"{name}.json"
    if not path.is_file():
        raise WeightsError(f"no built-in bundle manifest {name!r}; known: {builtin_manifests()}.")
    return BundleManifest.from_json(read_config(path), source=f"manifest {name!r}")


def write_manifest(folder: str | os.PathLike, manifest: BundleManifest) -> Path:
    """Write ``folder/pipeline.json`` atomically; returns its path."""
    from unmask.faces.io import atomic_write

    return atomic_write(Path(folder) / PIPELINE_FILE, json.dumps(manifest.to_json(), indent=2) + "\n")
