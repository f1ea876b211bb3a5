"""A thin, reusable trainer on Hugging Face Accelerate.

The harness owns the loop; a :class:`TrainTask` subclass owns one kind of training (the
unmasking encoder, the teaching StyleGAN2, the identity embedding). Accelerate does device
placement, mixed precision, gradient accumulation and multi-GPU / multi-node runs
(``accelerate launch -m unmask.train …``); nothing here distributes by hand.

Guarantees:

* **Atomic checkpoints.** Every ``checkpoint_every`` steps the state (models, optimisers,
  schedulers, grad scaler, RNG states of python / numpy / torch / cuda, the step, the task's
  own state, the full run config as YAML) is written to ``checkpoints/.tmp-step-XXXXXXXX``,
  fsynced, then renamed to ``checkpoints/step-XXXXXXXX`` in one ``os.replace``. Only renamed
  folders count as checkpoints, so a crash mid-write never leaves a half checkpoint as
  ``latest``; the last ``keep_checkpoints`` are kept.
* **Exact resumption.** Data are a pure function of ``(seed, step)`` (see :func:`batch_seed`)
  and the global RNGs are re-seeded from ``(seed, step, process)`` before every step, so a run
  interrupted at step ``k`` and resumed reaches bit-identical weights to an uninterrupted run
  (on the same device and software). No data-iterator replay is needed.

Task protocol used by ``python -m unmask.train KIND``: the module ``unmask.train.KIND`` defines
``TASK_CONFIG`` (a frozen dataclass whose fields are the YAML's top-level sections other than
``train:``) and ``Task`` (a :class:`TrainTask` subclass built as ``Task(task_config)``; the
constructor does no I/O, :meth:`TrainTask.setup` builds everything).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unmask.errors import ConfigError, HubError
from unmask.hub import hub_offline

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
TRAINER_STATE = "trainer_state.json"
TASK_STATE = "task_state.pt"
CONFIG_YAML = "config.yaml"
EXPORT_DIR = "model"
SAMPLES_DIR = "samples"
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the loop itself (the ``train:`` section of a run config).

    Attributes:
        output_dir: run folder: ``checkpoints/``, ``logs/`` (TensorBoard), ``samples/``, ``model/``.
        max_steps: optimisation steps to reach (a resumed run continues up to this number).
        seed: seeds model init, data (``batch_seed``) and per-step RNG state.
        mixed_precision: ``no``, ``fp16`` (CUDA) or ``bf16``.
        gradient_accumulation_steps: micro-batches per optimisation step (see ``TrainTask.micro_steps``).
        log_every / checkpoint_every / validate_every: in optimisation steps; 0 disables.
            The last step is always validated and checkpointed.
        keep_checkpoints: how many of the newest checkpoints to keep.
        push_to_hub: Hub repo id (``owner/name``) to push the exported model to at the end.
        hub_private: create the Hub repo private.
        log_with: ``tensorboard`` or ``none``.
        progress_bar: show a tqdm bar on the main process.
        allow_tf32: use TF32 matmuls on Ampere+ GPUs (faster; not bit-reproducible across GPUs).
        cudnn_benchmark: let cuDNN pick the fastest convolution algorithms for the (fixed) shapes;
            about halves a 64 px StyleGAN2 step on an H100. Results stay exact on the CPU.
        cpu: force the CPU even when a GPU is present.
        export: write the final model(s) with ``TrainTask.export`` at the end.
        find_unused_parameters: multi-GPU only: let DDP tolerate parameters without gradient in a
            step (e4e's progressive stages need it).
    """

    output_dir: str
    max_steps: int
    seed: int = 0
    mixed_precision: str = "no"
    gradient_accumulation_steps: int = 1
    log_every: int = 50
    checkpoint_every: int = 1000
    validate_every: int = 1000
    keep_checkpoints: int = 2
    push_to_hub: str | None = None
    hub_private: bool = False
    log_with: str = "tensorboard"
    progress_bar: bool = True
    allow_tf32: bool = True
    cudnn_benchmark: bool = True
    cpu: bool = False
    export: bool = True
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ConfigError(f"train.max_steps must be >= 0, got {self.max_steps}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"train.mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}.")
        if self.gradient_accumulation_steps < 1:
            raise ConfigError("train.gradient_accumulation_steps must be >= 1.")
        if self.keep_checkpoints < 1:
            raise ConfigError("train.keep_checkpoints must be >= 1 (the newest checkpoint is always kept).")
        for name in ("log_every", "checkpoint_every", "validate_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0 (0 disables it).")
        if self.log_with not in ("tensorboard", "none"):
            raise ConfigError(f"train.log_with must be 'tensorboard' or 'none', got {self.log_with!r}.")
        if self.push_to_hub is not None and self.push_to_hub.count("/") != 1:
            raise ConfigError(f"train.push_to_hub must be a Hub repo id 'owner/name', got {self.push_to_hub!r}.")


# ------------------------------------------------------------------------------- determinism
def batch_seed(seed: int, step: int, process_index: int = 0, stream: int = 0) -> int:
    """A 63-bit seed that is a pure function of ``(seed, step, process_index, stream)``.

    Use one ``stream`` per independent random thing in a step (data, noise, masks…), so adding
    one never shifts another.
    """
    seq = np.random.SeedSequence([seed, step, process_index, stream])
    return int(seq.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], dtype=np.uint64))


def seeded_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))  # noqa: NPY002 - third-party code may draw from the legacy global RNG
    torch.manual_seed(seed)  # also seeds every CUDA device


# ------------------------------------------------------------------------------- task
class TrainTask:
    """One kind of training. Subclasses implement the hooks; :class:`Trainer` runs the loop.

    Attributes set by the trainer before :meth:`setup`: ``accelerator`` and ``train_config``.
    """

    accelerator: Any
    train_config: TrainConfig

    def bind(self, accelerator: Any, train_config: TrainConfig) -> None:
        self.accelerator = accelerator
        self.train_config = train_config

    # --------------------------------------------------------------- hooks
    def setup(self, accelerator: Any) -> None:
        """Build models, optimisers, schedulers and data; pass them through ``accelerator.prepare``.

        Models that must be checkpointed but are not trained by an optimiser (an EMA copy)
        belong in :meth:`state_dict`, not in ``prepare``.
        """
        raise NotImplementedError

    def training_step(self, step: int) -> dict[str, float]:
        """One optimisation step (backward and optimiser steps included); returns scalars to log."""
        raise NotImplementedError

    def validation_step(self, step: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """Metrics and image grids ``name -> (B, 3, H, W) in [-1, 1]``; runs under ``torch.no_grad``.

        Must leave the models as it found them (train mode, weights), so validating does not
        change training.
        """
        return {}, {}

    def state_dict(self) -> dict[str, Any]:
        """What besides prepared models / optimisers / schedulers must be checkpointed.

        Tensors, numbers, strings and plain containers only (loaded with ``weights_only=True``).
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def export(self, output_dir: str | os.PathLike) -> None:
        """Write the final model(s) with ``save_pretrained`` into ``output_dir``."""
        raise NotImplementedError

    # --------------------------------------------------------------- helpers for subclasses
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def rng(self, step: int, stream: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
        """A generator seeded from ``(seed, step, process, stream)``: data for step ``step``."""
        seed = batch_seed(self.train_config.seed, step, self.accelerator.process_index, stream)
        return seeded_generator(seed, device)

    #: Older name of :meth:`rng`; avoid it in tasks that hold a StyleGAN in ``self.generator``.
    generator = rng

    def micro_steps(self, step: int, *models: torch.nn.Module) -> Iterator[int]:
        """Yield the micro-batch indices of optimisation step ``step`` inside ``accelerator.accumulate``.

        With ``gradient_accumulation_steps = A`` it yields ``step * A + i`` for ``i < A``; call
        ``accelerator.backward`` and the (prepared) optimiser's ``step`` / ``zero_grad`` inside the
        loop: Accelerate divides the loss by ``A``, skips gradient sync and optimiser steps until
        the last micro-batch.
        """
        accumulation = self.train_config.gradient_accumulation_steps
        for i in range(accumulation):
            with self.accelerator.accumulate(*models):
                yield step * accumulation + i


# ------------------------------------------------------------------------------- checkpoints
def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are never listed)."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)
             and (p / TRAINER_STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def resolve_checkpoint(resume: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """``latest`` (newest checkpoint of ``output_dir``), a checkpoint folder, or a run folder."""
    if str(resume) == "latest":
        found = checkpoint_dirs(output_dir)
        if not found:
            raise ConfigError(f"--resume latest: no checkpoint in {Path(output_dir) / CHECKPOINT_DIR}. "
                              "Start without --resume, or point --output-dir at the run to continue.")
        return found[-1]
    path = Path(resume)
    if (path / TRAINER_STATE).is_file():
        return path
    found = checkpoint_dirs(path)
    if found:
        return found[-1]
    raise ConfigError(f"--resume {resume}: not a checkpoint folder (no {TRAINER_STATE}) nor a run folder "
                      f"with checkpoints. Pass 'latest', a run's output_dir or one of its {CHECKPOINT_DIR}/step-*.")


def _fsync_tree(path: Path) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems (or Windows) cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------- images
def tile_images(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile ``(B, 3, H, W)`` images in ``[-1, 1]`` into one ``(3, H', W')`` grid in ``[0, 1]``."""
    images = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    ncol = math.ceil(b / nrow)
    grid = torch.ones(c, ncol * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(b):
        r, q = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y:y + h, x:x + w] = images[i]
    return grid


def save_png(grid: torch.Tensor, path: Path) -> None:
    from PIL import Image

    array = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ------------------------------------------------------------------------------- trainer
class Trainer:
    """Runs a :class:`TrainTask`: steps, logging, validation, atomic checkpoints, export, push.

    Args:
        config: the loop settings.
        task: the task to train.
        full_config: the whole run config (all sections) saved as YAML with every checkpoint.
    """

    def __init__(self, config: TrainConfig, task: TrainTask, *, full_config: dict | None = None) -> None:
        self.config = config
        self.task = task
        self.full_config = full_config if full_config is not None else {"train": dataclasses.asdict(config)}
        self.output_dir = Path(config.output_dir)
        self.accelerator: Any = None
        self.step = 0

    # --------------------------------------------------------------- main loop
    def fit(self, resume: str | os.PathLike | None = None) -> dict[str, Any]:
        """Train up to ``max_steps``; returns ``step``, ``checkpoint``, ``export_dir``, last ``logs`` / ``metrics``.

        Args:
            resume: ``"latest"``, a checkpoint folder or a run folder to continue from.
        """
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed
        from tqdm.auto import tqdm

        cfg = self.config
        if cfg.push_to_hub and hub_offline():
            raise HubError(f"--push-to-hub {cfg.push_to_hub}: HF_HUB_OFFLINE is set, so the model could not be "
                           "pushed at the end. Unset HF_HUB_OFFLINE and log in (`huggingface-cli login`), or "
                           "train without --push-to-hub and upload the model folder later.")
        if torch.cuda.is_available() and not cfg.cpu:
            if cfg.allow_tf32:
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        self.accelerator = acc = Accelerator(
            mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            log_with=None if cfg.log_with == "none" else cfg.log_with, project_dir=str(self.output_dir),
            cpu=cfg.cpu, kwargs_handlers=[DistributedDataParallelKwargs(
                find_unused_parameters=cfg.find_unused_parameters)])
        set_seed(cfg.seed)  # model initialisation
        self.task.bind(acc, cfg)
        self.task.setup(acc)
        checkpoint = None
        if resume is not None:
            checkpoint = resolve_checkpoint(resume, self.output_dir)
            self.load_checkpoint(checkpoint)
        if cfg.log_with != "none":
            acc.init_trackers("logs")
        logs: dict[str, float] = {}
        metrics: dict[str, float] = {}
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress_bar and acc.is_main_process),
                   desc=type(self.task).__name__, dynamic_ncols=True)
        start_step, start_time = self.step, time.perf_counter()
        while self.step < cfg.max_steps:
            _seed_everything(batch_seed(cfg.seed, self.step, acc.process_index, stream=1 << 20))
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
            if _due(self.step, cfg.checkpoint_every) or last:
                checkpoint = self.save_checkpoint()
        bar.close()
        export_dir = None
        acc.wait_for_everyone()
        if cfg.export and acc.is_main_process:
            export_dir = self.output_dir / EXPORT_DIR
            self.task.export(export_dir)
            if cfg.push_to_hub:
                push_folder(export_dir, cfg.push_to_hub, private=cfg.hub_private)
        acc.wait_for_everyone()
        acc.end_training()
        return {"step": self.step, "checkpoint": checkpoint, "export_dir": export_dir, "logs": logs,
                "metrics": metrics}

    def validate(self) -> dict[str, float]:
        """Run the task's validation, log its metrics and image grids (TensorBoard + PNG)."""
        acc = self.accelerator
        with torch.no_grad():
            metrics, images = self.task.validation_step(self.step)
        metrics = {k: float(v) for k, v in metrics.items()}
        if metrics:
            acc.log({f"val/{k}": v for k, v in metrics.items()}, step=self.step)
        if acc.is_main_process and images:
            writer = None
            if self.config.log_with == "tensorboard":
                writer = acc.get_tracker("tensorboard", unwrap=True)
            for name, batch in images.items():
                grid = tile_images(batch, nrow=1 if batch.shape[-1] > 2 * batch.shape[-2] else None)
                if writer is not None:
                    writer.add_image(f"val/{name}", grid, self.step)
                save_png(grid, self.output_dir / SAMPLES_DIR / f"{name.replace('|', '-')}-{self.step:08d}.png")
        return metrics

    # --------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write the full state atomically to ``checkpoints/step-XXXXXXXX``; keep the newest ``keep_checkpoints``."""
        import yaml

        acc = self.accelerator
        root = self.output_dir / CHECKPOINT_DIR
        name = f"{CHECKPOINT_PREFIX}{self.step:08d}"
        final, tmp = root / name, root / f"{TMP_PREFIX}{name}"
        if acc.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            for stale in root.glob(f"{TMP_PREFIX}*"):  # left by a crash mid-write
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
        acc.wait_for_everyone()
        acc.save_state(str(tmp))  # every process writes its own RNG state
        acc.wait_for_everyone()
        if acc.is_main_process:
            torch.save(self.task.state_dict(), tmp / TASK_STATE)
            (tmp / CONFIG_YAML).write_text(yaml.safe_dump(_plain(self.full_config), sort_keys=False), "utf-8")
            state = {"step": self.step, "seed": self.config.seed, "max_steps": self.config.max_steps,
                     "task": type(self.task).__name__, "num_processes": acc.num_processes,
                     "torch": torch.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            # Written last: a folder without it is never taken for a checkpoint.
            (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2), "utf-8")
            _fsync_tree(tmp)
            if final.exists():  # the same step saved again (e.g. a resumed run that was already done)
                old = root / f"{TMP_PREFIX}old-{name}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            _fsync_dir(root)
            for stale in checkpoint_dirs(self.output_dir)[:-self.config.keep_checkpoints]:
                shutil.rmtree(stale, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore models, optimisers, schedulers, RNG states, step and task state from ``path``."""
        path = Path(path)
        state = json.loads((path / TRAINER_STATE).read_text("utf-8"))
        self.accelerator.load_state(str(path))
        task_state = torch.load(path / TASK_STATE, map_location="cpu", weights_only=True)
        self.task.load_state_dict(task_state)
        self.step = int(state["step"])


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _plain(value: Any) -> Any:
    """Config values as YAML-safe plain types (tuples -> lists, dataclasses -> dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# ------------------------------------------------------------------------------- hub
def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False) -> str:
    """Upload an exported model folder to the Hub repo ``repo_id`` (created if missing).

    Raises:
        HubError: offline, not logged in, or the upload failed.
    """
    if hub_offline():
        raise HubError(f"cannot push {folder} to {repo_id}: HF_HUB_OFFLINE is set. Unset it and log in, or "
                       f"upload the folder later with `huggingface-cli upload {repo_id} {folder}`.")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="unmask training export")
    except Exception as exc:  # huggingface_hub raises HTTP, auth and OS errors
        raise HubError(f"pushing {folder} to {repo_id} failed: {exc}. Check the network and that you are logged in "
                       "(`huggingface-cli login`) with write access; the model stays in the local folder.") from exc
    return str(getattr(info, "commit_url", info))


# ------------------------------------------------------------------------------- config parsing
def parse_dataclass(cls: type, raw: Any, where: str = "config") -> Any:
    """Build the (frozen, possibly nested) dataclass ``cls`` from plain YAML data.

    Unknown keys raise :class:`ConfigError` naming the key and the allowed ones; values are
    checked and coerced against the field annotations (``1e-3`` written in YAML becomes a float,
    lists become tuples).
    """
    if isinstance(raw, cls):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping of {cls.__name__} fields, got {type(raw).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        section = where or "the config"
        raise ConfigError(f"unknown key {_join(where, unknown[0])!r}" + (f" (and {unknown[1:]})" if unknown[1:] else "")
                          + f"; {section} accepts: {sorted(fields)}. Check the spelling or the config's section.")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, _join(where, name)) for name, value in raw.items()}
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or 'the config'} is missing required key(s) {missing}.")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {args}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}.")
        return value
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}.")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}.")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        return tuple(value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}.") from None
        if not number.is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        return int(number)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}.") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return value
    return value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a nested config dict (copied)."""
    import copy

    import yaml

    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.max_steps=100.")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section.")
            node = child
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else None
    return raw


def load_run_config(source: str | os.PathLike | Mapping[str, Any], task_config_class: type,
                    overrides: Sequence[str] = ()) -> tuple[TrainConfig, Any, dict[str, Any]]:
    """Parse a run config (YAML file or dict) into ``(TrainConfig, task config, full plain dict)``.

    The ``train:`` section is the :class:`TrainConfig`; every other top-level section is a field
    of ``task_config_class``. Unknown sections or keys raise :class:`ConfigError`.
    """
    import yaml

    if isinstance(source, Mapping):
        raw = dict(source)
        name = "config"
    else:
        path = Path(source)
        try:
            raw = yaml.safe_load(path.read_text("utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc}.") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        name = path.name
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a mapping of sections (train:, model:, …).")
    raw = apply_overrides(raw, overrides)
    task_fields = {f.name for f in dataclasses.fields(task_config_class)}
    unknown = sorted(set(raw) - task_fields - {"train"})
    if unknown:
        raise ConfigError(f"{name}: unknown section {unknown[0]!r}; this task accepts "
                          f"{sorted(task_fields | {'train'})}.")
    if "train" not in raw:
        raise ConfigError(f"{name}: missing the train: section (output_dir, max_steps, …).")
    train = parse_dataclass(TrainConfig, raw["train"], "train")
    task = parse_dataclass(task_config_class, {k: v for k, v in raw.items() if k != "train"}, "")
    full = {"train": _plain(train), **{f.name: _plain(getattr(task, f.name)) for f in dataclasses.fields(task)}}
    return train, task, full
