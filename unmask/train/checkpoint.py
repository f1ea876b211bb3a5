"""Atomic checkpoints of a training run and the exact resumption from them.

A checkpoint holds the state Accelerate registers (models, optimisers, schedulers, grad scaler,
the RNG states of python / numpy / torch / cuda of every process), the task's own state, the full
run config as YAML and ``trainer_state.json`` (the step). It is written to
``checkpoints/.tmp-step-XXXXXXXX``, fsynced, then renamed to ``checkpoints/step-XXXXXXXX`` in one
``os.replace``. ``trainer_state.json`` is written last and only renamed folders are listed, so a
crash mid-write never leaves a half checkpoint as ``latest``; the newest ``keep`` are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from unmask.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
TRAINER_STATE = "trainer_state.json"
TASK_STATE = "task_state.pt"
CONFIG_YAML = "config.yaml"


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


def save_checkpoint(accelerator: Any, output_dir: str | os.PathLike, step: int, *, task_state: Any,
                    config: Mapping[str, Any], info: Mapping[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step-XXXXXXXX`` atomically (see the module docstring) and return it.

    Args:
        accelerator: the run's ``Accelerator`` (every process calls this).
        output_dir: the run folder.
        step: optimisation steps done.
        task_state: ``TrainTask.state_dict()``, called on the main process only (a callable) or the state.
        config: the full run config as plain data (saved as ``config.yaml``).
        info: extra facts for ``trainer_state.json`` (seed, task name…).
        keep: how many of the newest checkpoints to keep.
    """
    import yaml

    root = Path(output_dir) / CHECKPOINT_DIR
    name = f"{CHECKPOINT_PREFIX}{step:08d}"
    final, tmp = root / name, root / f"{TMP_PREFIX}{name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f"{TMP_PREFIX}*"):  # left by a crash mid-write
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # every process writes its own RNG state
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(task_state() if callable(task_state) else task_state, tmp / TASK_STATE)
        (tmp / CONFIG_YAML).write_text(yaml.safe_dump(dict(config), sort_keys=False), "utf-8")
        state = {"step": step, **info, "num_processes": accelerator.num_processes, "torch": torch.__version__,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
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
        for stale in checkpoint_dirs(output_dir)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: str | os.PathLike) -> tuple[int, Any]:
    """Restore the Accelerate state of ``path``; return ``(step, task state)`` for the caller to apply."""
    path = Path(path)
    state = json.loads((path / TRAINER_STATE).read_text("utf-8"))
    accelerator.load_state(str(path))
    task_state = torch.load(path / TASK_STATE, map_location="cpu", weights_only=True)
    return int(state["step"]), task_state


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
