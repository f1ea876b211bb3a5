"""Benchmarks that print numbers: ``python -m unmask.bench SUITE``, a suite of :data:`SUITES` (models, generator,
faces, synthetic, pipeline, train, identity, app, provenance).

A suite is a list of modules, each exposing ``main(argv: list[str] | None) -> None``, that
``python -m unmask.bench SUITE`` imports by name and runs in order with the same arguments. The
benchmark of a training step belongs to training (``unmask.train.bench``), so the ``train`` suite
names it and this package itself imports nothing from ``unmask.train``. Timings go to stdout as plain
tables (:mod:`unmask.measure`); nothing here is asserted by tests.
"""

from __future__ import annotations

#: suite -> the modules it runs, in order (imported only when the suite runs).
SUITES: dict[str, tuple[str, ...]] = {
    "models": ("unmask.bench.models",),
    "generator": ("unmask.bench.generator",),
    "faces": ("unmask.bench.faces",),
    "synthetic": ("unmask.bench.synthetic",),
    "pipeline": ("unmask.bench.pipeline",),
    "train": ("unmask.train.bench",),
    "identity": ("unmask.bench.identity",),
    "app": ("unmask.bench.app",),
    "provenance": ("unmask.bench.provenance",),
}
