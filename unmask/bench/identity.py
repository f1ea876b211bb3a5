"""Identity benchmarks: ``python -m unmask.bench identity [--size 64] [--gallery 10000]``.

* training throughput (images/s) of the teaching-size embedder with the joint loss, P×K batches, in
  float32 and under bf16 autocast side by side (``--precisions``; the ratio is printed), so the
  precision ``auto`` would choose can be checked on the hardware at hand;
* embedding throughput (images/s) in eval mode, in each precision;
* time to evaluate CMC/mAP on a ``Q × G`` query-gallery distance matrix (Market-1501 protocol),
  and to compute the matrix itself from 128-d features.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence

from unmask.measure import peak_rss_mib, print_table, time_call


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench identity")
    parser.add_argument("--size", type=int, default=64, help="image side (and backbone input_size)")
    parser.add_argument("--widths", default="16,32,64,128")
    parser.add_argument("--p", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--gallery", type=int, default=10000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from unmask.evaluate.reid import distance_matrix, evaluate_reid
    from unmask.losses.metric import JointMetricLoss
    from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder

    device = torch.device(args.device)
    torch.manual_seed(0)
    batch = args.p * args.k
    config = EmbeddingConfig(input_size=args.size, widths=tuple(int(w) for w in args.widths.split(",")),
                             num_classes=500, num_attributes=15)
    model = IdentityEmbedder(config).to(device).train()
    loss = JointMetricLoss(1.0, 1.0, 0.5, margin=0.3)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    images = torch.rand(batch, 3, args.size, args.size, device=device) * 2 - 1
    labels = torch.arange(args.p, device=device).repeat_interleave(args.k)
    attributes = torch.randint(0, 2, (batch, 15), device=device).float()

    from unmask.precision import autocast, check_precision, resolve_precision

    def step(precision: str) -> None:
        with autocast(precision, device):
            total, _ = loss(model(images), labels, attributes)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    def embed(precision: str) -> None:
        with torch.no_grad(), autocast(precision, device):
            model.embed(images)
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows, train_rate = [], {}
    for precision in [check_precision(p.strip()) for p in args.precisions.split(",")]:
        model.train()
        train = time_call(functools.partial(step, precision), warmup=1, repeat=args.steps)
        model.eval()
        infer = time_call(functools.partial(embed, precision), warmup=1, repeat=args.steps)
        train_rate[precision] = batch / train["median_ms"] * 1000.0
        rows += [
            {"what": f"train step {precision} ({args.p}x{args.k} @ {args.size} px)", "median_ms": train["median_ms"],
             "images_per_s": train_rate[precision]},
            {"what": f"embed {precision} ({batch} @ {args.size} px)", "median_ms": infer["median_ms"],
             "images_per_s": batch / infer["median_ms"] * 1000.0},
        ]
    if {"fp32", "bf16"} <= set(train_rate):
        auto = resolve_precision("auto", device)
        rows.append({"what": f"train bf16 / fp32 throughput (auto picks {auto.precision}: {auto.reason})",
                     "median_ms": "", "images_per_s": f"{train_rate['bf16'] / train_rate['fp32']:.2f}x"})

    rng = np.random.default_rng(0)
    q_feat = torch.nn.functional.normalize(torch.randn(args.queries, 128), dim=1)
    g_feat = torch.nn.functional.normalize(torch.randn(args.gallery, 128), dim=1)
    q_ids, g_ids = rng.integers(-1, 1500, args.queries), rng.integers(-1, 1500, args.gallery)
    q_cams, g_cams = rng.integers(1, 7, args.queries), rng.integers(1, 7, args.gallery)
    start = time.perf_counter()
    dist = distance_matrix(q_feat, g_feat, "cosine")
    dist_s = time.perf_counter() - start
    start = time.perf_counter()
    out = evaluate_reid(dist, q_ids, g_ids, q_cams, g_cams)
    eval_s = time.perf_counter() - start
    rows.append({"what": f"distance matrix {args.queries}x{args.gallery} (D=128)", "median_ms": dist_s * 1000.0,
                 "images_per_s": ""})
    rows.append({"what": f"CMC + mAP on {args.queries}x{args.gallery} ({out['num_valid_queries']} valid queries)",
                 "median_ms": eval_s * 1000.0, "images_per_s": ""})
    print_table(f"identity (torch threads={torch.get_num_threads()}, device={device}, "
                f"peak RSS {peak_rss_mib():.0f} MiB)", rows)


if __name__ == "__main__":
    main()
