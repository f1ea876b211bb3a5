"""Benchmarks that print numbers: ``python -m unmask.bench {models,faces,synthetic,pipeline,train,identity,app}``.

A suite is a list of modules, each exposing ``main(argv: list[str] | None) -> None``, that
``python -m unmask.bench SUITE`` imports by name and runs in order with the same arguments. The
benchmark of a training step belongs to training (``unmask.train.bench``), so the ``train`` suite
names it and this package itself imports nothing from ``unmask.train``. Timings go to stdout as plain
tables; nothing here is asserted by tests.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable

#: suite -> the modules it runs, in order (imported only when the suite runs).
SUITES: dict[str, tuple[str, ...]] = {
    "models": ("unmask.bench.models",),
    "faces": ("unmask.bench.faces",),
    "synthetic": ("unmask.bench.synthetic",),
    "pipeline": ("unmask.bench.pipeline",),
    "train": ("unmask.train.bench",),
    "identity": ("unmask.bench.identity",),
    "app": ("unmask.bench.app",),
}


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_samples(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 5) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; return each timed run in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def time_call(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 5) -> dict[str, float]:
    """:func:`time_samples`' median/min/max milliseconds."""
    samples = time_samples(fn, warmup=warmup, repeat=repeat)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples)}


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned text table under ``title``."""
    print(f"\n== {title} ==  (cpus={os.cpu_count()})")
    if not rows:
        print("(no rows)")
        return
    keys = list(rows[0].keys())
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
