"""Old import path of the training loop, split into loop / checkpoint / run_config / seeding modules.

Kept only because ``unmask/train/data.py`` (moving to ``unmask/data/``) imports ``batch_seed``
from here; delete this module once nothing imports it. New code imports from
:mod:`unmask.train.loop`, :mod:`unmask.train.checkpoint`, :mod:`unmask.train.run_config` and
:mod:`unmask.train.seeding`.
"""

from __future__ import annotations

from unmask.train.checkpoint import checkpoint_dirs, resolve_checkpoint
from unmask.train.loop import Trainer, TrainTask
from unmask.train.run_config import TrainConfig, load_run_config
from unmask.train.seeding import batch_seed, seeded_generator

__all__ = ["TrainConfig", "TrainTask", "Trainer", "batch_seed", "checkpoint_dirs", "load_run_config",
           "resolve_checkpoint", "seeded_generator"]
