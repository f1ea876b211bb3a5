"""`python -m unmask.convert` on tiny checkpoints written in the public layouts."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from unmask import convert, hub
from unmask.errors import WeightsError
from unmask.models.encoder import EncoderConfig, build_encoder
from unmask.models.identity import IResNet, IResNetConfig, IRSEConfig, IRSEIdentity
from unmask.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

TINY_G = GeneratorConfig(size=32, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=16)


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Non-default values everywhere, so a key that silently fails to load shows up."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor) * 0.1 + 0.5)
    return model.eval()


def test_rosinality_generator_round_trip(tmp_path):
    g = _randomise(Generator(TINY_G))
    d = _randomise(Discriminator(DiscriminatorConfig(size=32, channel_multiplier=1, channel_max=16)))
    src = tmp_path / "stylegan2-tiny.pt"
    # rosinality's training checkpoints also pickle their argparse options.
    torch.save({"g_ema": g.state_dict(), "d": d.state_dict(), "latent_avg": torch.zeros(32),
                "args": argparse.Namespace(size=32)}, src)
    assert convert.main(["stylegan2", str(src), str(tmp_path / "g")]) == 0
    loaded = Generator.from_pretrained(tmp_path / "g")
    # Config read back from the weights' shapes (at 32 px the channel multiplier is not identifiable).
    assert (loaded.config.size, loaded.config.style_dim, loaded.config.n_mlp) == (32, 32, 2)
    w = torch.randn(2, loaded.n_latent, 32)
    assert torch.equal(loaded.synthesis(w), g.synthesis(w))
    card = (tmp_path / "g" / "README.md").read_text()
    assert "non-commercial" in card and "rosinality" in card

    assert convert.main(["stylegan2-d", str(src), str(tmp_path / "d")]) == 0
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(Discriminator.from_pretrained(tmp_path / "d")(x), d(x))


def test_psp_checkpoint_becomes_a_bundle(tmp_path):
    g = _randomise(Generator(TINY_G))
    # Distinct stage widths: the trunk layout is read from the weights (stage ends = width changes).
    cfg = EncoderConfig(kind="e4e", input_size=32, n_styles=g.n_latent, style_dim=32, stage_channels=(8, 16, 24, 32),
                        stage_blocks=(1, 2, 1, 1), head_channels=16)
    enc = _randomise(build_encoder(cfg))
    state = {f"encoder.{k}": v for k, v in enc.state_dict().items() if k != "latent_avg"}
    state.update({f"decoder.{k}": v for k, v in g.state_dict().items()})
    src = tmp_path / "e4e_tiny.pt"
    torch.save({"state_dict": state, "latent_avg": enc.latent_avg[0].clone(),
                "opts": {"encoder_type": "Encoder4Editing", "output_size": 32}}, src)
    assert convert.main(["e4e", str(src), str(tmp_path / "bundle")]) == 0
    manifest = json.loads((tmp_path / "bundle" / "pipeline.json").read_text())
    assert manifest["world"] == "ffhq" and manifest["mask_channel"] is False
    loaded = hub.from_pretrained(tmp_path / "bundle", subfolder="encoder")
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(loaded(x), enc(x))
    gen = hub.from_pretrained(tmp_path / "bundle", subfolder="generator")
    w = torch.randn(1, g.n_latent, 32)
    assert torch.equal(gen.synthesis(w), g.synthesis(w))


def test_identity_checkpoints(tmp_path):
    arc = _randomise(IResNet(IResNetConfig(layers=(1, 2, 1, 1), widths=(8, 8, 16, 16), input_size=32,
                                           embedding_dim=16)))
    src = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v.half() if v.is_floating_point() else v for k, v in arc.state_dict().items()}, src)
    model = convert.convert_iresnet(hub.load_legacy_checkpoint(src))
    assert model.config == arc.config
    with pytest.raises(WeightsError, match="expected an iresnet50"):
        convert.convert_iresnet(hub.load_legacy_checkpoint(src), depth=50)

    tiny = IRSEConfig(stage_blocks=(1, 1, 1, 1), stage_channels=(8, 8, 16, 16), input_size=32, embedding_dim=16)
    irse = _randomise(IRSEIdentity(tiny))
    state = {k: v for k, v in irse.state_dict().items() if not k.endswith("num_batches_tracked")}  # old torch
    model = convert.convert_irse50(state, config=tiny)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), irse(x))


def test_wrong_files_are_refused_clearly(tmp_path):
    src = tmp_path / "random.pt"
    torch.save({"weights": torch.zeros(3)}, src)
    with pytest.raises(WeightsError, match="no 'g_ema' entry"):
        convert.load_public(src, "stylegan2")
    with pytest.raises(WeightsError, match="no 'encoder.\\*' weights"):
        convert.load_public(src, "psp")
    assert convert.main(["stylegan2", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 1
