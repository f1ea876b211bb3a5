"""How much can unmasking recover? The teaching world's information ceiling at each face correlation ρ.

For each ρ (:attr:`unmask.synthetic.WorldConfig.face_correlation`):

* **R² per hidden factor**: how well the visible identity factors predict each hidden one (Gaussian
  coordinates, a linear fit on world draws scored on other draws; :func:`unmask.synthetic.oracle.fit_oracle`);
* **the oracle** (:mod:`unmask.synthetic.oracle`): every visible factor true, every hidden factor at that
  prediction, painted by the world itself. It is scored like every method of ``python -m unmask.evaluate
  unmasking`` (:func:`unmask.evaluate.unmasking.evaluate_unmasking`, the same faces, pairs and judges): PSNR
  inside the mask against the unmasked face, and LFW-style verification of the masked probe, the oracle and
  the unmasked probe against an unmasked reference, judged by the teaching embedder and by dlib's ResNet, at
  each image size. "Gap closed" is the share of the masked → unmasked accuracy gap that the oracle closes.

No method that sees only the visible face can beat the oracle on average: its numbers bound unmasking in that
world. ``--measure-hidden`` re-measures which factors the masks hide (:mod:`unmask.synthetic.hidden`).

Command line::

    python -m unmask.evaluate world --correlation 0,0.25,0.5,0.75 --json docs/world_correlation.json

``--json`` keeps the correlations already in the file that this run did not measure, so parts of the curve
can be measured by separate runs; each entry records its command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unmask.errors import ConfigError
from unmask.evaluate.methods import METHOD_NAMES
from unmask.evaluate.unmasking import MASKED_ROW, UNMASKED_ROW, UnmaskingEvalConfig
from unmask.verify import JUDGES

DEFAULT_JSON = "docs/world_correlation.json"
ORACLE_ROW = METHOD_NAMES["oracle"]
#: Short names of the verification rows in the JSON.
ROWS = {UNMASKED_ROW: "unmasked", MASKED_ROW: "masked", ORACLE_ROW: "oracle"}


@dataclasses.dataclass(frozen=True)
class WorldEvalConfig:
    """Sizes of the measurement.

    Attributes:
        correlations: the face correlations ρ to measure.
        sizes: image sides; ``n_faces`` and ``pairs_per_fold`` give one value per size.
        n_faces: held-out faces of the in-mask PSNR, per size.
        pairs_per_fold: matched (and as many mismatched) verification pairs per fold, per size.
        n_folds: verification folds.
        judges: :data:`unmask.verify.JUDGES`.
        batch_size: faces per render and embedding call.
        preset / seed: the teaching world.
    """

    correlations: tuple[float, ...] = (0.0,)
    sizes: tuple[int, ...] = (64, 128)
    n_faces: tuple[int, ...] = (150, 100)
    pairs_per_fold: tuple[int, ...] = (10, 5)
    n_folds: int = 10
    judges: tuple[str, ...] = JUDGES
    batch_size: int = 50
    preset: str = "standard"
    seed: int = 0

    def __post_init__(self) -> None:
        if not (len(self.sizes) == len(self.n_faces) == len(self.pairs_per_fold)) or not self.sizes:
            raise ConfigError("give one n_faces and one pairs_per_fold per size.")
        if not self.correlations:
            raise ConfigError("give at least one face correlation.")

    def unmasking(self, correlation: float, index: int) -> UnmaskingEvalConfig:
        """The evaluation of one ρ at ``sizes[index]``, in the protocol of ``evaluate unmasking``."""
        return UnmaskingEvalConfig(n_faces=self.n_faces[index], pairs_per_fold=self.pairs_per_fold[index],
                                   n_folds=self.n_folds, judges=self.judges, batch_size=self.batch_size,
                                   grid_faces=1, preset=self.preset, seed=self.seed, correlation=correlation,
                                   size=self.sizes[index])


def evaluate_world(config: WorldEvalConfig, *, model: str = "teaching", device: str = "cpu", progress: bool = True,
                   distance=None, perceptual: str | None = None) -> dict:
    """Measure every ρ of ``config``; returns the JSON-ready results (see :func:`to_markdown` for a reading).

    Args:
        config: the sizes.
        model: the bundle whose identity network is the teaching judge.
        distance / perceptual: a perceptual distance and its description (default: the evaluation's LPIPS).
    """
    from unmask.evaluate.methods import load_methods
    from unmask.evaluate.unmasking import evaluate_unmasking, perceptual_distance
    from unmask.synthetic import FaceWorld, WorldConfig
    from unmask.synthetic.hidden import MEASURED_SHARES
    from unmask.synthetic.oracle import oracle_for

    start = time.perf_counter()
    methods = load_methods(model, keys=("masked", "oracle"), device=device)
    if distance is None:
        distance, perceptual = perceptual_distance()
    curve = []
    for rho in config.correlations:
        fit = oracle_for(FaceWorld(WorldConfig(seed=config.seed, face_correlation=rho)))
        entry = {"correlation": float(rho), "r2": {k: round(v, 4) for k, v in fit.r2.items()}, "sizes": {}}
        for index, size in enumerate(config.sizes):
            report = evaluate_unmasking(methods, config.unmasking(rho, index), progress=progress,
                                        distance=distance, perceptual=perceptual)
            quality = {ROWS[row]: {k: round(report.quality[row][k], 4) for k in
                                   ("psnr_inside", "ssim_inside", "perceptual_inside", "identity")}
                       for row in (MASKED_ROW, ORACLE_ROW)}
            verification = {judge: {ROWS[row]: {k: round(m[k], 4) for k in ("accuracy", "accuracy_std", "auc")}
                                    for row, m in rows.items()} for judge, rows in report.verification.items()}
            gaps = {judge: _finite(report.gap_closed[judge][ORACLE_ROW]) for judge in report.verification}
            entry["sizes"][str(size)] = {"faces": config.n_faces[index],
                                         "pairs": 2 * config.pairs_per_fold[index] * config.n_folds,
                                         "quality": quality, "verification": verification, "gap_closed": gaps,
                                         "skipped": report.skipped}
        entry["seconds"] = round(time.perf_counter() - start - sum(e["seconds"] for e in curve), 1)
        curve.append(entry)
    return {"hidden": {name: MEASURED_SHARES[name][0] for name in fit.hidden}, "curve": curve,
            "perceptual": perceptual, "config": dataclasses.asdict(config),
            "seconds": round(time.perf_counter() - start, 1)}


def _finite(value: float) -> float | None:
    """``value`` rounded, or ``None`` (JSON null) when it is NaN (a gap when the mask cost no accuracy)."""
    return None if value != value else round(value, 4)


def auc_gap_closed(rows: dict) -> float | None:
    """The gap closed in ROC AUC, ``(auc_oracle - auc_masked) / (auc_unmasked - auc_masked)``, of one judge's
    verification rows (``{"unmasked" | "masked" | "oracle": {"auc": …}}``); steadier than the accuracy's on a
    few hundred pairs, since it uses every score rather than one threshold per fold."""
    gap = rows["unmasked"]["auc"] - rows["masked"]["auc"]
    return _finite((rows["oracle"]["auc"] - rows["masked"]["auc"]) / gap) if gap > 0 else None


def to_markdown(results: dict) -> str:
    """The curve as Markdown: one row per ρ; per size the oracle's in-mask PSNR and, per judge, the gap it closes
    in accuracy (masked → oracle / unmasked accuracy) and in AUC."""
    sizes = list(results["curve"][0]["sizes"])
    judges = list(results["curve"][0]["sizes"][sizes[0]]["gap_closed"])
    head = ["ρ", "mean R² (hidden)"]
    for size in sizes:
        head += [f"{size} px: PSNR in (masked → oracle)"] + [f"{size} px: gap closed, {j}: accuracy; AUC"
                                                            for j in judges]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in results["curve"]:
        cells = [f"{entry['correlation']:g}", f"{np.mean(list(entry['r2'].values())):.2f}"]
        for size in sizes:
            s = entry["sizes"][size]
            psnr = {row: s["quality"][row]["psnr_inside"] for row in ("masked", "oracle")}
            cells.append(f"{psnr['masked']:.1f} → {psnr['oracle']:.1f} dB")
            for judge in judges:
                v = s["verification"][judge]
                gap, auc_gap = s["gap_closed"][judge], auc_gap_closed(v)
                cells.append(f"{'–' if gap is None else f'{100 * gap:.0f} %'} ({100 * v['masked']['accuracy']:.1f} → "
                             f"{100 * v['oracle']['accuracy']:.1f} / {100 * v['unmasked']['accuracy']:.1f} %); "
                             f"{'–' if auc_gap is None else f'{100 * auc_gap:.0f} %'}")
        lines.append("| " + " | ".join(cells) + " |")
    r2 = ["", "R² of each hidden factor from the visible ones:", "",
          "| ρ | " + " | ".join(results["curve"][0]["r2"]) + " |", "|" + "---|" * (1 + len(results["curve"][0]["r2"]))]
    for entry in results["curve"]:
        r2.append(f"| {entry['correlation']:g} | " + " | ".join(f"{v:.2f}" for v in entry["r2"].values()) + " |")
    return "\n".join(lines + r2) + "\n"


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}.") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got {text!r}.") from None


def main(argv: Sequence[str]) -> int:
    """The information ceiling of the teaching world (see :mod:`unmask.evaluate.world`)."""
    from unmask.synthetic.correlation import check_correlation

    d = WorldEvalConfig()
    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate world",
                                     description="How much of the hidden face the visible face predicts, and the "
                                                 "oracle that bounds every unmasking method, per face correlation.")
    parser.add_argument("--correlation", default="0", help="face correlation(s) ρ in [0, 1], comma-separated")
    parser.add_argument("--sizes", default=",".join(map(str, d.sizes)))
    parser.add_argument("--faces", default=",".join(map(str, d.n_faces)), help="quality faces per size")
    parser.add_argument("--pairs-per-fold", default=",".join(map(str, d.pairs_per_fold)), help="per size")
    parser.add_argument("--judges", default=",".join(d.judges), help=f"subset of {','.join(JUDGES)}")
    parser.add_argument("--model", default="teaching", help="bundle whose identity network is the teaching judge")
    parser.add_argument("--preset", default=d.preset)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--json", default=DEFAULT_JSON, help="results to write ('' to skip)")
    parser.add_argument("--measure-hidden", type=int, metavar="DRAWS", default=0,
                        help="instead: re-measure each identity factor's hidden share on DRAWS faces and print it")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(list(argv))
    if args.measure_hidden:
        return _measure_hidden(args.measure_hidden, args.preset, args.seed)
    correlations = tuple(check_correlation(rho) for rho in _floats(args.correlation))
    config = WorldEvalConfig(correlations=correlations, sizes=_ints(args.sizes), n_faces=_ints(args.faces),
                             pairs_per_fold=_ints(args.pairs_per_fold), preset=args.preset, seed=args.seed,
                             judges=tuple(j for j in args.judges.split(",") if j))
    results = evaluate_world(config, model=args.model, device=args.device)
    command = ("python -m unmask.evaluate world " + " ".join(argv)).strip()
    for entry in results["curve"]:
        entry["command"] = command
    print()
    print(to_markdown(results))
    print(f"({results['seconds']:.0f} s)")
    if args.json:
        path = Path(args.json)
        if path.is_file():  # keep the other correlations already measured there
            results = merge_results(json.loads(path.read_text(encoding="utf-8")), results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.json} ({len(results['curve'])} correlations)")
    return 0


def merge_results(old: dict, new: dict) -> dict:
    """``new`` with the curve entries of ``old`` whose ρ ``new`` did not measure, sorted by ρ (each entry keeps
    the command that measured it)."""
    measured = {entry["correlation"] for entry in new["curve"]}
    curve = [e for e in old.get("curve", []) if e["correlation"] not in measured] + new["curve"]
    return {**new, "curve": sorted(curve, key=lambda e: e["correlation"]),
            "seconds": round(sum(e.get("seconds", 0.0) for e in curve), 1) or new["seconds"]}


def _measure_hidden(draws: int, preset: str, seed: int) -> int:
    from unmask.synthetic import FaceWorld, WorldConfig
    from unmask.synthetic.hidden import HIDDEN_THRESHOLD, hidden_factors, measure_hidden_shares

    shares = measure_hidden_shares(FaceWorld(WorldConfig(preset=preset, seed=seed)), draws)
    print(f"# hidden share, mean |change| per pixel ({draws} draws, {preset} preset, seed {seed}, 64 px)")
    for name, (share, change) in shares.items():
        print(f'    "{name}": ({share:.3f}, {change:.5f}),')
    print(f"hidden (share >= {HIDDEN_THRESHOLD}): {', '.join(hidden_factors(shares))}", file=sys.stderr)
    return 0
