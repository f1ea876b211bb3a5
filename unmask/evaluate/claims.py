"""Deciding the re-identification paper's claims from a seeded ablation (Sabri, Randhawa, Doretto, arXiv 2212.14107).

Every setting of the ablation is trained with the same seeds; seed ``s`` gives every setting the same
initialisation of the shared backbone and the same batches. So two settings are compared *paired*, by
their per-seed differences ``d_s = metric(A, s) - metric(B, s)``, and a claim is decided by the
Student-t 95 % interval of the mean difference:

* **superiority** ("A beats B"): *held* when the interval lies above 0, *not held* when it lies below 0,
  *undecided* when it contains 0;
* **non-inferiority** ("A does at least as well as B"): *held* when the interval lies above
  ``-tolerance``, *not held* when it lies wholly below ``-tolerance``, *undecided* otherwise.

A claim made of several comparisons holds when all of them hold, is not held when any is not held, and
is undecided otherwise. Pure functions of a results table; nothing here trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from unmask.errors import ConfigError

HELD, NOT_HELD, UNDECIDED = "held", "not held", "undecided"


@dataclass(frozen=True)
class PairedDifference:
    """Mean of the per-seed differences ``a - b`` and its two-sided ``confidence`` Student-t interval.

    Attributes:
        mean, low, high: mean difference and interval ends (``low == high == mean`` with one seed: no
            interval can be given).
        n: number of paired seeds.
        p_value: two-sided paired t-test p value (``nan`` with fewer than two seeds or no spread).
        wins: seeds on which ``a > b``.
    """

    mean: float
    low: float
    high: float
    n: int
    p_value: float
    wins: int


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Paired comparison of two settings' per-seed values (same seed order)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ConfigError(f"paired values must be two equal-length, non-empty lists; got {a.shape} and {b.shape}.")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1); got {confidence}.")
    from scipy import stats

    d = a - b
    n, mean = len(d), float(d.mean())
    if n < 2:
        return PairedDifference(mean, mean, mean, n, math.nan, int((d > 0).sum()))
    sem = float(d.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sem
    p = float(2.0 * stats.t.sf(abs(mean) / sem, n - 1)) if sem > 0 else (0.0 if mean != 0 else 1.0)
    return PairedDifference(mean, mean - half, mean + half, n, p, int((d > 0).sum()))


def superiority(diff: PairedDifference) -> str:
    """``held`` / ``not held`` / ``undecided`` for "the first setting beats the second"."""
    if diff.n < 2:
        return UNDECIDED
    if diff.low > 0:
        return HELD
    if diff.high < 0:
        return NOT_HELD
    return UNDECIDED


def non_inferiority(diff: PairedDifference, tolerance: float) -> str:
    """``held`` / ``not held`` / ``undecided`` for "the first does at least as well, within ``tolerance``"."""
    if diff.n < 2:
        return UNDECIDED
    if diff.low > -tolerance:
        return HELD
    if diff.high < -tolerance:
        return NOT_HELD
    return UNDECIDED


def combine(decisions: Sequence[str]) -> str:
    """One verdict for a claim made of several comparisons (all must hold; one not held decides)."""
    if any(d == NOT_HELD for d in decisions):
        return NOT_HELD
    return HELD if decisions and all(d == HELD for d in decisions) else UNDECIDED


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of a claim: ``first`` against ``second`` by ``kind``."""

    first: str
    second: str
    kind: str  # "superiority" or "non-inferiority"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the comparisons that decide it."""

    name: str
    statement: str
    comparisons: tuple[Comparison, ...]


def per_seed(runs: Sequence[Mapping], setting: str, metric: str) -> dict[int, float]:
    """``{seed: value}`` of ``metric`` for the runs of ``setting``."""
    return {int(r["seed"]): float(r["metrics"][metric]) for r in runs if r["setting"] == setting}


#: Verdict of a comparison whose two settings share no seed yet.
NOT_RUN = "not run"


def decide(claim: Claim, runs: Sequence[Mapping], metric: str, tolerance: float,
           confidence: float = 0.95) -> tuple[str, list[tuple[Comparison, PairedDifference | None, str]]]:
    """Verdict of ``claim`` on ``metric`` over the seeds both settings of each comparison share.

    A comparison whose settings share no seed is ``not run`` (its difference ``None``) and leaves the claim
    undecided unless another comparison already makes it ``not held``.
    """
    rows: list[tuple[Comparison, PairedDifference | None, str]] = []
    for comp in claim.comparisons:
        a, b = per_seed(runs, comp.first, metric), per_seed(runs, comp.second, metric)
        seeds = sorted(set(a) & set(b))
        if not seeds:
            rows.append((comp, None, NOT_RUN))
            continue
        diff = paired_difference([a[s] for s in seeds], [b[s] for s in seeds], confidence)
        verdict = superiority(diff) if comp.kind == "superiority" else non_inferiority(diff, tolerance)
        rows.append((comp, diff, verdict))
    return combine([v for _, _, v in rows]), rows


def summary(runs: Sequence[Mapping], setting: str, metric: str) -> tuple[float, float, int]:
    """Mean, sample standard deviation and count of ``metric`` over the seeds of ``setting``."""
    values = np.asarray(list(per_seed(runs, setting, metric).values()), dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, 0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)
