"""``python -m unmask.bench pipeline``: inference latency per mode, and encoder training step time.

Inference runs the shipped teaching bundle on held-out teaching faces (64 px) — the encoder mode
(one forward pass) against the optimisation mode (per-image inversion), on the same device, and
prints their ratio. Training times one optimisation step of the unmasking encoder at 64 px (the
teaching architecture) and 256 px (pSp IR-SE-50 with a 1024-px StyleGAN2), random weights.
"""

from __future__ import annotations

import argparse

from unmask.bench import peak_rss_mib, print_table, time_call


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m unmask.bench pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--optimize-steps", type=int, default=100, help="steps of the optimisation mode")
    p.add_argument("--refine-steps", type=int, default=30)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-train", action="store_true", help="only inference")
    p.add_argument("--train-sizes", default="64,256", help="comma-separated training sizes to time")
    args = p.parse_args(argv)


    from unmask.faces.io import to_uint8
    from unmask.pipeline import UnmaskPipeline
    from unmask.synthetic import UnmaskingDataset, WorldConfig

    pipe = UnmaskPipeline.from_pretrained("teaching", device=args.device)
    item = UnmaskingDataset(WorldConfig(size=pipe.size, seed=0), split="test", length=8).batch([0])
    face = to_uint8(item["masked"])[0]
    mask = item["mask"][0, 0].numpy()

    rows = []
    modes = (("encoder", None), ("encoder+refine", args.refine_steps), ("optimize", args.optimize_steps))
    for mode, steps in modes:
        t = time_call(lambda mode=mode, steps=steps: pipe(face, mode=mode, steps=steps, aligned=True, mask=mask),
                      warmup=1, repeat=args.repeat if mode == "encoder" else max(1, args.repeat - 1))
        rows.append({"mode": mode, "steps": steps or 0, **t})
    base = rows[0]["median_ms"]
    for row in rows:
        row["x_encoder"] = row["median_ms"] / base
    print_table(f"inference, teaching bundle, {pipe.size}px aligned face, device={args.device}", rows)
    print(f"optimize / encoder latency ratio: {rows[2]['median_ms'] / base:.1f}x")

    if not args.skip_train:
        from unmask.train.encoder import benchmark_step

        train_rows = []
        for size in (int(s) for s in args.train_sizes.split(",") if s):
            batch = 16 if size <= 64 else 2
            result = benchmark_step(size, batch_size=batch, device=args.device, repeat=3)
            train_rows.append({"size": size, "batch": batch, **result})
        print_table(f"encoder training step, device={args.device}", train_rows)
    print(f"\npeak RSS: {peak_rss_mib():.0f} MiB")
