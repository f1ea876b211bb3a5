"""Public checkpoints as unmask models: rosinality StyleGAN2, pSp / e4e, IR-SE-50, arcface iresnet, DCGAN.

Each converter takes the dict a public ``.pt`` / ``.pth`` file holds (read with
:func:`unmask.hub.load_legacy_checkpoint`: ``weights_only=True``, no pickled code runs), reads the
architecture from the weights' shapes where the file stores no config, and loads the weights with
``strict=True`` into our module of the same names and shapes. ``python -m unmask.convert`` writes
the results in our format; bundles name public files in their manifests and load them through
:func:`load_public` / :func:`load_registered`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from unmask.errors import HubError, UnmaskError, WeightsError
from unmask.hub import REGISTRY, HubModel, download_registered, load_legacy_checkpoint, load_state_dict_strict
from unmask.models.encoder import build_encoder, convert_psp_checkpoint
from unmask.models.identity import IResNet, IResNetConfig, IRSEConfig, IRSEIdentity
from unmask.models.irse import fill_missing_num_batches_tracked
from unmask.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

#: Checkpoint kinds: the StyleGAN2 generator / discriminator of a rosinality file, the encoder of a
#: pSp / e4e file, the StyleGAN2 ``decoder.*`` inside a pSp / e4e file, and the identity networks.
KINDS = ("stylegan2", "stylegan2-d", "psp", "e4e", "psp-decoder", "irse50", "iresnet50", "iresnet100", "dcgan")
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
    model = IRSEIdentity(config or IRSEConfig())
    state = _float_state(ckpt)
    state = fill_missing_num_batches_tracked(model, state)
    load_state_dict_strict(model, state, source="IR-SE-50 checkpoint")
    return model.eval()


def iresnet_config_from_state(state: Mapping[str, torch.Tensor]):
    """Read an arcface ``IResNetConfig`` from ``backbone.pth`` weights (units, widths, size, dim)."""
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
    state = _float_state(ckpt)
    config = iresnet_config_from_state(state)
    if depth is not None and config.layers != IResNetConfig.from_depth(depth).layers:
        raise WeightsError(f"expected an iresnet{depth} (units {IResNetConfig.from_depth(depth).layers}) but the "
                           f"weights have units {config.layers}; pick the matching KIND.")
    model = IResNet(config)
    state = fill_missing_num_batches_tracked(model, state)
    load_state_dict_strict(model, state, source=f"arcface iresnet{depth or ''} checkpoint")
    return model.eval()


def convert_public(ckpt: Mapping[str, Any], kind: str) -> HubModel:
    """The model of ``kind`` held in an already read public checkpoint dict (see :data:`KINDS`)."""
    if kind == "stylegan2":
        return convert_stylegan2(ckpt, "g_ema")
    if kind == "stylegan2-d":
        return convert_stylegan2(ckpt, "d")
    if kind in ("psp", "e4e"):
        return convert_encoder(ckpt, kind)
    if kind == "psp-decoder":
        return convert_decoder(ckpt)
    if kind == "irse50":
        return convert_irse50(ckpt)
    if kind in ("iresnet50", "iresnet100"):
        return convert_iresnet(ckpt, int(kind.removeprefix("iresnet")))
    if kind == "dcgan":
        from unmask.models.dcgan import convert_dcgan_checkpoint

        return convert_dcgan_checkpoint(ckpt)
    raise WeightsError(f"unknown checkpoint kind {kind!r}; choose one of {KINDS}.")


def load_public(path: str | Path, kind: str) -> HubModel:
    """Read a public checkpoint file of ``kind`` and return the model it holds (in memory)."""
    if kind not in KINDS:
        raise WeightsError(f"unknown checkpoint kind {kind!r}; choose one of {KINDS}.")
    return convert_public(load_legacy_checkpoint(path), kind)


def load_registered(name: str, **hub_kwargs: Any) -> HubModel:
    """Download ``hub.REGISTRY[name]`` at its pinned revision and convert it with the entry's ``kind``.

    Raises:
        HubError: unknown name, or the file cannot be fetched (offline, gated…).
        WeightsError: the entry is not a torch checkpoint we convert (e.g. an insightface ONNX pack).
    """
    if name not in REGISTRY:
        raise HubError(f"unknown public weights {name!r}; known: {sorted(REGISTRY)}.")
    kind = REGISTRY[name].kind
    if kind not in KINDS:
        raise WeightsError(f"public weights {name!r} are of kind {kind!r}, which is not a torch checkpoint unmask "
                           f"converts ({KINDS}); load it through its own backend.")
    return load_public(download_registered(name, **hub_kwargs), kind)
