"""Timing, peak memory and plain-text tables: what ``unmask.bench`` and ``unmask.evaluate`` print with.

Neutral ground (standard library only) so that neither of those packages imports the other for it.
"""

from __future__ import annotations

import collections
import functools
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable


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


class StageClock:
    """CPU seconds of this thread per named stage, each stage *exclusive* of the stages called inside it.

    :meth:`wrap` a function as a stage; a wrapped call inside another (e.g. the XMP packet built while an image is
    encoded) is charged to the inner stage only, so the stages add up to the time spent in all of them. CPU time
    (``time.thread_time``) does not count waiting for a core, so a loaded machine inflates it far less than wall time.
    """

    def __init__(self) -> None:
        self.cpu_s: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self._local = threading.local()

    def wrap(self, fn: Callable, stage: str) -> Callable:
        """``fn``, charging its CPU time to ``stage``."""
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                total = time.thread_time() - start
                inner = stack.pop()
                self.cpu_s[stage] += total - inner
                self.calls[stage] += 1
                if stack:
                    stack[-1] += total

        return timed

    def reset(self) -> None:
        self.cpu_s.clear()
        self.calls.clear()


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
