"""Which models the app runs and how: the default bundle, one batching pipeline per bundle, warm start, the
steps a request may ask for, and how many requests run at once.

**The default bundle** (what ``auto`` means) is chosen once, at start, by :func:`choose_bundle`: ``--bundle``
of ``app.py``, else the ``UNMASK_BUNDLE`` environment variable, else ``ffhq`` only where its files are already in
the Hugging Face cache or a GPU is present, else ``teaching`` (offline, CPU). ``app.py`` prints the choice and why;
where ``ffhq`` must be downloaded it prints the size first, and huggingface_hub shows the progress.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import weakref
from typing import Any

#: The environment variable that names the default bundle (``app.py --bundle`` wins over it).
BUNDLE_ENV = "UNMASK_BUNDLE"
#: The bundle a CPU without cached ``ffhq`` files runs.
OFFLINE_BUNDLE = "teaching"
#: The environment variable that sets :data:`MAX_BATCH` (a GPU server may want more).
MAX_BATCH_ENV = "UNMASK_MAX_BATCH"
#: Faces of concurrent requests that may share one batch of the models (``unmask.serving``). On the CPU the
#: teaching StyleGAN2 costs the same per face in a batch (its modulated convolutions are per face), so larger
#: batches bought no throughput here and raised p95 latency and memory; the encoder and the identity network
#: do get cheaper per face (docs/serving.md).
MAX_BATCH = max(1, int(os.environ.get(MAX_BATCH_ENV, "4")))
#: Batches (or refinements) that run at the same time: one per CPU core, at most 4; on a GPU one.
MODEL_RUNNERS = max(1, min(4, os.cpu_count() or 1))
#: Requests the app works on at once (Gradio's ``concurrency_limit``): the runners' and one more batch's worth,
#: so a batch gathers while the runners are busy; with ``spaces`` (ZeroGPU, a GPU attached per call) one at a time.
CONCURRENCY_LIMIT = 1 if importlib.util.find_spec("spaces") is not None else MODEL_RUNNERS + MAX_BATCH
#: torch threads per process on a CPU: each runner has one. On a loaded 2-core machine the teaching example took
#: 170 ms with 1 thread and 1.8 s with 2 (threads spin-wait for a core).
TORCH_THREADS = max(1, (os.cpu_count() or 1) // MODEL_RUNNERS)
#: A refinement is capped to this many seconds, on every device, from a measured seconds-per-step: the ffhq one
#: at 256 px would take minutes on a CPU; the teaching one at 64 px never reaches it.
REFINE_BUDGET_S = 60.0
#: The most optimisation steps one request may ask for (the page's slider ends there); more is refused.
MAX_STEPS = 500
#: Seconds a ZeroGPU Space may hold the GPU for one request.
GPU_DURATION_S = 120
AUTO = "auto"

try:  # Hugging Face ZeroGPU: a GPU is attached only while a decorated function runs
    import spaces

    gpu = spaces.GPU(duration=GPU_DURATION_S)
except ImportError:  # not on a Space: the decorator does nothing
    def gpu(fn):
        return fn


def gpu_attached() -> bool:
    """A Space with the ``spaces`` package, or a local CUDA device."""
    import torch

    return importlib.util.find_spec("spaces") is not None or torch.cuda.is_available()


def configure_torch() -> None:
    """On a CPU, give torch ``TORCH_THREADS`` threads (each of the ``MODEL_RUNNERS`` runners uses one)."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(TORCH_THREADS)


# ---------------------------------------------------------------------------------------------- bundles
_OFFERED: list[str] | None = None
_DEFAULT: tuple[str, str] | None = None
_STATE_LOCK = threading.Lock()


def offered_bundles() -> list[str]:
    """The bundles that can load here (:func:`unmask.pipeline.available_bundles`), read once: asking the Hub
    and reading manifests on every request was work done again and again."""
    global _OFFERED
    with _STATE_LOCK:
        if _OFFERED is None:
            from unmask.pipeline import available_bundles

            _OFFERED = list(available_bundles())
        return list(_OFFERED)


def ffhq_cached() -> bool:
    """Whether every file of the ``ffhq`` bundle is in the Hugging Face cache (nothing to download)."""
    from unmask import bundle, hub

    return all(part.registry is not None and hub.registered_available(part.registry, ask_hub=False)
               for part in bundle.builtin_manifest("ffhq").components.values())


def choose_bundle(requested: str | None = None) -> tuple[str, str]:
    """The default bundle and why: ``requested`` (``app.py --bundle``), else ``UNMASK_BUNDLE``, else ``ffhq`` where
    its files are cached or a GPU is present (and the Hub answers), else ``teaching``.

    Raises:
        ConfigError: the bundle asked for is not one of the known bundles.
    """
    from unmask.errors import ConfigError
    from unmask.pipeline import BUNDLES

    known = sorted({*BUNDLES, "ffhq"})
    for value, where in ((requested, "--bundle"), (os.environ.get(BUNDLE_ENV), BUNDLE_ENV)):
        if value and value != AUTO:
            if value not in known:
                raise ConfigError(f"{where} {value!r} is not a bundle; choose one of {known} (or auto).")
            return value, f"{where} {value}"
    if ffhq_cached():
        return "ffhq", "its files are in the Hugging Face cache"
    if gpu_attached() and "ffhq" in offered_bundles():
        return "ffhq", "a GPU is present and the Hub answers"
    return OFFLINE_BUNDLE, "offline CPU default: ffhq is not cached and there is no GPU; --bundle ffhq chooses it"


def default_bundle() -> str:
    """The bundle ``auto`` means (chosen on first use by :func:`choose_bundle` unless :func:`set_default_bundle`
    chose it at start)."""
    return set_default_bundle(None, keep=True)[0]


def set_default_bundle(requested: str | None, *, keep: bool = False) -> tuple[str, str]:
    """Choose the default bundle now (:func:`choose_bundle`); ``keep``: a choice already made stands."""
    global _DEFAULT
    with _STATE_LOCK:
        if _DEFAULT is not None and keep:
            return _DEFAULT
    choice = choose_bundle(requested)
    with _STATE_LOCK:
        _DEFAULT = choice
    return choice


def download_plan(name: str) -> list[tuple[str, int | None]]:
    """The files that loading bundle ``name`` would download: ``(registry name, bytes or None if the Hub does not
    say)`` for each file of a built-in manifest that is not in the cache (empty for the shipped bundles)."""
    from unmask import bundle, hub

    if name not in bundle.builtin_manifests():
        return []
    plan = []
    for part in bundle.builtin_manifest(name).components.values():
        if part.registry is None or hub.registered_available(part.registry, ask_hub=False):
            continue
        plan.append((part.registry, _remote_size(part.registry)))
    return plan


def _remote_size(name: str) -> int | None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from unmask import hub

    entry = hub.REGISTRY[name]
    try:
        return get_hf_file_metadata(hf_hub_url(entry.repo_id, entry.filename, revision=entry.revision),
                                    timeout=10).size
    except Exception:  # noqa: BLE001 - offline or refused: the download itself will say why
        return None


def describe_download(plan: list[tuple[str, int | None]]) -> str:
    """One line for the console: how many files, how many bytes, where they go."""
    from huggingface_hub import constants

    sizes = [size for _, size in plan if size is not None]
    total = f"{sum(sizes) / 1e9:.2f} GB" + ("" if len(sizes) == len(plan) else " and more")
    files = ", ".join(f"{name} {size / 1e6:.0f} MB" if size else name for name, size in plan)
    return (f"downloading {len(plan)} files, {total} ({files}) into {constants.HF_HUB_CACHE}; progress below, once "
            "only")


# ---------------------------------------------------------------------------------------------- pipelines
_LOAD_LOCK = threading.Lock()
_PIPELINES: dict[str, Any] = {}


def load_pipeline(name: str):
    """One :class:`unmask.serving.BatchingPipeline` per bundle name, built on first use on the automatic device
    (CUDA when present); ``.pipe`` is the :class:`unmask.pipeline.UnmaskPipeline` inside."""
    with _LOAD_LOCK:
        if name not in _PIPELINES:
            from unmask.pipeline import UnmaskPipeline
            from unmask.serving import BatchingPipeline

            pipe = UnmaskPipeline.from_pretrained(name, device="auto")
            runners = 1 if pipe.device.type == "cuda" else MODEL_RUNNERS
            _PIPELINES[name] = BatchingPipeline(pipe, max_batch=MAX_BATCH, max_running=runners)
        return _PIPELINES[name]


def preload(bundles: list[str] | None = None) -> None:
    """Load the bundles now (ZeroGPU wants the models on cuda when the app starts)."""
    for name in bundles if bundles is not None else offered_bundles():
        load_pipeline(name)


# ---------------------------------------------------------------------------------------------- steps
#: pipeline -> its measured seconds per refinement step (:func:`seconds_per_refine_step`).
_SECONDS_PER_STEP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SECONDS_PER_STEP_LOCK = threading.Lock()


def seconds_per_refine_step(pipe, steps: int = 3) -> float:
    """Measured wall seconds of one ``encoder+refine`` step of ``pipe`` on its device (the first call for a
    pipeline times ``steps`` steps on a blank face, under a lock so that concurrent requests measure once;
    later calls return that number)."""
    with _SECONDS_PER_STEP_LOCK:
        if pipe not in _SECONDS_PER_STEP:
            import torch

            x = torch.zeros(1, 3, pipe.size, pipe.size)
            m = torch.zeros(1, 1, pipe.size, pipe.size)
            m[..., pipe.size // 2:, :] = 1.0
            pipe.recover_batch(x, m, mode="encoder+refine", steps=1)  # warm-up: first-call allocations
            timings: dict[str, float] = {}
            pipe.recover_batch(x, m, mode="encoder+refine", steps=steps, timings=timings)
            _SECONDS_PER_STEP[pipe] = timings["refine"] / steps
        return _SECONDS_PER_STEP[pipe]


def steps_error(steps: Any) -> str | None:
    """Why ``steps`` cannot be asked for (``None``: it can): a whole number from 0 (the bundle's default) to
    :data:`MAX_STEPS`."""
    try:
        value = float(steps or 0)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0 <= value <= MAX_STEPS) or value != int(value):
        return (f"steps must be a whole number from 0 (the bundle's default) to {MAX_STEPS}, got {steps!r}: one "
                f"request may hold the models for at most {MAX_STEPS} steps or {REFINE_BUDGET_S:.0f} s.")
    return None


def plan_steps(pipe, mode: str, steps: int) -> tuple[int | None, str]:
    """Steps to run and a note: 0 = the bundle's default; on every device capped to ``REFINE_BUDGET_S``.

    Raises:
        ConfigError: ``steps`` is negative, fractional or above :data:`MAX_STEPS`.
    """
    from unmask.errors import ConfigError

    message = steps_error(steps)
    if message is not None:
        raise ConfigError(message)
    n = int(steps) if steps else None
    if mode == "encoder":
        return n, ""
    if n is None:
        n = pipe.config.refine_steps if mode == "encoder+refine" else pipe.config.optimize_steps
    per_step = seconds_per_refine_step(pipe)
    cap = max(1, int(REFINE_BUDGET_S / per_step))
    if n > cap:
        return cap, (f"{pipe.device.type.upper()}: {n} steps capped to {cap} ({per_step:.2f} s per step measured, "
                     f"{REFINE_BUDGET_S:.0f} s budget per request).")
    return n, ""
