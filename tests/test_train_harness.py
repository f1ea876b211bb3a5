"""The training loop: exact resumption, atomic checkpoints, run-config parsing, logging."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from unmask.errors import ConfigError, HubError
from unmask.train.checkpoint import checkpoint_dirs, resolve_checkpoint
from unmask.train.loop import Trainer, TrainTask
from unmask.train.run_config import TrainConfig, load_run_config
from unmask.train.seeding import batch_seed


@dataclass(frozen=True)
class ToyModelConfig:
    hidden: int = 8
    dropout: float = 0.2


@dataclass(frozen=True)
class ToyConfig:
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    lr: float = 3e-2
    widths: tuple[int, ...] = (1, 2)


class ToyTask(TrainTask):
    """Regression with dropout (uses the global RNG), a scheduler, and an EMA kept in task state."""

    def __init__(self, config: ToyConfig = ToyConfig(), fail_saving_at: int | None = None):
        self.config = config
        self.fail_saving_at = fail_saving_at
        self.step_seen = -1

    def setup(self, accelerator):
        cfg = self.config.model
        model = nn.Sequential(nn.Linear(4, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1))
        opt = torch.optim.Adam(model.parameters(), lr=self.config.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.95)
        self.model, self.opt, self.sched = accelerator.prepare(model, opt, sched)
        self.ema = torch.zeros(1)

    def batch(self, step):
        g = self.rng(step)
        x = torch.randn(16, 4, generator=g)
        return x, x.sum(1, keepdim=True)

    def training_step(self, step):
        x, y = self.batch(step)
        for _ in self.micro_steps(step, self.model):
            loss = (self.model(x) - y).pow(2).mean()
            self.accelerator.backward(loss)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad()
        self.ema = 0.9 * self.ema + 0.1 * loss.detach()
        self.step_seen = step
        return {"loss": loss.item()}

    def validation_step(self, step):
        return {"ema": self.ema.item()}, {"samples": torch.zeros(2, 3, 8, 8)}

    def state_dict(self):
        if self.fail_saving_at is not None and self.step_seen + 1 == self.fail_saving_at:
            raise RuntimeError("simulated crash while writing the checkpoint")
        return {"ema": self.ema, "step_seen": self.step_seen}

    def load_state_dict(self, state):
        self.ema = state["ema"]
        self.step_seen = state["step_seen"]

    def export(self, output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), output_dir / "toy.pt")


def _config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "run"), max_steps=6, seed=3, log_every=1, checkpoint_every=2,
                validate_every=3, progress_bar=False, log_with="none", export=False)
    base.update(kw)
    return TrainConfig(**base)


def _weights(task):
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_batch_seed_is_pure_and_distinct():
    assert batch_seed(0, 5) == batch_seed(0, 5)
    assert len({batch_seed(0, s, p, k) for s in range(4) for p in range(2) for k in range(2)}) == 16


def test_training_lowers_loss(tmp_path):
    task = ToyTask()
    result = Trainer(_config(tmp_path, max_steps=40, checkpoint_every=0, validate_every=0), task).fit()
    x, y = task.batch(1000)
    task.model.eval()
    assert (task.model(x) - y).pow(2).mean().item() < y.pow(2).mean().item() * 0.5
    assert result["step"] == 40


def test_resume_is_exact(tmp_path):
    straight = ToyTask()
    Trainer(_config(tmp_path / "a"), straight).fit()

    first = ToyTask()
    Trainer(_config(tmp_path / "b", max_steps=3), first).fit()
    assert [p.name for p in checkpoint_dirs(tmp_path / "b" / "run")] == ["step-00000002", "step-00000003"]
    resumed = ToyTask()
    result = Trainer(_config(tmp_path / "b"), resumed).fit(resume="latest")
    assert result["step"] == 6
    for key, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    assert torch.equal(straight.ema, resumed.ema)
    assert resumed.sched.get_last_lr() == straight.sched.get_last_lr()


def test_gradient_accumulation_resumes_exactly(tmp_path):
    straight = ToyTask()
    Trainer(_config(tmp_path / "a", max_steps=4, gradient_accumulation_steps=2), straight).fit()
    Trainer(_config(tmp_path / "b", max_steps=2, gradient_accumulation_steps=2), ToyTask()).fit()
    resumed = ToyTask()
    Trainer(_config(tmp_path / "b", max_steps=4, gradient_accumulation_steps=2), resumed).fit(resume="latest")
    for key, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[key]), key


def test_crash_mid_checkpoint_keeps_previous(tmp_path):
    crashing = ToyTask(fail_saving_at=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(_config(tmp_path, keep_checkpoints=1), crashing).fit()
    run = tmp_path / "run"
    assert [p.name for p in checkpoint_dirs(run)] == ["step-00000002"]
    assert resolve_checkpoint("latest", run).name == "step-00000002"
    assert any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir())  # the half-written one

    resumed = ToyTask()
    Trainer(_config(tmp_path, keep_checkpoints=1), resumed).fit(resume="latest")
    straight = ToyTask()
    Trainer(_config(tmp_path / "other"), straight).fit()
    for key, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step-00000006"]  # stale temporary folder removed, only the newest kept


def test_logging_samples_and_export(tmp_path):
    config = _config(tmp_path, max_steps=3, log_with="tensorboard", export=True)
    result = Trainer(config, ToyTask()).fit()
    run = tmp_path / "run"
    assert (run / "samples" / "samples-00000003.png").is_file()
    assert any((run / "logs").rglob("events.out.tfevents*"))
    assert (result["export_dir"] / "toy.pt").is_file()
    assert "train:" in (result["checkpoint"] / "config.yaml").read_text()


def test_push_to_hub_offline_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        Trainer(_config(tmp_path, push_to_hub="someone/model"), ToyTask()).fit()


@pytest.mark.parametrize("value", ["1", "true", "ON"])
def test_hub_push_folder_offline_names_the_upload_command(tmp_path, monkeypatch, value):
    from unmask.hub import push_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    with pytest.raises(HubError, match="huggingface-cli upload someone/model"):
        push_folder(tmp_path, "someone/model")


def test_resume_without_checkpoint_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(_config(tmp_path), ToyTask()).fit(resume="latest")


def test_run_config_parsing(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  output_dir: out\n  max_steps: 10\nmodel:\n  hidden: 4\nlr: 1e-3\nwidths: [3, 4]\n")
    train, task, full = load_run_config(path, ToyConfig, ["model.dropout=0.5", "train.seed=7"])
    assert train.max_steps == 10 and train.seed == 7
    assert task.lr == pytest.approx(1e-3) and isinstance(task.lr, float)  # YAML reads 1e-3 as a string
    assert task.model == ToyModelConfig(hidden=4, dropout=0.5) and task.widths == (3, 4)
    assert full["model"]["dropout"] == 0.5 and full["train"]["output_dir"] == "out"

    with pytest.raises(ConfigError, match=r"unknown key 'model.hiden'.*accepts.*hidden.*Did you mean 'hidden'"):
        load_run_config(path, ToyConfig, ["model.hiden=3"])
    with pytest.raises(ConfigError, match="unknown section 'optim'"):
        load_run_config(path, ToyConfig, ["optim.lr=3"])
    with pytest.raises(ConfigError, match="train.max_steps must be an integer"):
        load_run_config(path, ToyConfig, ["train.max_steps=ten"])
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_run_config(path, ToyConfig, ["train.mixed_precision=fp8"])


@pytest.mark.parametrize("module", ["encoder", "decoder", "identity"])
def test_every_task_checks_its_schedule_the_same_way(module):
    import importlib

    from unmask.train.loop import ScheduleConfig

    task = importlib.import_module(f"unmask.train.{module}")
    optim_class = typing.get_type_hints(task.TASK_CONFIG)["optim"]
    assert issubclass(optim_class, ScheduleConfig)
    with pytest.raises(ConfigError, match="optim.schedule must be one of"):
        optim_class(schedule="linear")
    with pytest.raises(ConfigError, match="optim.lr must be > 0"):
        optim_class(lr=0.0)
