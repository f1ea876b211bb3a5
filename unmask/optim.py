"""The one learning-rate schedule: linear warm-up, then an optional cosine decay.

Every trainer (``unmask.train``) and the optimisation-based inversion (``unmask.invert``) call
:func:`lr_factor` with their step and set the optimiser's learning rate from it (:func:`set_lr`)
before each step. The rate is a pure function of the step, so there is no scheduler state to
checkpoint, and it cannot drift with the number of processes: a PyTorch scheduler passed through
``accelerator.prepare`` is stepped ``num_processes`` times per optimisation step, which ends a
cosine N times early on N GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from unmask.errors import ConfigError

#: ``constant``: warm-up only; ``cosine``: warm-up, then a half cosine down to ``min_ratio``.
SCHEDULES = ("constant", "cosine")


def lr_factor(step: float, total: float, *, warmup: float = 0.0, schedule: str = "cosine",
              decay_start: float | None = None, min_ratio: float = 0.0, warmup_from_zero: bool = False) -> float:
    """Multiplier of the peak learning rate at ``step`` of a run of ``total`` steps.

    * **Warm-up** while ``step < warmup``: linear, ``(step + 1) / warmup`` (the first step already
      moves), or ``step / warmup`` with ``warmup_from_zero`` (StyleGAN2's projector: step 0 has rate 0).
    * **Cosine decay** (``schedule="cosine"``) from ``decay_start`` (default: the end of the
      warm-up) to ``total``: ``min_ratio + (1 - min_ratio) * (1 + cos(pi * progress)) / 2``;
      the two factors multiply where they overlap.

    Steps and lengths may be fractions (the inversion passes its progress ``t`` in ``[0, 1)``
    with ``total = 1``).

    Args:
        step: the current step (``>= 0``).
        total: steps of the run; the decay reaches ``min_ratio`` there.
        warmup: warm-up length (0: none).
        schedule: one of :data:`SCHEDULES`.
        decay_start: where the cosine starts; ``None`` = ``warmup``.
        min_ratio: floor of the cosine as a fraction of the peak.
        warmup_from_zero: start the warm-up at 0 instead of ``1 / warmup``.

    Raises:
        ConfigError: unknown schedule or a ``min_ratio`` outside ``[0, 1]``.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"learning-rate schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if not 0.0 <= min_ratio <= 1.0:
        raise ConfigError(f"min_lr_ratio must lie in [0, 1], got {min_ratio}.")
    scale = 1.0
    if warmup > 0 and step < warmup:
        scale = (step if warmup_from_zero else step + 1) / warmup
    start = warmup if decay_start is None else decay_start
    if schedule == "cosine" and step >= start:
        span = total - start
        progress = 1.0 if span <= 0 else min(1.0, (step - start) / span)
        scale *= min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return scale


def set_lr(param_groups: Iterable[dict[str, Any]], lr: float) -> None:
    """Set ``lr`` on every parameter group (pass ``optimizer.param_groups``)."""
    for group in param_groups:
        group["lr"] = lr


__all__ = ["SCHEDULES", "lr_factor", "set_lr"]
