"""Concurrent recoveries gathered into batches: the batcher's rules, and batched results equal to the pipeline's."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from unmask.errors import ConfigError
from unmask.pipeline import WEIGHTS_DIR, UnmaskPipeline
from unmask.serving import BatchingPipeline, MicroBatcher

EXAMPLES = sorted((WEIGHTS_DIR.parent / "demo" / "examples").glob("teaching_*.png"))
needs_teaching = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                    reason="teaching weights not present")


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _submit_while_busy(batcher: MicroBatcher, calls: list[list]) -> list:
    """Submit each call from its own thread while the only runner is held, so that all of them gather; then
    release the runner. Returns each call's results (or the exception it raised)."""
    outcomes: list = [None] * len(calls)

    def one(i: int) -> None:
        try:
            outcomes[i] = batcher.submit(calls[i])
        except Exception as exc:  # noqa: BLE001 - the test reads it
            outcomes[i] = exc

    with batcher.runner():
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        _wait_until(lambda: batcher._open is not None and batcher._open.size == sum(map(len, calls)))
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_callers_that_arrive_while_the_runner_is_busy_share_one_run():
    runs = []
    batcher = MicroBatcher(lambda items: runs.append(list(items)) or [10 * x for x in items], max_batch=8)
    outcomes = _submit_while_busy(batcher, [[1], [2, 3], [4]])
    assert len(runs) == 1 and sorted(runs[0]) == [1, 2, 3, 4]
    assert outcomes == [[10], [20, 30], [40]]  # each caller gets its own items' results, in order
    assert (batcher.batches, batcher.items) == (1, 4)
    assert batcher.submit([5]) == [50]  # alone, with the runner free: runs at once


def test_a_batch_holds_at_most_max_batch_items():
    runs = []
    batcher = MicroBatcher(lambda items: runs.append(len(items)) or list(items), max_batch=2)
    outcomes = _submit_while_busy(batcher, [[1, 2]]) + [batcher.submit([3, 4, 5])]
    assert outcomes == [[1, 2], [3, 4, 5]] and runs == [2, 3]  # a caller with more items than that runs alone


def test_an_error_stays_with_the_caller_that_caused_it():
    def run(items):
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]

    batcher = MicroBatcher(run, max_batch=8)
    good, bad = _submit_while_busy(batcher, [["a"], ["bad"]])
    assert good == ["A"] and isinstance(bad, ValueError)


def test_a_slot_left_without_submitting_is_not_waited_for():
    batcher = MicroBatcher(lambda items: items, max_wait_s=30.0)
    with pytest.raises(RuntimeError, match="no face"):
        with batcher.slot():
            raise RuntimeError("no face")  # e.g. the photo's preparation failed
    t0 = time.monotonic()
    assert batcher.submit([1]) == [1] and time.monotonic() - t0 < 5.0  # nobody is expected: no 30 s wait
    with pytest.raises(ConfigError, match="max_batch"):
        MicroBatcher(lambda items: items, max_batch=0)


@needs_teaching
@pytest.mark.slow
def test_batched_recoveries_equal_the_pipelines_alone(astronaut):
    """The app's path (concurrent requests batched) gives what the pipeline gives each photo alone: the same
    masks, the same recovered faces up to float rounding of a batched convolution, the same pasted photos."""
    from unmask.faces.io import load_image

    pipe = UnmaskPipeline.from_pretrained("teaching", device="cpu", precision="fp32")
    photos = [load_image(path) for path in EXAMPLES]
    requests = [dict(image=photo, aligned=True) for photo in photos]
    painted = np.zeros(photos[0].shape[:2], np.float32)
    painted[photos[0].shape[0] // 2:] = 1.0
    requests += [dict(image=photos[0], aligned=True, mask=painted),  # a painted mask beside predicted ones
                 dict(image=astronaut, aligned=False)]  # a real photo: detection, alignment
    alone = [pipe(mode="encoder", **kw) for kw in requests]

    serving = BatchingPipeline(pipe, max_batch=16)
    together: list = [None] * len(requests)
    with serving.batcher.runner():  # hold the models so every request joins one batch
        threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, serving(mode="encoder", **requests[i])))
                   for i in range(len(requests))]
        for t in threads:
            t.start()
        _wait_until(lambda: serving.batcher._open is not None and serving.batcher._open.size == len(requests))
    for t in threads:
        t.join(timeout=60)
    assert serving.batcher.batches == 1 and serving.batcher.items == len(requests)
    for a, b in zip(alone, together):
        fa, fb = a.faces[0], b.faces[0]
        assert fa.mask_source == fb.mask_source
        np.testing.assert_array_equal(fa.mask, fb.mask)
        torch.testing.assert_close(fa.w_plus, fb.w_plus, atol=1e-4, rtol=1e-4)
        assert np.abs(fa.recovered.astype(int) - fb.recovered.astype(int)).max() <= 1  # float rounding at most
        assert np.abs(a.output.astype(int) - b.output.astype(int)).max() <= 1
        assert fa.region == fb.region and a.mode == b.mode == "encoder"
        assert fa.identity_similarity == pytest.approx(fb.identity_similarity, abs=1e-4)
    assert [f.mask_source for r in together for f in r.faces][-2:] == ["painted", "predicted"]
