"""Does recovery work, and does it help face verification? Measured on the teaching world.

Two protocols (arXiv 2212.14110 judges recovery the same two ways):

* **Image quality** on held-out identities: PSNR and SSIM of the recovered face against the true
  unmasked face, inside the mask (the hallucinated part) and outside it; identity similarity
  (cosine of identity embeddings) of the output and of the masked input to the true face.
* **Verification**: LFW-style pairs (10 folds, disjoint identities per fold) of a *masked* probe
  against an *unmasked* reference. The probe is scored as it is (masked), after recovery (the
  recovered face composited into the visible pixels), and unmasked (the ceiling); 10-fold accuracy,
  ROC AUC, TAR at FAR 1e-3 and EER with the identity network of the bundle.

Command line: ``python -m unmask.evaluate unmasking [--faces N] [--modes encoder,optimize] …`` (:func:`main`).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unmask.errors import ConfigError

QUALITY_KEYS = ("psnr_inside", "ssim_inside", "psnr_outside", "ssim_outside")


@dataclasses.dataclass(frozen=True)
class UnmaskingEvalConfig:
    """Sizes of the evaluation (defaults finish in a few minutes on 2 CPU cores).

    Attributes:
        n_faces: held-out faces for the image-quality table.
        pairs_per_fold: matched (and as many mismatched) pairs per fold; 10 folds.
        modes: pipeline modes to score (``encoder``, ``encoder+refine``, ``optimize``).
        steps: optimisation steps of the optimising modes.
        optimize_faces: the optimising modes are slow: they are scored on this many quality faces and
            left out of verification unless ``verify_optimizing`` is set.
        verify_optimizing: also run the optimising modes on every verification probe.
        batch_size: faces per forward pass.
        preset / seed: the teaching world.
    """

    n_faces: int = 256
    pairs_per_fold: int = 100
    modes: tuple[str, ...] = ("encoder", "optimize")
    steps: int = 100
    optimize_faces: int = 32
    verify_optimizing: bool = False
    batch_size: int = 64
    preset: str = "standard"
    seed: int = 0


def composite(recovered: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The output face: recovered pixels where the mask is, the input's own pixels elsewhere."""
    return recovered * mask + masked * (1.0 - mask)


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


@torch.no_grad()
def _identity(pipe, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cosine of identity embeddings of ``images`` and ``target`` (NaN without an identity net)."""
    if pipe.identity_net is None:
        return torch.full((len(images),), float("nan"))
    return (pipe.identity_net.embed(images) * pipe.identity_net.embed(target)).sum(1)


def evaluate_quality(pipe, config: UnmaskingEvalConfig, progress: bool = True) -> dict[str, dict[str, float]]:
    """Image-quality table: ``{method: {psnr_inside, ssim_inside, psnr_outside, ssim_outside, identity}}``."""
    from tqdm.auto import tqdm

    from unmask.data.world import UnmaskingDataset
    from unmask.evaluate.metrics import region_quality
    from unmask.synthetic import WorldConfig

    data = UnmaskingDataset(WorldConfig(size=pipe.size, preset=config.preset, seed=config.seed), split="test",
                            length=config.n_faces)
    sums: dict[str, dict[str, list[float]]] = {}

    def add(method: str, values: dict[str, torch.Tensor]) -> None:
        bucket = sums.setdefault(method, {})
        for key, value in values.items():
            bucket.setdefault(key, []).extend(v for v in value.flatten().tolist() if v == v)

    for indices in tqdm(_batches(config.n_faces, config.batch_size), desc="quality", disable=not progress):
        item = data.batch(indices)
        masked, target, mask = item["masked"], item["target"], item["mask"]
        with torch.no_grad():
            add("masked input", {**region_quality(masked, target, mask),
                                 "identity": _identity(pipe, masked, target)})
        for mode in config.modes:
            pick = indices
            if mode != "encoder":
                pick = [i for i in indices if i < config.optimize_faces]
                if not pick:
                    continue
            sel = torch.tensor([indices.index(i) for i in pick])
            recovered, _ = pipe.recover_batch(masked[sel], mask[sel], mode=mode, steps=config.steps)
            with torch.no_grad():
                out = composite(recovered, masked[sel], mask[sel])
                raw = region_quality(recovered, target[sel], mask[sel])
                add(mode, {**{k: raw[k] for k in ("psnr_inside", "ssim_inside")},
                           **{k: v for k, v in region_quality(out, target[sel], mask[sel]).items()
                              if k.endswith("outside")},
                           "identity": _identity(pipe, out, target[sel])})
    return {method: {k: float(np.mean(v)) if v else float("nan") for k, v in values.items()}
            for method, values in sums.items()}


def evaluate_verification(pipe, config: UnmaskingEvalConfig, progress: bool = True,
                          roc_path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Verification of masked probes against unmasked references, before and after recovery."""
    from tqdm.auto import tqdm

    from unmask.data.world import VerificationPairs
    from unmask.evaluate.verification import roc_curve, verification_metrics
    from unmask.synthetic import WorldConfig

    if pipe.identity_net is None:
        raise ConfigError("verification needs a bundle with an identity network.")
    world = WorldConfig(size=pipe.size, preset=config.preset, seed=config.seed)
    masked_pairs = VerificationPairs(world, pairs_per_fold=config.pairs_per_fold, masked="first")
    clean_pairs = VerificationPairs(world, pairs_per_fold=config.pairs_per_fold, masked="none")
    methods = ["unmasked probe (ceiling)", "masked probe", *(
        f"recovered ({m})" for m in config.modes if m == "encoder" or config.verify_optimizing)]
    scores: dict[str, list[float]] = {m: [] for m in methods}
    embed = pipe.identity_net.embed
    for indices in tqdm(_batches(len(masked_pairs), config.batch_size), desc="verification",
                        disable=not progress):
        probe, reference = masked_pairs.first.batch(indices), masked_pairs.second.batch(indices)
        clean = clean_pairs.first.batch(indices)
        with torch.no_grad():
            ref = embed(reference["image"])
            scores["unmasked probe (ceiling)"] += (embed(clean["image"]) * ref).sum(1).tolist()
            scores["masked probe"] += (embed(probe["image"]) * ref).sum(1).tolist()
        for mode in config.modes:
            name = f"recovered ({mode})"
            if name not in scores:
                continue
            recovered, _ = pipe.recover_batch(probe["image"], probe["mask"], mode=mode, steps=config.steps)
            with torch.no_grad():
                out = composite(recovered, probe["image"], probe["mask"])
                scores[name] += (embed(out) * ref).sum(1).tolist()
    same, folds = masked_pairs.issame, masked_pairs.folds
    results = {name: verification_metrics(np.asarray(s), same, folds) for name, s in scores.items()}
    if roc_path is not None:
        from unmask.evaluate.plots import plot_roc

        curves = {name: roc_curve(np.asarray(s), same)[:2] for name, s in scores.items()}
        plot_roc(curves, roc_path, title="Masked probe vs unmasked reference (teaching world)")
    return results


def format_table(rows: dict[str, dict[str, float]], keys: Sequence[str], percent: Sequence[str] = ()) -> str:
    """Plain-text table: one row per method."""
    width = max(len(name) for name in rows) + 2
    lines = ["method".ljust(width) + "".join(k.rjust(16) for k in keys)]
    for name, values in rows.items():
        cells = []
        for key in keys:
            value = values.get(key, float("nan"))
            cells.append(f"{100 * value:.2f}".rjust(16) if key in percent else f"{value:.4f}".rjust(16))
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Image quality and verification before / after recovery (see ``unmask.evaluate.unmasking``)."""
    from unmask.pipeline import UnmaskPipeline

    defaults = UnmaskingEvalConfig()
    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate unmasking",
                                     description="Recovery quality and masked-face verification on held-out "
                                                 "teaching-world identities.")
    parser.add_argument("--model", default="teaching", help="bundle name or folder")
    parser.add_argument("--faces", type=int, default=defaults.n_faces)
    parser.add_argument("--pairs-per-fold", type=int, default=defaults.pairs_per_fold)
    parser.add_argument("--modes", default=",".join(defaults.modes))
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--optimize-faces", type=int, default=defaults.optimize_faces)
    parser.add_argument("--verify-optimizing", action="store_true")
    parser.add_argument("--preset", default=defaults.preset)
    parser.add_argument("--roc", default="runs/unmasking_roc.png", help="ROC plot to write ('' to skip)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(list(argv))
    config = dataclasses.replace(defaults, n_faces=args.faces, pairs_per_fold=args.pairs_per_fold,
                                 modes=tuple(m for m in args.modes.split(",") if m), steps=args.steps,
                                 optimize_faces=args.optimize_faces, verify_optimizing=args.verify_optimizing,
                                 preset=args.preset)
    pipe = UnmaskPipeline.from_pretrained(args.model, device=args.device)
    start = time.perf_counter()
    quality = evaluate_quality(pipe, config)
    print(f"\nImage quality on {config.n_faces} held-out faces ({config.preset}; optimising modes on the first "
          f"{config.optimize_faces}, {config.steps} steps):")
    print(format_table(quality, ("psnr_inside", "ssim_inside", "psnr_outside", "ssim_outside", "identity")))
    if args.roc:
        Path(args.roc).parent.mkdir(parents=True, exist_ok=True)
    verification = evaluate_verification(pipe, config, roc_path=args.roc or None)
    print(f"\nVerification, masked probe vs unmasked reference, 10 folds x {2 * config.pairs_per_fold} pairs:")
    print(format_table(verification, ("accuracy", "accuracy_std", "auc", "tar@far=0.001", "eer"),
                       percent=("accuracy", "accuracy_std", "tar@far=0.001", "eer")))
    if args.roc:
        print(f"ROC curves: {args.roc}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0
