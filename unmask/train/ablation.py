"""Loss ablation of the identity embedder: ``python -m unmask.evaluate ablation-identity``.

Trains the identity embedder on the teaching world under five loss settings (Sabri, Randhawa,
Doretto, arXiv 2212.14107, Table "ablation") and prints one table of rank-1, mAP and verification
accuracy on held-out identities::

    python -m unmask.evaluate ablation-identity --preset standard

Rank-1 and mAP are mean ± std over identity-disjoint query folds (one seed) or over seeds
(``--seeds N``); verification accuracy is mean ± std over its 10 folds (one seed) or over seeds.
Every configuration sees the same rendered images, batches and initialisation seed. It trains
models, so it lives in ``unmask.train``; the ``unmask.evaluate`` command line runs it by name.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence

import numpy as np

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


def main(argv: Sequence[str]) -> int:
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
