"""``python -m unmask.bench pipeline``: inference latency per mode, and encoder training step time.

Inference (this module) runs the shipped teaching bundle on held-out teaching faces (64 px) — the
encoder mode (one forward pass) against the optimisation mode (per-image inversion), on the same
device, and prints their ratio. The suite then runs :mod:`unmask.train.bench`, which times one
optimisation step of the unmasking encoder at 64 px (the teaching architecture) and 256 px (pSp
IR-SE-50 with a 1024-px StyleGAN2), random weights. Both parse the same options (:func:`build_parser`).
"""

from __future__ import annotations

import argparse

from unmask.measure import print_table, time_call


def build_parser() -> argparse.ArgumentParser:
    """Options of the whole ``pipeline`` suite (inference here, training in :mod:`unmask.train.bench`)."""
    p = argparse.ArgumentParser(prog="python -m unmask.bench pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--optimize-steps", type=int, default=100, help="steps of the optimisation mode")
    p.add_argument("--refine-steps", type=int, default=30)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-train", action="store_true", help="only inference")
    p.add_argument("--train-sizes", default="64,256", help="comma-separated training sizes to time")
    return p


def main(argv: list[str] | None = None) -> None:
    """Inference latency per mode; the suite's training part and peak memory follow in unmask.train.bench."""
    args = build_parser().parse_args(argv)


    from unmask.data.world import UnmaskingDataset
    from unmask.faces.io import to_uint8
    from unmask.pipeline import UnmaskPipeline
    from unmask.synthetic import WorldConfig

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

