"""One precision switch for training and inference: ``auto``, ``fp32`` or ``bf16``.

``auto`` means bfloat16 where the hardware has bf16 matrix units and float32 elsewhere:

* **CUDA**: bf16 where the GPU supports it (``torch.cuda.is_bf16_supported()``: Ampere and newer).
* **CPU**: bf16 only on CPUs whose flags (``/proc/cpuinfo``) list ``amx_bf16`` or ``avx512_bf16`` *and*
  where a short probe confirms that a bf16 matrix product is actually faster than a float32 one. On
  other CPUs PyTorch emulates bf16: on an AVX2-only AMD EPYC (Zen 2) a 3×3 convolution runs 11× and a
  matrix product 300× slower in bf16 than in float32 (``python -m unmask.bench train``), so ``auto``
  keeps float32 there, silently.

Whatever the choice, losses, metrics, normalisation statistics, demodulation norms, identity cosines
and optimiser state stay in float32: models run their matrix products under :func:`autocast`, and the
code around them casts back with ``.float()``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass

import torch

from unmask.errors import ConfigError

#: The values every ``precision`` option accepts.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: CPU flags that mean bf16 matrix instructions in hardware (Intel AMX tiles, AVX-512 BF16).
CPU_BF16_FLAGS: frozenset[str] = frozenset({"amx_bf16", "avx512_bf16"})
#: ``auto`` takes bf16 on a CPU only if the probe's bf16 matrix product is at least this much faster.
MIN_BF16_SPEEDUP = 1.5
#: Side of the square matrices the probe multiplies (large enough to reach the matrix units, ~10 ms).
PROBE_SIZE = 512
#: Environment variable that overrides ``auto`` everywhere (``fp32`` or ``bf16``), e.g. for CI or a bug report.
PRECISION_ENV = "UNMASK_PRECISION"


@dataclass(frozen=True)
class PrecisionChoice:
    """What a ``precision`` option resolved to, and why (for logs, run configs and model cards).

    Attributes:
        precision: ``"fp32"`` or ``"bf16"`` (``"fp16"`` only for a training run that asked for it on CUDA).
        requested: what the caller asked for (``auto``, ``fp32`` or ``bf16``).
        reason: one sentence a person can read, e.g. "CPU without bf16 matrix units".
    """

    precision: str
    requested: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        """The autocast dtype (``torch.bfloat16``) or ``torch.float32``."""
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    @property
    def mixed_precision(self) -> str:
        """Accelerate's name for it: ``"bf16"``, ``"fp16"`` (training on CUDA only) or ``"no"``."""
        return {"bf16": "bf16", "fp16": "fp16"}.get(self.precision, "no")


def check_precision(precision: str, what: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a :class:`ConfigError` naming the choices."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{what} must be one of {PRECISIONS}, got {precision!r}: auto picks bf16 where the "
                          "hardware has bf16 matrix units and float32 elsewhere.")
    return precision


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in ``path`` (empty where the file does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _matmul_seconds(dtype: torch.dtype, size: int, repeat: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    torch.mm(a, b)  # warm-up: kernel selection, JIT of the oneDNN primitive
    start = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    return (time.perf_counter() - start) / repeat


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup(size: int = PROBE_SIZE, repeat: int = 3) -> float:
    """How many times faster a bf16 than a float32 ``size²`` matrix product runs on this CPU (measured once).

    On CPUs without bf16 matrix units the bf16 product is emulated and the ratio is far below 1, so the
    probe returns early after one timed bf16 product slower than the float32 ones.
    """
    fp32 = _matmul_seconds(torch.float32, size, repeat)
    bf16 = _matmul_seconds(torch.bfloat16, size, 1)
    if bf16 > fp32:
        return fp32 / bf16
    return fp32 / _matmul_seconds(torch.bfloat16, size, repeat)


def cpu_has_bf16_units(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU lists bf16 matrix instructions (:data:`CPU_BF16_FLAGS`) among its flags."""
    return bool((cpu_flags() if flags is None else flags) & CPU_BF16_FLAGS)


def resolve_precision(precision: str = "auto", device: str | torch.device = "cpu") -> PrecisionChoice:
    """Resolve a ``precision`` option for ``device`` (see the module docstring for what ``auto`` picks).

    ``fp32`` and ``bf16`` are taken as given (bf16 on a CPU without bf16 units is correct but slow, which
    the reason says). The environment variable :data:`PRECISION_ENV` replaces ``auto``.

    Raises:
        ConfigError: an unknown value, or ``bf16`` on a CUDA device without bf16 support.
    """
    requested = check_precision(precision)
    device = torch.device(device)
    if requested == "auto" and os.environ.get(PRECISION_ENV):
        requested = check_precision(os.environ[PRECISION_ENV], f"${PRECISION_ENV}")
        if requested != "auto":
            return PrecisionChoice(requested, precision, f"set by {PRECISION_ENV}")
    if device.type == "cuda":
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if requested == "bf16" and not supported:
            raise ConfigError("precision bf16 was asked for on a GPU without bf16 support; use fp32 (or auto).")
        if requested == "auto":
            return PrecisionChoice("bf16" if supported else "fp32", precision,
                                   "GPU with bf16 support" if supported else "GPU without bf16 support")
        return PrecisionChoice(requested, precision, "asked for")
    if device.type != "cpu":
        if requested == "bf16":
            return PrecisionChoice("bf16", precision, "asked for")
        return PrecisionChoice("fp32", precision, f"{device.type} device: float32")
    if requested == "fp32":
        return PrecisionChoice("fp32", precision, "asked for")
    units = cpu_has_bf16_units()
    if requested == "bf16":
        return PrecisionChoice("bf16", precision, "asked for" if units else
                               "asked for, on a CPU without bf16 matrix units (emulated: slower than float32)")
    if not units:
        return PrecisionChoice("fp32", precision, "CPU without bf16 matrix units (no amx_bf16 / avx512_bf16)")
    speedup = cpu_bf16_speedup()
    if speedup < MIN_BF16_SPEEDUP:
        return PrecisionChoice("fp32", precision, f"CPU lists bf16 units but bf16 measured only {speedup:.1f}x "
                                                  "float32's speed")
    return PrecisionChoice("bf16", precision, f"CPU with bf16 matrix units ({speedup:.1f}x float32 measured)")


def autocast(precision: str | PrecisionChoice, device: str | torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device`` for ``bf16``; a no-op context for ``fp32``.

    Args:
        precision: a resolved ``"fp32"`` / ``"bf16"`` or a :class:`PrecisionChoice`.
        device: where the models run.
    """
    name = precision.precision if isinstance(precision, PrecisionChoice) else precision
    if name == "auto":
        raise ConfigError("autocast needs a resolved precision (fp32 or bf16); call resolve_precision first.")
    device_type = torch.device(device).type
    if name != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def float32(device: str | torch.device | torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``device`` (or a tensor's device) inside: for norms and statistics that stay float32.

    A no-op context where autocast is not on, so float32 code pays nothing for it.
    """
    device_type = device.device.type if isinstance(device, torch.Tensor) else torch.device(device).type
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)



def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


__all__ = [
    "PRECISIONS",
    "PrecisionChoice",
    "autocast",
    "check_precision",
    "cpu_bf16_speedup",
    "cpu_flags",
    "cpu_has_bf16_units",
    "float32",
    "resolve_device",
    "resolve_precision",
]
