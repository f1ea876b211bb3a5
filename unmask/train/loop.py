"""The training loop on Hugging Face Accelerate: :class:`Trainer` runs the hooks of a :class:`TrainTask`.

A task owns one kind of training; the trainer owns steps, logging, validation, checkpoints
(:mod:`unmask.train.checkpoint`), export and the Hub push. Accelerate does devices, mixed precision,
accumulation and multi-GPU runs (``accelerate launch -m unmask.train …``). Exact resumption: data and
the global RNGs are seeded from ``(seed, step, process)`` (:mod:`unmask.train.seeding`) and learning
rates are a function of the step (:func:`unmask.optim.lr_factor`), so a resumed run reaches the
weights of an uninterrupted one bit for bit (same device and software).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unmask.config import to_plain
from unmask.errors import ConfigError, HubError
from unmask.optim import SCHEDULES, lr_factor, set_lr
from unmask.precision import PrecisionChoice, resolve_precision
from unmask.train import checkpoint as ckpt
from unmask.train.run_config import TrainConfig
from unmask.train.samples import save_png, tile_images
from unmask.train.seeding import batch_seed, seed_everything, seeded_generator

EXPORT_DIR = "model"
SAMPLES_DIR = "samples"


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate fields every ``optim:`` section shares (each task's optim config extends this one and
    sets its own defaults): :func:`unmask.optim.lr_factor` over ``train.max_steps``.

    Attributes:
        lr: peak learning rate.
        warmup_steps: linear warm-up length (0: none).
        schedule: ``constant`` (after the warm-up) or ``cosine`` decay to ``min_lr_ratio * lr`` at ``train.max_steps``.
        min_lr_ratio: floor of the cosine schedule.
    """

    lr: float = 1e-3
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        if not self.lr > 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}.")


class TrainTask:
    """One kind of training: subclasses implement the hooks (``accelerator`` and ``train_config`` are set first).

    ``config.optim`` of a task that follows a learning-rate schedule is a :class:`ScheduleConfig`;
    :meth:`learning_rate`, :meth:`set_learning_rate` and :meth:`optimizer_step` are the step every task shares.
    """

    accelerator: Any
    train_config: TrainConfig
    config: Any

    def setup(self, accelerator: Any) -> None:
        """Build models, optimisers (through ``accelerator.prepare``) and data. Set learning rates each step with
        :func:`unmask.optim.set_lr`: a prepared scheduler steps ``num_processes`` times per step. An EMA copy
        belongs in :meth:`state_dict`, not in ``prepare``."""
        raise NotImplementedError

    def training_step(self, step: int) -> dict[str, float]:
        """One optimisation step (backward and optimiser steps included); returns scalars to log."""
        raise NotImplementedError

    def validation_step(self, step: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """Metrics and image grids ``name -> (B, 3, H, W) in [-1, 1]`` under ``no_grad``; leaves models as found."""
        return {}, {}

    def state_dict(self) -> dict[str, Any]:
        """What besides prepared models / optimisers must be checkpointed (plain data and tensors only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def export(self, output_dir: str | os.PathLike) -> None:
        """Write the final model(s) with ``save_pretrained`` into ``output_dir``."""
        raise NotImplementedError

    @property
    def micro_batch_size(self) -> int | None:
        """Training images of one micro-batch on one process (for the run record); ``None``: not counted."""
        return None

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def rng(self, step: int, stream: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
        """A generator seeded from ``(seed, step, process, stream)``: the randomness of step ``step``."""
        return seeded_generator(batch_seed(self.train_config.seed, step, self.accelerator.process_index, stream),
                                device)

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimisation step ``step`` under ``config.optim`` (a :class:`ScheduleConfig`): a
        function of the step alone, the same on any number of processes and after a resume."""
        opt = self.config.optim
        return opt.lr * lr_factor(step, self.train_config.max_steps, warmup=opt.warmup_steps, schedule=opt.schedule,
                                  min_ratio=opt.min_lr_ratio)

    def set_learning_rate(self, step: int, *optimizers: torch.optim.Optimizer) -> float:
        """Set :meth:`learning_rate` on every parameter group of ``optimizers``; returns it (to log)."""
        lr = self.learning_rate(step)
        for optimizer in optimizers:
            set_lr(optimizer.param_groups, lr)
        return lr

    def optimizer_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, *,
                       clip: Iterable[torch.nn.Parameter] | None = None, max_norm: float = 0.0) -> None:
        """Backward ``loss`` (Accelerate scales it for accumulation and mixed precision), clip the gradient norm of
        ``clip`` to ``max_norm`` (0: no clipping) when the gradients are synchronised, step, zero the gradients.
        Call it inside :meth:`micro_steps`: Accelerate steps only on the last micro-batch."""
        self.accelerator.backward(loss)
        if clip is not None and max_norm > 0 and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_(clip, max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def micro_steps(self, step: int, *models: torch.nn.Module) -> Iterator[int]:
        """Yield micro-batches ``step * A + i`` (``i < A``) inside ``accelerator.accumulate``: call backward and the
        optimiser's step / zero_grad inside; Accelerate scales the loss and steps only on the last one."""
        accumulation = self.train_config.gradient_accumulation_steps
        for i in range(accumulation):
            with self.accelerator.accumulate(*models):
                yield step * accumulation + i


class Plateau:
    """Watches one validation metric and says when its curve is flat (``TrainConfig.stop_metric``).

    Args:
        metric: the key to watch in the validation's metrics, or ``None`` (never flat; the curve is
            still not recorded).
        patience: validations in a row without a gain above ``min_delta`` that make the curve flat.
        min_delta: the smallest rise of the best value that counts as a gain (higher is better).
    """

    def __init__(self, metric: str | None, patience: int, min_delta: float) -> None:
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.best, self.best_step, self.since_best = float("-inf"), -1, 0
        self.curve: list[tuple[int, float]] = []
        self.flat = False

    def update(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Record ``metrics`` of ``step``; return whether the curve is now flat."""
        if self.metric is None:
            return False
        if self.metric not in metrics:
            raise ConfigError(f"train.stop_metric={self.metric!r} is not among the validation's metrics "
                              f"{sorted(metrics)}; pick one of them.")
        value = float(metrics[self.metric])
        self.curve.append((step, value))
        if value > self.best + self.min_delta:
            self.best, self.best_step, self.since_best = value, step, 0
        else:
            self.since_best += 1
        self.flat = self.since_best >= self.patience
        return self.flat


class Trainer:
    """Runs a :class:`TrainTask`; ``full_config`` (every section of the run config) is saved with each checkpoint."""

    def __init__(self, config: TrainConfig, task: TrainTask, *, full_config: dict | None = None) -> None:
        self.config, self.task = config, task
        self.full_config = to_plain(full_config if full_config is not None else {"train": config})
        self.output_dir = Path(config.output_dir)
        self.accelerator: Any = None
        self.precision: PrecisionChoice | None = None
        self.step = 0
        self._run_start: tuple[int, float] = (0, 0.0)  # (first step, perf_counter) of this invocation

    def fit(self, resume: str | os.PathLike | None = None) -> dict[str, Any]:
        """Train up to ``max_steps`` (continuing from ``resume``: ``latest``, a checkpoint or a run folder).

        Returns ``step``, ``checkpoint``, ``export_dir`` and the last ``logs`` / ``metrics``.
        """
        from tqdm.auto import tqdm

        from unmask.hub import hub_offline

        cfg = self.config
        if cfg.push_to_hub and hub_offline():
            raise HubError(f"--push-to-hub {cfg.push_to_hub}: HF_HUB_OFFLINE is set, so the model could not be "
                           "pushed at the end. Unset HF_HUB_OFFLINE and log in (`huggingface-cli login`), or "
                           "train without --push-to-hub and upload the model folder later.")
        acc = self._start()
        ckpt.check_supported(acc)  # before any step: a run this checkpoint format cannot hold fails now
        checkpoint = None
        if resume is not None:
            checkpoint = ckpt.resolve_checkpoint(resume, self.output_dir)
            self.step, task_state = ckpt.load_checkpoint(acc, checkpoint)
            self.task.load_state_dict(task_state)
        if cfg.log_with != "none":
            acc.init_trackers("logs")
        logs: dict[str, float] = {}
        metrics: dict[str, float] = {}
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress_bar and acc.is_main_process),
                   desc=type(self.task).__name__, dynamic_ncols=True)
        start_step, start_time = self._run_start = self.step, time.perf_counter()
        plateau = Plateau(cfg.stop_metric, cfg.stop_patience, cfg.stop_min_delta)
        while self.step < cfg.max_steps and not plateau.flat:
            seed_everything(batch_seed(cfg.seed, self.step, acc.process_index, stream=1 << 20))
            logs = {k: float(v) for k, v in self.task.training_step(self.step).items()}
            self.step += 1
            bar.update(1)
            last = self.step == cfg.max_steps
            if _due(self.step, cfg.log_every) or last:
                logs["steps_per_s"] = (self.step - start_step) / max(time.perf_counter() - start_time, 1e-9)
                acc.log({f"train/{k}": v for k, v in logs.items()}, step=self.step)
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(logs.items())[:4]})
            if _due(self.step, cfg.validate_every) or last:
                metrics = self.validate()
                last = plateau.update(self.step, metrics) or last
            if _due(self.step, cfg.checkpoint_every) or last:
                checkpoint = self.save_checkpoint()
        bar.close()
        if plateau.flat and acc.is_main_process:
            print(f"validation {cfg.stop_metric} flat for {cfg.stop_patience} validations (best "
                  f"{plateau.best:.4g} at step {plateau.best_step}): stopped at step {self.step}", flush=True)
        return {"step": self.step, "checkpoint": checkpoint, "export_dir": self._finish(), "logs": logs,
                "metrics": metrics, "curve": plateau.curve, "stopped_early": plateau.flat}

    def _finish(self) -> Path | None:
        """Export (and push) on the main process; end the trackers. Returns the export folder."""
        from unmask.hub import push_folder

        acc, cfg, export_dir = self.accelerator, self.config, None
        acc.wait_for_everyone()
        if cfg.export and acc.is_main_process:
            export_dir = self.output_dir / EXPORT_DIR
            self.task.export(export_dir)
            append_run_record(export_dir, self.run_record())
            if cfg.push_to_hub:
                push_folder(export_dir, cfg.push_to_hub, private=cfg.hub_private)
        acc.wait_for_everyone()
        acc.end_training()
        return export_dir

    def _start(self) -> Any:
        """Set the backends, build the ``Accelerator`` and the task (seeded model initialisation)."""
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        cfg = self.config
        on_gpu = torch.cuda.is_available() and not cfg.cpu
        if on_gpu:
            if cfg.allow_tf32:
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        self.precision = resolve_mixed_precision(cfg.mixed_precision, "cuda" if on_gpu else "cpu")
        _release_other_precision(self.precision.mixed_precision)
        self.accelerator = acc = Accelerator(
            mixed_precision=self.precision.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            log_with=None if cfg.log_with == "none" else cfg.log_with, project_dir=str(self.output_dir),
            cpu=cfg.cpu, kwargs_handlers=[DistributedDataParallelKwargs(
                find_unused_parameters=cfg.find_unused_parameters)])
        set_seed(cfg.seed)
        if acc.is_main_process:
            print(f"precision: {self.precision.precision} (train.mixed_precision={cfg.mixed_precision}: "
                  f"{self.precision.reason}); {hardware_description(acc.device)}", flush=True)
        self.task.accelerator, self.task.train_config = acc, cfg
        self.task.setup(acc)
        return acc

    def validate(self) -> dict[str, float]:
        """Run the task's validation; log its metrics and image grids (TensorBoard + PNG under ``samples/``)."""
        acc = self.accelerator
        with torch.no_grad():
            metrics, images = self.task.validation_step(self.step)
        metrics = {k: float(v) for k, v in metrics.items()}
        if metrics:
            acc.log({f"val/{k}": v for k, v in metrics.items()}, step=self.step)
        if acc.is_main_process and images:
            writer = acc.get_tracker("tensorboard", unwrap=True) if self.config.log_with == "tensorboard" else None
            for name, batch in images.items():
                grid = tile_images(batch, nrow=1 if batch.shape[-1] > 2 * batch.shape[-2] else None)
                if writer is not None:
                    writer.add_image(f"val/{name}", grid, self.step)
                save_png(grid, self.output_dir / SAMPLES_DIR / f"{name.replace('|', '-')}-{self.step:08d}.png")
        return metrics

    def save_checkpoint(self) -> Path:
        """Write the full state atomically to ``checkpoints/step-XXXXXXXX`` (see :mod:`unmask.train.checkpoint`)."""
        info = {"seed": self.config.seed, "max_steps": self.config.max_steps, "task": type(self.task).__name__,
                **self.run_record()}
        return ckpt.save_checkpoint(self.accelerator, self.output_dir, self.step, task_state=self.task.state_dict,
                                    config=self.full_config, info=info, keep=self.config.keep_checkpoints)


    def run_record(self) -> dict[str, Any]:
        """What this invocation did, for checkpoints and the model card: precision, hardware, steps, images, time."""
        first, started = self._run_start
        micro = self.task.micro_batch_size
        acc = self.accelerator
        images = None if micro is None else (self.step - first) * micro * acc.num_processes * \
            self.config.gradient_accumulation_steps
        return {"precision": self.precision.precision if self.precision else None,
                "precision_reason": self.precision.reason if self.precision else None,
                "hardware": hardware_description(acc.device),
                "steps_this_run": [first, self.step],
                "images_this_run": images,
                "wall_seconds_this_run": round(time.perf_counter() - started, 1) if started else 0.0}


def resolve_mixed_precision(mixed_precision: str, device: str) -> PrecisionChoice:
    """``train.mixed_precision`` as a :class:`PrecisionChoice` (``fp16`` passes through as itself)."""
    if mixed_precision == "fp16":
        return PrecisionChoice("fp16", "fp16", "asked for (CUDA autocast with loss scaling)")
    return resolve_precision({"no": "fp32"}.get(mixed_precision, mixed_precision), device)


def _release_other_precision(mixed_precision: str) -> None:
    """Let one process run trainers of different precisions one after another (a notebook, a test session).

    Accelerate keeps one process-wide ``AcceleratorState`` and refuses a second ``Accelerator`` with another
    ``mixed_precision``; its process group (``PartialState``) is kept, only the precision state is dropped.
    """
    from accelerate.state import AcceleratorState

    current = AcceleratorState._shared_state.get("_mixed_precision")
    if current is not None and current != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def hardware_description(device: torch.device) -> str:
    """One line: the GPU's name, or the CPU's model name and the torch threads in use."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    model = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown CPU")
    return f"CPU {model}, {torch.get_num_threads()} threads"


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def append_run_record(export_dir: Path, record: Mapping[str, Any]) -> None:
    """Add a "Training run" section (precision, hardware, steps, images, wall time) to the exported model card."""
    card = export_dir / "README.md"
    if not card.is_file():
        return
    first, last = record["steps_this_run"]
    images = record["images_this_run"]
    lines = ["", "## Training run", "",
             f"- precision: {record['precision']} ({record['precision_reason']})",
             f"- hardware: {record['hardware']}",
             f"- steps: {first} → {last}" + (f" (resumed at step {first})" if first else ""),
             f"- images seen in this run: {images:,}" if images is not None else "- images seen: not counted",
             f"- wall time of this run: {record['wall_seconds_this_run'] / 60:.1f} min", ""]
    with card.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0
