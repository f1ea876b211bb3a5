"""IdentityEmbedder: output shapes, which feature each loss sees, save/load round trip."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unmask.errors import ConfigError, InputShapeError
from unmask.hub import from_pretrained
from unmask.losses.metric import JointMetricLoss
from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder

TINY = EmbeddingConfig(input_size=32, layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), embedding_dim=16,
                       num_classes=5, num_attributes=3)


def test_forward_outputs_and_embed_is_unit_norm():
    model = IdentityEmbedder(TINY)
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    out = model(images)
    assert out["embedding"].shape == out["neck"].shape == (6, 16)
    assert out["cosine"].shape == (6, 5) and out["cosine"].abs().max() <= 1 + 1e-5
    assert out["attributes"].shape == (6, 3)
    model.eval()
    emb = model.embed(torch.rand(2, 3, 48, 48) * 2 - 1)  # other sizes are resized
    assert emb.shape == (2, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    # the neck is the BN of the embedding: in eval mode, an affine map of it with zero shift
    neck = model.neck
    x = out["embedding"].detach()
    expected = (x - neck.running_mean) / torch.sqrt(neck.running_var + neck.eps) * neck.weight
    assert torch.allclose(model.neck(x), expected, atol=1e-5)


def test_joint_loss_backpropagates_into_every_trained_part():
    model = IdentityEmbedder(TINY).train()
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    attrs = torch.randint(0, 2, (8, 3)).float()
    total, logs = JointMetricLoss(1.0, 1.0, 0.5, margin=0.2)(model(images), labels, attrs)
    total.backward()
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
    assert model.attribute_head.weight.grad.abs().sum() > 0
    assert model.trunk.conv1.weight.grad.abs().sum() > 0
    assert model.neck.bias.grad is None  # the neck's shift stays zero
    assert logs["total"] == pytest.approx(total.item())


def test_round_trip_and_inference_copy(tmp_path):
    model = IdentityEmbedder(TINY).eval()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    model.save_pretrained(tmp_path / "full")
    loaded = from_pretrained(tmp_path / "full")
    assert isinstance(loaded, IdentityEmbedder) and loaded.config == TINY
    assert torch.allclose(loaded.embed(images), model.embed(images), atol=1e-6)
    slim = model.without_classifier()
    assert slim.classifier is None and slim.config.num_classes == 0
    assert torch.allclose(slim.embed(images), model.embed(images), atol=1e-6)
    slim.save_pretrained(tmp_path / "slim")
    assert torch.allclose(IdentityEmbedder.from_pretrained(tmp_path / "slim").embed(images), slim.embed(images))


def test_irse_backbone_and_bad_configs():
    cfg = dataclasses.replace(TINY, backbone="irse", irse_mode="ir", num_attributes=0, attribute_names=())
    model = IdentityEmbedder(cfg)
    out = model(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert "attributes" not in out and out["cosine"].shape == (4, 5)
    assert EmbeddingConfig.irse50().backbone_config().blocks == (3, 4, 14, 3)
    with pytest.raises(ConfigError):
        EmbeddingConfig(backbone="resnet")
    with pytest.raises(ConfigError):
        EmbeddingConfig(input_size=40)
    with pytest.raises(InputShapeError):
        IdentityEmbedder(TINY)(torch.rand(2, 1, 32, 32))
