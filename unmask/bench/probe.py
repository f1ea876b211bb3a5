"""``python -m unmask.bench.probe SCRIPT``: run ``SCRIPT`` as ``__main__`` with a sampler thread inside it.

What a soak benchmark cannot read from outside the server: Python object counts by type and, as an
experiment, ``tracemalloc`` snapshots. Standard library only; configured by environment variables so that
the script sees its usual ``sys.argv``:

- ``UNMASK_PROBE_OUT``: a folder; every ``UNMASK_PROBE_INTERVAL`` seconds (default 10) the sampler appends
  one JSON line to ``samples.jsonl`` there: ``{"t": unix time, "objects": total gc-tracked objects,
  "types": {type name: count} for the ``UNMASK_PROBE_TYPES`` (default 60) most common types, "gc_s": seconds
  spent in the garbage collector so far, "gc_collections": collections so far per generation}``;
- ``UNMASK_PROBE_TRACEMALLOC=N``: also trace allocations (``N`` frames) and dump a snapshot per sample to
  ``snapshot-K.tracemalloc`` (slow: for finding a leak, never for timing);
- ``UNMASK_PROBE_STACKS=SECONDS``: also sample every thread's Python stack that often (a poor man's
  sampling profiler: time in native code counts for the Python function that called it) and write, per
  sample, ``stacks.json``: how many samples each function was on a busy thread's stack (inclusive) and at
  its top (exclusive). A thread whose top frame is a known wait (locks, ``select``, queues) is idle.

Counting walks every gc-tracked object (tens of milliseconds for a loaded app), so keep the interval at
seconds, not milliseconds.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path


class GcTimer:
    """Seconds spent in the garbage collector, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.collections[info["generation"]] += 1


def count_objects(top: int) -> tuple[int, dict[str, int]]:
    """``(total, {type name: count})`` over the gc-tracked objects, the ``top`` most common types."""
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    return sum(counts.values()), dict(counts.most_common(top))


#: Top-of-stack functions of a thread that is waiting, not working.
IDLE = frozenset({"wait", "select", "poll", "_wait_for_tstate_lock", "get", "accept", "sleep", "epoll",
                  "_worker", "run_forever", "_run_once", "recv_into", "readinto", "join"})


class StackSampler:
    """Counts, every ``period`` seconds, the functions on each busy thread's Python stack."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.inclusive: collections.Counter = collections.Counter()
        self.exclusive: collections.Counter = collections.Counter()
        self.samples = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        me = threading.get_ident()
        while True:
            time.sleep(self.period)
            frames = sys._current_frames()
            with self.lock:
                self.samples += 1
                for ident, frame in frames.items():
                    if ident == me or frame.f_code.co_name in IDLE:
                        continue
                    self.exclusive[_where(frame)] += 1
                    seen = set()
                    while frame is not None:
                        key = _where(frame)
                        if key not in seen:
                            seen.add(key)
                            self.inclusive[key] += 1
                        frame = frame.f_back

    def dump(self, path: Path, top: int = 300) -> None:
        with self.lock:
            data = {"samples": self.samples, "period": self.period,
                    "inclusive": self.inclusive.most_common(top), "exclusive": self.exclusive.most_common(top)}
        path.write_text(json.dumps(data, indent=1))


def _where(frame) -> str:
    code = frame.f_code
    return f"{Path(code.co_filename).parent.name}/{Path(code.co_filename).name}:{code.co_name}"


def sample_forever(out: Path, interval: float, top: int, trace: bool, stacks: StackSampler | None) -> None:
    import tracemalloc

    timer = GcTimer()
    gc.callbacks.append(timer)
    k = 0
    while True:
        time.sleep(interval)
        if stacks is not None:
            stacks.dump(out / "stacks.json")
        total, types = count_objects(top)
        with open(out / "samples.jsonl", "a") as handle:
            handle.write(json.dumps({"t": time.time(), "objects": total, "types": types, "gc_s": sum(timer.seconds),
                                     "gc_collections": timer.collections}) + "\n")
        if trace:
            tracemalloc.take_snapshot().dump(str(out / f"snapshot-{k}.tracemalloc"))
        k += 1


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m unmask.bench.probe SCRIPT [ARGS...]")
    out = os.environ.get("UNMASK_PROBE_OUT")
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        frames = int(os.environ.get("UNMASK_PROBE_TRACEMALLOC", "0"))
        if frames:
            import tracemalloc

            tracemalloc.start(frames)
        period = float(os.environ.get("UNMASK_PROBE_STACKS", "0"))
        stacks = StackSampler(period) if period > 0 else None
        if stacks is not None:
            threading.Thread(target=stacks.run, name="unmask-probe-stacks", daemon=True).start()
        threading.Thread(target=sample_forever, name="unmask-probe", daemon=True,
                         args=(out_dir, float(os.environ.get("UNMASK_PROBE_INTERVAL", "10")),
                               int(os.environ.get("UNMASK_PROBE_TYPES", "60")), frames > 0, stacks)).start()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
