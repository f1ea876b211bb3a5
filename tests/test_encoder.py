"""pSp / e4e encoders: shapes, reference checkpoint layout, e4e semantics, conversion, round trip."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from reference_layouts import irse50_trunk_layout, randomise_buffers

from unmask.errors import ConfigError, InputShapeError
from unmask.hub import from_pretrained
from unmask.models.encoder import (
    Encoder4Editing,
    EncoderConfig,
    GradualStyleEncoder,
    build_encoder,
    convert_psp_checkpoint,
)
from unmask.models.irse import fill_missing_num_batches_tracked

TINY = dict(stage_channels=(8, 16, 32, 64), stage_blocks=(1, 2, 1, 1), head_channels=16, style_dim=32)


def n_latent(generator_size: int) -> int:
    """StyleGAN2's number of W+ entries for a generator of this output size."""
    return 2 * int(math.log2(generator_size)) - 2


def tiny(size: int = 32, **overrides) -> EncoderConfig:
    return EncoderConfig(**{**TINY, "input_size": size, "n_styles": n_latent(size), **overrides})


# ---------------------------------------------------------------- published layout (written from the paper/repo)
def psp_ffhq_encoder_layout() -> dict[str, tuple[int, ...]]:
    """``encoder.*`` of psp_ffhq_encode.pt / e4e_ffhq_encode.pt (prefix stripped) + our latent_avg.

    18 GradualStyleBlocks: styles 0-2 read the 16x16 map (4 stride-2 convs), 3-6 the 32x32 map (5),
    7-17 the 64x64 map (6); each conv 512->512 3x3 with bias, then EqualLinear 512->512.
    Lateral 1x1 convs: latlayer1 256->512, latlayer2 128->512.
    """
    layout = irse50_trunk_layout()
    for i in range(18):
        num_convs = 4 if i < 3 else 5 if i < 7 else 6
        for k in range(num_convs):
            layout[f"styles.{i}.convs.{2 * k}.weight"] = (512, 512, 3, 3)
            layout[f"styles.{i}.convs.{2 * k}.bias"] = (512,)
        layout[f"styles.{i}.linear.weight"] = (512, 512)
        layout[f"styles.{i}.linear.bias"] = (512,)
    layout.update({"latlayer1.weight": (512, 256, 1, 1), "latlayer1.bias": (512,),
                   "latlayer2.weight": (512, 128, 1, 1), "latlayer2.bias": (512,)})
    layout["latent_avg"] = (18, 512)
    return layout


def layout_of(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_public_ffhq_checkpoint_layout(kind):
    with torch.device("meta"):
        model = build_encoder(EncoderConfig(kind=kind))
    expected = psp_ffhq_encoder_layout()
    got = layout_of(model)
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert got == expected


@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_mask_head_adds_only_light_head_keys_to_the_public_layout(kind):
    with torch.device("meta"):
        model = build_encoder(EncoderConfig(kind=kind, mask_head=True))
    got = layout_of(model)
    expected = psp_ffhq_encoder_layout()
    assert {k: v for k, v in got.items() if not k.startswith("mask_head.")} == expected
    head = {k for k in got if k.startswith("mask_head.")}
    assert head == {f"mask_head.{m}.{p}" for m in ("reduce", "ups.0", "ups.1", "out") for p in ("weight", "bias")}
    assert got["mask_head.reduce.weight"] == (32, 512, 1, 1) and got["mask_head.out.weight"] == (1, 35, 3, 3)
    head_size = sum(math.prod(got[k]) for k in head)
    assert head_size < 0.002 * sum(math.prod(v) for v in expected.values())  # a light decoder


def test_reference_pyramid_taps_and_meta_forward():
    with torch.device("meta"):
        model = build_encoder(EncoderConfig())
        out = model(torch.empty(2, 3, 256, 256))
    assert model._taps == (6, 20, 23)  # the units pSp reads c1, c2, c3 from
    assert out.shape == (2, 18, 512)


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_small_variant_shapes_match_generator_n_latent(size, kind):
    config = tiny(size, kind=kind)
    model = build_encoder(config).eval()
    assert isinstance(model, Encoder4Editing if kind == "e4e" else GradualStyleEncoder)
    w_plus = model(torch.randn(2, 3, size, size))
    assert w_plus.shape == (2, n_latent(size), 32)
    assert torch.isfinite(w_plus).all()


def test_input_nc_4_with_mask_channel():
    model = build_encoder(tiny(64, input_nc=4)).eval()
    x = torch.randn(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    w_plus = model(torch.cat([x, mask], dim=1))
    assert w_plus.shape == (2, n_latent(64), 32)
    # The mask channel changes the prediction: it is really read.
    assert not torch.allclose(w_plus, model(torch.cat([x, 1 - mask], dim=1)))
    with pytest.raises(InputShapeError, match=r"\(B, 4, 64, 64\)"):
        model(x)


def test_wrong_inputs_raise_input_shape_error():
    model = build_encoder(tiny(32))
    with pytest.raises(InputShapeError, match=r"\(B, 3, 32, 32\)"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(InputShapeError):
        model(torch.randn(3, 32, 32))
    with pytest.raises(InputShapeError, match="floating"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("bad", [dict(input_size=48), dict(input_size=16), dict(kind="x"), dict(mode="se"),
                                 dict(num_layers=34), dict(n_styles=0)])
def test_bad_config_raises(bad):
    with pytest.raises(ConfigError):
        EncoderConfig(**bad)


def test_latent_avg_is_added():
    torch.manual_seed(0)
    with_avg = build_encoder(tiny(32)).eval()
    without = build_encoder(dataclasses.replace(with_avg.config, add_latent_avg=False)).eval()
    without.load_state_dict(with_avg.state_dict())
    with_avg.latent_avg.normal_()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(with_avg(x) - without(x), with_avg.latent_avg.expand(2, -1, -1))


def test_e4e_is_base_code_plus_offsets():
    config = tiny(64, add_latent_avg=False)
    psp = build_encoder(config).eval()
    e4e = build_encoder(dataclasses.replace(config, kind="e4e")).eval()
    e4e.load_state_dict(psp.state_dict())
    x = torch.randn(2, 3, 64, 64)
    styles = psp(x)
    w = e4e(x)
    torch.testing.assert_close(w[:, 0], styles[:, 0])
    torch.testing.assert_close(w[:, 1:], styles[:, :1] + styles[:, 1:])

    e4e.set_progressive_stage(0)  # W training: one code for every layer
    w0 = e4e(x)
    torch.testing.assert_close(w0, styles[:, :1].expand_as(w0))
    e4e.set_progressive_stage(4)  # offsets on layers 1..4 only
    w4 = e4e(x)
    torch.testing.assert_close(w4[:, :5], w[:, :5])
    torch.testing.assert_close(w4[:, 5:], styles[:, :1].expand_as(w4[:, 5:]))
    with pytest.raises(ConfigError):
        e4e.set_progressive_stage(n_latent(64) + 1)


@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_save_load_round_trip_is_exact(tmp_path, kind):
    model = build_encoder(tiny(32, kind=kind))
    randomise_buffers(model)
    model.eval()
    model.save_pretrained(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    loaded = GradualStyleEncoder.from_pretrained(tmp_path)  # dispatches to the saved class
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert torch.equal(loaded(x), model(x))
    assert torch.equal(from_pretrained(tmp_path)(x), model(x))


@pytest.mark.parametrize("latent_shape", [(10, 32), (32,)])
def test_convert_psp_style_checkpoint(latent_shape):
    """A checkpoint laid out like pSp's (state_dict with encoder.*/decoder.*, latent_avg, opts) converts."""
    config = tiny(64, kind="e4e")
    source = build_encoder(config)
    randomise_buffers(source)
    source.eval()
    latent_avg = torch.randn(latent_shape)
    ckpt = {
        "state_dict": {**{f"encoder.{k}": v for k, v in source.state_dict().items() if k != "latent_avg"},
                       "decoder.style.1.weight": torch.zeros(4, 4)},
        "latent_avg": latent_avg,
        "opts": {"encoder_type": "Encoder4Editing", "start_from_latent_avg": True},
    }
    new_config, state = convert_psp_checkpoint(ckpt, input_size=64)
    assert new_config == config
    assert not any(k.startswith("decoder") for k in state)
    model = build_encoder(new_config)
    model.load_state_dict(state, strict=True)
    model.eval()
    assert torch.equal(model.latent_avg, latent_avg.reshape(-1, 32).expand(10, -1))
    x = torch.randn(1, 3, 64, 64)
    source.latent_avg.copy_(model.latent_avg)
    assert torch.equal(model(x), source(x))


def test_convert_reads_published_depth_and_kind_argument():
    with torch.device("meta"):
        state = build_encoder(EncoderConfig()).state_dict()
    ckpt = {"state_dict": {f"encoder.{k}": v for k, v in state.items() if k != "latent_avg"}}
    config, converted = convert_psp_checkpoint(ckpt, kind="psp")
    assert config == EncoderConfig(add_latent_avg=False)
    assert converted["latent_avg"].shape == (18, 512)
    with pytest.raises(Exception, match="kind"):
        convert_psp_checkpoint(ckpt)


def test_fill_missing_num_batches_tracked():
    model = build_encoder(tiny(32))
    old_style = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    filled = fill_missing_num_batches_tracked(model, old_style)
    model.load_state_dict(filled, strict=True)
