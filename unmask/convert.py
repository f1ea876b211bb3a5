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
naming the source, the licence and the architecture.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from unmask.errors import UnmaskError, WeightsError
from unmask.hub import NON_COMMERCIAL, HubModel, load_legacy_checkpoint, load_state_dict_strict

KINDS = ("stylegan2", "stylegan2-d", "psp", "e4e", "irse50", "iresnet50", "iresnet100")
MODULE_PREFIX = "module."
#: pSp/e4e read their coarse styles from the stride-16 feature map.
COARSE_STRIDE = 16


def _float_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors only, floating ones as float32 (public arcface files are fp16), ``module.`` stripped."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key[len(MODULE_PREFIX):] if key.startswith(MODULE_PREFIX) else key
        out[key] = value.float() if value.is_floating_point() else value
    return out


def _shapes_match(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return set(own) == set(state) and all(tuple(own[k].shape) == tuple(state[k].shape) for k in own)


# ----------------------------------------------------------------------------- stylegan2
def generator_config_from_state(state: Mapping[str, torch.Tensor]):
    """Read a rosinality ``Generator`` config from its weights (size, style_dim, n_mlp, channels).

    ``size`` follows from the number of ``to_rgbs``; ``style_dim`` and ``n_mlp`` from the mapping
    network; ``channel_multiplier``/``channel_max`` are found by building candidates on the ``meta``
    device and comparing every shape.
    """
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    try:
        n_to_rgbs = len({k.split(".")[1] for k in state if k.startswith("to_rgbs.")})
        style_layers = sorted(int(k.split(".")[1]) for k in state if k.startswith("style.") and k.endswith(".weight"))
        style_dim = state["style.1.weight"].shape[0]
        c4 = state["conv1.conv.weight"].shape[1]
    except (KeyError, IndexError) as exc:
        raise WeightsError(f"not a rosinality StyleGAN2 generator state dict (missing {exc}).") from exc
    size = 2 ** (n_to_rgbs + 2)
    for multiplier in (2, 1, 4):
        for channel_max in sorted({c4, 512}):
            try:
                config = GeneratorConfig(size=size, style_dim=style_dim, n_mlp=len(style_layers),
                                         channel_multiplier=multiplier, channel_max=channel_max)
            except UnmaskError:
                continue
            with torch.device("meta"):
                candidate = Generator(config)
            if _shapes_match(candidate, state):
                return config
    raise WeightsError(f"could not match a StyleGAN2 config (size {size}, style_dim {style_dim}) to the weights' "
                       "shapes; is this a rosinality-format generator?")


def convert_stylegan2(ckpt: Mapping[str, Any], key: str = "g_ema") -> HubModel:
    """A rosinality checkpoint dict → our ``Generator`` (``key="g_ema"``) or ``Discriminator`` (``"d"``)."""
    from unmask.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator

    if key not in ckpt:
        raise WeightsError(f"the checkpoint has no {key!r} entry (it has {sorted(ckpt)[:8]}); expected a "
                           "rosinality/stylegan2-pytorch checkpoint.")
    state = _float_state(ckpt[key])
    if key == "d":
        size = 2 ** (len({k.split(".")[1] for k in state if k.startswith("convs.")}) + 1)
        c4 = state["final_conv.0.weight"].shape[0] if "final_conv.0.weight" in state else 512
        candidates = [DiscriminatorConfig(size=size, channel_multiplier=m, channel_max=c)
                      for m in (2, 1, 4) for c in sorted({c4, 512})]
        for config in candidates:
            with torch.device("meta"):
                candidate = Discriminator(config)
            if _shapes_match(candidate, state):
                model = Discriminator(config)
                break
        else:
            raise WeightsError("could not match a StyleGAN2 discriminator config to the weights' shapes.")
    else:
        model = Generator(generator_config_from_state(state))
    load_state_dict_strict(model, state, source=f"rosinality checkpoint [{key!r}]")
    return model.eval()


# ----------------------------------------------------------------------------- psp / e4e
def convert_encoder(ckpt: Mapping[str, Any], kind: str) -> HubModel:
    """A pSp / e4e checkpoint dict → our encoder with ``latent_avg`` filled."""
    from unmask.models.encoder import build_encoder, convert_psp_checkpoint

    raw = ckpt.get("state_dict", ckpt)
    # The coarse map2style head halves a (input/16)-sided map down to 1x1 with one conv per halving.
    head_convs = sum(1 for k in raw if k.startswith("encoder.styles.0.convs.") and k.endswith(".weight"))
    input_size = COARSE_STRIDE * 2 ** head_convs if head_convs else 256
    config, state = convert_psp_checkpoint(ckpt, kind=kind, input_size=input_size)
    model = build_encoder(config)
    load_state_dict_strict(model, _float_state(state), source=f"{kind} checkpoint")
    return model.eval()


def convert_decoder(ckpt: Mapping[str, Any]) -> HubModel:
    """The ``decoder.*`` StyleGAN2 inside a pSp / e4e checkpoint → our ``Generator``."""
    raw = ckpt.get("state_dict", ckpt)
    decoder = {k[len("decoder."):]: v for k, v in raw.items() if k.startswith("decoder.")}
    if not decoder:
        raise WeightsError("the checkpoint has no 'decoder.*' weights.")
    return convert_stylegan2({"g_ema": decoder})


# ----------------------------------------------------------------------------- identity
def convert_irse50(ckpt: Mapping[str, Any], config=None) -> HubModel:
    """pSp's ``model_ir_se50.pth`` (a bare state dict) → ``IRSEIdentity`` (``config`` defaults to IR-SE-50)."""
    from unmask.models.identity import IRSEConfig, IRSEIdentity
    from unmask.models.irse import fill_missing_num_batches_tracked

    model = IRSEIdentity(config or IRSEConfig())
    state = _float_state(ckpt)
    state = fill_missing_num_batches_tracked(model, state)
    load_state_dict_strict(model, state, source="IR-SE-50 checkpoint")
    return model.eval()


def iresnet_config_from_state(state: Mapping[str, torch.Tensor]):
    """Read an arcface ``IResNetConfig`` from ``backbone.pth`` weights (units, widths, size, dim)."""
    from unmask.models.identity import IResNetConfig

    try:
        layers = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
        widths = tuple(int(state[f"layer{i}.0.conv2.weight"].shape[0]) for i in range(1, 5))
        embedding_dim, fc_in = (int(n) for n in state["fc.weight"].shape)
    except KeyError as exc:
        raise WeightsError(f"not an arcface iresnet state dict (missing {exc}).") from exc
    feature_size = round((fc_in / widths[-1]) ** 0.5)
    return IResNetConfig(layers=layers, widths=widths, input_size=feature_size * 16, embedding_dim=embedding_dim)


def convert_iresnet(ckpt: Mapping[str, Any], depth: int | None = None) -> HubModel:
    """arcface_torch ``backbone.pth`` → ``IResNet``; ``depth`` (50/100) checks the expected unit counts."""
    from unmask.models.identity import IResNet, IResNetConfig
    from unmask.models.irse import fill_missing_num_batches_tracked

    state = _float_state(ckpt)
    config = iresnet_config_from_state(state)
    if depth is not None and config.layers != IResNetConfig.from_depth(depth).layers:
        raise WeightsError(f"expected an iresnet{depth} (units {IResNetConfig.from_depth(depth).layers}) but the "
                           f"weights have units {config.layers}; pick the matching KIND.")
    model = IResNet(config)
    state = fill_missing_num_batches_tracked(model, state)
    load_state_dict_strict(model, state, source=f"arcface iresnet{depth or ''} checkpoint")
    return model.eval()


def load_public(path: str | Path, kind: str) -> HubModel:
    """Read a public checkpoint file of ``kind`` and return the model it holds (in memory)."""
    ckpt = load_legacy_checkpoint(path)
    if kind == "stylegan2":
        return convert_stylegan2(ckpt, "g_ema")
    if kind == "stylegan2-d":
        return convert_stylegan2(ckpt, "d")
    if kind in ("psp", "e4e"):
        return convert_encoder(ckpt, kind)
    if kind == "irse50":
        return convert_irse50(ckpt)
    if kind in ("iresnet50", "iresnet100"):
        return convert_iresnet(ckpt, int(kind.removeprefix("iresnet")))
    raise WeightsError(f"unknown checkpoint kind {kind!r}; choose one of {KINDS}.")


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
        f"```json\n{config}\n```\n"
    )


def convert_file(kind: str, src: str | Path, dst: str | Path, *, identity: str | Path | None = None) -> Path:
    """Convert ``src`` of ``kind`` and write our format to ``dst`` (a model folder or, for psp/e4e, a bundle)."""
    src, dst = Path(src), Path(dst)
    if kind not in KINDS:
        raise WeightsError(f"unknown checkpoint kind {kind!r}; choose one of {KINDS}.")
    if kind in ("psp", "e4e"):
        from unmask.pipeline import PipelineConfig, UnmaskPipeline

        ckpt = load_legacy_checkpoint(src)
        encoder = convert_encoder(ckpt, kind)
        generator = convert_decoder(ckpt)
        identity_net = load_public(identity, "irse50") if identity else None
        config = PipelineConfig(world="ffhq", align_size=encoder.config.input_size, mask_channel=False,
                                refine_steps=100, description=f"{kind} FFHQ bundle converted from {src.name}; "
                                "non-commercial research only")
        UnmaskPipeline(generator, encoder, identity_net, config=config).save_pretrained(dst)
        for part, model, part_kind in (("encoder", encoder, kind), ("generator", generator, "stylegan2")):
            (dst / part / "README.md").write_text(model_card(model, part_kind, src), encoding="utf-8")
        if identity_net is not None:
            (dst / "identity" / "README.md").write_text(model_card(identity_net, "irse50", Path(identity)),
                                                        encoding="utf-8")
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
