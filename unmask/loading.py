"""Loading and saving bundles: the classmethods that :class:`unmask.pipeline.UnmaskPipeline` inherits.

A bundle is a manifest (``pipeline.json``: :class:`unmask.recovery.PipelineConfig` settings plus the source of each
model) and its models; :mod:`unmask.bundle` resolves names, folders and Hub repos to manifests and manifests to
models. This base class turns them into a pipeline and back, so that the pipeline's own module only infers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Self

import torch

from unmask.errors import ConfigError


class BundleLoading:
    """``from_pretrained`` / ``from_manifest`` / ``save_pretrained`` for a pipeline class whose constructor takes
    ``(generator, encoder, identity_net, *, config, device, precision)`` and which has ``generator``, ``encoder``,
    ``identity_net``, ``config`` and ``bundle`` attributes."""

    generator: torch.nn.Module
    encoder: torch.nn.Module
    identity_net: torch.nn.Module | None
    config: Any
    bundle: str

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike = "teaching", *, revision: str | None = None,
                        device: str | torch.device = "auto", precision: str = "auto",
                        **overrides: Any) -> Self:
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
        from unmask.precision import resolve_device

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
                      **overrides: Any) -> Self:
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
        from unmask.recovery import PipelineConfig

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


def _check_overrides(overrides: dict[str, Any]) -> None:
    from unmask.recovery import PipelineConfig

    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown PipelineConfig fields {unknown}; known: {sorted(known)}.")


__all__ = ["BundleLoading"]
