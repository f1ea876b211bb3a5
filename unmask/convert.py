"""Turn public checkpoints into unmask's format: ``python -m unmask.convert KIND SRC DST``.

KIND is one of:

* ``stylegan2`` — rosinality/stylegan2-pytorch ``.pt`` (``g_ema``) → a ``Generator`` folder;
* ``stylegan2-d`` — the discriminator (``d``) of such a checkpoint;
* ``psp`` / ``e4e`` — pSp / e4e FFHQ checkpoints → a pipeline *bundle*: ``DST/encoder``
  (``encoder.*`` + ``latent_avg``), ``DST/generator`` (``decoder.*``), ``DST/pipeline.json``;
  ``--identity model_ir_se50.pth`` adds ``DST/identity``;
* ``irse50`` — pSp's ``model_ir_se50.pth`` → an ``IRSEIdentity`` folder;
* ``iresnet50`` / ``iresnet100`` — insightface arcface_torch ``backbone.pth`` → an ``IResNet`` folder.

Checkpoints are read with ``torch.load(weights_only=True)`` (no pickled code runs) and loaded with
``strict=True``. Every output folder gets ``config.json``, ``model.safetensors`` and a model card
naming the source, the licence and the architecture. The converters themselves live in
:mod:`unmask.models.public`; a pSp / e4e bundle is assembled by ``UnmaskPipeline.from_manifest``, the
same builder that loads every bundle. Nothing imports this module back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from unmask.cards import responsible_use_sections
from unmask.errors import UnmaskError, WeightsError
from unmask.hub import NON_COMMERCIAL, HubModel
from unmask.models.public import load_public
from unmask.pipeline import UnmaskPipeline

KINDS = ("stylegan2", "stylegan2-d", "psp", "e4e", "irse50", "iresnet50", "iresnet100")
#: Pipeline settings of a pSp / e4e bundle (the crop size and input channels come from the encoder).
FFHQ_SETTINGS = {"world": "ffhq", "mask_channel": False, "refine_steps": 100}


# ----------------------------------------------------------------------------- model cards
SOURCES = {
    "stylegan2": "NVlabs StyleGAN2 (Karras et al. 2020) in rosinality/stylegan2-pytorch format",
    "stylegan2-d": "NVlabs StyleGAN2 discriminator in rosinality/stylegan2-pytorch format",
    "psp": "pixel2style2pixel (Richardson et al. 2021) GradualStyleEncoder",
    "e4e": "encoder4editing (Tov et al. 2021) Encoder4Editing",
    "irse50": "InsightFace_Pytorch IR-SE-50 as used by pSp's identity loss",
    "iresnet50": "insightface arcface_torch IResNet-50",
    "iresnet100": "insightface arcface_torch IResNet-100",
}


def model_card(model: HubModel, kind: str, source: Path) -> str:
    config = json.dumps(dataclasses.asdict(model.config), indent=2)
    return (
        f"---\nlibrary_name: unmask\nlicense: other\ntags: [unmask, {kind}]\n---\n\n"
        f"# {type(model).__name__} converted from `{source.name}`\n\n"
        f"- **Source:** {SOURCES.get(kind, kind)}.\n"
        f"- **Licence:** {NON_COMMERCIAL}. Do not use commercially.\n"
        f"- **Architecture:** `unmask.{type(model).__module__.split('unmask.')[-1]}.{type(model).__name__}`, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, same names and shapes as the original.\n"
        f"- **Converted with:** `python -m unmask.convert {kind} {source.name} DST` (weights only, strict load).\n\n"
        f"{responsible_use_sections()}\n"
        f"```json\n{config}\n```\n"
    )


def convert_file(kind: str, src: str | Path, dst: str | Path, *, identity: str | Path | None = None) -> Path:
    """Convert ``src`` of ``kind`` and write our format to ``dst`` (a model folder or, for psp/e4e, a bundle)."""
    src, dst = Path(src), Path(dst)
    if kind not in KINDS:
        raise WeightsError(f"unknown checkpoint kind {kind!r}; choose one of {KINDS}.")
    if kind in ("psp", "e4e"):
        components = {"encoder": {"path": str(src), "kind": kind},
                      "generator": {"path": str(src), "kind": "psp-decoder"}}
        if identity:
            components["identity"] = {"path": str(identity), "kind": "irse50"}
        description = f"{kind} FFHQ bundle converted from {src.name}; non-commercial research only"
        pipe = UnmaskPipeline.from_manifest({**FFHQ_SETTINGS, "description": description, "components": components})
        pipe.save_pretrained(dst)
        for part, model, part_kind, part_src in (("encoder", pipe.encoder, kind, src),
                                                 ("generator", pipe.generator, "stylegan2", src),
                                                 ("identity", pipe.identity_net, "irse50", identity)):
            if model is not None:
                (dst / part / "README.md").write_text(model_card(model, part_kind, Path(part_src)), encoding="utf-8")
        return dst
    model = load_public(src, kind)
    model.save_pretrained(dst, model_card=model_card(model, kind, src))
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unmask.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("src", help="public checkpoint file (.pt / .pth)")
    parser.add_argument("dst", help="output folder")
    parser.add_argument("--identity", help="psp/e4e only: model_ir_se50.pth to include in the bundle")
    args = parser.parse_args(argv)
    try:
        out = convert_file(args.kind, args.src, args.dst, identity=args.identity)
    except UnmaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
