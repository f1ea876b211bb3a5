"""Identity training on the harness: a few steps, export, exact resume, config parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmask.data.identity import InMemoryImages, reid_split, verification_pairs
from unmask.errors import ConfigError
from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder
from unmask.train.harness import TrainConfig, Trainer, load_run_config
from unmask.train.identity import (
    TASK_CONFIG,
    IdentityDataConfig,
    IdentityLossConfig,
    IdentityTaskConfig,
    Task,
)


def _blobs(n_ids: int, per_id: int, seed: int, first_label: int = 0) -> InMemoryImages:
    """Tiny identities: each a fixed colour pattern, each image with its own noise."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n_ids, 3, 4, 4, generator=gen) * 2 - 1
    images = base.repeat_interleave(per_id, 0)
    images = torch.nn.functional.interpolate(images, size=32, mode="nearest")
    images = (images + 0.3 * torch.randn(images.shape, generator=gen)).clamp(-1, 1)
    labels = np.repeat(np.arange(first_label, first_label + n_ids), per_id)
    cameras = np.tile(np.arange(per_id) % 3, n_ids)
    attributes = (base.mean((1, 2, 3)) > 0).float().repeat_interleave(per_id)[:, None]
    return InMemoryImages(images, labels, cameras, attributes, ("Bright",))


def _data():
    train = _blobs(6, 4, seed=0)
    test = _blobs(8, 4, seed=1, first_label=1)
    return train, reid_split(test), verification_pairs(test, np.arange(1, 9), 4, seed=0, n_folds=2, pairs_per_fold=4)


MODEL = EmbeddingConfig(input_size=32, layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), embedding_dim=16)


def _task(data):
    loss = IdentityLossConfig(softmax=1.0, triplet=1.0, attributes=0.5, margin=0.2)
    config = IdentityTaskConfig(model=MODEL, loss=loss, data=IdentityDataConfig(p=3, k=2))
    return Task(config, data=data)


def _train(tmp_path, max_steps, resume=None, data=None):
    cfg = TrainConfig(output_dir=str(tmp_path), max_steps=max_steps, seed=0, log_every=1, checkpoint_every=1,
                      validate_every=0, log_with="none", progress_bar=False, cpu=True)
    trainer = Trainer(cfg, _task(data or _data()))
    return trainer, trainer.fit(resume=resume)


def test_train_validate_export_and_resume_to_the_same_weights(tmp_path):
    data = _data()
    _, straight = _train(tmp_path / "a", 2, data=data)
    assert straight["step"] == 2
    assert {"arcface", "triplet", "attributes", "total", "lr"} <= set(straight["logs"])
    assert {"rank-1", "mAP", "accuracy", "auc"} <= set(straight["metrics"])
    assert 0.0 <= straight["metrics"]["mAP"] <= 1.0
    assert list((tmp_path / "a" / "samples").glob("retrieval-*.png"))
    model = IdentityEmbedder.from_pretrained(straight["export_dir"])
    assert model.config.num_classes == 0 and model.config.num_attributes == 1
    assert model.embed(torch.zeros(2, 3, 32, 32)).shape == (2, 16)
    # interrupted after one step, resumed: bit-identical weights
    _train(tmp_path / "b", 1, data=data)
    _, resumed = _train(tmp_path / "b", 2, resume="latest", data=data)
    a = model.state_dict()
    b = IdentityEmbedder.from_pretrained(resumed["export_dir"]).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_default_config_parses_and_bad_keys_are_named():
    train, task, _ = load_run_config("configs/identity_teaching.yaml", TASK_CONFIG)
    assert task.model.input_size == 64 and task.data.world.size == 64 and train.max_steps > 0
    with pytest.raises(ConfigError, match="loss.marg"):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG, ["loss.marg=0.1"])
    with pytest.raises(ConfigError):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG, ["data.source=market1501"])
