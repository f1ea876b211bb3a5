"""Unmasking-encoder training: loss goes down, exact resumption, export, CLI, metrics.

Data: a folder of aligned teaching-world faces (rendered with their exact landmarks, as
``python -m unmask.faces align`` would write them) with masks drawn on the fly by
``unmask.faces.masks.draw_mask``; a tiny random StyleGAN2 stands in for the trained generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from unmask.errors import ConfigError
from unmask.losses.combiner import loss_weights
from unmask.models.encoder import GradualStyleEncoder
from unmask.models.generators import load_frozen_generator, save_latent_avg
from unmask.models.identity import IResNet, IResNetConfig
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.synthetic import FaceWorld
from unmask.synthetic.config import WorldConfig
from unmask.train.__main__ import main
from unmask.train.encoder import EncoderModelConfig, EncoderTaskConfig, Task
from unmask.train.loop import Trainer
from unmask.train.run_config import load_run_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SIZE = 32
STYLE_DIM = 32
N_LATENT = 8  # 2 * log2(32) - 2


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoder_assets")
    faces = root / "faces"
    faces.mkdir()
    world = FaceWorld(WorldConfig(size=SIZE, n_identities=40, preset="easy"))
    out = world.render(torch.arange(10), torch.zeros(10, dtype=torch.long), torch.arange(10) % 6)
    images = ((out.images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    table = {}
    for i, (image, points) in enumerate(zip(images, out.landmarks.numpy())):
        Image.fromarray(image).save(faces / f"{i:03d}.png")
        table[f"{i:03d}.png"] = points.tolist()
    (faces / "landmarks.json").write_text(json.dumps(table))

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=STYLE_DIM, n_mlp=2, channel_max=16,
                                          channel_multiplier=1))
    generator.save_pretrained(root / "generator")
    save_latent_avg(root / "generator", generator.mean_latent(256, seed=0))
    identity = IResNet(IResNetConfig(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), input_size=SIZE,
                                     embedding_dim=16))
    identity.save_pretrained(root / "identity")
    return root


def run_config(assets, tmp_path, **train):
    return {
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 4, "seed": 1, "log_every": 1,
                  "checkpoint_every": 2, "validate_every": 0, "progress_bar": False, "log_with": "none",
                  **train},
        "losses": {"weights": {"l2_mask": 1.0, "l2_visible": 0.5, "identity": 0.1, "w_norm": 0.001}},
        "model": {"encoder": {"kind": "psp", "input_nc": 4, "input_size": SIZE, "n_styles": N_LATENT,
                              "style_dim": STYLE_DIM, "stage_channels": [8, 8, 16, 16],
                              "stage_blocks": [1, 1, 1, 1], "head_channels": 8},
                  "generator": str(assets / "generator"), "identity": str(assets / "identity")},
        "data": {"source": "folder", "folder": str(assets / "faces"), "val_length": 2, "num_workers": 1},
        "optim": {"batch_size": 2, "lr": 1e-3},
    }


def build(config, overrides=()):
    train, task_config, full = load_run_config(config, EncoderTaskConfig, overrides)
    task = Task(task_config)
    return Trainer(train, task, full_config=full), task


def fixed_batch_loss(task, data):
    task.encoder.eval()
    with torch.no_grad():
        w_plus, recovered = task.recover(data["masked"], data["mask"])
        total, _ = task.losses(task.loss_inputs(data, w_plus, recovered))
    return float(total)


@pytest.mark.slow
def test_training_lowers_loss_on_fixed_batch(assets, tmp_path):
    trainer, task = build(run_config(assets, tmp_path / "a", max_steps=0, checkpoint_every=0, export=False))
    trainer.fit()
    data = task.batch(0)
    before = fixed_batch_loss(task, data)

    trainer, task = build(run_config(assets, tmp_path / "b", max_steps=6, checkpoint_every=0, export=False))
    task.batch = lambda micro: data  # every step sees the same batch
    trainer.fit()
    assert fixed_batch_loss(task, data) < before


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(assets, tmp_path):
    straight_trainer, straight = build(run_config(assets, tmp_path / "a", export=False))
    straight_trainer.fit()

    first, _ = build(run_config(assets, tmp_path / "b", export=False), ["train.max_steps=2"])
    first.fit()
    resumed_trainer, resumed = build(run_config(assets, tmp_path / "b", export=False))
    result = resumed_trainer.fit(resume="latest")
    assert result["step"] == 4
    a, b = straight.encoder_module.state_dict(), resumed.encoder_module.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_export_validation_and_baseline_mode(assets, tmp_path):
    config = run_config(assets, tmp_path, max_steps=1, validate_every=1)
    trainer, task = build(config, ["model.target=input"])
    result = trainer.fit()
    for key in ("psnr_inside", "psnr_outside", "ssim_inside", "ssim_outside", "identity", "identity_masked",
                "loss_total"):
        assert np.isfinite(result["metrics"][key]), key
    assert (tmp_path / "run" / "samples" / "masked-recovered-target-00000001.png").is_file()
    encoder = GradualStyleEncoder.from_pretrained(result["export_dir"])
    for key, value in task.encoder_module.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    latent_avg = task.latent_avg.reshape(1, -1).expand(N_LATENT, -1)
    assert torch.allclose(encoder.latent_avg, latent_avg)
    info = json.loads((result["export_dir"] / "training.json").read_text())
    assert info["target"] == "input"
    saved = yaml.safe_load((result["checkpoint"] / "config.yaml").read_text())
    assert saved["model"]["target"] == "input" and saved["losses"]["weights"]["l2_mask"] == 1.0


def test_cli_rejects_unknown_key(assets, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(run_config(assets, tmp_path)))
    assert main(["encoder", "--config", str(path), "--set", "model.encoder.input_cn=4"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'model.encoder.input_cn'" in err and "input_nc" in err


def test_identity_loss_without_identity_net_is_clear(assets, tmp_path):
    trainer, _ = build(run_config(assets, tmp_path), ["model.identity=null"])
    with pytest.raises(ConfigError, match="model.identity is not set"):
        trainer.fit()


def test_default_generator_is_the_shipped_teaching_generator():
    config = EncoderModelConfig()
    assert (REPO / config.generator / "config.json").is_file(), config.generator
    generator, latent_avg = load_frozen_generator(REPO / config.generator, n_samples=64)
    assert generator.n_latent == config.encoder.n_styles and latent_avg.shape == (generator.style_dim,)


def test_world_source_with_pool_is_deterministic(assets, tmp_path):
    config = run_config(assets, tmp_path, max_steps=1, checkpoint_every=0, export=False)
    config["data"] = {"source": "world", "world": {"size": SIZE, "n_identities": 40, "preset": "easy"},
                      "length": 50, "val_length": 2, "pool_size": 6}
    trainer, task = build(config)
    trainer.fit()
    batch = task.batch(3)
    again = task.batch(3)
    assert batch["masked"].shape == (2, 3, SIZE, SIZE) and batch["mask"].shape == (2, 1, SIZE, SIZE)
    assert torch.equal(batch["masked"], again["masked"])  # a pure function of (seed, step)
    assert batch["mask"].sum() > 0  # masks were drawn
    outside = (batch["mask"] == 0).expand_as(batch["target"])
    assert torch.allclose(batch["masked"][outside], batch["target"][outside], atol=1 / 127)


@pytest.mark.parametrize("name", ["unmask_teaching", "unmask_ffhq"])
def test_shipped_configs_parse(name):
    train, task_config, _ = load_run_config(CONFIGS / f"{name}.yaml", EncoderTaskConfig)
    assert task_config.model.encoder.input_size == (64 if name == "unmask_teaching" else 256)
    assert train.max_steps > 0 and task_config.losses


@pytest.mark.slow
def test_cli_trains_and_resumes(assets, tmp_path, capsys):
    config = run_config(assets, tmp_path, checkpoint_every=1)
    config["losses"] = {"l2_mask": 1.0, "l2_visible": 1.0}  # the flat form of the section
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = str(tmp_path / "cli")
    assert main(["encoder", "--config", str(path), "--output-dir", out, "--max-steps", "1"]) == 0
    assert main(["encoder", "--config", str(path), "--output-dir", out, "--max-steps", "2", "--resume", "latest"]) == 0
    assert "done: step 2" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cli" / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    assert main(["encoder", "--config", str(path), "--output-dir", out, "--push-to-hub", "me/unmask"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


@pytest.fixture(scope="module")
def teaching_generator(tmp_path_factory):
    """A tiny random generator whose z is the teaching world's factors (so its pairs have exact landmarks)."""
    from unmask.synthetic.latent import FACTOR_NAMES

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=TEACHING_DIM, n_mlp=2, channel_max=16,
                                          channel_multiplier=1, z_names=FACTOR_NAMES))
    folder = tmp_path_factory.mktemp("teaching_generator") / "generator"
    generator.save_pretrained(folder)
    save_latent_avg(folder, generator.mean_latent(256, seed=0))
    return folder


TEACHING_DIM = 112


def head_config(assets, generator, tmp_path, **train):
    """Variant (a): 3-channel encoder with a mask head, on generator-sampled pairs with their true W+."""
    config = run_config(assets, tmp_path, **train)
    config["model"]["encoder"].update(input_nc=3, mask_head=True, mask_head_channels=8, style_dim=TEACHING_DIM)
    config["model"].update(generator=str(generator), identity=None)
    config["losses"] = {"weights": {"l2_mask": 1.0, "l2_visible": 0.5, "w_norm": 0.001, "w_plus_true": 1.0,
                                    "mask_bce": 1.0}}
    config["data"] = {"source": "generated", "generator": str(generator), "world": {"size": SIZE},
                      "length": 50, "val_length": 2}
    return config


@pytest.mark.slow
def test_mask_head_and_true_latent_train_export_and_reload(assets, teaching_generator, tmp_path):
    config = head_config(assets, teaching_generator, tmp_path, max_steps=4, checkpoint_every=0, validate_every=4)
    trainer, task = build(config)
    fetch, fixed, logs = task.batch, {}, []
    task.batch = lambda micro: fixed.setdefault("batch", fetch(0))  # every step sees the same batch
    step = task.training_step
    task.training_step = lambda i: logs.append(step(i)) or logs[-1]
    result = trainer.fit()
    assert set(fixed["batch"]) == {"masked", "target", "mask", "w_plus"}
    assert logs[-1]["mask_bce"] < logs[0]["mask_bce"]  # the head learns the mask of the fixed batch
    assert all(np.isfinite(entry["w_plus_true"]) for entry in logs)  # the true-latent term is in the table
    assert 0.0 <= result["metrics"]["mask_iou"] <= 1.0 and np.isfinite(result["metrics"]["loss_mask_bce"])
    encoder = GradualStyleEncoder.from_pretrained(result["export_dir"])  # strict: the head's keys included
    assert encoder.has_mask_head
    for key, value in task.encoder_module.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    assert encoder.predict_mask(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 1, SIZE, SIZE)
    assert json.loads((result["export_dir"] / "training.json").read_text())["mask_head"] is True


def test_mask_head_needs_its_loss_and_the_loss_its_head(assets, teaching_generator, tmp_path):
    config = head_config(assets, teaching_generator, tmp_path, max_steps=1)
    del config["losses"]["weights"]["mask_bce"]
    trainer, _ = build(config)
    with pytest.raises(ConfigError, match="mask_bce loss has no positive weight"):
        trainer.fit()
    config = head_config(assets, teaching_generator, tmp_path / "b", max_steps=1)
    config["model"]["encoder"]["mask_head"] = False
    trainer, _ = build(config)
    with pytest.raises(ConfigError, match="has no mask head"):
        trainer.fit()


def test_ffhq_recipe_takes_the_generated_source_option():
    overrides = ["data.source=generated", "data.generator=weights/ffhq/stylegan2-ffhq-config-f",
                 "data.truncation=0.8", "losses.weights.w_plus_true=1.0"]
    text = (CONFIGS / "unmask_ffhq.yaml").read_text()
    assert all(f"--set {item}" in text for item in overrides)  # the option the recipe documents
    _, task_config, _ = load_run_config(CONFIGS / "unmask_ffhq.yaml", EncoderTaskConfig, overrides)
    assert task_config.data.source == "generated" and task_config.data.truncation == 0.8
    assert task_config.data.generator == task_config.model.generator
    assert loss_weights(task_config.losses)["w_plus_true"] == 1.0


def test_generic_target_sees_only_unmasked_faces(assets, tmp_path):
    """The paper's generic baseline: trained on unmasked faces (input = target), never shown a mask."""
    trainer, task = build(run_config(assets, tmp_path, max_steps=0, checkpoint_every=0, export=False),
                          ["model.target=generic"])
    trainer.fit()
    data = task.batch(0)
    assert not torch.equal(data["masked"], data["target"])  # the source did draw masks
    image, mask = task.encoder_pair(data)
    assert torch.equal(image, data["target"]) and not mask.any()
    w_plus, recovered = task.recover(image, mask)
    inputs = task.loss_inputs(data, w_plus, recovered)
    assert torch.equal(inputs["target"], data["target"]) and not inputs["mask"].any()
    trainer, unmasking = build(run_config(assets, tmp_path / "u", max_steps=0, checkpoint_every=0, export=False))
    trainer.fit()
    image, mask = unmasking.encoder_pair(data)
    assert torch.equal(image, data["masked"]) and torch.equal(mask, data["mask"])


@pytest.mark.parametrize("name", ["unmask_teaching", "unmask_teaching_mask_channel", "generic_teaching"])
def test_teaching_v2_recipes_parse(name):
    """The three committed teaching v2 encoder recipes: variants (a), (b) and the generic baseline."""
    train, config, _ = load_run_config(CONFIGS / f"{name}.yaml", EncoderTaskConfig)
    enc = config.model.encoder
    assert (config.data.source, config.data.images) == ("generated", "world") and train.max_steps > 0
    assert config.model.generator == config.data.generator == "weights/teaching/generator"
    expected = {"unmask_teaching": (3, True, "unmasked"), "unmask_teaching_mask_channel": (4, False, "unmasked"),
                "generic_teaching": (3, False, "generic")}[name]
    assert (enc.input_nc, enc.mask_head, config.model.target) == expected
    assert loss_weights(config.losses)["w_plus_true"] > 0
