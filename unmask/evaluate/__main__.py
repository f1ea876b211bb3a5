"""``python -m unmask.evaluate COMMAND``: evaluation commands.

``ablation-identity``: train the identity embedder on the teaching world under five loss settings
(Sabri, Randhawa, Doretto, arXiv 2212.14107, Table "ablation") and print one table of rank-1,
mAP and verification accuracy on held-out identities::

    python -m unmask.evaluate ablation-identity --preset standard

Rank-1 and mAP are mean ± std over identity-disjoint query folds (one seed) or over seeds
(``--seeds N``); verification accuracy is mean ± std over its 10 folds (one seed) or over seeds.
Every configuration sees the same rendered images, batches and initialisation seed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from unmask.errors import UnmaskError

#: The five settings of the ablation: name -> loss weights and margin.
ABLATION_MARGIN = 0.3
ATTRIBUTE_WEIGHT = 0.5
ABLATION = {
    "softmax + margin": {"softmax": 1.0, "triplet": 0.0, "attributes": 0.0, "margin": ABLATION_MARGIN},
    "triplet": {"softmax": 0.0, "triplet": 1.0, "attributes": 0.0, "margin": 0.0},
    "joint, m = 0": {"softmax": 1.0, "triplet": 1.0, "attributes": 0.0, "margin": 0.0},
    f"joint, m = {ABLATION_MARGIN}": {"softmax": 1.0, "triplet": 1.0, "attributes": 0.0, "margin": ABLATION_MARGIN},
    "joint + attributes": {"softmax": 1.0, "triplet": 1.0, "attributes": ATTRIBUTE_WEIGHT, "margin": 0.0},
}
#: Query folds for the spread of rank-1 / mAP with one seed.
QUERY_FOLDS = 10


def _query_fold_metrics(first_match: np.ndarray, ap: np.ndarray, query_ids: np.ndarray) -> tuple[list, list]:
    """Rank-1 and mAP in identity-disjoint query folds (queries without a match are skipped)."""
    valid = first_match >= 0
    ids = np.unique(query_ids[valid])
    rank1, maps = [], []
    for fold_ids in np.array_split(np.random.default_rng(0).permutation(ids), min(QUERY_FOLDS, len(ids))):
        pick = valid & np.isin(query_ids, fold_ids)
        rank1.append(float(np.mean(first_match[pick] == 0)))
        maps.append(float(np.mean(ap[pick])))
    return rank1, maps


def _fmt(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=np.float64) * 100.0
    return f"{values.mean():5.1f} ± {values.std():4.1f}"


def ablation_identity(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate ablation-identity",
                                     description="Loss ablation of the identity embedder on the teaching world.")
    parser.add_argument("--preset", default="standard", help="teaching-world nuisance preset (easy/standard/hard)")
    parser.add_argument("--size", type=int, default=64, help="render size in pixels")
    parser.add_argument("--steps", type=int, default=300, help="training steps per configuration")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per configuration")
    parser.add_argument("--train-identities", type=int, default=96)
    parser.add_argument("--test-identities", type=int, default=40)
    parser.add_argument("--images-per-identity", type=int, default=8)
    parser.add_argument("--p", type=int, default=8, help="identities per batch")
    parser.add_argument("--k", type=int, default=4, help="images per identity in a batch")
    parser.add_argument("--input-size", type=int, default=64,
                        help="side the backbone sees (faces are average-pooled to it); a multiple of 16")
    parser.add_argument("--widths", default="16,32,64,128", help="backbone stage widths")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--only", action="append", default=None, help="run only this configuration (repeatable)")
    args = parser.parse_args(argv)

    import torch

    from unmask.data.identity import world_identity_data
    from unmask.losses.metric import joint_loss_section
    from unmask.models.embedding import EmbeddingConfig
    from unmask.synthetic.config import WorldConfig
    from unmask.train.identity import (
        IdentityDataConfig,
        IdentityEvalConfig,
        IdentityOptimConfig,
        IdentityTaskConfig,
        Task,
    )
    from unmask.train.loop import Trainer
    from unmask.train.run_config import TrainConfig

    cpu = args.device == "cpu" or (args.device is None and not torch.cuda.is_available())
    world = WorldConfig(size=args.size, preset=args.preset, seed=0,
                        n_identities=max(1000, 2 * (args.train_identities + args.test_identities)))
    start = time.perf_counter()
    data = world_identity_data(world, train_identities=args.train_identities, test_identities=args.test_identities,
                               images_per_identity=args.images_per_identity,
                               device="cpu" if cpu else "cuda")
    train, reid, pairs = data
    print(f"rendered {len(train)} training and {len(reid.query) + len(reid.gallery)} evaluation images "
          f"({args.train_identities} / {args.test_identities} identities, preset {args.preset}, {args.size} px) "
          f"in {time.perf_counter() - start:.0f} s", flush=True)
    model = EmbeddingConfig(input_size=args.input_size, widths=tuple(int(w) for w in args.widths.split(",")),
                            embedding_dim=128)
    names = args.only or list(ABLATION)
    unknown = sorted(set(names) - set(ABLATION))
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {list(ABLATION)}")
    rows = []
    for name in names:
        setting = ABLATION[name]
        per_seed = []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            losses = joint_loss_section(setting["softmax"], setting["triplet"], setting["attributes"],
                                        margin=setting["margin"])
            task_config = IdentityTaskConfig(
                model=model, losses=losses, data=IdentityDataConfig(world=world, p=args.p, k=args.k),
                optim=IdentityOptimConfig(lr=args.lr, warmup_steps=max(1, args.steps // 10)),
                eval=IdentityEvalConfig(strip_k=0))
            with tempfile.TemporaryDirectory(prefix="unmask-ablation-") as out:
                train_config = TrainConfig(output_dir=out, max_steps=args.steps, seed=seed, log_every=0,
                                           checkpoint_every=0, validate_every=0, log_with="none",
                                           progress_bar=False, export=False, cpu=cpu)
                task = Task(task_config, data=data)
                Trainer(train_config, task).fit()
                from unmask.evaluate.identity import evaluate_embedder

                model_ = task.accelerator.unwrap_model(task.model)
                metrics, extras = evaluate_embedder(model_, reid, pairs, device=task.device)
            per_seed.append((metrics, extras))
            print(f"  {name} (seed {seed}): rank-1 {metrics['rank-1']:.3f}, mAP {metrics['mAP']:.3f}, "
                  f"verification {metrics['accuracy']:.3f} in {time.perf_counter() - t0:.0f} s", flush=True)
        if args.seeds == 1:
            metrics, extras = per_seed[0]
            rank1, maps = _query_fold_metrics(extras["first_match"], extras["ap"], reid.query.labels)
            acc = extras["fold_accuracies"]
        else:
            rank1 = [m["rank-1"] for m, _ in per_seed]
            maps = [m["mAP"] for m, _ in per_seed]
            acc = [m["accuracy"] for m, _ in per_seed]
        rows.append((name, _fmt(rank1), _fmt(maps), _fmt(acc), float(np.mean(maps))))
    spread = "10 query / verification folds" if args.seeds == 1 else f"{args.seeds} seeds"
    print(f"\nIdentity ablation on the teaching world ({args.preset}, {args.size} px, {args.steps} steps of "
          f"{args.p}×{args.k}; % mean ± std over {spread})")
    header = ("configuration", "rank-1", "mAP", "verification acc.")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 13, 13, 17]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row[:4], widths)))
    best = max(rows, key=lambda r: r[4])
    print(f"best by mAP: {best[0]}")
    return 0


def unmasking(argv: Sequence[str]) -> int:
    """Image quality and verification before / after recovery (see ``unmask.evaluate.unmasking``)."""
    import dataclasses

    from unmask.evaluate.unmasking import UnmaskingEvalConfig, evaluate_quality, evaluate_verification, format_table
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
        from pathlib import Path

        Path(args.roc).parent.mkdir(parents=True, exist_ok=True)
    verification = evaluate_verification(pipe, config, roc_path=args.roc or None)
    print(f"\nVerification, masked probe vs unmasked reference, 10 folds x {2 * config.pairs_per_fold} pairs:")
    print(format_table(verification, ("accuracy", "accuracy_std", "auc", "tar@far=0.001", "eer"),
                       percent=("accuracy", "accuracy_std", "tar@far=0.001", "eer")))
    if args.roc:
        print(f"ROC curves: {args.roc}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


COMMANDS = {"ablation-identity": ablation_identity, "unmasking": unmasking}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m unmask.evaluate {{{','.join(COMMANDS)}}} [options]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except UnmaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
