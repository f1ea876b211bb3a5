"""Assemble a pipeline bundle from trained models: ``python -m unmask.bundle --generator G --encoder E --out DIR``.

A bundle is what :meth:`unmask.pipeline.UnmaskPipeline.from_pretrained` loads: ``pipeline.json``
plus ``generator/``, ``encoder/`` and optionally ``identity/``, each in the ``save_pretrained``
format with a model card. The shipped ``weights/teaching`` bundle is made this way from the
outputs of ``python -m unmask.train {generator,identity,encoder}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from unmask.bundle.worlds import WORLDS
from unmask.cards import with_responsible_use
from unmask.pipeline import UnmaskPipeline

TEACHING_CARD = """---
library_name: unmask
license: apache-2.0
tags: [unmask, teaching-model, synthetic-data]
---

# unmask teaching {part}

**A teaching model.** Trained only on the procedural faces of `unmask.synthetic` (no real
person's face, no public dataset), for the offline app, the CPU notebooks and the tests. It
recovers procedural faces; on real photos it draws a procedural face. For real photos use the
FFHQ bundle (`UnmaskPipeline.from_pretrained("ffhq")`, non-commercial research licences).

- Architecture: `{arch}` ({params:,} parameters), config below.
- Trained with: `{command}`.
- Licence: Apache-2.0, like the code (the training data is procedural).

{notes}

```json
{config}
```
"""

DIGIFACE_CARD = """---
library_name: unmask
license: other
tags: [unmask, digiface, dcgan, non-commercial]
---

# unmask digiface {part}

Trained for the frozen DigiFace-1M DCGAN (`REGISTRY["digiface-dcgan"]`: the generator inside the PyPI wheel
`gan-face-generate` 1.1.1, z of 100 -> 64 px, loaded from the installed package, sha256-checked, not copied
here) on its own samples only: G(z) with masks drawn on dlib's 68 landmarks, each with its true z.

- Architecture: `{arch}` ({params:,} parameters), config below.
- Trained with: `{command}`.
- **Licence: non-commercial research only.** The code of gan-face-generate is MIT; its weights are trained on
  DigiFace-1M (Microsoft), whose licence allows non-commercial research use only, and so are models trained on
  its samples.

{notes}

```json
{config}
```
"""

#: The card of each world's bundle parts.
CARDS = {"teaching": TEACHING_CARD, "digiface": DIGIFACE_CARD}

COMMANDS = {
    "generator": "python -m unmask.train decoder --config configs/generator_teaching_v2.yaml",
    "encoder": "python -m unmask.train encoder --config configs/unmask_teaching.yaml",
    "identity": "python -m unmask.train identity --config configs/identity_teaching.yaml",
    "encoder_mask_channel": "python -m unmask.train encoder --config configs/unmask_teaching_mask_channel.yaml",
    "encoder_generic": "python -m unmask.train encoder --config configs/generic_teaching.yaml",
}
#: Where a world's commands differ from the teaching ones.
WORLD_COMMANDS = {"digiface": {
    "encoder": "python -m unmask.train encoder --config configs/unmask_digiface.yaml",
    "encoder_generic": "python -m unmask.train encoder --config configs/generic_digiface.yaml"}}
#: Further encoders a bundle may carry beside ``encoder/`` (not loaded by the pipeline; the comparison
#: of ``python -m unmask.evaluate unmasking`` and the notebooks read them).
EXTRA_ENCODERS = ("encoder_mask_channel", "encoder_generic")


def build_bundle(generator: str | Path, encoder: str | Path, out: str | Path, *, identity: str | Path | None = None,
                 world: str = "teaching", notes: dict[str, str] | None = None,
                 extras: dict[str, str | Path] | None = None, **config) -> Path:
    """Load the three models, write the bundle to ``out`` with its world's model cards, return ``out``.

    The bundle is assembled by :meth:`UnmaskPipeline.from_manifest` from a manifest naming the three
    folders; ``config`` holds further :class:`unmask.pipeline.PipelineConfig` fields. ``extras`` maps
    names of :data:`EXTRA_ENCODERS` to encoder folders, loaded strictly and saved beside ``encoder/``.
    A ``generator`` that names a :data:`unmask.hub.REGISTRY` entry (``digiface-dcgan``) is referenced by the
    manifest, not copied: it loads from its installed package or the Hub wherever the bundle runs.
    """
    from unmask.bundle.manifest import ComponentSource
    from unmask.hub import REGISTRY, from_pretrained

    extras = dict(extras or {})
    unknown = sorted(set(extras) - set(EXTRA_ENCODERS))
    if unknown:
        raise ValueError(f"unknown extra encoder(s) {unknown}; use {EXTRA_ENCODERS}.")
    registered = str(generator) in REGISTRY
    components = {"generator": {"registry": str(generator)} if registered else {"path": str(generator)},
                  "encoder": {"path": str(encoder)}}
    if identity:
        components["identity"] = {"path": str(identity)}
    pipe = UnmaskPipeline.from_manifest({"world": world, **config, "components": components})
    out = Path(out)
    references = {"generator": ComponentSource(registry=str(generator))} if registered else None
    pipe.save_pretrained(out, references=references)
    notes = notes or {}
    models = [("encoder", pipe.encoder), ("identity", pipe.identity_net)]
    if not registered:
        models.insert(0, ("generator", pipe.generator))
    template, commands = CARDS.get(world, TEACHING_CARD), {**COMMANDS, **WORLD_COMMANDS.get(world, {})}
    for name, folder in extras.items():
        model = from_pretrained(folder)
        model.save_pretrained(out / name)
        models.append((name, model))
    for part, model in models:
        if model is None:
            continue
        command = getattr(model, "training_command", None) or commands[part]
        card = template.format(part=part, arch=f"{type(model).__module__}.{type(model).__name__}",
                               params=sum(p.numel() for p in model.parameters()), command=command,
                               notes=notes.get(part, ""), config=json.dumps(dataclasses.asdict(model.config), indent=2))
        (out / part / "README.md").write_text(with_responsible_use(card), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m unmask.bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", required=True,
                   help="generator folder (save_pretrained format) or REGISTRY name (digiface-dcgan: referenced)")
    p.add_argument("--encoder", required=True, help="encoder folder")
    p.add_argument("--identity", help="identity network folder (optional)")
    p.add_argument("--encoder-mask-channel", help="variant (b) encoder folder to carry (optional)")
    p.add_argument("--encoder-generic", help="generic baseline encoder folder to carry (optional)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--world", default="teaching", choices=sorted(WORLDS))
    p.add_argument("--description", default="")
    p.add_argument("--alignment", default=None, help="the crop the generator draws (ffhq, digiface)")
    p.add_argument("--identity-weight", type=float, default=None, help="refinement's identity weight")
    args = p.parse_args(argv)
    extras = {name: path for name, path in (("encoder_mask_channel", args.encoder_mask_channel),
                                            ("encoder_generic", args.encoder_generic)) if path}
    settings = {k: v for k, v in (("alignment", args.alignment), ("identity_weight", args.identity_weight))
                if v is not None}
    out = build_bundle(args.generator, args.encoder, args.out, identity=args.identity, world=args.world,
                       description=args.description, extras=extras, **settings)
    print(f"wrote {out}")
    return 0
