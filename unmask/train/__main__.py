"""``python -m unmask.train {encoder,identity,generator,decoder} --config CONFIG.yaml [options]``.

The config is parsed once here (YAML -> frozen dataclasses, unknown keys rejected) and saved
with every checkpoint. Multi-GPU / multi-node: ``accelerate launch -m unmask.train …``.
``python -m unmask.train convert-checkpoint RUN_DIR --trust`` converts one's own run saved by an
older unmask (:mod:`unmask.train.convert_checkpoint`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from unmask.errors import ConfigError, UnmaskError
from unmask.train import TASKS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unmask.train",
        description="Train an unmask model: the unmasking encoder, the identity embedding, or the teaching StyleGAN2 "
                    "(adversarially: generator; as a supervised decoder of the world's factors: decoder).",
        epilog="A run saved by an older unmask (pickled checkpoints) resumes after a one-time conversion, for your "
               "own runs only: python -m unmask.train convert-checkpoint RUN_DIR --trust")
    parser.add_argument("kind", choices=TASKS, help="what to train")
    parser.add_argument("--config", required=True, help="run config YAML (train:, model:, data:, … sections)")
    parser.add_argument("--resume", default=None, metavar="PATH|latest",
                        help="a checkpoint folder, a run folder, or latest (newest of --output-dir)")
    parser.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--output-dir", default=None, help="override train.output_dir")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO", help="push the exported model to this Hub repo")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config value, e.g. --set model.size=32 (repeatable; values are YAML)")
    return parser


def load_task(kind: str):
    """The task module ``unmask.train.<kind>`` (imported lazily: each pulls in its own models)."""
    module = importlib.import_module(f"unmask.train.{kind}")
    for attr in ("TASK_CONFIG", "Task"):
        if not hasattr(module, attr):
            raise ConfigError(f"unmask.train.{kind} defines no {attr}; it cannot be run by python -m unmask.train.")
    return module


def prepare(kind: str, config: str, overrides: Sequence[str] = (), *, max_steps: int | None = None,
            output_dir: str | None = None, push_to_hub: str | None = None):
    """Parse the config and build ``(Trainer, task)`` without running anything."""
    from unmask.train.loop import Trainer
    from unmask.train.run_config import load_run_config

    module = load_task(kind)
    extra = list(overrides)
    if max_steps is not None:
        extra.append(f"train.max_steps={max_steps}")
    if output_dir is not None:
        extra.append(f"train.output_dir={output_dir!s}")
    if push_to_hub is not None:
        extra.append(f"train.push_to_hub={push_to_hub}")
    train_config, task_config, full = load_run_config(config, module.TASK_CONFIG, extra)
    task = module.Task(task_config)
    return Trainer(train_config, task, full_config=full), task


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["convert-checkpoint"]:
        from unmask.train.convert_checkpoint import main as convert_main

        return convert_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        trainer, _task = prepare(args.kind, args.config, args.overrides, max_steps=args.max_steps,
                                 output_dir=args.output_dir, push_to_hub=args.push_to_hub)
        result = trainer.fit(resume=args.resume)
    except UnmaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: step {result['step']}, checkpoint {result['checkpoint']}, model {result['export_dir']}")
    for key, value in result["metrics"].items():
        print(f"  {key}: {value:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
