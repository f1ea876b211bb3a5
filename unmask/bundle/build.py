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

COMMANDS = {
    "generator": "python -m unmask.train decoder --config configs/generator_teaching_v2.yaml",
    "encoder": "python -m unmask.train encoder --config configs/unmask_teaching.yaml",
    "identity": "python -m unmask.train identity --config configs/identity_teaching.yaml",
    "encoder_mask_channel": "python -m unmask.train encoder --config configs/unmask_teaching_mask_channel.yaml",
    "encoder_generic": "python -m unmask.train encoder --config configs/generic_teaching.yaml",
}
#: Further encoders a bundle may carry beside ``encoder/`` (not loaded by the pipeline; the comparison
#: of ``python -m unmask.evaluate unmasking`` and the notebooks read them).
EXTRA_ENCODERS = ("encoder_mask_channel", "encoder_generic")


def build_bundle(generator: str | Path, encoder: str | Path, out: str | Path, *, identity: str | Path | None = None,
                 world: str = "teaching", notes: dict[str, str] | None = None,
                 extras: dict[str, str | Path] | None = None, **config) -> Path:
    """Load the three models, write the bundle to ``out`` with teaching model cards, return ``out``.

    The bundle is assembled by :meth:`UnmaskPipeline.from_manifest` from a manifest naming the three
    folders; ``config`` holds further :class:`unmask.pipeline.PipelineConfig` fields. ``extras`` maps
    names of :data:`EXTRA_ENCODERS` to encoder folders, loaded strictly and saved beside ``encoder/``.
    """
    from unmask.hub import from_pretrained

    extras = dict(extras or {})
    unknown = sorted(set(extras) - set(EXTRA_ENCODERS))
    if unknown:
        raise ValueError(f"unknown extra encoder(s) {unknown}; use {EXTRA_ENCODERS}.")
    components = {"generator": {"path": str(generator)}, "encoder": {"path": str(encoder)}}
    if identity:
        components["identity"] = {"path": str(identity)}
    pipe = UnmaskPipeline.from_manifest({"world": world, **config, "components": components})
    out = Path(out)
    pipe.save_pretrained(out)
    notes = notes or {}
    models = [("generator", pipe.generator), ("encoder", pipe.encoder), ("identity", pipe.identity_net)]
    for name, folder in extras.items():
        model = from_pretrained(folder)
        model.save_pretrained(out / name)
        models.append((name, model))
    for part, model in models:
        if model is None:
            continue
        card = TEACHING_CARD.format(part=part, arch=f"{type(model).__module__}.{type(model).__name__}",
                                    params=sum(p.numel() for p in model.parameters()), command=COMMANDS[part],
                                    notes=notes.get(part, ""),
                                    config=json.dumps(dataclasses.asdict(model.config), indent=2))
        (out / part / "README.md").write_text(with_responsible_use(card), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m unmask.bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", required=True, help="generator folder (save_pretrained format)")
    p.add_argument("--encoder", required=True, help="encoder folder")
    p.add_argument("--identity", help="identity network folder (optional)")
    p.add_argument("--encoder-mask-channel", help="variant (b) encoder folder to carry (optional)")
    p.add_argument("--encoder-generic", help="generic baseline encoder folder to carry (optional)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--world", default="teaching", choices=sorted(WORLDS))
    p.add_argument("--description", default="")
    args = p.parse_args(argv)
    extras = {name: path for name, path in (("encoder_mask_channel", args.encoder_mask_channel),
                                            ("encoder_generic", args.encoder_generic)) if path}
    out = build_bundle(args.generator, args.encoder, args.out, identity=args.identity, world=args.world,
                       description=args.description, extras=extras)
    print(f"wrote {out}")
    return 0
