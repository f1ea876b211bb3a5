"""The paper's comparison on held-out identities of the teaching world (arXiv 2212.14110, issue 10).

Methods (:mod:`unmask.evaluate.methods`): the masked input; the generic encoder (trained to invert the
faces it sees) given the masked face, alone and refined on the visible pixels; per-image optimisation
on the visible pixels; the generic inversion of the unmasked face (key ``ceiling``: not a bound, the
unmasking encoders can beat it); unmasking variant (a) (3-channel encoder that predicts the mask) and variant (b)
(4-channel encoder given the mask); the oracle (the world's information ceiling, :mod:`unmask.synthetic.oracle`:
the world's own painter with every visible factor true and every hidden one at its best prediction from the
visible ones, which bounds every method).

Two protocols:

* **Image quality** on held-out faces: PSNR, SSIM and a perceptual distance of the generator's
  rendering against the true unmasked face, inside the mask (what is hallucinated) and outside it
  (how faithfully the visible face is redrawn); identity cosine (bundle identity network) of the
  output (rendering over the region used, input pixels elsewhere) to the true face; IoU of the
  predicted mask for variant (a).
* **Verification**: LFW-style pairs (10 folds, disjoint identities per fold) of a masked probe against
  an unmasked reference: 10-fold accuracy ± fold std, ROC AUC, TAR at FAR 1e-3 and EER, judged by the
  teaching embedder and by dlib's real-face ResNet (:mod:`unmask.verify`). "Gap closed" is
  ``(acc_method - acc_masked) / (acc_unmasked - acc_masked)`` per judge, where ``acc_unmasked`` scores
  the probe without its mask.

**The perceptual distance** is LPIPS (AlexNet) through :func:`unmask.losses.perceptual.build_lpips`.
With torchvision's ImageNet AlexNet in the torch hub cache it is calibrated LPIPS; offline (this
project's teaching world) it uses the project's offline configuration, the seeded random backbone
(``pretrained_backbone=False``), the same in every run: a random-feature perceptual distance, not
calibrated LPIPS, so read it as a ranking of methods on the same faces, not as LPIPS values. The
teaching identity network is not used for it: identity is its own column, and the unmasking encoders
were trained against that network's identity loss, so it would favour them. The table names which
backbone ran.

Command line: ``python -m unmask.evaluate unmasking [--faces N] [--generic-encoder DIR] …`` (:func:`main`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from unmask.errors import ConfigError
from unmask.evaluate.methods import METHOD_KEYS, METHOD_NAMES, MethodSet, composite
from unmask.verify import JUDGE_NAMES, JUDGES

__all__ = ["UnmaskingEvalConfig", "UnmaskingReport", "composite", "evaluate_quality", "evaluate_unmasking",
           "evaluate_verification", "gap_closed", "perceptual_distance", "main"]

QUALITY_KEYS = ("psnr_inside", "ssim_inside", "perceptual_inside", "psnr_outside", "ssim_outside",
                "perceptual_outside", "identity", "mask_iou")
#: The verification row of the probe without its mask: the accuracy recovery tries to reach.
UNMASKED_ROW = "unmasked probe (no mask)"
#: The row recovery starts from.
MASKED_ROW = METHOD_NAMES["masked"]
#: Columns of the qualitative grid, in order (the methods that ran; then the target).
GRID_METHODS = {"masked": "masked", "generic": "generic", "a": "unmasking (a)", "b": "unmasking (b)",
                "oracle": "oracle"}
#: torchvision's ImageNet AlexNet, which calibrated LPIPS needs (never downloaded here).
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
DEFAULT_TABLE = "docs/unmasking_table.md"
DEFAULT_ROC = "docs/unmasking_roc.png"
DEFAULT_GRID = "docs/unmasking_grid.png"


@dataclasses.dataclass(frozen=True)
class UnmaskingEvalConfig:
    """Sizes of the evaluation.

    Attributes:
        n_faces: held-out faces of the image-quality table.
        pairs_per_fold: matched (and as many mismatched) pairs per fold; 0 skips verification.
        n_folds: verification folds (LFW: 10).
        steps: optimisation steps of the optimising methods.
        optimize_faces: the optimising methods are scored on the first this many quality faces and left
            out of verification unless ``verify_optimizing``.
        verify_optimizing: also run the optimising methods on every verification probe.
        batch_size: faces per forward pass.
        judges: verification networks (:data:`unmask.verify.JUDGES`).
        grid_faces: rows of the qualitative grid.
        preset / seed: the teaching world.
        correlation: the world's face correlation ρ (:class:`unmask.synthetic.WorldConfig`; 0: the world every
            teaching bundle so far was trained in).
        size: image side of the evaluation (default: the bundle's size).
    """

    n_faces: int = 256
    pairs_per_fold: int = 100
    n_folds: int = 10
    steps: int = 100
    optimize_faces: int = 32
    verify_optimizing: bool = False
    batch_size: int = 64
    judges: tuple[str, ...] = JUDGES
    grid_faces: int = 6
    preset: str = "standard"
    seed: int = 0
    correlation: float = 0.0
    size: int | None = None

    def world(self, bundle_size: int):
        """The teaching world of this evaluation (:class:`unmask.synthetic.WorldConfig`)."""
        from unmask.synthetic import WorldConfig

        return WorldConfig(size=self.size or bundle_size, preset=self.preset, seed=self.seed,
                           face_correlation=self.correlation)

    def __post_init__(self) -> None:
        if self.n_faces < 1 or self.batch_size < 1 or self.pairs_per_fold < 0 or self.n_folds < 2:
            raise ConfigError("need n_faces >= 1, batch_size >= 1, pairs_per_fold >= 0 and n_folds >= 2.")
        unknown = sorted(set(self.judges) - set(JUDGES))
        if unknown:
            raise ConfigError(f"unknown judges {unknown}; choose from {list(JUDGES)}.")
        from unmask.synthetic.correlation import check_correlation

        object.__setattr__(self, "correlation", check_correlation(self.correlation))


@dataclasses.dataclass
class UnmaskingReport:
    """Everything :func:`evaluate_unmasking` measured.

    Attributes:
        quality: ``{method: {faces, psnr_inside, …, identity, mask_iou}}`` (NaN where not measured).
        verification: ``{judge: {row: verification_metrics}}``; rows = :data:`UNMASKED_ROW` + methods.
        gap_closed: ``{judge: {row: fraction}}``.
        curves: ``{judge: {row: (fpr, tpr)}}``.
        skipped: ``{method or judge: reason}``.
        grid: ``{column label: images (3, S, S)}`` for :func:`unmask.evaluate.plots.image_grid`.
        perceptual: which perceptual network ran.
        config: the sizes; seconds: wall time.
    """

    quality: dict[str, dict[str, float]]
    verification: dict[str, dict[str, dict[str, float]]]
    gap_closed: dict[str, dict[str, float]]
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    skipped: dict[str, str]
    grid: dict[str, list[torch.Tensor]]
    perceptual: str
    config: UnmaskingEvalConfig
    seconds: float = 0.0

    def to_markdown(self, command: str | None = None) -> str:
        """The tables as Markdown (image quality, then one verification table per judge, then what was skipped)."""
        c = self.config
        world = f"{c.preset} preset" + (f", face correlation {c.correlation:g}" if c.correlation else "")
        lines = [f"Image quality on {c.n_faces} held-out teaching faces ({world}; optimising methods on "
                 f"the first {c.optimize_faces}, {c.steps} steps). PSNR, SSIM and perceptual distance of the "
                 "generator's rendering against the unmasked face, inside and outside the true mask; identity cosine "
                 "(pasted-back face) = cosine (teaching embedder) to the unmasked face of the output: the rendering "
                 "pasted over the region used, the input's pixels elsewhere.", "",
                 "| method | faces | PSNR in | SSIM in | perceptual in | PSNR out | SSIM out | perceptual out | "
                 "identity cosine (pasted-back face) | mask IoU |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, row in self.quality.items():
            cells = [f"{row['psnr_inside']:.1f} dB", f"{row['ssim_inside']:.3f}", f"{row['perceptual_inside']:.4f}",
                     f"{row['psnr_outside']:.1f} dB", f"{row['ssim_outside']:.3f}", f"{row['perceptual_outside']:.4f}",
                     f"{row['identity']:.3f}", f"{row['mask_iou']:.3f}"]
            cells = ["–" if "nan" in cell else cell for cell in cells]
            lines.append(f"| {name} | {int(row['faces'])} | " + " | ".join(cells) + " |")
        lines += ["", f"Perceptual distance: {self.perceptual}."]
        for judge, rows in self.verification.items():
            lines += ["", f"Verification judged by the {judge}: masked probe vs unmasked reference, {c.n_folds} folds "
                      f"× {2 * c.pairs_per_fold} pairs.", "",
                      "| probe | accuracy | AUC | TAR @ FAR 1e-3 | EER | gap closed |", "|---|---|---|---|---|---|"]
            for name, m in rows.items():
                gap = self.gap_closed[judge][name]
                lines.append(f"| {name} | {100 * m['accuracy']:.1f} ± {100 * m['accuracy_std']:.1f} % | "
                             f"{m['auc']:.4f} | {100 * m['tar@far=0.001']:.1f} % | {100 * m['eer']:.1f} % | "
                             f"{'–' if math.isnan(gap) else f'{100 * gap:.0f} %'} |")
        if self.skipped:
            by_reason: dict[str, list[str]] = {}
            for name, reason in self.skipped.items():
                by_reason.setdefault(reason, []).append(name)
            lines += ["", "Skipped:"] + [f"- {', '.join(names)}: {reason}" for reason, names in by_reason.items()]
        if command:
            lines += ["", f"Command: `{command}` ({self.seconds:.0f} s)."]
        return "\n".join(lines) + "\n"

    def write(self, table: str | Path | None = None, roc: str | Path | None = None, grid: str | Path | None = None,
              *, command: str | None = None) -> list[Path]:
        """Write the Markdown table, the ROC figure (one panel per judge) and the face grid; returns the paths."""
        from unmask.evaluate.plots import image_grid, plot_roc_panels

        written = []
        for path in (table, roc, grid):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        if table:
            Path(table).write_text(self.to_markdown(command), encoding="utf-8")
            written.append(Path(table))
        if roc and self.curves:
            plot_roc_panels({f"judged by the {judge}": curves for judge, curves in self.curves.items()}, roc,
                            suptitle="Masked probe vs unmasked reference (teaching world, held-out identities)")
            written.append(Path(roc))
        if grid and self.grid:
            image_grid(self.grid, grid)
            written.append(Path(grid))
        return written


def perceptual_distance() -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], str]:
    """LPIPS-AlexNet as ``(distance (B,3,H,W) x 2 -> (B,), description)``: calibrated when torchvision's
    ImageNet AlexNet is cached, else the project's offline seeded random backbone (see the module docstring)."""
    from unmask.faces.io import resize_images
    from unmask.losses.perceptual import DEFAULT_RESIZE_TO, MIN_SIZE, build_lpips

    cached = (Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE).is_file()
    network = build_lpips("alex", pretrained_backbone=cached)
    name = ("LPIPS (AlexNet, ImageNet backbone)" if cached else
            "LPIPS with a seeded random AlexNet backbone (offline; uncalibrated, compare methods only)")

    @torch.no_grad()
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        size = max(min(a.shape[-1], DEFAULT_RESIZE_TO), MIN_SIZE)
        a, b = resize_images(a, size), resize_images(b, size)
        return network(a, b).reshape(len(a), -1).mean(dim=1)

    return distance, name


def gap_closed(accuracy: float, masked: float, unmasked: float) -> float:
    """Share of the verification gap a method closes: ``(acc - acc_masked) / (acc_unmasked - acc_masked)``
    (NaN when the mask costs no accuracy)."""
    gap = unmasked - masked
    return (accuracy - masked) / gap if gap > 0 else float("nan")


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def evaluate_quality(methods: MethodSet, config: UnmaskingEvalConfig, *, distance=None, progress: bool = True,
                     ) -> tuple[dict[str, dict[str, float]], dict[str, list[torch.Tensor]]]:
    """Image-quality table ``{method: {faces, psnr_inside, …}}`` and the qualitative grid's columns."""
    from tqdm.auto import tqdm

    from unmask.data.world import UnmaskingDataset
    from unmask.evaluate.metrics import mask_iou, region_perceptual, region_quality

    bundle = methods.bundle
    if distance is None:
        distance, _ = perceptual_distance()
    data = UnmaskingDataset(config.world(bundle.size), split="test", length=config.n_faces)
    values: dict[str, dict[str, list[float]]] = {m.name: {} for m in methods.methods.values()}
    grid: dict[str, list[torch.Tensor]] = {}
    n_grid = min(config.grid_faces, config.n_faces)

    def add(name: str, metrics: Mapping[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            values[name].setdefault(key, []).extend(float(v) for v in value.flatten().tolist())

    for indices in tqdm(_batches(config.n_faces, config.batch_size), desc="quality", disable=not progress):
        item = data.batch(indices)
        masked, target, mask = item["masked"], item["target"], item["mask"]
        ids, image_ids, cameras = data.locate(indices)
        with torch.no_grad():  # the true faces' identity embeddings, shared by every method
            target_identity = (None if bundle.identity_net is None else
                               bundle.identity_net.embed(target.to(bundle.device)))
        for key, method in methods.methods.items():
            n = len(indices) if not method.optimizing else sum(i < config.optimize_faces for i in indices)
            if n == 0:
                continue
            views = (data.world, ids[:n], image_ids[:n], cameras[:n])  # what the oracle paints
            output, recovered, region = method.recover(masked[:n], mask[:n], target[:n], seed=config.seed,
                                                       views=views)
            with torch.no_grad():
                metrics = {**region_quality(recovered, target[:n], mask[:n]),
                           **region_perceptual(recovered, target[:n], mask[:n], distance)}
                if target_identity is not None:
                    metrics["identity"] = (bundle.identity_net.embed(output.to(bundle.device))
                                           * target_identity[:n]).sum(1).cpu()
                if method.mask_source == "predicted":
                    metrics["mask_iou"] = mask_iou(region, mask[:n])
            add(method.name, metrics)
            if key in GRID_METHODS and indices[0] == 0 and n >= n_grid:
                grid[GRID_METHODS[key]] = list(output[:n_grid].cpu())
        if indices[0] == 0 and grid:
            grid["target"] = list(target[:n_grid].cpu())
    table = {}
    for name, metrics in values.items():
        if not metrics:
            continue
        faces = len(next(iter(metrics.values())))
        table[name] = {"faces": float(faces), **{k: _mean(metrics.get(k, [])) for k in QUALITY_KEYS}}
    return table, grid


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return float(np.mean(finite)) if finite else float("nan")


def evaluate_verification(methods: MethodSet, config: UnmaskingEvalConfig, judges: Mapping[str, object], *,
                          progress: bool = True) -> tuple[dict[str, dict[str, dict[str, float]]],
                                                          dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """Verification of masked probes (as they are, recovered by each method, and without the mask) against
    unmasked references: ``({judge name: {row: metrics}}, {judge name: {row: (fpr, tpr)}})``."""
    from tqdm.auto import tqdm

    from unmask.data.world import VerificationPairs
    from unmask.evaluate.verification import roc_curve, verification_metrics

    world = config.world(methods.bundle.size)
    masked_pairs = VerificationPairs(world, n_folds=config.n_folds, pairs_per_fold=config.pairs_per_fold,
                                     masked="first")
    clean_pairs = VerificationPairs(world, n_folds=config.n_folds, pairs_per_fold=config.pairs_per_fold,
                                    masked="none")
    verified = {m.name: m for m in methods.methods.values() if not m.optimizing or config.verify_optimizing}
    rows = [UNMASKED_ROW, *verified]
    scores = {key: {row: [] for row in rows} for key in judges}
    for indices in tqdm(_batches(len(masked_pairs), config.batch_size), desc="verification", disable=not progress):
        probe, reference = masked_pairs.first.batch(indices), masked_pairs.second.batch(indices)
        clean = clean_pairs.first.batch(indices)["image"]
        first = masked_pairs.first
        views = (masked_pairs.world, first.world_ids[indices], first.image_ids[indices], first.cameras[indices])
        outputs = {UNMASKED_ROW: clean}
        for name, method in verified.items():
            outputs[name] = method.recover(probe["image"], probe["mask"], clean, seed=config.seed, views=views)[0]
        for key, judge in judges.items():
            ref = judge.embed(reference["image"])
            for row, images in outputs.items():
                scores[key][row].extend(judge.score(judge.embed(images), ref).tolist())
    same, folds = masked_pairs.issame, masked_pairs.folds
    results, curves = {}, {}
    for key, judge in judges.items():
        results[judge.name] = {row: verification_metrics(np.asarray(s), same, folds) for row, s in scores[key].items()}
        curves[judge.name] = {row: roc_curve(np.asarray(s), same)[:2] for row, s in scores[key].items()}
    return results, curves


def evaluate_unmasking(methods: MethodSet, config: UnmaskingEvalConfig, *, progress: bool = True,
                       distance=None, perceptual: str | None = None) -> UnmaskingReport:
    """Run both protocols on the methods that could be built (the skipped ones are reported).

    Args:
        methods: from :func:`unmask.evaluate.methods.load_methods`.
        config: the sizes.
        distance / perceptual: a perceptual distance and its description (default :func:`perceptual_distance`).
    """
    from unmask.verify import build_judges

    start = time.perf_counter()
    if distance is None:
        distance, perceptual = perceptual_distance()
    skipped = {METHOD_NAMES[key]: reason for key, reason in methods.skipped.items()}
    quality, grid = evaluate_quality(methods, config, distance=distance, progress=progress)
    verification: dict = {}
    curves: dict = {}
    if config.pairs_per_fold > 0:
        judges, no_judge = build_judges(config.judges, methods.bundle)
        skipped.update({f"judge {JUDGE_NAMES[key]}": reason for key, reason in no_judge.items()})
        if judges:
            verification, curves = evaluate_verification(methods, config, judges, progress=progress)
        if not config.verify_optimizing:
            for m in methods.methods.values():
                if m.optimizing:
                    skipped[f"{m.name} (verification)"] = "optimising methods are verified with --verify-optimizing"
    gaps = {}
    for judge, rows in verification.items():
        masked, unmasked = rows[MASKED_ROW]["accuracy"], rows[UNMASKED_ROW]["accuracy"]
        gaps[judge] = {row: gap_closed(m["accuracy"], masked, unmasked) for row, m in rows.items()}
    return UnmaskingReport(quality=quality, verification=verification, gap_closed=gaps, curves=curves,
                           skipped=skipped, grid=grid, perceptual=perceptual or "custom", config=config,
                           seconds=time.perf_counter() - start)


def main(argv: Sequence[str]) -> int:
    """The paper's comparison on held-out teaching identities (see :mod:`unmask.evaluate.unmasking`)."""
    from unmask.evaluate.methods import load_methods

    d = UnmaskingEvalConfig()
    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate unmasking",
                                     description="The paper's comparison (generic inversion vs unmasking encoders) "
                                                 "on held-out teaching-world identities.")
    parser.add_argument("--model", default="teaching", help="bundle name or folder: generator + identity network")
    parser.add_argument("--generic-encoder", help="generic inversion encoder folder (default: BUNDLE/encoder_generic)")
    parser.add_argument("--encoder-a", help="variant (a) encoder folder, 3 channels + mask head (default: "
                                            "BUNDLE/encoder_a, else the bundle's encoder if it has a head)")
    parser.add_argument("--encoder-b", help="variant (b) encoder folder, RGB + mask (default: "
                                            "BUNDLE/encoder_mask_channel, else the bundle's encoder if it reads "
                                            "the mask)")
    parser.add_argument("--methods", default=",".join(METHOD_KEYS), help=f"subset of {','.join(METHOD_KEYS)}")
    parser.add_argument("--judges", default=",".join(d.judges), help=f"subset of {','.join(JUDGES)}")
    parser.add_argument("--faces", type=int, default=d.n_faces)
    parser.add_argument("--pairs-per-fold", type=int, default=d.pairs_per_fold, help="0 skips verification")
    parser.add_argument("--optimize-faces", type=int, default=d.optimize_faces)
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--verify-optimizing", action="store_true", help="also verify the optimising methods (slow)")
    parser.add_argument("--ceiling-refine", action="store_true",
                        help="refine the generic inversion of the unmasked face (--steps)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--preset", default=d.preset)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--correlation", type=float, default=d.correlation,
                        help="the world's face correlation ρ in [0, 1] (default 0: the bundle's training world)")
    parser.add_argument("--size", type=int, help="image side (default: the bundle's size)")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="Markdown table to write ('' to skip)")
    parser.add_argument("--roc", default=DEFAULT_ROC, help="ROC figure to write ('' to skip)")
    parser.add_argument("--grid", default=DEFAULT_GRID, help="qualitative grid to write ('' to skip)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(list(argv))
    config = UnmaskingEvalConfig(n_faces=args.faces, pairs_per_fold=args.pairs_per_fold, steps=args.steps,
                                 optimize_faces=args.optimize_faces, verify_optimizing=args.verify_optimizing,
                                 batch_size=args.batch_size, preset=args.preset, seed=args.seed,
                                 correlation=args.correlation, size=args.size,
                                 judges=tuple(j for j in args.judges.split(",") if j))
    methods = load_methods(args.model, generic=args.generic_encoder, encoder_a=args.encoder_a,
                           encoder_b=args.encoder_b, keys=[k for k in args.methods.split(",") if k],
                           steps=args.steps, ceiling_refine=args.ceiling_refine, device=args.device)
    for key, reason in methods.skipped.items():
        print(f"skipped {METHOD_NAMES[key]}: {reason}", file=sys.stderr)
    report = evaluate_unmasking(methods, config)
    command = "python -m unmask.evaluate unmasking " + " ".join(argv)
    print()
    print(report.to_markdown(command.strip()))
    for path in report.write(args.table, args.roc, args.grid, command=command.strip()):
        print(f"wrote {path}")
    return 0
