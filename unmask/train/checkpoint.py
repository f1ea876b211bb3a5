"""Atomic checkpoints of a training run, exact resumption from them, and nothing in them that runs code.

A checkpoint ``checkpoints/step-XXXXXXXX`` (format :data:`FORMAT`) holds:

====================================  ================================================================  ============
file                                  what                                                              written by
====================================  ================================================================  ============
``model.safetensors``, ``model_1…``   the prepared models, in ``accelerator.prepare`` order              main process
``optimizer.pt``, ``optimizer_1…``    the prepared optimisers' state dicts                               main process
``scheduler.pt``, ``scheduler_1…``    the prepared schedulers' state dicts                               main process
``scaler.pt``                         the fp16 grad scaler's state (fp16 runs only)                      main process
``task_state.pt``                     ``TrainTask.state_dict()`` (EMA copies, counters…)                 main process
``rng_state_P.safetensors``           process P's torch CPU / CUDA RNG states and numpy's MT19937 keys   process P
``rng_state_P.json``                  process P's numpy position and Python ``random`` state             process P
``config.yaml``                       the full run config                                                main process
``trainer_state.json``                step, format, Accelerate's micro-step counter, what is saved       main, last
====================================  ================================================================  ============

Every ``.pt`` is ``torch.save`` of tensors and plain data, read back with ``torch.load(weights_only=True)``; the
rest is safetensors, JSON or YAML. Loading reads every file before it applies any, and refuses a folder that
holds a pickle (by suffix or content) or a ``.pt`` that fails a weights-only load: a checkpoint someone shared
cannot run code here. Runs saved by an older unmask (Accelerate's ``save_state``, whose ``random_states_*.pkl``
is a pickle) are converted once, for one's own runs only, by ``python -m unmask.train convert-checkpoint RUN_DIR
--trust`` (:mod:`unmask.train.convert_checkpoint`).

A checkpoint is written to ``checkpoints/.tmp-step-XXXXXXXX``, fsynced, then renamed in one ``os.replace``.
``trainer_state.json`` is written last and only renamed folders are listed, so a crash (even SIGKILL) mid-write
never leaves a half checkpoint as ``latest``; the newest ``keep`` are kept.

Several processes (``accelerate launch``, DDP): the main process writes the shared state, every process writes
its own RNG state; every process reads the shared state and its own RNG state (so the folder must be on a
filesystem all processes see, as with Accelerate). Sharded states (FSDP, DeepSpeed, Megatron-LM) are refused.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unmask.errors import ConfigError, WeightsError

FORMAT = "unmask-checkpoint/2"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
TRAINER_STATE = "trainer_state.json"
TASK_STATE = "task_state.pt"
CONFIG_YAML = "config.yaml"
MODEL_FILE = "model{}.safetensors"
OPTIMIZER_FILE = "optimizer{}.pt"
SCHEDULER_FILE = "scheduler{}.pt"
SCALER_FILE = "scaler.pt"
RNG_TENSORS_FILE = "rng_state_{}.safetensors"
RNG_JSON_FILE = "rng_state_{}.json"
PICKLE_SUFFIXES = (".pkl", ".pickle")
#: Accelerate states whose layout is sharded across processes; this format holds whole, replicated states only.
SHARDED_DISTRIBUTED_TYPES = ("FSDP", "DEEPSPEED", "MEGATRON_LM")
CONVERT_COMMAND = "python -m unmask.train convert-checkpoint {run} --trust"

_PLAIN_LEAVES = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def indexed(pattern: str, index: int) -> str:
    """``model.safetensors``, ``model_1.safetensors``… (Accelerate's numbering) for a ``{}`` file pattern."""
    return pattern.format("" if index == 0 else f"_{index}")


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


def check_supported(accelerator: Any) -> None:
    """Refuse an ``Accelerator`` whose state this format cannot hold (sharded training, registered objects)."""
    kind = str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type))
    if kind in SHARDED_DISTRIBUTED_TYPES:
        raise ConfigError(f"unmask checkpoints hold whole, replicated states (one process or DDP); this run uses "
                          f"{kind}, whose states are sharded. Launch with plain data parallelism "
                          "(`accelerate launch --multi_gpu …`), without FSDP / DeepSpeed / Megatron-LM.")
    if getattr(accelerator, "_custom_objects", None):
        raise ConfigError("accelerator.register_for_checkpointing was used; unmask checkpoints do not pickle "
                          "custom objects. Return their state from TrainTask.state_dict() (tensors and plain data) "
                          "and restore it in TrainTask.load_state_dict().")


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

    Raises:
        ConfigError: sharded training, or objects registered for Accelerate's pickled checkpoints.
        WeightsError: a state holds something other than tensors and plain data (it could not be read back
            without unpickling code), named by its path in the state.
    """
    import yaml
    from safetensors.torch import save_model

    check_supported(accelerator)
    root = Path(output_dir) / CHECKPOINT_DIR
    name = f"{CHECKPOINT_PREFIX}{step:08d}"
    final, tmp = root / name, root / f"{TMP_PREFIX}{name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f"{TMP_PREFIX}*"):  # left by a crash mid-write
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for i, model in enumerate(accelerator._models):
            save_model(accelerator.unwrap_model(model), str(tmp / indexed(MODEL_FILE, i)),
                       metadata={"format": "pt"}, force_contiguous=True)
        for pattern, objects in ((OPTIMIZER_FILE, accelerator._optimizers), (SCHEDULER_FILE, accelerator._schedulers)):
            for i, obj in enumerate(objects):
                save_plain(obj.state_dict(), tmp / indexed(pattern, i))
        if accelerator.scaler is not None:
            save_plain(accelerator.scaler.state_dict(), tmp / SCALER_FILE)
        save_plain(task_state() if callable(task_state) else task_state, tmp / TASK_STATE)
        (tmp / CONFIG_YAML).write_text(yaml.safe_dump(dict(config), sort_keys=False), "utf-8")
    RngState.capture().write(tmp, accelerator.process_index)  # every process, its own
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"step": step, **info, "format": FORMAT, "accelerator_step": int(accelerator.step),
                 "models": len(accelerator._models), "optimizers": len(accelerator._optimizers),
                 "schedulers": len(accelerator._schedulers), "scaler": accelerator.scaler is not None,
                 "num_processes": accelerator.num_processes, "torch": torch.__version__,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        # Written last: a folder without it is never taken for a checkpoint.
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2), "utf-8")
        fsync_tree(tmp)
        if final.exists():  # the same step saved again (e.g. a resumed run that was already done)
            old = root / f"{TMP_PREFIX}old-{name}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
        for stale in checkpoint_dirs(output_dir)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: str | os.PathLike) -> tuple[int, Any]:
    """Restore models, optimisers, schedulers, scaler and RNGs from ``path``; return ``(step, task state)``.

    Every file is read (safetensors, JSON, weights-only torch) before any state is applied.

    Raises:
        WeightsError: the folder holds a pickle, a file fails a weights-only load, it was written by an older
            unmask (the message gives the conversion command), or its states do not fit the task's.
        ConfigError: see :func:`check_supported`.
    """
    path = Path(path)
    check_supported(accelerator)
    state = read_trainer_state(path)
    check_safe(path, state)
    counts = {"models": len(accelerator._models), "optimizers": len(accelerator._optimizers),
              "schedulers": len(accelerator._schedulers), "scaler": accelerator.scaler is not None}
    saved = {key: state.get(key) for key in counts}
    if not isinstance(state.get("accelerator_step"), int):
        raise WeightsError(f"{path / TRAINER_STATE} has no integer 'accelerator_step'; it is not a complete "
                           f"{FORMAT} checkpoint. Resume from another checkpoint of the run.")
    if saved != counts:
        raise WeightsError(f"checkpoint {path} holds {saved}, but this task prepares {counts}. Resume with the "
                           "task and config that wrote it (see its config.yaml).")
    model_files = [path / indexed(MODEL_FILE, i) for i in range(len(accelerator._models))]
    models = [(model, file, read_model_file(file)) for model, file in zip(accelerator._models, model_files)]
    optimizers = [(o, load_plain(path / indexed(OPTIMIZER_FILE, i))) for i, o in enumerate(accelerator._optimizers)]
    schedulers = [(s, load_plain(path / indexed(SCHEDULER_FILE, i))) for i, s in enumerate(accelerator._schedulers)]
    scaler = load_plain(path / SCALER_FILE) if accelerator.scaler is not None else None
    task_state = load_plain(path / TASK_STATE)
    rng = RngState.read(path, accelerator.process_index)

    from unmask.hub import load_state_dict_strict

    for model, file, tensors in models:
        load_state_dict_strict(accelerator.unwrap_model(model), tensors, source=f"checkpoint file {file}")
    for pattern, pairs in ((OPTIMIZER_FILE, optimizers), (SCHEDULER_FILE, schedulers)):
        for i, (obj, obj_state) in enumerate(pairs):
            try:
                obj.load_state_dict(obj_state)
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise WeightsError(f"{path / indexed(pattern, i)} does not fit this task's {type(obj).__name__}: "
                                   f"{exc}. Resume with the task and config that wrote it (see its config.yaml)."
                                   ) from exc
    if scaler is not None:
        accelerator.scaler.load_state_dict(scaler)
    if rng is None:
        warnings.warn(f"{path} has no RNG state for process {accelerator.process_index} (it was saved by "
                      f"{state.get('num_processes')} process(es)); the global RNGs start from this step's seed.",
                      stacklevel=2)
    else:
        rng.restore()
    accelerator.step = state["accelerator_step"]
    return int(state["step"]), task_state


# --- what a folder may hold ---------------------------------------------------------------------------------------


def read_trainer_state(path: Path) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint folder as a dict."""
    file = path / TRAINER_STATE
    try:
        state = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read {file}: {exc}. Resume from another checkpoint of the run.") from exc
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise WeightsError(f"{file} has no integer 'step'; it is not an unmask checkpoint.")
    return state


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint ``RUN/checkpoints/step-*`` (the folder itself when it is not in a run)."""
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint


def pickle_files(path: Path) -> list[Path]:
    """Files under ``path`` that are pickles: by suffix, or by a pickle protocol 2-5 header (``0x80 0x02..0x05``).

    A torch ``.pt`` is a zip archive: its inner pickle is read by torch's weights-only unpickler, which rejects
    anything but tensors and plain data, so it is not listed here.
    """
    found = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.suffix.lower() in PICKLE_SUFFIXES:
            found.append(file)
            continue
        with open(file, "rb") as f:
            head = f.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            found.append(file)
    return found


def _convert_hint(path: Path) -> str:
    return (f"If this is your own run, saved by an older unmask, convert it once with "
            f"`{CONVERT_COMMAND.format(run=run_dir_of(path))}`. Never do that for a checkpoint someone else "
            "shared: start from its exported model (model/*.safetensors) instead.")


def check_safe(path: Path, state: Mapping[str, Any]) -> None:
    """Refuse a checkpoint folder that holds a pickle or is not in :data:`FORMAT` (nothing is unpickled here)."""
    pickles = pickle_files(path)
    if pickles:
        names = ", ".join(str(p.relative_to(path)) for p in pickles)
        raise WeightsError(f"checkpoint {path} holds a pickle ({names}): loading it could run any code, so unmask "
                           f"refuses it. {_convert_hint(path)}")
    if state.get("format") != FORMAT:
        found = f"format {state['format']!r}" if "format" in state else "no format (Accelerate's save_state layout)"
        raise WeightsError(f"checkpoint {path} has {found}; this unmask reads {FORMAT!r}. {_convert_hint(path)}")


# --- plain data: torch.save / torch.load(weights_only=True) --------------------------------------------------------


def check_plain(obj: Any, where: str) -> None:
    """Raise unless ``obj`` is tensors and plain data only (what a weights-only load reads back)."""
    if isinstance(obj, _PLAIN_LEAVES) or type(obj) in (torch.Tensor, torch.nn.Parameter):
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            check_plain(key, f"{where} (a key)")
            check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    raise WeightsError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds tensors and "
                       "plain data (numbers, strings, None, lists, tuples, dicts) only, so that it opens without "
                       "running code. Convert it to those in the state_dict that returns it.")


def save_plain(obj: Any, file: Path) -> None:
    """``torch.save`` after :func:`check_plain` (so that :func:`load_plain` reads it back)."""
    check_plain(obj, file.name)
    torch.save(obj, file)


def load_plain(file: Path) -> Any:
    """``torch.load(file, weights_only=True)`` on CPU, refusing what does not load so with a clear message."""
    if not file.is_file():
        raise WeightsError(f"checkpoint file {file} is missing; resume from another checkpoint of the run.")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError…
        raise WeightsError(f"{file} fails a weights-only load ({str(exc).splitlines()[0]}): it is truncated, or "
                           f"it pickles objects beyond tensors, which unmask refuses. {_convert_hint(file.parent)}"
                           ) from exc


def read_model_file(file: Path) -> dict[str, torch.Tensor]:
    """A model file's tensors, with the names that ``save_model`` dropped as shared restored from its metadata."""
    from safetensors import SafetensorError, safe_open

    if not file.is_file():
        raise WeightsError(f"checkpoint file {file} is missing; resume from another checkpoint of the run.")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"cannot read {file} as safetensors: {exc}. Resume from another checkpoint.") from exc
    for dropped, kept in metadata.items():  # save_model keeps one name per shared tensor, records the others
        if dropped not in tensors and kept in tensors:
            tensors[dropped] = tensors[kept]
    return tensors


# --- RNG states as tensors + JSON ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RngState:
    """One process's global RNG states.

    Attributes:
        python: ``random.getstate()``: ``(version, 625 ints, gauss_next)``.
        numpy: ``np.random.get_state(legacy=True)``: ``("MT19937", keys (624,) uint32, pos, has_gauss, cached)``.
        cpu: ``torch.get_rng_state()``, uint8.
        cuda: ``torch.cuda.get_rng_state_all()``, one uint8 tensor per device (empty without CUDA).
    """

    python: tuple
    numpy: tuple
    cpu: torch.Tensor
    cuda: tuple[torch.Tensor, ...] = ()

    @classmethod
    def capture(cls) -> RngState:
        """This process's RNG states now."""
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else ()
        return cls(random.getstate(), np.random.get_state(legacy=True), torch.get_rng_state(), cuda)  # noqa: NPY002

    def restore(self) -> None:
        """Set the global RNGs (of the CUDA devices that exist here)."""
        try:
            random.setstate(self.python)
            np.random.set_state(self.numpy)  # noqa: NPY002
            torch.set_rng_state(self.cpu)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"the checkpoint's RNG state does not restore ({exc}).") from exc
        if self.cuda and torch.cuda.is_available():
            for device, state in enumerate(self.cuda[:torch.cuda.device_count()]):
                torch.cuda.set_rng_state(state, device)

    def write(self, folder: Path, process_index: int) -> None:
        """``rng_state_P.safetensors`` (CPU / CUDA states, numpy keys) and ``rng_state_P.json`` (the rest)."""
        from safetensors.torch import save_file

        algorithm, keys, pos, has_gauss, cached_gaussian = self.numpy
        version, internal, gauss_next = self.python
        tensors = {"cpu": self.cpu.detach().cpu().contiguous(),
                   "numpy_keys": torch.from_numpy(np.ascontiguousarray(keys, dtype=np.uint32))}
        tensors.update({f"cuda_{i}": state.detach().cpu().contiguous() for i, state in enumerate(self.cuda)})
        save_file(tensors, str(folder / RNG_TENSORS_FILE.format(process_index)))
        plain = {"python": {"version": int(version), "state": [int(v) for v in internal],
                            "gauss_next": None if gauss_next is None else float(gauss_next)},
                 "numpy": {"algorithm": str(algorithm), "pos": int(pos), "has_gauss": int(has_gauss),
                           "cached_gaussian": float(cached_gaussian)},
                 "cuda_devices": len(self.cuda)}
        (folder / RNG_JSON_FILE.format(process_index)).write_text(json.dumps(plain), "utf-8")

    @classmethod
    def read(cls, folder: Path, process_index: int) -> RngState | None:
        """What :meth:`write` wrote for ``process_index``, checked; ``None`` when there is none."""
        from safetensors.torch import load_file

        tensors_file = folder / RNG_TENSORS_FILE.format(process_index)
        json_file = folder / RNG_JSON_FILE.format(process_index)
        if not tensors_file.is_file() and not json_file.is_file():
            return None
        try:
            tensors = load_file(str(tensors_file))
            plain = json.loads(json_file.read_text("utf-8"))
            py, np_ = plain["python"], plain["numpy"]
            keys, cpu = tensors["numpy_keys"], tensors["cpu"]
            if keys.dtype != torch.uint32 or tuple(keys.shape) != (624,) or cpu.dtype != torch.uint8:
                raise ValueError("unexpected tensor types or shapes")
            return cls(python=(int(py["version"]), tuple(int(v) for v in py["state"]),
                               None if py["gauss_next"] is None else float(py["gauss_next"])),
                       numpy=(str(np_["algorithm"]), keys.numpy(), int(np_["pos"]), int(np_["has_gauss"]),
                              float(np_["cached_gaussian"])),
                       cpu=cpu, cuda=tuple(tensors[f"cuda_{i}"] for i in range(int(plain["cuda_devices"]))))
        except Exception as exc:  # a missing half, bad JSON, missing keys, wrong types
            raise WeightsError(f"{tensors_file} / {json_file.name} do not hold a valid RNG state ({exc!r}). "
                               "Resume from another checkpoint of the run.") from exc


# --- durability ---------------------------------------------------------------------------------------------------


def fsync_tree(path: Path) -> None:
    """Flush every file and folder under ``path`` to disk (before the rename that publishes it)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(Path(root))


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk, where the filesystem allows."""
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

