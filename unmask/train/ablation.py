"""Loss ablation of the identity embedder: ``python -m unmask.evaluate ablation-identity``.

Trains the identity embedder on the teaching world's re-identification benchmark
(:mod:`unmask.data.reid`, Market-1501 protocol with distractors) under the settings of
:mod:`unmask.evaluate.ablation_report` (softmax alone and joint at margins 0, 0.2, 0.3, 0.5; triplet
alone; joint with attributes), each with several seeds, and decides the paper's three claims by
paired differences over seeds. Every run trains until its validation mAP is flat
(``TrainConfig.stop_metric``), then is tested once. The committed result (docs/reid_ablation.md)::

    python -m unmask.evaluate ablation-identity --seeds 5 --out docs/reid_ablation

``--out`` keeps ``results.json`` (one record per run, written as each run ends, so an interrupted
ablation continues where it stopped), ``report.md``, ``cmc.png`` and ``curves.png``. ``--report``
rebuilds the report from ``results.json`` without training. Seed ``s`` gives every setting the same
backbone initialisation and the same batches. It trains models, so it lives in ``unmask.train``; the
``unmask.evaluate`` command line runs it by name.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unmask.errors import ConfigError
from unmask.evaluate.ablation_report import SETTINGS, merge_results, read_results, write_report

#: The committed benchmark: the ``hard`` nuisance preset at 32 px (why: docs/reid_ablation/README.md).
DEFAULT_PRESET, DEFAULT_SIZE = "hard", 32


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate ablation-identity",
                                     description="Identity-loss ablation on the teaching world's re-id benchmark.")
    parser.add_argument("--out", default=None, help="folder for results.json and the report (resumable)")
    parser.add_argument("--report", action="store_true", help="only rebuild the report from --out/results.json")
    parser.add_argument("--merge", action="append", default=[], metavar="DIR",
                        help="add the runs of another results folder of the same settings (repeatable): split an "
                             "ablation over processes or machines, then merge into --out")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per setting (0 .. N-1)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start at this seed (split seeds over processes, then --merge their folders)")
    parser.add_argument("--only", action="append", default=None,
                        help=f"run only this setting (repeatable); one of {list(SETTINGS)}")
    w = parser.add_argument_group("world and protocol")
    w.add_argument("--preset", default=DEFAULT_PRESET, help="teaching-world nuisance preset (easy/standard/hard)")
    w.add_argument("--size", type=int, default=DEFAULT_SIZE, help="render size in pixels (the backbone's input)")
    w.add_argument("--train-identities", type=int, default=400)
    w.add_argument("--val-identities", type=int, default=60)
    w.add_argument("--test-identities", type=int, default=150)
    w.add_argument("--distractors", type=int, default=150, help="gallery-only distractor identities")
    w.add_argument("--views", type=int, default=10, help="renders per test / validation identity")
    w.add_argument("--train-views", type=int, default=12, help="renders per training identity")
    t = parser.add_argument_group("training")
    t.add_argument("--max-steps", type=int, default=3000, help="cap on steps per run")
    t.add_argument("--validate-every", type=int, default=250)
    t.add_argument("--patience", type=int, default=3, help="validations without a gain that end a run")
    t.add_argument("--min-delta", type=float, default=0.005, help="smallest validation-mAP gain that counts")
    t.add_argument("--p", type=int, default=8, help="identities per batch")
    t.add_argument("--k", type=int, default=4, help="images per identity in a batch")
    t.add_argument("--widths", default="8,16,32,64", help="backbone stage widths")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--precision", default="auto", help="train.mixed_precision: auto, no, bf16")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser


def _spec(args: argparse.Namespace) -> dict:
    """What makes two runs comparable: world, protocol and training settings (not seeds or settings)."""
    return {
        "world": {"preset": args.preset, "size": args.size, "seed": 0},
        "protocol": {"train_identities": args.train_identities, "val_identities": args.val_identities,
                     "test_identities": args.test_identities, "distractor_identities": args.distractors,
                     "views": args.views, "train_views": args.train_views},
        "training": {"max_steps": args.max_steps, "validate_every": args.validate_every, "patience": args.patience,
                     "min_delta": args.min_delta, "p": args.p, "k": args.k, "widths": args.widths, "lr": args.lr,
                     "precision": args.precision},
    }


def _save(results: dict, path: Path) -> None:
    """Write ``results.json`` atomically (an interrupted write never loses finished runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)


def run_setting(name: str, seed: int, data, args: argparse.Namespace, *, cpu: bool) -> dict:
    """Train ``name`` with ``seed`` until validation mAP is flat; test once. Returns the run's record."""
    from unmask.evaluate.identity import evaluate_embedder
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
    from unmask.train.loop import Trainer, hardware_description
    from unmask.train.run_config import TrainConfig

    setting = SETTINGS[name]
    losses = joint_loss_section(setting.softmax, setting.triplet, setting.attributes, margin=setting.margin)
    model = EmbeddingConfig(input_size=args.size, widths=tuple(int(w) for w in args.widths.split(",")),
                            embedding_dim=128)
    world = WorldConfig(size=args.size, preset=args.preset, seed=0)
    task_config = IdentityTaskConfig(
        model=model, losses=losses, data=IdentityDataConfig(world=world, p=args.p, k=args.k),
        optim=IdentityOptimConfig(lr=args.lr, warmup_steps=100, schedule="constant"),
        eval=IdentityEvalConfig(strip_k=0))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unmask-ablation-") as out:
        train_config = TrainConfig(output_dir=out, max_steps=args.max_steps, seed=seed, log_every=0,
                                   checkpoint_every=0, validate_every=args.validate_every, log_with="none",
                                   progress_bar=False, export=False, cpu=cpu, mixed_precision=args.precision,
                                   stop_metric="mAP", stop_patience=args.patience, stop_min_delta=args.min_delta)
        task = Task(task_config, data=(data.train, data.val, None))
        trainer = Trainer(train_config, task)
        fit = trainer.fit()
        embedder = task.accelerator.unwrap_model(task.model)
        metrics, extras = evaluate_embedder(embedder, data.test, data.pairs, device=task.device)
    first = np.asarray(extras["first_match"])
    valid = first[first >= 0]
    cmc = [float(np.mean(valid < r)) for r in range(1, 21)]
    return {"setting": name, "seed": seed, "steps": int(fit["step"]), "stopped_early": bool(fit["stopped_early"]),
            "wall_s": time.perf_counter() - start, "precision": trainer.precision.precision,
            "hardware": hardware_description(task.device),
            "metrics": {k: float(v) for k, v in metrics.items() if k in ("rank-1", "rank-5", "rank-10", "mAP",
                                                                         "accuracy", "auc", "eer")},
            "cmc": cmc, "curve": [[int(s), float(v)] for s, v in fit["curve"]]}


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = args.only or list(SETTINGS)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    out = Path(args.out) if args.out else None
    if args.report:
        if out is None:
            parser.error("--report needs --out, the folder holding results.json")
        results = read_results(out)
        if args.merge:
            results = merge_results(results, *(read_results(m) for m in args.merge))
            _save(results, out / "results.json")
        for path in write_report(results, out):
            print(f"wrote {path}")
        print((out / "report.md").read_text())
        return 0

    import torch
    from tqdm.auto import tqdm

    from unmask.data.reid import ReIDProtocol, world_reid_data
    from unmask.synthetic.config import WorldConfig

    spec = _spec(args)
    results = {"spec": spec, "runs": []}
    if out is not None and (out / "results.json").is_file():
        results = read_results(out)
    try:
        results = merge_results(results, *(read_results(m) for m in args.merge))
    except ConfigError as exc:
        parser.error(str(exc))
    if results["spec"] != spec:
        parser.error(f"{out}/results.json was made with other settings ({results['spec']}); use another --out, "
                     "or the same options to continue it")
    done = {(r["setting"], int(r["seed"])) for r in results["runs"]}
    todo = [(name, seed) for seed in range(args.first_seed, args.seeds) for name in names if (name, seed) not in done]
    cpu = args.device == "cpu" or (args.device is None and not torch.cuda.is_available())
    protocol = ReIDProtocol(train_identities=args.train_identities, val_identities=args.val_identities,
                            test_identities=args.test_identities, distractor_identities=args.distractors,
                            train_views=args.train_views, views=args.views)
    world = WorldConfig(size=args.size, preset=args.preset, seed=0,
                        n_identities=max(1000, 2 * (args.train_identities + args.val_identities),
                                         5 * (args.test_identities + args.distractors)))
    start = time.perf_counter()
    data = world_reid_data(world, protocol, device="cpu" if cpu else "cuda")
    print(f"rendered {len(data.train)} training, {len(data.val.query) + len(data.val.gallery)} validation and "
          f"{len(data.test.query)} query + {len(data.test.gallery)} gallery test images (preset {args.preset}, "
          f"{args.size} px) in {time.perf_counter() - start:.0f} s; {len(todo)} runs to go, {len(done)} done",
          flush=True)
    for name, seed in tqdm(todo, desc="ablation runs", dynamic_ncols=True):
        record = run_setting(name, seed, data, args, cpu=cpu)
        results["runs"].append(record)
        m = record["metrics"]
        tqdm.write(f"  {name} (seed {seed}): rank-1 {m['rank-1']:.3f}, mAP {m['mAP']:.3f}, verification "
                   f"{m['accuracy']:.3f}; {record['steps']} steps in {record['wall_s']:.0f} s")
        if out is not None:
            _save(results, out / "results.json")
    if out is not None:
        for path in write_report(results, out):
            print(f"wrote {path}")
    from unmask.evaluate.ablation_report import report

    print(report(results))
    return 0

