"""The identity-loss ablation's design (settings, claims) and its report: table, verdicts, CMC and curves.

The ablation (``python -m unmask.evaluate ablation-identity``, trained by :mod:`unmask.train.ablation`)
writes ``results.json``; everything here reads only that file, so the README table, the plots and
notebook 06 come from committed numbers without training again.

Settings (Sabri, Randhawa, Doretto, arXiv 2212.14107): the angular-margin softmax alone at margins
:data:`MARGINS`, the batch-hard triplet alone, the joint loss at the same margins, and the joint loss
with attribute prediction. Claims (decided by :mod:`unmask.evaluate.claims` on test mAP):

1. joining the losses beats each loss alone, compared at matched margins: the joint loss at margin m
   beats the softmax alone at the same m, for every m of :data:`MARGINS`, and the joint loss without a
   margin beats the triplet loss alone (which has no softmax, hence no margin). Comparing the joint loss at
   m = 0 with the softmax at m > 0 would ask claim 2's question (does the margin matter?) instead;
2. with the joint loss the margin is unnecessary: m = 0 does at least as well as each m > 0
   (non-inferiority within :data:`TOLERANCE`);
3. predicting attributes improves the joint loss (m = 0) across cameras, poses and illumination.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unmask.errors import ConfigError
from unmask.evaluate.claims import HELD, NOT_HELD, Claim, Comparison, decide, summary

#: Softmax margins of the ablation (ArcFace's additive angular margin, radians).
MARGINS = (0.0, 0.2, 0.3, 0.5)
#: Weight of the attribute loss where it is on.
ATTRIBUTE_WEIGHT = 0.5
#: Non-inferiority tolerance of claim 2, in mAP (fraction): one percentage point.
TOLERANCE = 0.01
#: The metric the claims are decided on, and the secondary one also reported.
PRIMARY, SECONDARY = "mAP", "rank-1"
#: Metrics of the table, in order.
TABLE_METRICS = ("rank-1", "rank-5", "mAP", "accuracy")


@dataclass(frozen=True)
class Setting:
    """Loss weights and softmax margin of one ablation setting."""

    softmax: float
    triplet: float
    attributes: float
    margin: float


def _m(margin: float) -> str:
    return f"m = {margin:g}"


SETTINGS: dict[str, Setting] = {
    **{f"softmax, {_m(m)}": Setting(1.0, 0.0, 0.0, m) for m in MARGINS},
    "triplet": Setting(0.0, 1.0, 0.0, 0.0),
    **{f"joint, {_m(m)}": Setting(1.0, 1.0, 0.0, m) for m in MARGINS},
    "joint + attributes, m = 0": Setting(1.0, 1.0, ATTRIBUTE_WEIGHT, 0.0),
}
JOINT = "joint, m = 0"
#: The five settings of the paper's ablation table (notebook 06's small live run trains these).
PAPER_SETTINGS = ("softmax, m = 0.3", "triplet", JOINT, "joint, m = 0.3", "joint + attributes, m = 0")
CLAIMS = (
    Claim("1. joint beats each loss alone",
          "at matched margins: the joint loss at each margin m beats the softmax alone at the same m, and the "
          "joint loss without a margin beats the triplet loss alone",
          (Comparison(JOINT, "triplet", "superiority"),
           *(Comparison(f"joint, {_m(m)}", f"softmax, {_m(m)}", "superiority") for m in MARGINS))),
    Claim("2. no margin needed with the join",
          f"the joint loss at m = 0 does at least as well as at each m > 0, within {TOLERANCE * 100:g} mAP point",
          tuple(Comparison(JOINT, f"joint, {_m(m)}", "non-inferiority") for m in MARGINS if m > 0)),
    Claim("3. attributes help",
          "adding attribute prediction to the joint loss (m = 0) raises cross-camera retrieval",
          (Comparison("joint + attributes, m = 0", JOINT, "superiority"),)),
)


def read_results(path: str | Path) -> dict:
    """The ablation's ``results.json`` (``spec`` and ``runs``), checked."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `python -m unmask.evaluate ablation-identity --out "
                          f"{path.parent}` first.")
    results = json.loads(path.read_text())
    if not isinstance(results, dict) or "runs" not in results or "spec" not in results:
        raise ConfigError(f"{path} is not an ablation results file (it needs 'spec' and 'runs').")
    return results


def merge_results(first: Mapping, *others: Mapping) -> dict:
    """One results dict from several of the same ``spec``; a (setting, seed) run present twice is kept once."""
    runs, seen = [], set()
    for results in (first, *others):
        if results["spec"] != first["spec"]:
            raise ConfigError(f"cannot merge ablation results of different settings: {results['spec']} vs "
                              f"{first['spec']}.")
        for run in results["runs"]:
            key = (run["setting"], int(run["seed"]))
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return {"spec": dict(first["spec"]), "runs": runs}


def _pct(mean: float, std: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "—"
    return f"{mean * 100:.1f} ± {std * 100:.1f}"


def _last_rise(curve: Sequence[Sequence[float]], patience: int) -> float:
    """How much validation mAP rose over a run's last ``patience`` validations (0 when the curve is shorter)."""
    if len(curve) <= patience:
        return 0.0
    return float(curve[-1][1] - curve[-1 - patience][1])


def results_table(results: Mapping) -> str:
    """Markdown table: each setting's metrics as mean ± std over seeds (%), steps and wall time."""
    runs = results["runs"]
    lines = ["| setting | seeds | rank-1 | rank-5 | mAP | verification acc. | steps | flat before cap | "
             "last rise, val. mAP | min / run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in SETTINGS:
        mine = [r for r in runs if r["setting"] == name]
        if not mine:
            continue
        cells = [_pct(*summary(runs, name, metric)) for metric in TABLE_METRICS]
        steps = np.mean([r["steps"] for r in mine])
        minutes = np.mean([r["wall_s"] for r in mine]) / 60.0
        flat = sum(bool(r["stopped_early"]) for r in mine)
        rise = np.mean([_last_rise(r["curve"], results["spec"]["training"]["patience"]) for r in mine]) * 100
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells)
                     + f" | {steps:.0f} | {flat}/{len(mine)} | {rise:+.1f} | {minutes:.1f} |")
    return "\n".join(lines)


def _interval(diff) -> str:
    if diff is None:
        return "—"
    if diff.n < 2:
        return f"{diff.mean * 100:+.1f} (1 seed)"
    return f"{diff.mean * 100:+.1f} [{diff.low * 100:+.1f}, {diff.high * 100:+.1f}]"


def claims_table(results: Mapping, confidence: float = 0.95) -> str:
    """Markdown table of each claim's comparisons: paired mean difference, its interval and the verdicts."""
    runs = results["runs"]
    lines = [f"| claim | comparison | Δ {PRIMARY}, points ({confidence:.0%} CI) | wins | verdict | "
             f"Δ {SECONDARY}, points (CI) | claim on {PRIMARY} | claim on {SECONDARY} |",
             "|---|---|---|---|---|---|---|---|"]
    for claim in CLAIMS:
        verdict, rows = decide(claim, runs, PRIMARY, TOLERANCE, confidence)
        verdict2, rows2 = decide(claim, runs, SECONDARY, TOLERANCE, confidence)
        for i, ((comp, diff, v), (_, diff2, _)) in enumerate(zip(rows, rows2)):
            sign = ">" if comp.kind == "superiority" else "≥"
            wins = "—" if diff is None else f"{diff.wins}/{diff.n}"
            lines.append(
                f"| {claim.name if i == 0 else ''} | {comp.first} {sign} {comp.second} | {_interval(diff)} | "
                f"{wins} | {v} | {_interval(diff2)} | "
                f"{('**' + verdict + '**') if i == 0 else ''} | {verdict2 if i == 0 else ''} |")
    return "\n".join(lines)


def verdicts(results: Mapping, metric: str = PRIMARY, confidence: float = 0.95) -> dict[str, str]:
    """``{claim name: verdict}`` on ``metric``."""
    return {claim.name: decide(claim, results["runs"], metric, TOLERANCE, confidence)[0] for claim in CLAIMS}


def report(results: Mapping) -> str:
    """The whole markdown report: set-up, results table, claims table and a one-line verdict per claim."""
    spec = results["spec"]
    seeds = sorted({int(r["seed"]) for r in results["runs"]})
    hardware = sorted({r.get("hardware", "") for r in results["runs"]} - {""})
    precision = sorted({r.get("precision", "") for r in results["runs"]} - {""})
    total_min = sum(r["wall_s"] for r in results["runs"]) / 60.0
    lines = [
        f"Teaching-world re-identification ({spec['world']['preset']} preset, {spec['world']['size']} px; "
        f"{spec['protocol']['train_identities']} training, {spec['protocol']['test_identities']} test and "
        f"{spec['protocol']['distractor_identities']} distractor identities; Market-1501 protocol). "
        f"Seeds {seeds[0]}–{seeds[-1]} ({len(seeds)}); each run trained until its validation mAP was flat "
        f"({spec['training']['patience']} validations in a row, every {spec['training']['validate_every']} steps, "
        f"without a gain) or for {spec['training']['max_steps']} steps of {spec['training']['p']}×"
        f"{spec['training']['k']}, whichever came first. Metrics: % mean ± std over seeds; *last rise*: "
        f"the gain of validation mAP over a run's last {spec['training']['patience']} validations (points, mean "
        "over seeds), which says how far a run that met the cap still was from flat. "
        f"{len(results['runs'])} runs, {total_min:.0f} min in all, {', '.join(precision)} on {', '.join(hardware)}.",
        "",
        results_table(results),
        "",
        claims_table(results),
        "",
    ]
    decided = verdicts(results)
    for claim in CLAIMS:
        mark = {HELD: "held", NOT_HELD: "not held"}.get(decided[claim.name], "undecided at this power")
        lines.append(f"- **{claim.name}** ({claim.statement}): {mark}.")
    return "\n".join(lines) + "\n"


def cmc_figure(results: Mapping, settings: Sequence[str] | None = None, max_rank: int = 20):
    """CMC curves (mean over seeds, band = ± std) of ``settings`` (default: one per loss family)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    settings = settings or ["softmax, m = 0", "softmax, m = 0.3", "triplet", JOINT, "joint, m = 0.3",
                            "joint + attributes, m = 0"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name in settings:
        curves = np.asarray([r["cmc"][:max_rank] for r in runs if r["setting"] == name], dtype=np.float64)
        if len(curves) == 0:
            continue
        ranks = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(0) * 100, curves.std(0) * 100
        ax.plot(ranks, mean, marker="o", markersize=3, label=f"{name} ({len(curves)} seeds)")
        ax.fill_between(ranks, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("rank")
    ax.set_xticks([1, *range(5, max_rank + 1, 5)])
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC on held-out identities, teaching world (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def curves_figure(results: Mapping, settings: Sequence[str] | None = None):
    """Validation mAP against training step for every run of ``settings`` (the evidence each run was flat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    settings = settings or list(SETTINGS)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(settings):
        mine = [r for r in runs if r["setting"] == name]
        for j, r in enumerate(mine):
            steps, values = zip(*r["curve"]) if r["curve"] else ((), ())
            ax.plot(steps, np.asarray(values) * 100, color=colours[i % len(colours)], alpha=0.6, linewidth=1,
                    label=name if j == 0 else None)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation mAP (%)")
    ax.set_title("Validation curves (each run stops once flat)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def write_report(results: Mapping, out_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``cmc.png`` and ``curves.png`` into ``out_dir``; return their paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.md", out_dir / "cmc.png", out_dir / "curves.png"]
    paths[0].write_text(report(results))
    for fig, path in ((cmc_figure(results), paths[1]), (curves_figure(results), paths[2])):
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return paths
