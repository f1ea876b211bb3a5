"""Training: the unmasking encoder, the teaching StyleGAN2 and the identity embedding.

``python -m unmask.train {encoder,identity,generator} --config configs/….yaml`` runs one kind
of training through :class:`unmask.train.loop.Trainer` (Hugging Face Accelerate; use
``accelerate launch -m unmask.train …`` for several GPUs or nodes). Each kind is a module of
this package defining ``TASK_CONFIG`` (its config sections) and ``Task`` (a ``TrainTask``).

Layout: ``loop`` (Trainer + TrainTask hooks), ``checkpoint`` (atomic save, exact resume, no pickles;
``convert_checkpoint`` converts one's own older runs),
``run_config`` (the ``train:`` section and section splitting, on :mod:`unmask.config`),
``seeding`` (per-step seeds), ``samples`` (validation grids); the tasks ``encoder``,
``identity``, ``generator`` (adversarial) and ``decoder`` (the teaching generator as a supervised
decoder of the world's factors). Nothing here is imported by ``import unmask``.
"""

from __future__ import annotations

TASKS = ("encoder", "identity", "generator", "decoder")
