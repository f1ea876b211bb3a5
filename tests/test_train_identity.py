"""Identity training on the harness: a few steps, export, exact resume, config parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmask.data.identity import InMemoryImages, reid_split, verification_pairs
from unmask.errors import ConfigError
from unmask.losses.metric import joint_loss_section
from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder
from unmask.train.identity import TASK_CONFIG, IdentityDataConfig, IdentityOptimConfig, IdentityTaskConfig, Task
from unmask.train.loop import Trainer
from unmask.train.run_config import TrainConfig, load_run_config


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
    losses = joint_loss_section(arcface=1.0, triplet=1.0, attributes=0.5, margin=0.2)
    config = IdentityTaskConfig(model=MODEL, losses=losses, data=IdentityDataConfig(p=3, k=2))
    return Task(config, data=data)


def _train(tmp_path, max_steps, resume=None, data=None):
    cfg = TrainConfig(output_dir=str(tmp_path), max_steps=max_steps, seed=0, log_every=1, checkpoint_every=1,
                      validate_every=0, log_with="none", progress_bar=False, cpu=True)
    trainer = Trainer(cfg, _task(data or _data()))
    return trainer, trainer.fit(resume=resume)


@pytest.mark.slow
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
    # the values of the former loss: section (softmax 1, triplet 1, attributes 0.5, s 30, m 0, triplet 0.3)
    assert task.losses == joint_loss_section(arcface=1.0, triplet=1.0, attributes=0.5)
    with pytest.raises(ConfigError, match="losses: .*'arcface'.*marg"):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG, ["losses.options.arcface.marg=0.1"])
    with pytest.raises(ConfigError, match="identity training computes only.*'l2'"):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG, ["losses.weights.l2=1.0"])
    with pytest.raises(ConfigError, match="arcface or triplet a positive weight"):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG,
                        ["losses.weights.arcface=0", "losses.weights.triplet=0"])
    with pytest.raises(ConfigError, match="unknown section 'loss'.*Did you mean 'losses'"):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG, ["loss.softmax=1.0"])
    with pytest.raises(ConfigError, match="market1501 needs data.root"):
        load_run_config("configs/identity_teaching.yaml", TASK_CONFIG, ["data.source=market1501"])


def test_learning_rate_follows_the_schedule_on_any_number_of_processes(tmp_path, monkeypatch):
    """On N processes a scheduler through accelerator.prepare steps N times per step; the task's rate must not."""
    from accelerate.state import PartialState

    from unmask.optim import lr_factor

    optim = IdentityOptimConfig(lr=0.01, warmup_steps=1, schedule="cosine", min_lr_ratio=0.05)
    max_steps, processes = 4, 2

    def factor(step):
        return lr_factor(step, max_steps, warmup=1, schedule="cosine", min_ratio=0.05)

    class Recording(Task):
        def setup(self, accelerator):
            super().setup(accelerator)
            monkeypatch.setitem(PartialState._shared_state, "num_processes", processes)  # simulate 2 GPUs
            # The former way, as a control that the simulation bites: a LambdaLR through prepare.
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=optim.lr)
            self.control_opt, self.control = accelerator.prepare(
                opt, torch.optim.lr_scheduler.LambdaLR(opt, factor))
            self.seen, self.control_seen = [], []

        def training_step(self, step):
            self.control_seen.append(self.control_opt.param_groups[0]["lr"])
            logs = super().training_step(step)
            self.seen.append(self.optimizer.param_groups[0]["lr"])
            assert logs["lr"] == self.seen[-1]
            self.control_opt.step()
            self.control.step()
            return logs

        def validation_step(self, step):  # the rates are the point here, not retrieval metrics
            return {}, {}

    config = IdentityTaskConfig(model=MODEL, losses=joint_loss_section(attributes=0.5),
                                data=IdentityDataConfig(p=3, k=2), optim=optim)
    task = Recording(config, data=_data())
    train = TrainConfig(output_dir=str(tmp_path), max_steps=max_steps, log_every=0, checkpoint_every=0,
                        validate_every=0, log_with="none", progress_bar=False, cpu=True, export=False)
    Trainer(train, task).fit()
    assert task.accelerator.num_processes == processes
    assert task.seen == pytest.approx([optim.lr * factor(s) for s in range(max_steps)])
    assert task.seen[-1] > optim.lr * 0.05  # the cosine has not ended early
    # the prepared scheduler ran `processes` times as fast: at step s it is at schedule(2 s)
    assert task.control_seen[1:3] == pytest.approx([optim.lr * factor(processes * s) for s in (1, 2)])
    assert task.control_seen[2] == pytest.approx(optim.lr * 0.05) != pytest.approx(task.seen[2])


def test_run_stops_once_validation_is_flat(tmp_path):
    """stop_metric: no gain can exceed min_delta = 1, so the run ends after 1 + patience validations."""
    cfg = TrainConfig(output_dir=str(tmp_path), max_steps=50, seed=0, log_every=0, checkpoint_every=0,
                      validate_every=2, log_with="none", progress_bar=False, cpu=True, export=False,
                      stop_metric="mAP", stop_patience=2, stop_min_delta=1.0)
    out = Trainer(cfg, _task(_data())).fit()
    assert out["stopped_early"] and out["step"] == 6 and [s for s, _ in out["curve"]] == [2, 4, 6]
    assert (tmp_path / "checkpoints").is_dir()  # the stopping step is checkpointed like a last step
    with pytest.raises(ConfigError, match="validate_every >= 1"):
        TrainConfig(output_dir=str(tmp_path), max_steps=5, validate_every=0, stop_metric="mAP")
