"""Training: the unmasking encoder, the teaching StyleGAN2 and the identity embedding.

``python -m unmask.train {encoder,identity,generator} --config configs/….yaml`` runs one kind
of training through :class:`unmask.train.harness.Trainer` (Hugging Face Accelerate; use
``accelerate launch -m unmask.train …`` for several GPUs or nodes). Each kind is a module of
this package defining ``TASK_CONFIG`` (its config sections) and ``Task`` (a ``TrainTask``).
Nothing here is imported by ``import unmask``.
"""

from __future__ import annotations

TASKS = ("encoder", "identity", "generator")
