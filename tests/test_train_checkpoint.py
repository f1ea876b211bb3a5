"""Checkpoints that open without running code: what they hold, exact resumption after SIGKILL, refusal of
pickles, and the opt-in conversion of runs saved by an older unmask (Accelerate's ``save_state``)."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_harness import ToyTask, _config, _weights

from unmask.errors import WeightsError
from unmask.train import checkpoint as ckpt
from unmask.train.__main__ import main
from unmask.train.loop import Trainer

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


class OpensAFile:
    """A hostile pickle made visible: unpickling it creates ``path`` (any other call would run just as well)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def assert_same_run(a: ToyTask, b: ToyTask) -> None:
    for key, value in _weights(a).items():
        assert torch.equal(value, _weights(b)[key]), key
    state_a, state_b = a.opt.state_dict()["state"], b.opt.state_dict()["state"]
    for index, slots in state_a.items():
        for name, value in slots.items():
            assert torch.equal(value, state_b[index][name]), (index, name)
    assert torch.equal(a.ema, b.ema)
    assert a.sched.get_last_lr() == b.sched.get_last_lr()


def straight_run(tmp_path: Path, max_steps: int = 6) -> ToyTask:
    task = ToyTask()
    Trainer(_config(tmp_path / "straight", max_steps=max_steps), task).fit()
    return task


def test_a_checkpoint_is_safetensors_json_and_weights_only_torch(tmp_path):
    Trainer(_config(tmp_path, max_steps=2), ToyTask()).fit()
    folder = ckpt.checkpoint_dirs(tmp_path / "run")[-1]
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml", "model.safetensors", "optimizer.pt", "rng_state_0.json", "rng_state_0.safetensors",
        "scheduler.pt", "task_state.pt", "trainer_state.json"]
    assert ckpt.pickle_files(folder) == []
    for name in ("optimizer.pt", "scheduler.pt", "task_state.pt"):
        torch.load(folder / name, weights_only=True)
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["format"] == ckpt.FORMAT and state["step"] == 2 and state["accelerator_step"] == 2
    assert len(json.loads((folder / "rng_state_0.json").read_text())["python"]["state"]) == 625


def test_rng_state_round_trips_through_tensors_and_json(tmp_path):
    random.gauss(0, 1)  # leave a cached Gaussian in python's and numpy's states: those must survive too
    np.random.standard_normal()  # noqa: NPY002
    ckpt.RngState.capture().write(tmp_path, 3)

    def draw():
        return (random.random(), random.gauss(0, 1), np.random.standard_normal(), np.random.rand(),  # noqa: NPY002
                torch.rand(3).tolist())

    expected = draw()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # noqa: NPY002
    assert draw() != expected
    ckpt.RngState.read(tmp_path, 3).restore()
    assert draw() == expected
    assert ckpt.RngState.read(tmp_path, 4) is None  # a process that saved nothing


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path

    import torch

    sys.path.insert(0, {tests!r})
    from test_train_harness import ToyTask, _config
    from unmask.train.loop import Trainer

    torch.set_num_threads(min(2, os.cpu_count() or 1))  # as in conftest.py
    where, kill_at = sys.argv[2], int(sys.argv[3])


    class KilledTask(ToyTask):
        def training_step(self, step):
            if where == "mid-step" and step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().training_step(step)

        def state_dict(self):  # called while the checkpoint after step kill_at - 1 is being written
            if where == "mid-checkpoint" and self.step_seen + 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().state_dict()


    Trainer(_config(Path(sys.argv[1]), max_steps=6), KilledTask()).fit()
    """)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
@pytest.mark.parametrize(("where", "kill_at", "latest"), [("mid-step", 5, 4), ("mid-checkpoint", 4, 2)])
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, where, kill_at, latest):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN.format(tests=str(TESTS)), str(tmp_path), where,
                           str(kill_at)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = tmp_path / "run"
    assert ckpt.resolve_checkpoint("latest", run).name == f"step-{latest:08d}"
    if where == "mid-checkpoint":  # killed with the model written and the task state not: never listed
        half = run / "checkpoints" / f".tmp-step-{kill_at:08d}"
        assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()

    resumed = ToyTask()
    result = Trainer(_config(tmp_path, max_steps=6), resumed).fit(resume="latest")
    assert result["step"] == 6
    assert_same_run(straight_run(tmp_path), resumed)


def _plant_random_states(folder: Path, marker: Path) -> None:
    (folder / "random_states_0.pkl").write_bytes(pickle.dumps(OpensAFile(marker)))


def _plant_disguised(folder: Path, marker: Path) -> None:
    (folder / "notes.txt").write_bytes(pickle.dumps(OpensAFile(marker)))


def _plant_in_optimizer(folder: Path, marker: Path) -> None:
    torch.save({"state": {}, "param_groups": [OpensAFile(marker)]}, folder / "optimizer.pt")


def _plant_in_task_state(folder: Path, marker: Path) -> None:
    torch.save(OpensAFile(marker), folder / "task_state.pt")


@pytest.mark.parametrize(("plant", "named"), [
    (_plant_random_states, r"holds a pickle \(random_states_0\.pkl\)"),
    (_plant_disguised, r"holds a pickle \(notes\.txt\)"),
    (_plant_in_optimizer, r"optimizer\.pt fails a weights-only load"),
    (_plant_in_task_state, r"task_state\.pt fails a weights-only load"),
])
def test_a_checkpoint_holding_a_pickle_is_refused_without_running_it(tmp_path, plant, named):
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(OpensAFile(live))).close()
    assert live.exists()  # the trap works: had the checkpoint been unpickled, the marker would exist

    Trainer(_config(tmp_path, max_steps=2), ToyTask()).fit()
    run = tmp_path / "run"
    marker = tmp_path / "ran"
    plant(ckpt.checkpoint_dirs(run)[-1], marker)
    with pytest.raises(WeightsError, match=named + rf".*`python -m unmask.train convert-checkpoint {run} --trust`"):
        Trainer(_config(tmp_path, max_steps=4), ToyTask()).fit(resume="latest")
    assert not marker.exists()


def test_saving_a_task_state_that_would_need_unpickling_fails_at_once(tmp_path):
    class DatedTask(ToyTask):
        def state_dict(self):
            return {**super().state_dict(), "started": datetime.date(2024, 1, 1)}

    with pytest.raises(WeightsError, match=r"task_state\.pt\['started'\] is a datetime\.date"):
        Trainer(_config(tmp_path, max_steps=2), DatedTask()).fit()


def save_like_older_unmask(accelerator, output_dir, step, *, task_state, config, info, keep):
    """How unmask wrote a checkpoint before the pickle-free format (one process): Accelerate's save_state
    (``random_states_0.pkl``, ``optimizer.bin``…), the task state, the config and ``trainer_state.json``."""
    import yaml

    folder = Path(output_dir) / "checkpoints" / f"step-{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    accelerator.save_state(str(folder))
    torch.save(task_state() if callable(task_state) else task_state, folder / "task_state.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False), "utf-8")
    state = {"step": step, **info, "num_processes": accelerator.num_processes, "torch": torch.__version__}
    (folder / "trainer_state.json").write_text(json.dumps(state, indent=2), "utf-8")
    return folder


def test_an_older_run_is_refused_then_converted_with_trust_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as patch:
        patch.setattr(ckpt, "save_checkpoint", save_like_older_unmask)
        Trainer(_config(tmp_path, max_steps=3), ToyTask()).fit()
    run = tmp_path / "run"
    folders = ckpt.checkpoint_dirs(run)
    assert [f.name for f in folders] == ["step-00000002", "step-00000003"]
    assert (folders[-1] / "random_states_0.pkl").is_file() and (folders[-1] / "optimizer.bin").is_file()

    with pytest.raises(WeightsError, match=rf"random_states_0\.pkl.*convert-checkpoint {run} --trust"):
        Trainer(_config(tmp_path, max_steps=6), ToyTask()).fit(resume="latest")

    before = {p.name: p.read_bytes() for p in folders[-1].iterdir()}
    assert main(["convert-checkpoint", str(run)]) == 2  # no --trust: nothing read, nothing changed
    assert "--trust" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folders[-1].iterdir()} == before

    assert main(["convert-checkpoint", str(run), "--trust"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"converted: {folder}" for folder in folders]
    for folder in folders:
        assert ckpt.pickle_files(folder) == [] and not list(folder.glob("*.bin"))
        assert json.loads((folder / "trainer_state.json").read_text())["format"] == ckpt.FORMAT
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]

    resumed = ToyTask()
    Trainer(_config(tmp_path, max_steps=6), resumed).fit(resume=folders[-1])
    assert_same_run(straight_run(tmp_path), resumed)
    capsys.readouterr()  # the trainers' own output (the precision line)

    assert main(["convert-checkpoint", str(run), "--trust"]) == 0  # idempotent: new checkpoints are left alone
    assert all(line.startswith("already pickle-free: ") for line in capsys.readouterr().out.splitlines())


class ScaledTask(ToyTask):
    """ToyTask with a grad scaler (Accelerate makes one for fp16 on CUDA; a CPU one stands in for it here)."""

    def setup(self, accelerator):
        accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2)
        super().setup(accelerator)  # prepare() hands the scaler to the optimiser


def test_grad_scaler_state_resumes_exactly(tmp_path):
    straight = ScaledTask()
    Trainer(_config(tmp_path / "straight"), straight).fit()
    Trainer(_config(tmp_path, max_steps=3), ScaledTask()).fit()
    assert json.loads((ckpt.checkpoint_dirs(tmp_path / "run")[-1] / "trainer_state.json").read_text())["scaler"]
    resumed = ScaledTask()
    Trainer(_config(tmp_path), resumed).fit(resume="latest")
    assert_same_run(straight, resumed)
    scale = resumed.accelerator.scaler.state_dict()
    assert scale == straight.accelerator.scaler.state_dict() and scale["scale"] > 2.0 ** 10  # it grew, and resumed

    with pytest.raises(WeightsError, match=r"holds .*'scaler': True.*this task prepares .*'scaler': False"):
        Trainer(_config(tmp_path, max_steps=8), ToyTask()).fit(resume="latest")


DDP_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path

    sys.path.insert(0, {tests!r})
    from test_train_harness import ToyTask, _config
    from unmask.train.loop import Trainer

    output, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    task = ToyTask()
    Trainer(_config(output, max_steps=max_steps, cpu=True, export=True), task).fit(resume=sys.argv[3] or None)
    assert task.accelerator.num_processes == 2 and task.accelerator.distributed_type.value == "MULTI_CPU"
    """)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_two_processes_write_and_read_their_states_and_resume_exactly(tmp_path):
    """DDP on CPU (gloo) through torchrun, as ``accelerate launch`` runs several GPUs: rank 0 writes the shared
    state, each rank its RNG state; a 2-process run resumed from step 3 ends where a straight one does."""
    from app_server import free_port

    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_RUN.format(tests=str(TESTS)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}

    def launch(output: Path, max_steps: int, resume: str = "") -> None:
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(free_port()), str(script), str(output), str(max_steps), resume],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]

    launch(tmp_path / "b", 3)
    folder = ckpt.checkpoint_dirs(tmp_path / "b" / "run")[-1]
    assert {"rng_state_0.safetensors", "rng_state_1.safetensors", "rng_state_1.json"} <= {
        p.name for p in folder.iterdir()}
    assert json.loads((folder / "trainer_state.json").read_text())["num_processes"] == 2
    assert not any(k.startswith("module.") for k in ckpt.read_model_file(folder / "model.safetensors"))
    launch(tmp_path / "b", 6, "latest")
    launch(tmp_path / "a", 6)
    for name in ("model/toy.pt", "checkpoints/step-00000006/task_state.pt"):
        a = torch.load(tmp_path / "a" / "run" / name, weights_only=True)
        b = torch.load(tmp_path / "b" / "run" / name, weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
