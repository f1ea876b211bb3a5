"""`python -m unmask.convert` on tiny checkpoints written in the public layouts."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from reference_layouts import randomise_buffers

from unmask import convert, hub
from unmask.errors import WeightsError
from unmask.models import public
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


def _tiny_e4e_file(tmp_path):
    """A tiny e4e checkpoint in the public layout (``encoder.*`` + ``decoder.*``): ``(path, encoder, generator)``."""
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
    return src, enc, g


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return type(a) is type(b) and set(sa) == set(sb) and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def test_psp_checkpoint_becomes_a_bundle(tmp_path):
    src, enc, g = _tiny_e4e_file(tmp_path)
    assert convert.main(["e4e", str(src), str(tmp_path / "bundle")]) == 0
    manifest = json.loads((tmp_path / "bundle" / "pipeline.json").read_text())
    assert manifest["world"] == "ffhq" and manifest["mask_channel"] is False
    assert manifest["align_size"] == 32 and manifest["refine_steps"] == 100  # the crop size comes from the encoder
    assert manifest["components"] == {"generator": "generator", "encoder": "encoder"}
    loaded = hub.from_pretrained(tmp_path / "bundle", subfolder="encoder")
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(loaded(x), enc(x))
    gen = hub.from_pretrained(tmp_path / "bundle", subfolder="generator")
    w = torch.randn(1, g.n_latent, 32)
    assert torch.equal(gen.synthesis(w), g.synthesis(w))
    assert "encoder4editing" in (tmp_path / "bundle" / "encoder" / "README.md").read_text()


@pytest.mark.slow
def test_ffhq_manifest_builds_the_bundle_from_registry_entries(tmp_path, monkeypatch):
    """``from_pretrained("ffhq")`` converts the three REGISTRY files its manifest names (downloads faked)."""
    from unmask.pipeline import UnmaskPipeline

    e4e, enc, _ = _tiny_e4e_file(tmp_path)
    g = _randomise(Generator(TINY_G))
    torch.save({"g_ema": g.state_dict()}, tmp_path / "stylegan2.pt")
    irse = IRSEIdentity(IRSEConfig()).eval()  # pSp's identity file is a full IR-SE-50
    randomise_buffers(irse)
    torch.save(irse.state_dict(), tmp_path / "model_ir_se50.pth")
    files = {"stylegan2-ffhq-config-f": tmp_path / "stylegan2.pt", "e4e-ffhq-encode": e4e,
             "ir-se50": tmp_path / "model_ir_se50.pth"}
    asked = []

    def fake_download(name, **kwargs):
        asked.append(name)
        return files[name]

    monkeypatch.setattr(public, "download_registered", fake_download)
    pipe = UnmaskPipeline.from_pretrained("ffhq", refine_steps=7)  # an override of a manifest setting
    assert sorted(asked) == sorted(files)
    assert (pipe.config.world, pipe.config.align_size, pipe.config.mask_channel) == ("ffhq", 256, False)
    assert pipe.config.refine_steps == 7 and "non-commercial" in pipe.config.description
    w = torch.randn(1, g.n_latent, 32)
    with torch.no_grad():  # both on the inference path ("auto" takes the batched one where autograd records)
        assert torch.equal(pipe.generator.synthesis(w), g.synthesis(w))
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(pipe.encoder(x), enc(x))
    assert _same_weights(pipe.identity_net, irse)

    # The convert command assembles the same parts from local files through the same builder.
    assert convert.main(["e4e", str(e4e), str(tmp_path / "bundle"), "--identity", str(files["ir-se50"])]) == 0
    bundle = UnmaskPipeline.from_pretrained(tmp_path / "bundle")
    assert _same_weights(bundle.identity_net, irse)
    assert "InsightFace_Pytorch" in (tmp_path / "bundle" / "identity" / "README.md").read_text()


def test_identity_checkpoints(tmp_path):
    arc = _randomise(IResNet(IResNetConfig(layers=(1, 2, 1, 1), widths=(8, 8, 16, 16), input_size=32,
                                           embedding_dim=16)))
    src = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v.half() if v.is_floating_point() else v for k, v in arc.state_dict().items()}, src)
    model = public.convert_iresnet(hub.load_legacy_checkpoint(src))
    assert model.config == arc.config
    with pytest.raises(WeightsError, match="expected an iresnet50"):
        public.convert_iresnet(hub.load_legacy_checkpoint(src), depth=50)

    tiny = IRSEConfig(stage_blocks=(1, 1, 1, 1), stage_channels=(8, 8, 16, 16), input_size=32, embedding_dim=16)
    irse = _randomise(IRSEIdentity(tiny))
    state = {k: v for k, v in irse.state_dict().items() if not k.endswith("num_batches_tracked")}  # old torch
    model = public.convert_irse50(state, config=tiny)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), irse(x))


def test_wrong_files_are_refused_clearly(tmp_path):
    src = tmp_path / "random.pt"
    torch.save({"weights": torch.zeros(3)}, src)
    with pytest.raises(WeightsError, match="no 'g_ema' entry"):
        public.load_public(src, "stylegan2")
    with pytest.raises(WeightsError, match="no 'encoder.\\*' weights"):
        public.load_public(src, "psp")
    assert convert.main(["stylegan2", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 1
