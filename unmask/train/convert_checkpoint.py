"""Convert one's own runs saved by an older unmask to the pickle-free checkpoint format.

``python -m unmask.train convert-checkpoint RUN_DIR --trust`` rewrites every checkpoint of ``RUN_DIR`` (or the one
checkpoint folder given) from the layout of Accelerate's ``save_state`` (``random_states_P.pkl``,
``optimizer.bin``, ``scheduler.bin``: full pickles) to :data:`unmask.train.checkpoint.FORMAT`. Reading those files
unpickles them, which runs whatever code they name: this is the one place in unmask that does, and only with
``--trust``, for runs you made yourself. A checkpoint someone else shared is never converted; start from its
exported model instead.

Each folder is converted into ``checkpoints/.tmp-convert-step-…`` and swapped in with ``os.replace``; what the
conversion reads is checked to be tensors and plain data before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from unmask.errors import ConfigError, UnmaskError, WeightsError
from unmask.train import checkpoint as ckpt

COMMAND = "convert-checkpoint"
LEGACY_MODEL = re.compile(r"^(model|pytorch_model)(_\d+)?\.(safetensors|bin)$")
LEGACY_OPTIMIZER = re.compile(r"^optimizer(_\d+)?\.bin$")
LEGACY_SCHEDULER = re.compile(r"^scheduler(_\d+)?\.bin$")
LEGACY_RNG = re.compile(r"^random_states_(\d+)\.pkl$")
DDP_PREFIX = "module."


def convert_run(path: str | os.PathLike, *, trust: bool) -> list[tuple[Path, bool]]:
    """Convert every checkpoint of a run folder (or the one checkpoint folder ``path``).

    Returns:
        ``(checkpoint folder, converted)`` pairs; ``converted`` is False for folders already in the format.

    Raises:
        ConfigError: ``trust`` is False, ``path`` holds no checkpoint, or a folder holds files unmask never wrote.
        WeightsError: a file does not read, or holds more than tensors and plain data.
    """
    path = Path(path)
    folders = [path] if (path / ckpt.TRAINER_STATE).is_file() else ckpt.checkpoint_dirs(path)
    if not folders:
        raise ConfigError(f"{path} is neither a checkpoint folder (no {ckpt.TRAINER_STATE}) nor a run folder with "
                          f"{ckpt.CHECKPOINT_DIR}/step-*; pass the run's output_dir.")
    if not trust:
        raise ConfigError(
            f"converting {path} unpickles its files, which runs any code they name. Do it only for a run you made "
            f"yourself: `python -m unmask.train {COMMAND} {path} --trust`. A checkpoint someone else shared "
            "should not be converted; start from its exported model (model/*.safetensors) instead.")
    return [(folder, convert_checkpoint(folder)) for folder in folders]


def convert_checkpoint(folder: Path) -> bool:
    """Rewrite one checkpoint folder in place (atomically); False when it is already in the format."""
    state = ckpt.read_trainer_state(folder)
    if state.get("format") == ckpt.FORMAT:
        strays = ckpt.pickle_files(folder)
        if strays:
            raise ConfigError(f"{folder} is already in {ckpt.FORMAT!r} but also holds {[p.name for p in strays]}, "
                              "which unmask never writes. Delete those files if you know where they came from.")
        return False
    tmp = folder.parent / f"{ckpt.TMP_PREFIX}convert-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        counts = _convert_files(folder, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator_step = counts.pop("accelerator_step")
    new_state = {**state, "format": ckpt.FORMAT, "accelerator_step": accelerator_step, **counts,
                 "converted_from": "accelerate save_state"}
    (tmp / ckpt.TRAINER_STATE).write_text(json.dumps(new_state, indent=2), "utf-8")  # last, as when saving
    ckpt.fsync_tree(tmp)
    old = folder.parent / f"{ckpt.TMP_PREFIX}old-{folder.name}"
    os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    ckpt.fsync_dir(folder.parent)
    return True


def _convert_files(src: Path, dst: Path) -> dict[str, Any]:
    """Write the new files of checkpoint ``src`` into ``dst``; return the counts for ``trainer_state.json``."""
    from safetensors.torch import save_file

    names = sorted(p.name for p in src.iterdir())
    nested = [n for n in names if (src / n).is_dir()]
    if nested:
        raise ConfigError(f"{src} holds folders {nested}, which unmask never wrote into a checkpoint; it cannot be "
                          "converted. Move them out if they are yours.")

    models = sorted((n for n in names if LEGACY_MODEL.match(n)), key=_index)
    if len({_index(n) for n in models}) != len(models):
        raise ConfigError(f"{src} holds a model both as .safetensors and .bin: {models}; keep one.")
    for i, name in enumerate(models):
        _expect_index(src, name, i)
        tensors = _read_legacy_model(src / name)
        save_file(tensors, str(dst / ckpt.indexed(ckpt.MODEL_FILE, i)), metadata={"format": "pt"})
    done = {ckpt.TRAINER_STATE, *models}

    for pattern, target in ((LEGACY_OPTIMIZER, ckpt.OPTIMIZER_FILE), (LEGACY_SCHEDULER, ckpt.SCHEDULER_FILE)):
        found = sorted((n for n in names if pattern.match(n)), key=_index)
        for i, name in enumerate(found):
            _expect_index(src, name, i)
            ckpt.save_plain(_trusted_load(src / name), dst / ckpt.indexed(target, i))
        done.update(found)
    counts = {"models": len(models), "optimizers": sum(bool(LEGACY_OPTIMIZER.match(n)) for n in names),
              "schedulers": sum(bool(LEGACY_SCHEDULER.match(n)) for n in names),
              "scaler": ckpt.SCALER_FILE in names}

    for name in (ckpt.SCALER_FILE, ckpt.TASK_STATE):
        if name in names:
            ckpt.save_plain(_trusted_load(src / name), dst / name)
            done.add(name)
    if ckpt.TASK_STATE not in names:
        raise ConfigError(f"{src} has no {ckpt.TASK_STATE}; it was not written by unmask's trainer.")
    if ckpt.CONFIG_YAML in names:
        shutil.copyfile(src / ckpt.CONFIG_YAML, dst / ckpt.CONFIG_YAML)
        done.add(ckpt.CONFIG_YAML)

    accelerator_step = 0
    for name in names:
        match = LEGACY_RNG.match(name)
        if not match:
            continue
        states = _trusted_load(src / name)
        try:
            rng = ckpt.RngState(python=states["random_state"], numpy=states["numpy_random_seed"],
                                cpu=states["torch_manual_seed"], cuda=tuple(states.get("torch_cuda_manual_seed", ())))
        except (KeyError, TypeError) as exc:
            raise WeightsError(f"{src / name} is not Accelerate's RNG state (no {exc}).") from exc
        rng.write(dst, int(match.group(1)))
        if int(match.group(1)) == 0:
            accelerator_step = int(states.get("step", 0))
        done.add(name)

    unknown = [n for n in names if n not in done]
    if unknown:
        raise ConfigError(f"{src} holds {unknown}, which unmask's trainer never wrote (objects registered with "
                          "Accelerate, dataloader states…); it cannot be converted. Move them out if they are yours.")
    return {**counts, "accelerator_step": accelerator_step}


def _index(name: str) -> int:
    match = re.search(r"_(\d+)\.\w+$", name)
    return int(match.group(1)) if match else 0


def _expect_index(src: Path, name: str, index: int) -> None:
    if _index(name) != index:
        raise ConfigError(f"{src} lacks the file numbered {index} before {name}; the checkpoint is incomplete.")


def _trusted_load(file: Path) -> Any:
    """Unpickle a legacy file (``weights_only=False``: the caller has --trust) and check it is plain data."""
    try:
        obj = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise WeightsError(f"cannot read {file}: {str(exc).splitlines()[0]}.") from exc
    if file.name.startswith("random_states_"):
        return obj  # numpy's state tuple: RngState.write turns it into arrays and JSON
    ckpt.check_plain(obj, str(file))
    return obj


def _read_legacy_model(file: Path) -> dict[str, torch.Tensor]:
    """A model file's tensors, without the ``module.`` prefix a DDP-wrapped model saved by Accelerate carries."""
    if file.suffix == ".safetensors":
        tensors = ckpt.read_model_file(file)
    else:
        tensors = _trusted_load(file)
    if tensors and all(k.startswith(DDP_PREFIX) for k in tensors):
        tensors = {k[len(DDP_PREFIX):]: v for k, v in tensors.items()}
    # Fresh, contiguous copies: safetensors refuses tensors that share memory.
    return {k: v.detach().clone().contiguous() for k, v in tensors.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m unmask.train {COMMAND}",
        description="Convert a run saved by an older unmask (Accelerate's save_state: pickled RNG and optimiser "
                    "files) to checkpoints that load without running code. Unpickles the old files: only for runs "
                    "you made yourself.")
    parser.add_argument("path", help="a run folder (all of its checkpoints) or one checkpoints/step-* folder")
    parser.add_argument("--trust", action="store_true",
                        help="confirm that you made this run: its pickles are read, which runs any code they name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = convert_run(args.path, trust=args.trust)
    except UnmaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for folder, converted in results:
        print(f"{'converted' if converted else 'already pickle-free'}: {folder}")
    return 0
