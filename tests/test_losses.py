"""The loss contract: zero on identical inputs, positive otherwise, differentiable, masks respected."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from unmask.errors import ConfigError, HubError, InputShapeError
from unmask.losses import (
    LOSSES,
    DeltaLoss,
    IdentityLoss,
    LatentAdversarialLoss,
    LatentDiscriminator,
    LossCombiner,
    PerceptualLoss,
    ReconstructionLoss,
    WNormLoss,
    discriminator_loss,
    loss_weights,
    r1_penalty,
)
from unmask.losses import perceptual as perceptual_module
from unmask.losses.reconstruction import l1_mask, l1_visible, l2_mask, l2_visible

SIZE = 64


@pytest.fixture(scope="module", autouse=True)
def _offline_torch_hub(tmp_path_factory):
    """Point torch.hub at an empty folder: any backbone download attempt would land (or fail) here."""
    old = torch.hub.get_dir()
    hub = tmp_path_factory.mktemp("torch_hub")
    torch.hub.set_dir(str(hub))
    yield hub
    assert not any(hub.rglob("*.pth")), "a test downloaded backbone weights"
    torch.hub.set_dir(old)


def images(seed: int, batch: int = 2, size: int = SIZE) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=gen) * 2 - 1


def lower_half_mask(batch: int = 2, size: int = SIZE) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 2:, size // 4: 3 * size // 4] = 1.0
    return mask


def change_inside(x: torch.Tensor, mask: torch.Tensor, seed: int = 9) -> torch.Tensor:
    return torch.where(mask.bool().expand_as(x), images(seed, len(x), x.shape[-1]), x)


def change_outside(x: torch.Tensor, mask: torch.Tensor, seed: int = 9) -> torch.Tensor:
    return torch.where(mask.bool().expand_as(x), x, images(seed, len(x), x.shape[-1]))


class TinyEmbedder(nn.Module):
    """Stand-in identity network: conv features pooled and L2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2)
        self.bn = nn.BatchNorm2d(16)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.bn(self.conv(images)).flatten(1), dim=1)


@pytest.fixture(scope="module")
def lpips_rand() -> PerceptualLoss:
    return PerceptualLoss("alex", pretrained_backbone=False)


# ------------------------------------------------------------------ reconstruction
@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_reconstruction_zero_positive_differentiable(kind):
    loss = ReconstructionLoss(kind, inside_weight=2.0, outside_weight=1.0)
    target, mask = images(0), lower_half_mask()
    assert loss(target, target, mask).item() == 0.0
    pred = images(1).requires_grad_(True)
    value = loss(pred, target, mask)
    assert value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_reconstruction_without_mask_is_plain_loss():
    pred, target = images(1), images(0)
    assert torch.allclose(ReconstructionLoss("l2")(pred, target), F.mse_loss(pred, target))
    assert torch.allclose(ReconstructionLoss("l1")(pred, target), F.l1_loss(pred, target))
    # the plain "l2" of the combiner ignores a mask as well
    assert torch.allclose(LOSSES["l2"]()(pred, target, lower_half_mask()), F.mse_loss(pred, target))


@pytest.mark.parametrize("inside, outside", [(l2_mask, l2_visible), (l1_mask, l1_visible)])
def test_region_terms_only_see_their_region(inside, outside):
    inside, outside = inside(), outside()
    pred, target, mask = images(1), images(0), lower_half_mask()
    moved_in, moved_out = change_inside(pred, mask), change_outside(pred, mask)
    assert torch.equal(outside(moved_in, target, mask), outside(pred, target, mask))
    assert inside(moved_in, target, mask).item() != pytest.approx(inside(pred, target, mask).item())
    assert torch.equal(inside(moved_out, target, mask), inside(pred, target, mask))
    assert outside(moved_out, target, mask).item() != pytest.approx(outside(pred, target, mask).item())
    # the gradient of the visible term is exactly 0 under the mask
    pred = pred.clone().requires_grad_(True)
    outside(pred, target, mask).backward()
    assert pred.grad[mask.bool().expand_as(pred)].abs().max() == 0


def test_region_weights_do_not_depend_on_mask_size():
    """Each region is averaged over its own pixels: a uniform error costs the same for any mask area."""
    target = torch.zeros(1, 3, SIZE, SIZE)
    pred = torch.full_like(target, 0.5)
    loss = ReconstructionLoss("l2", inside_weight=3.0, outside_weight=1.0)
    values = []
    for rows in (4, 16, 48):
        mask = torch.zeros(1, 1, SIZE, SIZE)
        mask[..., :rows, :] = 1
        values.append(loss(pred, target, mask).item())
    assert values == pytest.approx([4 * 0.25] * 3)
    # an empty region contributes nothing instead of dividing by zero
    assert loss(pred, target, torch.zeros(1, 1, SIZE, SIZE)).item() == pytest.approx(0.25)


def test_reconstruction_resizes_mask_and_rejects_bad_shapes():
    pred, target = images(1), images(0)
    large = lower_half_mask(size=SIZE * 2)  # area-pooled to the image size: the same binary mask
    assert torch.allclose(l2_mask()(pred, target, large), l2_mask()(pred, target, lower_half_mask()))
    with pytest.raises(InputShapeError):
        l2_mask()(pred, target[:, :, :32])
    with pytest.raises(InputShapeError):
        l2_mask()(pred, target, torch.zeros(2, 3, SIZE, SIZE))
    with pytest.raises(ConfigError):
        ReconstructionLoss("l3")


# ------------------------------------------------------------------ perceptual
def test_lpips_random_backbone_offline(lpips_rand):
    target = images(0)
    assert lpips_rand(target, target).item() == pytest.approx(0.0, abs=1e-6)
    pred = images(1).requires_grad_(True)
    value = lpips_rand(pred, target)
    assert value.item() > 0
    value.backward()
    assert pred.grad.abs().sum() > 0
    # frozen network: no parameter trains, and it stays in eval mode when the loss is put in train mode
    assert not any(p.requires_grad for p in lpips_rand.parameters())
    lpips_rand.train()
    assert not lpips_rand.network.training


def test_lpips_random_backbone_is_reproducible():
    a = PerceptualLoss("alex", pretrained_backbone=False)
    b = PerceptualLoss("alex", pretrained_backbone=False)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_lpips_mask_crop_sees_only_the_box(lpips_rand):
    crop = PerceptualLoss(network=lpips_rand.network, crop_to_mask=True, crop_size=64)
    pred, target, mask = images(1), images(0), lower_half_mask()
    assert crop(target, target, mask).item() == pytest.approx(0.0, abs=1e-6)
    base = crop(pred, target, mask).item()
    assert base > 0
    # pixels outside the box do not matter; pixels inside do
    outside_box = torch.ones_like(mask) - F.max_pool2d(mask, 3, 1, 1)  # strictly away from the box
    moved = torch.where(outside_box.bool().expand_as(pred), images(5), pred)
    assert crop(moved, target, mask).item() == pytest.approx(base, abs=1e-6)
    assert crop(change_inside(pred, mask), target, mask).item() != pytest.approx(base, abs=1e-4)
    # an empty mask contributes 0 (and stays differentiable)
    empty = crop(pred.requires_grad_(True), target, torch.zeros_like(mask))
    assert empty.item() == 0.0
    empty.backward()


def test_lpips_download_failure_is_a_hub_error(monkeypatch):
    import lpips

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(lpips, "LPIPS", offline)
    with pytest.raises(HubError, match="alexnet-owt-7be5be79.pth"):
        perceptual_module.build_lpips("alex", pretrained_backbone=True)
    with pytest.raises(ConfigError):
        perceptual_module.build_lpips("squeezenet")


# ------------------------------------------------------------------ identity
def test_identity_loss():
    net = TinyEmbedder().train()
    loss = IdentityLoss(net)
    assert not any(p.requires_grad for p in net.parameters())
    loss.train()
    assert not net.training  # BatchNorm must not update its statistics on the loss's data
    target = images(0)
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-5)
    pred = images(1).requires_grad_(True)
    value = loss(pred, target)
    assert value.item() > 0
    value.backward()
    assert pred.grad.abs().sum() > 0
    # precomputed target embeddings give the same value
    assert loss(pred, loss.embed(target)).item() == pytest.approx(value.item(), abs=1e-6)
    with pytest.raises(ConfigError):
        IdentityLoss(nn.Conv2d(3, 3, 1))


# ------------------------------------------------------------------ latent
def test_w_norm_and_delta():
    latent_avg = torch.randn(16)
    w_plus = latent_avg.expand(2, 6, 16).clone()
    assert WNormLoss()(w_plus, latent_avg).item() == 0.0
    assert DeltaLoss()(w_plus).item() == 0.0
    moved = (w_plus + torch.randn(2, 6, 16)).requires_grad_(True)
    w_norm, delta = WNormLoss()(moved, latent_avg), DeltaLoss()(moved)
    assert w_norm.item() > 0 and delta.item() > 0
    (w_norm + delta).backward()
    assert moved.grad.abs().sum() > 0
    # per-layer averages: the same offset on every layer gives its norm, and no delta
    offset = torch.zeros(2, 6, 16)
    offset[..., 0] = 3.0
    assert WNormLoss()(latent_avg + offset, latent_avg.expand(6, 16)).item() == pytest.approx(3.0)
    assert DeltaLoss()(latent_avg + offset).item() == pytest.approx(0.0)
    # delta sums per-layer norms: one layer off by 2 costs 2; progressive stages count only active layers
    shifted = offset.clone()
    shifted[:, 4, 1] = 2.0
    assert DeltaLoss()(shifted).item() == pytest.approx(2.0)
    assert DeltaLoss(active_layers=4)(shifted).item() == 0.0
    with pytest.raises(InputShapeError):
        WNormLoss()(torch.zeros(2, 16), latent_avg)


def test_latent_discriminator_losses():
    disc = LatentDiscriminator(style_dim=16)
    assert list(disc.state_dict()) == [f"mlp.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    real, fake = torch.randn(8, 16), torch.randn(8, 16).requires_grad_(True)
    d_loss = discriminator_loss(disc, real, fake)
    d_loss.backward()
    assert fake.grad is None  # the discriminator step must not reach the encoder
    assert r1_penalty(disc, real).item() > 0
    adversarial = LatentAdversarialLoss(disc)
    w_plus = torch.randn(4, 6, 16, requires_grad=True)
    value = adversarial(w_plus)
    value.backward()
    assert value.item() > 0 and w_plus.grad[:, 0].abs().sum() > 0 and w_plus.grad[:, 1:].abs().sum() == 0


def test_w_discriminator_is_not_built_from_a_weight():
    """No trainer trains the latent discriminator, so a weight alone would add a random network's loss."""
    with pytest.raises(ConfigError, match="w_discriminator.*no trainer here trains one.*Remove"):
        LossCombiner({"l2": 1.0, "w_discriminator": 0.1})
    assert LossCombiner({"l2": 1.0, "w_discriminator": 0.0}).names == ["l2"]
    assert "w_discriminator" not in LOSSES
    # a trainer that trains the discriminator passes the loss itself
    disc = LatentDiscriminator(style_dim=32)
    combiner = LossCombiner({"w_discriminator": 0.1}, modules={"w_discriminator": LatentAdversarialLoss(disc)})
    total, logs = combiner(combiner_outputs())
    assert set(logs) == {"w_discriminator", "total"} and total.item() == pytest.approx(0.1 * logs["w_discriminator"])


def test_loss_weights_reads_flat_and_nested_sections():
    assert loss_weights({"l2": 1, "lpips": 0.8}) == {"l2": 1.0, "lpips": 0.8}
    assert loss_weights({"weights": {"l2": 1}, "options": {"l2": {}}}) == {"l2": 1.0}


# ------------------------------------------------------------------ combiner
def combiner_outputs() -> dict[str, torch.Tensor]:
    return {"recovered": images(1).requires_grad_(True), "target": images(0), "mask": lower_half_mask(),
            "w_plus": torch.randn(2, 10, 32, requires_grad=True), "latent_avg": torch.zeros(32)}


def test_combiner_skips_zero_weights_and_logs_every_term(lpips_rand):
    weights = {"l2_visible": 1.0, "l2_mask": 2.0, "lpips": 0.8, "lpips_mask": 0.0, "identity": 0.1,
               "w_norm": 0.01, "delta": 2e-4, "triplet": 0.0}
    combiner = LossCombiner(weights, identity_net=TinyEmbedder(), lpips_network=lpips_rand.network)
    assert combiner.names == ["l2_visible", "l2_mask", "lpips", "identity", "w_norm", "delta"]
    assert "lpips_mask" not in combiner and "triplet" not in combiner
    outputs = combiner_outputs()
    total, logs = combiner(outputs)
    assert set(logs) == {*combiner.names, "total"}
    assert all(isinstance(v, float) for v in logs.values())
    expected = sum(weights[name] * logs[name] for name in combiner.names)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert logs["total"] == pytest.approx(total.item())
    total.backward()
    assert outputs["recovered"].grad.abs().sum() > 0 and outputs["w_plus"].grad.abs().sum() > 0


def test_combiner_builds_from_registry_names_and_shares_lpips():
    combiner = LossCombiner({"lpips": 1.0, "lpips_mask": 1.0}, pretrained_backbone=False)
    assert combiner.losses["lpips"].network is combiner.losses["lpips_mask"].network
    _, logs = combiner(combiner_outputs())
    assert logs["lpips"] > 0 and logs["lpips_mask"] > 0


def test_combiner_metric_losses_resolve_lazily():
    combiner = LossCombiner({"triplet": 1.0, "arcface": 0.5}, options={"triplet": {"margin": 0.2}})
    assert type(combiner.losses["triplet"]).__module__ == "unmask.losses.metric"
    assert combiner.losses["triplet"].margin == 0.2
    labels = torch.tensor([0, 0, 1, 1])
    outputs = {"embedding": torch.randn(4, 8), "cosine": torch.rand(4, 3) * 2 - 1, "labels": labels}
    total, logs = combiner(outputs)
    assert set(logs) == {"triplet", "arcface", "total"} and total.item() > 0


def test_combiner_errors():
    with pytest.raises(ConfigError, match="unknown loss"):
        LossCombiner({"l3": 1.0})
    with pytest.raises(ConfigError, match=">= 0"):
        LossCombiner({"l2": -1.0})
    with pytest.raises(ConfigError, match="identity"):
        LossCombiner({"identity": 1.0})  # no identity_net given
    with pytest.raises(ConfigError, match="latent_avg"):
        LossCombiner({"l2": 1.0, "w_norm": 1.0})({"recovered": images(1), "target": images(0),
                                                  "w_plus": torch.zeros(2, 4, 8)})
    with pytest.raises(ConfigError, match="no loss"):
        LossCombiner({"l2": 0.0})({})


def test_combiner_custom_inputs_and_modules():
    blank = ReconstructionLoss("l1", name="l1")
    combiner = LossCombiner({"l1": 1.0}, modules={"l1": blank}, inputs={"l1": ("a", "b", None)})
    assert combiner.losses["l1"] is blank
    a, b = images(1), images(0)
    total, _ = combiner({"a": a, "b": b})
    assert total.item() == pytest.approx(F.l1_loss(a, b).item())


@pytest.mark.parametrize("path", ["configs/unmask_teaching.yaml", "configs/unmask_teaching_mask_channel.yaml",
                                  "configs/generic_teaching.yaml", "configs/unmask_ffhq.yaml"])
def test_config_recipes_build(path, lpips_rand):
    from pathlib import Path

    section = yaml.safe_load((Path(__file__).parents[1] / path).read_text())["losses"]
    # No download in tests: every LPIPS gets the random backbone (the recipe's choice is checked below).
    options = {name: {**opts, "pretrained_backbone": False}
               for name, opts in (section.get("options") or {}).items()}
    combiner = LossCombiner.from_config({**section, "options": options}, identity_net=TinyEmbedder())
    if "generic" in path:  # the generic baseline never sees a mask: one pixel term over the whole face
        assert combiner.weights["l2_visible"] > 0 and "l2_mask" not in combiner
    else:
        assert combiner.weights["l2_mask"] > combiner.weights["l2_visible"] > 0  # the masked region weighs more
    outputs = combiner_outputs()
    outputs["w_plus_true"] = torch.randn_like(outputs["w_plus"])
    outputs["mask_logits"], outputs["mask_true"] = torch.randn(2, 1, 16, 16), lower_half_mask()
    total, logs = combiner(outputs)
    assert set(logs) == {*combiner.names, "total"} and total.item() > 0
    if "ffhq" in path:
        assert section["options"]["lpips"]["pretrained_backbone"] is True
    else:  # the teaching recipes use the loss only the teaching world allows
        assert combiner.weights["w_plus_true"] > 0
    assert ("mask_bce" in combiner) == path.endswith("unmask_teaching.yaml")


def test_true_latent_loss():
    from unmask.losses.latent import TrueLatentLoss

    true = torch.randn(2, 6, 16)
    loss = TrueLatentLoss()
    assert loss(true.clone(), true).item() == 0.0
    pred = (true + 0.5).requires_grad_(True)
    value = loss(pred, true)
    assert value.item() == pytest.approx(0.25)  # the mean squared offset
    value.backward()
    assert torch.allclose(pred.grad, torch.full_like(pred, 2 * 0.5 / pred.numel()))
    with pytest.raises(InputShapeError, match="differ"):
        loss(pred, true[:, :5])
    with pytest.raises(InputShapeError, match=r"\(B, n_latent, D\)"):
        loss(torch.zeros(2, 16), torch.zeros(2, 16))
    with pytest.raises(InputShapeError, match="true w_plus"):
        loss(pred, None)
    # In the combiner it reads the model's w_plus and the batch's true w_plus, with its own weight.
    combiner = LossCombiner({"w_plus_true": 2.0})
    total, logs = combiner({"w_plus": pred, "w_plus_true": true})
    assert logs["w_plus_true"] == pytest.approx(0.25) and total.item() == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="w_plus_true"):
        combiner({"w_plus": pred})


def test_mask_bce_loss():
    from unmask.losses.occlusion import MaskBCELoss

    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 4:] = 1
    confident = (mask * 2 - 1) * 20  # logits that agree with the mask
    loss = MaskBCELoss()
    assert loss(confident, mask).item() < 1e-6
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    value = loss(logits, mask)
    assert value.item() == pytest.approx(float(torch.log(torch.tensor(2.0))))
    value.backward()
    assert (logits.grad[:, :, 4:] < 0).all() and (logits.grad[:, :, :4] > 0).all()  # pushes towards the mask
    # A mask of another size is resized to the logits.
    assert loss(confident, F.interpolate(mask, size=(16, 16))).item() < 1e-6
    assert MaskBCELoss(pos_weight=3.0)(torch.zeros(2, 1, 8, 8), mask).item() > value.item()
    with pytest.raises(InputShapeError, match=r"\(B, 1, H, W\)"):
        loss(torch.zeros(2, 3, 8, 8), mask)
    with pytest.raises(InputShapeError, match="2 predicted masks but 1"):
        loss(logits, mask[:1])
    total, logs = LossCombiner({"mask_bce": 0.5})({"mask_logits": confident, "mask_true": mask})
    assert set(logs) == {"mask_bce", "total"} and total.item() < 1e-6
