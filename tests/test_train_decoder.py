"""The supervised teaching decoder G(z) ≈ render(z): runs, exports with z_names, resumes exactly, learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from unmask.errors import ConfigError
from unmask.models.generators import LATENT_AVG_FILE, load_frozen_generator
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.synthetic.latent import FACTOR_NAMES, N_FACTORS
from unmask.train.decoder import DecoderTaskConfig, Task, psnr
from unmask.train.loop import Trainer
from unmask.train.run_config import load_run_config

ROOT = Path(__file__).resolve().parent.parent
IDENTITY = ROOT / "weights" / "teaching" / "identity"
GENERATOR = {"size": 32, "style_dim": 128, "n_mlp": 1, "channel_max": 16, "channel_multiplier": 1}


def run_config(tmp_path, losses=None, **train):
    return {
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "seed": 3, "log_every": 1,
                  "checkpoint_every": 0, "validate_every": 0, "progress_bar": False, "log_with": "none",
                  "export": False, **train},
        "generator": dict(GENERATOR),
        "model": {"identity": str(IDENTITY), "latent_avg_samples": 64},
        "losses": losses or {"l1": 1.0, "gradient": 1.0, "identity": 0.1},
        "data": {"world": {"size": 32}, "pool_size": 12, "render_batch": 8, "val_samples": 6, "grid_size": 3},
        "optim": {"batch_size": 4},
    }


def build(config, overrides=()):
    train, task_config, full = load_run_config(config, DecoderTaskConfig, overrides)
    task = Task(task_config)
    return Trainer(train, task, full_config=full), task


@pytest.mark.slow
def test_three_steps_export_strict_reload_with_z_names(tmp_path):
    trainer, task = build(run_config(tmp_path, validate_every=3, export=True))
    result = trainer.fit()
    assert result["step"] == 3
    assert set(result["logs"]) >= {"l1", "gradient", "identity", "total", "lr"}
    assert 0.0 < result["metrics"]["psnr"] < 60.0 and result["metrics"]["l1"] > 0
    assert (tmp_path / "run" / "samples" / "decoder-render-00000003.png").is_file()
    folder = result["export_dir"]
    config = json.loads((folder / "config.json").read_text())
    assert tuple(config["z_names"]) == FACTOR_NAMES
    reloaded = Generator.from_pretrained(folder)  # strict
    assert reloaded.config.z_names == FACTOR_NAMES
    for key, value in task.generator_module.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value.cpu()), key
    generator, latent_avg = load_frozen_generator(folder)
    assert (folder / LATENT_AVG_FILE).is_file() and latent_avg.shape == (GENERATOR["style_dim"],)
    assert torch.allclose(latent_avg, generator.mean_latent(64, seed=0).reshape(-1), atol=1e-6)
    card = (folder / "README.md").read_text()
    assert "decoder" in card
    # the run record: the precision actually used (auto resolved), hardware, steps, images, wall time
    assert f"- precision: {trainer.precision.precision} (" in card and "- hardware: " in card
    assert "- steps: 0 → 3" in card and f"images seen in this run: {3 * 4}" in card


@pytest.mark.slow
def test_pool_is_a_function_of_the_seed_and_disjoint_from_validation(tmp_path):
    cfg = run_config(tmp_path, losses={"l1": 1.0})
    cfg["model"]["identity"] = None
    tasks = []
    for overrides in ([], [], ["train.seed=4"]):
        trainer, task = build(cfg, overrides)
        trainer._start()
        tasks.append(task)
    a, b, other = tasks
    assert torch.equal(a.pool_z, b.pool_z) and torch.equal(a.pool_images, b.pool_images)
    assert not torch.equal(a.pool_z, other.pool_z)
    assert a.pool_z.shape == (12, GENERATOR["style_dim"]) and a.pool_images.shape == (12, 3, 32, 32)
    assert a.pool_images.min() >= -1 and a.pool_images.max() <= 1
    val_z, val_images = a.held_out()
    assert val_images.shape == (6, 3, 32, 32)
    # The held-out z are other draws: no held-out factor vector occurs in the pool.
    assert torch.cdist(val_z[:, :N_FACTORS], a.pool_z[:, :N_FACTORS]).min() > 1.0


@pytest.mark.slow
def test_loss_drops_on_a_fixed_batch(tmp_path):
    cfg = run_config(tmp_path, losses={"l1": 1.0, "gradient": 1.0})
    cfg["model"]["identity"] = None
    cfg["optim"]["lr"] = 0.01
    trainer, task = build(cfg)
    trainer._start()
    z, target = task.batch(0)
    torch.manual_seed(0)
    totals = []
    for _ in range(20):
        total, _ = task.losses({"recovered": task.g(z=z, randomize_noise=True), "target": target})
        total.backward()
        task.optimizer.step()
        task.optimizer.zero_grad(set_to_none=True)
        totals.append(total.item())
    assert totals[-1] < 0.7 * totals[0], totals


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_resume_matches_uninterrupted_run(tmp_path, precision):
    straight_trainer, straight = build(run_config(tmp_path / "a", mixed_precision=precision))
    straight_trainer.fit()
    first, _ = build(run_config(tmp_path / "b", checkpoint_every=1, mixed_precision=precision), ["train.max_steps=1"])
    first.fit()
    resumed_trainer, resumed = build(run_config(tmp_path / "b", checkpoint_every=1, mixed_precision=precision))
    resumed_trainer.fit(resume="latest")
    assert resumed_trainer.precision.precision == ("bf16" if precision == "bf16" else "fp32")
    info = json.loads(next((tmp_path / "b" / "run" / "checkpoints").glob("step-*3/trainer_state.json")).read_text())
    assert info["precision"] == resumed_trainer.precision.precision and info["steps_this_run"] == [1, 3]
    a, b = straight.generator_module.state_dict(), resumed.generator_module.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_init_from_loads_matching_weights_and_rejects_other_architectures(tmp_path):
    source = Generator(GeneratorConfig(**GENERATOR))
    source.save_pretrained(tmp_path / "start")
    cfg = run_config(tmp_path)
    cfg["model"]["init_from"] = str(tmp_path / "start")
    _, task_config, _ = load_run_config(cfg, DecoderTaskConfig)
    generator = Task(task_config).build_generator()
    assert generator.config.z_names == FACTOR_NAMES
    for key, value in source.state_dict().items():
        assert torch.equal(generator.state_dict()[key], value), key
    _, wrong, _ = load_run_config(cfg, DecoderTaskConfig, ["generator.channel_max=8"])
    with pytest.raises(ConfigError, match="differs from generator"):
        Task(wrong).build_generator()


def test_config_checks(tmp_path):
    cfg = run_config(tmp_path)
    with pytest.raises(ConfigError, match="cannot hold the world's"):
        load_run_config(cfg, DecoderTaskConfig, ["generator.style_dim=64"])
    with pytest.raises(ConfigError, match="must equal generator.size"):
        load_run_config(cfg, DecoderTaskConfig, ["data.world.size=64"])
    with pytest.raises(ConfigError, match="z_names"):
        load_run_config(cfg, DecoderTaskConfig, ["generator.z_names=[a, b]"])
    with pytest.raises(ConfigError, match="render_device"):
        load_run_config(cfg, DecoderTaskConfig, ["data.render_device=gpu"])
    cfg["model"]["identity"] = None
    trainer, _ = build(cfg)
    with pytest.raises(ConfigError, match="model.identity is not set"):
        trainer._start()


def test_psnr():
    target = torch.zeros(2, 3, 4, 4)
    pred = target.clone()
    pred[1] += 0.2  # 0.1 in [0, 1] -> MSE 0.01 -> 20 dB
    values = psnr(pred, target)
    assert values[0] > 90 and values[1] == pytest.approx(20.0, abs=1e-4)


def test_shipped_config_parses():
    train, config, _ = load_run_config(ROOT / "configs" / "generator_teaching_v2.yaml", DecoderTaskConfig)
    assert config.generator.size == config.data.world.size == 64 and config.optim.batch_size >= 8
    assert config.generator_config.z_names == FACTOR_NAMES and config.generator.style_dim >= N_FACTORS
    assert set(config.losses) == {"l1", "gradient", "identity"} and train.max_steps > 0



def test_init_from_another_lr_mlp_keeps_the_function_and_rescales_the_mapping(tmp_path):
    """A GAN-trained start (lr_mlp 0.01) taught as a decoder with lr_mlp 1: same images, mapping stored x0.01."""
    torch.manual_seed(0)
    source = Generator(GeneratorConfig(**{**GENERATOR, "lr_mlp": 0.01})).eval()
    source.save_pretrained(tmp_path / "start")
    cfg = run_config(tmp_path)
    cfg["generator"]["lr_mlp"] = 1.0
    cfg["model"]["init_from"] = str(tmp_path / "start")
    _, task_config, _ = load_run_config(cfg, DecoderTaskConfig)
    generator = Task(task_config).build_generator().eval()
    assert generator.config.lr_mlp == 1.0
    z = torch.randn(3, GENERATOR["style_dim"])
    with torch.no_grad():
        assert torch.allclose(generator.mapping(z), source.mapping(z), atol=1e-5)
        assert torch.allclose(generator(z=z), source(z=z), atol=1e-4)
    state, start = generator.state_dict(), source.state_dict()
    assert torch.allclose(state["style.1.weight"], start["style.1.weight"] * 0.01)
    assert torch.equal(state["conv1.conv.weight"], start["conv1.conv.weight"])
