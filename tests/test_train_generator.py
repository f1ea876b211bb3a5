"""Teaching-StyleGAN2 training: exact resumption, export with latent_avg, config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unmask.errors import ConfigError
from unmask.models.generators import LATENT_AVG_FILE, load_frozen_generator
from unmask.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator
from unmask.train.generator import GeneratorTaskConfig, Task, frechet_distance
from unmask.train.loop import Trainer
from unmask.train.run_config import load_run_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

def run_config(tmp_path, **train):
    return {
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "seed": 2, "log_every": 1,
                  "checkpoint_every": 0, "validate_every": 0, "progress_bar": False, "log_with": "none",
                  "export": False, **train},
        "generator": {"size": 32, "style_dim": 32, "n_mlp": 2, "channel_max": 16, "channel_multiplier": 1},
        "discriminator": {"size": 32, "channel_max": 16, "channel_multiplier": 1},
        "data": {"world": {"size": 32, "n_identities": 40}, "pool_size": 16},
        # R1 at steps 0 and 2; style mixing on; path length on at step 0 and 2.
        "optim": {"batch_size": 4, "d_reg_every": 2, "path_length_weight": 1.0, "g_reg_every": 2},
        "validation": {"grid_size": 4, "fd_samples": 8, "fd_batch": 8, "latent_avg_samples": 64},
    }


def build(config, overrides=()):
    train, task_config, full = load_run_config(config, GeneratorTaskConfig, overrides)
    task = Task(task_config)
    return Trainer(train, task, full_config=full), task


def states(task):
    return {"g": task.generator_module.state_dict(), "d": task.accelerator.unwrap_model(task.d).state_dict(),
            "g_ema": task.g_ema.state_dict()}


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(tmp_path):
    straight_trainer, straight = build(run_config(tmp_path / "a"))
    straight_trainer.fit()
    first, _ = build(run_config(tmp_path / "b", checkpoint_every=1), ["train.max_steps=1"])
    first.fit()
    resumed_trainer, resumed = build(run_config(tmp_path / "b", checkpoint_every=1))
    resumed_trainer.fit(resume="latest")
    a, b = states(straight), states(resumed)
    for part in a:
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert torch.equal(straight.pl_mean.cpu(), resumed.pl_mean.cpu())
    assert straight.images_seen == resumed.images_seen == 12


@pytest.mark.slow
def test_export_and_validation(tmp_path):
    trainer, task = build(run_config(tmp_path, max_steps=1, validate_every=1, export=True))
    result = trainer.fit()
    assert {"rfd", "mean_gap", "std_gap"} <= set(result["metrics"])
    assert all(np.isfinite(v) for v in result["metrics"].values())
    assert (tmp_path / "run" / "samples" / "samples-00000001.png").is_file()
    folder = result["export_dir"]
    assert (folder / LATENT_AVG_FILE).is_file() and (folder / "README.md").is_file()
    reloaded = Generator.from_pretrained(folder)
    for key, value in task.g_ema.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value.cpu()), key
    generator, latent_avg = load_frozen_generator(folder)
    assert latent_avg.shape == (32,)
    assert torch.allclose(latent_avg, task.g_ema.mean_latent(64, seed=0).reshape(-1), atol=1e-6)
    assert not any(p.requires_grad for p in generator.parameters())


def test_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="must match"):
        load_run_config(run_config(tmp_path), GeneratorTaskConfig, ["discriminator.size=64"])
    with pytest.raises(ConfigError, match="unknown key 'optim.r1'"):
        load_run_config(run_config(tmp_path), GeneratorTaskConfig, ["optim.r1=10"])


@pytest.mark.parametrize("stddev_feat", [1, 2, 4])
def test_discriminator_takes_every_stddev_feat_the_config_accepts(stddev_feat):
    d = Discriminator(DiscriminatorConfig(size=16, channel_max=8, stddev_feat=stddev_feat))
    images = torch.randn(4, 3, 16, 16)
    assert d.minibatch_stddev(d.convs(images)).shape[1] == 8 + stddev_feat
    assert d(images).shape == (4, 1)


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert abs(frechet_distance(a, a)) < 1e-8
    shifted = frechet_distance(a, a + 1.0)
    assert shifted == pytest.approx(6.0, rel=1e-6)
    assert frechet_distance(a, rng.normal(size=(400, 6)) * 2) > 1.0


def test_shipped_config_parses():
    train, config, _ = load_run_config(CONFIGS / "generator_teaching.yaml", GeneratorTaskConfig)
    assert config.generator.size == config.data.world.size == 64 and train.max_steps > 0
    assert config.optim.betas == (0.0, 0.99) and config.optim.path_length_weight == 0.0
