"""A run config: the ``train:`` section (:class:`TrainConfig`) plus the task's own sections.

``python -m unmask.train KIND --config run.yaml [--set key=value …]`` parses the YAML once
(:func:`load_run_config`, built on :mod:`unmask.config`) and the whole parsed config is saved as
YAML with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unmask.config import apply_overrides, did_you_mean, parse_dataclass, read_yaml, to_plain
from unmask.errors import ConfigError

#: ``auto`` resolves through :func:`unmask.precision.resolve_precision` (bf16 where the hardware has bf16 matrix
#: units, else float32); ``no`` is float32; ``fp16`` is CUDA autocast with loss scaling.
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the loop itself (the ``train:`` section of a run config).

    Attributes:
        output_dir: run folder: ``checkpoints/``, ``logs/`` (TensorBoard), ``samples/``, ``model/``.
        max_steps: optimisation steps to reach (a resumed run continues up to this number).
        seed: seeds model init, data (``batch_seed``) and per-step RNG state.
        mixed_precision: ``auto`` (default: bf16 on GPUs that support it and on CPUs with bf16 matrix units,
            float32 elsewhere; :mod:`unmask.precision`), ``no`` (float32), ``fp16`` (CUDA) or ``bf16``.
            What it resolved to is printed, saved in each checkpoint's ``info.json`` and in the model card.
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
        stop_metric: validation metric (a key the task's validation returns, e.g. ``mAP``) whose curve
            ends the run once flat: when ``stop_patience`` validations in a row have not raised its best
            value by more than ``stop_min_delta``, the run stops (before ``max_steps``, which stays the
            cap). ``None`` (default) trains to ``max_steps``.
        stop_patience / stop_min_delta: see ``stop_metric``. Higher metric values are better.
    """

    output_dir: str
    max_steps: int
    seed: int = 0
    mixed_precision: str = "auto"
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
    stop_metric: str | None = None
    stop_patience: int = 3
    stop_min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.stop_metric is not None and (self.validate_every < 1 or self.stop_patience < 1):
            raise ConfigError(f"train.stop_metric={self.stop_metric!r} needs train.validate_every >= 1 and "
                              f"train.stop_patience >= 1 (got {self.validate_every} and {self.stop_patience}): "
                              "the curve it watches is the validation's.")
        if self.stop_min_delta < 0:
            raise ConfigError(f"train.stop_min_delta must be >= 0, got {self.stop_min_delta}.")
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


def load_run_config(source: str | os.PathLike | Mapping[str, Any], task_config_class: type,
                    overrides: Sequence[str] = ()) -> tuple[TrainConfig, Any, dict[str, Any]]:
    """Parse a run config (YAML file or dict) into ``(TrainConfig, task config, full plain dict)``.

    The ``train:`` section is the :class:`TrainConfig`; every other top-level section is a field
    of ``task_config_class``. Unknown sections or keys raise :class:`ConfigError`.
    """
    if isinstance(source, Mapping):
        raw, name = dict(source), "config"
    else:
        raw, name = read_yaml(source), Path(source).name
    raw = apply_overrides(raw, overrides)
    task_fields = {f.name for f in dataclasses.fields(task_config_class)}
    unknown = sorted(set(raw) - task_fields - {"train"})
    if unknown:
        accepted = sorted(task_fields | {"train"})
        raise ConfigError(f"{name}: unknown section {unknown[0]!r}; this task accepts {accepted}."
                          + did_you_mean(unknown[0], accepted))
    if "train" not in raw:
        raise ConfigError(f"{name}: missing the train: section (output_dir, max_steps, …).")
    train = parse_dataclass(TrainConfig, raw["train"], "train")
    task = parse_dataclass(task_config_class, {k: v for k, v in raw.items() if k != "train"}, "")
    full = {"train": to_plain(train), **{f.name: to_plain(getattr(task, f.name)) for f in dataclasses.fields(task)}}
    return train, task, full
