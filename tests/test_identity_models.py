"""Identity backbones: published checkpoint layouts, preprocessing, small variants, round trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference_layouts import bn_layout, irse50_trunk_layout, randomise_buffers

from unmask.errors import ConfigError, InputShapeError
from unmask.hub import from_pretrained
from unmask.models.identity import (
    ARCFACE_BOX_IN_FFHQ,
    IResNet,
    IResNetConfig,
    IRSEConfig,
    IRSEIdentity,
    build_identity,
)

TINY_IRSE = dict(stage_channels=(8, 16, 32, 64), stage_blocks=(1, 1, 1, 1), embedding_dim=32)
TEACHING_IRESNET = dict(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), embedding_dim=128)


# ---------------------------------------------------------------- published layouts
def model_ir_se50_layout() -> dict[str, tuple[int, ...]]:
    """pSp's model_ir_se50.pth (TreB1eN Backbone(112, 50, 'ir_se')).

    Stem conv3x3 3->64 + BN + PReLU; 3/4/14/3 IR-SE units at 64/128/256/512 channels (BN, conv3x3,
    PReLU, conv3x3, BN, SE with reduction 16; conv1x1+BN shortcut where the width changes);
    output: BN2d(512), Dropout, Flatten, Linear(512*7*7 -> 512), BN1d(512) with affine parameters.
    """
    layout = irse50_trunk_layout()
    layout.update(bn_layout("output_layer.0", 512))
    layout["output_layer.3.weight"] = (512, 512 * 7 * 7)
    layout["output_layer.3.bias"] = (512,)
    layout.update(bn_layout("output_layer.4", 512))
    return layout


def arcface_iresnet_layout(units_per_stage: tuple[int, int, int, int]) -> dict[str, tuple[int, ...]]:
    """insightface arcface_torch backbone.pth for iresnet50 (3,4,14,3) / iresnet100 (3,13,30,3).

    conv1 3x3 3->64, bn1, prelu; layer1..4 of IBasicBlock at 64/128/256/512 (bn1, conv1 3x3, bn2,
    prelu, conv2 3x3 with the stride, bn3; the first block of each layer is strided and so has
    downsample = conv1x1 + BN); bn2(512); fc Linear(512*7*7 -> 512); features BatchNorm1d(512).
    """
    layout = {"conv1.weight": (64, 3, 3, 3), **bn_layout("bn1", 64), "prelu.weight": (64,)}
    c_in = 64
    for stage, (c_out, units) in enumerate(zip((64, 128, 256, 512), units_per_stage), start=1):
        for j in range(units):
            cin = c_in if j == 0 else c_out
            p = f"layer{stage}.{j}"
            layout.update(bn_layout(f"{p}.bn1", cin))
            layout[f"{p}.conv1.weight"] = (c_out, cin, 3, 3)
            layout.update(bn_layout(f"{p}.bn2", c_out))
            layout[f"{p}.prelu.weight"] = (c_out,)
            layout[f"{p}.conv2.weight"] = (c_out, c_out, 3, 3)
            layout.update(bn_layout(f"{p}.bn3", c_out))
            if j == 0:
                layout[f"{p}.downsample.0.weight"] = (c_out, cin, 1, 1)
                layout.update(bn_layout(f"{p}.downsample.1", c_out))
        c_in = c_out
    layout.update(bn_layout("bn2", 512))
    layout["fc.weight"] = (512, 512 * 7 * 7)
    layout["fc.bias"] = (512,)
    layout.update(bn_layout("features", 512))
    return layout


def layout_of(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_model_ir_se50_layout():
    with torch.device("meta"):
        model = IRSEIdentity(IRSEConfig())
        out = model(torch.empty(2, 3, 112, 112))
    assert layout_of(model) == model_ir_se50_layout()
    assert out.shape == (2, 512)


@pytest.mark.parametrize("depth, units", [(50, (3, 4, 14, 3)), (100, (3, 13, 30, 3))])
def test_arcface_iresnet_layout(depth, units):
    with torch.device("meta"):
        model = IResNet(IResNetConfig.from_depth(depth))
        out = model(torch.empty(2, 3, 112, 112))
    expected = arcface_iresnet_layout(units)
    got = layout_of(model)
    assert sorted(set(expected) ^ set(got)) == []
    assert got == expected
    assert out.shape == (2, 512)
    assert model.config.fc_scale == 7 * 7


# ---------------------------------------------------------------- small variants
def small_models(size: int) -> list[torch.nn.Module]:
    return [IRSEIdentity(IRSEConfig(input_size=size, **TINY_IRSE)),
            IResNet(IResNetConfig(input_size=size, **TEACHING_IRESNET))]


@pytest.mark.parametrize("size", [32, 64, 128])
def test_small_variant_shapes(size):
    for model in small_models(size):
        model.eval()
        raw = model(torch.randn(2, 3, size, size))
        dim = model.config.embedding_dim
        assert raw.shape == (2, dim)
        assert model.feature_map(torch.randn(1, 3, size, size)).shape[-1] == size // 16
        emb = model.embed(torch.rand(3, 3, 96, 96) * 2 - 1)
        assert emb.shape == (3, dim)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


def test_teaching_iresnet_example_config():
    config = IResNetConfig(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), input_size=64, embedding_dim=128)
    model = build_identity(config)
    assert isinstance(model, IResNet)
    assert model.fc.in_features == 128 * 4 * 4
    # arcface_torch keeps the embedding BN's scale fixed at 1.
    assert not model.features.weight.requires_grad
    assert torch.equal(model.features.weight, torch.ones(128))


@pytest.mark.parametrize("make", [lambda: IRSEIdentity(IRSEConfig(input_size=64, **TINY_IRSE)),
                                  lambda: IResNet(IResNetConfig(input_size=64, **TEACHING_IRESNET))])
def test_gradients_flow_through_embed(make):
    model = make().eval().requires_grad_(False)
    images = (torch.rand(2, 3, 128, 128) * 2 - 1).requires_grad_(True)
    target = F.normalize(torch.randn(2, model.config.embedding_dim), dim=1)
    loss = (1 - (model.embed(images) * target).sum(dim=1)).mean()
    loss.backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    assert images.grad.abs().sum() > 0


def test_irse_embed_reproduces_psp_id_crop():
    """At 256 px: crop rows 35:223, cols 32:220, adaptive-avg-pool to the net's size, L2-normalise."""
    model = IRSEIdentity(IRSEConfig(input_size=112, **TINY_IRSE)).eval()
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    expected = F.normalize(model(F.adaptive_avg_pool2d(images[:, :, 35:223, 32:220], 112)), dim=1)
    torch.testing.assert_close(model.embed(images), expected)
    # crop=False only resizes.
    torch.testing.assert_close(model.embed(images[:, :, 35:223, 32:220], crop=False), expected)


def test_arcface_box_follows_ffhq_alignment_rule():
    """The eye line of an FFHQ-aligned face sits 0.1 * eye-to-mouth above the centre; mouth term dominates.

    So with half-side 1.8 * eye-to-mouth, eyes lie at 0.5 - 0.1 / (2 * 1.8) of the height, and the
    arcface template's eye line (y ~ 51.6 of 112) must map there.
    """
    top, bottom, left, right = ARCFACE_BOX_IN_FFHQ
    eye_y = top + (51.6963 + 51.5014) / 2 / 112 * (bottom - top)
    assert eye_y == pytest.approx(0.5 - 0.1 / (2 * 1.8), abs=1e-3)
    # Template is nearly symmetric: the box is horizontally centred on the eye midpoint.
    eye_x = left + (38.2946 + 73.5318) / 2 / 112 * (right - left)
    assert eye_x == pytest.approx(0.5, abs=1e-3)
    assert bottom - top == pytest.approx(right - left)  # a square box
    assert 0.0 < top < 0.2 and 0.8 < bottom < 1.0


def test_iresnet_embed_uses_arcface_box():
    model = IResNet(IResNetConfig(input_size=64, **TEACHING_IRESNET)).eval()
    images = torch.rand(1, 3, 256, 256) * 2 - 1
    top, bottom, left, right = (round(f * 256) for f in ARCFACE_BOX_IN_FFHQ)
    expected = F.normalize(model(F.adaptive_avg_pool2d(images[:, :, top:bottom, left:right], 64)), dim=1)
    torch.testing.assert_close(model.embed(images), expected)


# ---------------------------------------------------------------- errors and round trips
@pytest.mark.parametrize("model", small_models(64), ids=["irse", "iresnet"])
def test_wrong_shapes_raise(model):
    with pytest.raises(InputShapeError, match=r"\(B, 3, 64, 64\)"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(InputShapeError):
        model.embed(torch.randn(1, 1, 64, 64))
    with pytest.raises(InputShapeError):
        model.embed(torch.randn(3, 64, 64))
    with pytest.raises(InputShapeError):
        model.embed(torch.randn(1, 3, 8, 8))
    with pytest.raises(InputShapeError, match="floating"):
        model.embed(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


@pytest.mark.parametrize("bad", [lambda: IRSEConfig(input_size=100), lambda: IRSEConfig(num_layers=18),
                                 lambda: IResNetConfig(layers=(1, 1, 1)), lambda: IResNetConfig.from_depth(42),
                                 lambda: IResNetConfig(dropout=1.0)])
def test_bad_configs_raise(bad):
    with pytest.raises(ConfigError):
        bad()


@pytest.mark.parametrize("model", small_models(32), ids=["irse", "iresnet"])
def test_save_load_round_trip_is_exact(tmp_path, model):
    randomise_buffers(model)
    model.eval()
    model.save_pretrained(tmp_path)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    loaded = type(model).from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert torch.equal(loaded.embed(images), model.embed(images))
    assert torch.equal(from_pretrained(tmp_path).embed(images), model.embed(images))
