"""The encoder's occlusion-mask head and the mask IoU metric."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from unmask.errors import ConfigError, InputShapeError
from unmask.evaluate.metrics import EMPTY_IOU, mask_iou
from unmask.models.encoder import EncoderConfig, GradualStyleEncoder, build_encoder

TINY = dict(stage_channels=(8, 16, 32, 64), stage_blocks=(1, 2, 1, 1), head_channels=16, style_dim=32,
            mask_head_channels=16)


def tiny(kind: str = "psp", size: int = 32, **overrides) -> GradualStyleEncoder:
    torch.manual_seed(0)
    n_styles = 2 * int(math.log2(size)) - 2
    return build_encoder(EncoderConfig(**{**TINY, "kind": kind, "input_size": size, "n_styles": n_styles,
                                          "mask_head": True, **overrides}))


# ---------------------------------------------------------------- the head
@pytest.mark.parametrize("kind", ["psp", "e4e"])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_w_plus_unchanged_by_the_head(kind, size):
    enc = tiny(kind, size).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        w_plus, logits = enc.forward_with_mask(x)
        prob = enc.predict_mask(x)
        plain = enc(x)
    assert w_plus.shape == (2, enc.n_styles, 32) and logits.shape == (2, 1, size, size)
    assert torch.equal(w_plus, plain)
    assert torch.allclose(prob, torch.sigmoid(logits))
    assert enc.has_mask_head and {k.split(".")[0] for k in enc.state_dict()} >= {"mask_head"}


def test_encoder_without_head_has_no_head_keys_and_refuses_to_predict():
    enc = tiny(mask_head=False)
    assert not enc.has_mask_head
    assert not any(k.startswith("mask_head.") for k in enc.state_dict())
    with pytest.raises(ConfigError, match="no mask head"):
        enc.predict_mask(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="no mask head"):
        enc.forward_with_mask(torch.zeros(1, 3, 32, 32))


def test_head_needs_three_input_channels():
    with pytest.raises(ConfigError, match="input_nc=3"):
        EncoderConfig(**TINY, input_size=32, n_styles=8, input_nc=4, mask_head=True)
    with pytest.raises(ConfigError, match="mask_head_channels"):
        EncoderConfig(**{**TINY, "mask_head_channels": 0}, input_size=32, n_styles=8)


@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_strict_save_load_round_trip(tmp_path, kind):
    enc = tiny(kind).eval()
    with torch.no_grad():
        for p in enc.mask_head.parameters():
            p.normal_()
    enc.save_pretrained(tmp_path)
    loaded = type(enc).from_pretrained(tmp_path)
    assert loaded.config == enc.config and loaded.has_mask_head
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.predict_mask(x), enc.predict_mask(x))
    # A head checkpoint does not load into a head-less encoder (strict), and the reverse.
    with pytest.raises(RuntimeError, match="mask_head"):
        tiny(kind, mask_head=False).load_state_dict(enc.state_dict(), strict=True)


def test_public_style_config_without_head_fields_loads(tmp_path):
    enc = tiny(mask_head=False)
    enc.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    # As the converted pSp/e4e configs, written before the head existed.
    assert raw.pop("mask_head") is False and raw.pop("mask_head_channels") == 16
    (tmp_path / "config.json").write_text(json.dumps(raw))
    loaded = GradualStyleEncoder.from_pretrained(tmp_path)
    assert not loaded.has_mask_head


def test_head_gradients_flow_to_head_and_trunk():
    enc = tiny().train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    _, logits = enc.forward_with_mask(x)
    F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)).backward()
    for name in ("mask_head.out.weight", "mask_head.reduce.weight", "input_layer.0.weight"):
        grad = dict(enc.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None for n, p in enc.named_parameters() if n.startswith("styles."))


STEPS = 60  # trunk and head, Adam 1e-2: IoU > 0.85 on every image


@pytest.mark.slow  # 60 training steps: well over 5 s on a shared 2-core CPU
def test_tiny_head_overfits_true_masks_of_the_teaching_world():
    from unmask.data.world import UnmaskingDataset
    from unmask.synthetic import WorldConfig

    data = UnmaskingDataset(WorldConfig(size=32, n_identities=20), length=4)
    items = [data[i] for i in range(4)]
    masked = torch.stack([it["masked"] for it in items])
    mask = torch.stack([it["mask"] for it in items])
    enc = tiny().train()
    with torch.no_grad():
        before = mask_iou(enc.predict_mask(masked), mask).mean()
    opt = torch.optim.Adam([p for n, p in enc.named_parameters() if not n.startswith("styles.")], lr=1e-2)
    for _ in range(STEPS):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(enc.forward_with_mask(masked)[1], mask).backward()
        opt.step()
    with torch.no_grad():
        after = mask_iou(enc.eval().predict_mask(masked), mask)
    assert after.min() > 0.85 and after.mean() > before + 0.3, (before, after)


# ---------------------------------------------------------------- the IoU
def _square(size: int, lo: int, hi: int) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., lo:hi, lo:hi] = 1.0
    return m


def test_iou_known_cases():
    full, empty = torch.ones(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1.0
    top = torch.zeros(1, 1, 8, 8)
    top[..., :4, :] = 1.0
    pred = torch.cat([full, left, left, empty, empty, full, _square(8, 0, 4)])
    target = torch.cat([full, left, top, empty, full, empty, _square(8, 0, 2)])
    iou = mask_iou(pred, target)
    expected = torch.tensor([1.0, 1.0, 16 / 48, EMPTY_IOU, 0.0, 0.0, 4 / 16])
    assert torch.allclose(iou, expected)


def test_iou_thresholds_probabilities_and_soft_targets():
    pred = torch.full((1, 1, 4, 4), 0.6)
    target = torch.full((1, 1, 4, 4), 0.5)  # an anti-aliased edge pixel counts as occluded
    assert mask_iou(pred, target).item() == 1.0
    assert mask_iou(pred, target, threshold=0.7).item() == 0.0


def test_iou_bad_inputs_raise():
    with pytest.raises(InputShapeError, match="same shape"):
        mask_iou(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(InputShapeError, match=r"\(B, 1, H, W\)"):
        mask_iou(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(InputShapeError, match="logits"):
        mask_iou(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), threshold=0.0)
