"""Serving many callers at once: concurrent recoveries gathered into one batch of the models.

:class:`BatchingPipeline` wraps an :class:`unmask.pipeline.UnmaskPipeline`. Each call prepares its photo in its
own thread (decoding, detection, alignment: work that runs side by side on the cores), hands its aligned faces to
a :class:`MicroBatcher`, which runs the faces of every call that arrived meanwhile through
:meth:`~unmask.pipeline.UnmaskPipeline.recover_faces` at once, and composes its own photo. Only ``encoder`` mode is
gathered (one forward pass per face, where a batch shares the work); the optimising modes recover one face at a
time anyway and only take a turn on the models.

When a batch runs: at once when a model runner is free and no other call is on its way; while every runner is
busy it keeps gathering (up to ``max_batch`` faces); while other calls are still preparing it waits for them at
most ``max_wait_s``. A lone request therefore waits for nothing, and under load the batches grow by themselves.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from unmask.errors import ConfigError

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Faces in one batch of the models at most (the app's default).
MAX_BATCH = 8
#: Seconds a batch waits at most for calls that are still preparing their photos.
MAX_WAIT_S = 0.02


@dataclasses.dataclass
class _Batch:
    """The calls gathered into one run: each call's items, then each call's results (or the error it raised)."""

    calls: list[list[Any]] = dataclasses.field(default_factory=list)
    size: int = 0
    results: list[Any] = dataclasses.field(default_factory=list)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class MicroBatcher(Generic[Item, Result]):
    """Gather the items of concurrent callers and run them through ``run`` together.

    Args:
        run: ``run(items) -> results``, one result per item, in order (e.g. the models on a batch of faces).
        max_batch: items in one run at most (a caller with more runs them as a batch of its own).
        max_wait_s: how long a batch waits at most for callers announced by :meth:`slot` that have not
            submitted yet.
        max_running: runs at the same time at most (the cores' worth on a CPU, 1 on a GPU); while all are busy,
            new items gather into the next batch.

    A failed run is retried caller by caller, so an error stays with the caller whose items raised it.
    """

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], *, max_batch: int = MAX_BATCH,
                 max_wait_s: float = MAX_WAIT_S, max_running: int = 1) -> None:
        if max_batch < 1 or max_running < 1 or max_wait_s < 0:
            raise ConfigError(f"MicroBatcher needs max_batch >= 1, max_running >= 1 and max_wait_s >= 0, got "
                              f"{max_batch}, {max_running} and {max_wait_s}.")
        self._run = run
        self.max_batch, self.max_wait_s, self.max_running = max_batch, max_wait_s, max_running
        self._cond = threading.Condition()
        self._open: _Batch | None = None  # the batch that new items join
        self._arriving = 0  # callers inside slot() that have not submitted
        self._running = 0
        self._queue: collections.deque[_Batch] = collections.deque()  # batches waiting to run, oldest first
        self.batches = 0  # runs so far, and the items they held: the mean batch size is items / batches
        self.items = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[Callable[[list[Item]], list[Result]]]:
        """Announce a caller that will submit soon; yields its ``submit(items) -> results`` (call it once).

        A batch that is ready to run waits up to ``max_wait_s`` for announced callers, so wrap the caller's own
        preparation (decoding, detection) in the ``with`` block.
        """
        with self._cond:
            self._arriving += 1
        pending = [True]

        def submit(items: list[Item]) -> list[Result]:
            if not pending[0]:
                raise RuntimeError("submit() is called once per slot")
            pending[0] = False
            return self._submit(list(items), announced=True)

        try:
            yield submit
        finally:
            if pending[0]:  # left without submitting (its preparation raised): stop expecting it
                with self._cond:
                    self._arriving -= 1
                    self._cond.notify_all()

    def submit(self, items: list[Item]) -> list[Result]:
        """Run ``items`` with whatever other callers submit meanwhile; their results, in order."""
        return self._submit(list(items), announced=False)

    @contextlib.contextmanager
    def runner(self) -> Iterator[None]:
        """Hold one of the ``max_running`` runners for work that is not batched (e.g. a refinement)."""
        with self._cond:
            while self._running >= self.max_running:
                self._cond.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _submit(self, items: list[Item], *, announced: bool) -> list[Result]:
        with self._cond:
            if announced:
                self._arriving -= 1
            batch, leader = self._open, False
            if batch is None or (batch.size > 0 and batch.size + len(items) > self.max_batch):
                batch, leader = _Batch(), True  # a full open batch keeps its leader, who runs it
                self._open = batch
            index = len(batch.calls)
            batch.calls.append(items)
            batch.size += len(items)
            self._cond.notify_all()
            if leader:
                self._gather(batch)
        if leader:
            self._execute(batch)
        else:
            batch.done.wait()
        outcome = batch.results[index]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _gather(self, batch: _Batch) -> None:
        """(Under the lock.) Wait until ``batch`` may run (a runner is free and the batches formed before it have
        started: first come, first served), then close it to newcomers and take a runner."""
        deadline = time.monotonic() + self.max_wait_s
        self._queue.append(batch)
        while True:
            open_ = self._open is batch and batch.size < self.max_batch
            if self._running < self.max_running and self._queue[0] is batch:
                left = deadline - time.monotonic()
                if not (open_ and self._arriving > 0) or left <= 0:
                    break
                self._cond.wait(left)
            else:
                self._cond.wait()  # a runner finishing, or the batch ahead starting, notifies
        self._queue.popleft()
        if self._open is batch:
            self._open = None
        self._running += 1
        self._cond.notify_all()

    def _execute(self, batch: _Batch) -> None:
        try:
            flat = [item for call in batch.calls for item in call]
            try:
                results = list(self._run(flat))
                if len(results) != len(flat):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(flat)} items")
                start, outcomes = 0, []
                for call in batch.calls:
                    outcomes.append(results[start:start + len(call)])
                    start += len(call)
            except BaseException as exc:  # noqa: BLE001 - retried per caller so the error reaches its owner
                if len(batch.calls) == 1:
                    outcomes = [exc]
                else:
                    outcomes = [self._alone(call) for call in batch.calls]
            batch.results = outcomes
        finally:
            with self._cond:
                self._running -= 1
                self.batches += 1
                self.items += batch.size
                self._cond.notify_all()
            batch.done.set()

    def _alone(self, items: list[Item]) -> list[Result] | BaseException:
        try:
            return list(self._run(items))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            return exc


class BatchingPipeline:
    """An :class:`~unmask.pipeline.UnmaskPipeline` whose concurrent ``encoder`` calls share batches.

    Called like the pipeline (same arguments, same :class:`~unmask.recovery.UnmaskResult`); the result of a
    batched call equals that of the pipeline alone up to float rounding (tests/test_serving.py). ``pipe`` is the
    wrapped pipeline, for everything else (its config, verification).

    Args:
        pipe: the pipeline.
        max_batch / max_wait_s / max_running: as in :class:`MicroBatcher`.
    """

    def __init__(self, pipe, *, max_batch: int = MAX_BATCH, max_wait_s: float = MAX_WAIT_S,
                 max_running: int = 1) -> None:
        self.pipe = pipe
        self.batcher: MicroBatcher = MicroBatcher(self._recover, max_batch=max_batch, max_wait_s=max_wait_s,
                                                  max_running=max_running)

    def _recover(self, faces: list) -> list[tuple[Any, dict[str, float]]]:
        timings: dict[str, float] = {}
        results = self.pipe.recover_faces(faces, mode="encoder", timings=timings)  # the seconds of the whole batch
        return [(result, timings) for result in results]

    def __call__(self, image: Any, *, mode: str | None = None, steps: int | None = None, seed: int = 0,
                 mask: Any = None, aligned: bool = False, which: str = "largest",
                 progress: Callable[[float, str], None] | None = None):
        """:meth:`unmask.pipeline.UnmaskPipeline.__call__`, batched with concurrent calls in ``encoder`` mode."""
        mode = self.pipe.resolve_mode(mode)
        if mode != "encoder":
            with self.batcher.runner():
                return self.pipe(image, mode=mode, steps=steps, seed=seed, mask=mask, aligned=aligned, which=which,
                                 progress=progress)
        report = progress or (lambda fraction, message: None)
        start = time.perf_counter()
        with self.batcher.slot() as submit:
            report(0.05, "finding faces")
            prepared = self.pipe.prepare(image, mask=mask, aligned=aligned, which=which)
            report(0.1, "recovering")
            recovered = submit(list(prepared.faces))
        if recovered:
            prepared.timings.update(recovered[0][1])
        result = self.pipe.compose(prepared, [face for face, _ in recovered], mode=mode, start=start)
        report(1.0, "done")
        return result


__all__ = ["BatchingPipeline", "MicroBatcher", "MAX_BATCH", "MAX_WAIT_S"]
