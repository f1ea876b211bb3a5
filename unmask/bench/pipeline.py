"""``python -m unmask.bench pipeline``: inference latency per face, per mode and per precision.

Runs the shipped teaching bundle on a held-out teaching face (64 px, aligned, its true mask given) in
each mode — the encoder mode (one forward pass), encoder + refinement and the optimisation mode
(per-image inversion) — under float32 and bf16 in the same run, and prints the ratios. Training-step
throughput is ``python -m unmask.bench train``.
"""

from __future__ import annotations

import argparse

from unmask.measure import print_table, time_call


def build_parser() -> argparse.ArgumentParser:
    """Options of the ``pipeline`` suite."""
    p = argparse.ArgumentParser(prog="python -m unmask.bench pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--optimize-steps", type=int, default=100, help="steps of the optimisation mode")
    p.add_argument("--refine-steps", type=int, default=30)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated, of fp32 and bf16")
    return p


def main(argv: list[str] | None = None) -> None:
    """Per-face latency of each mode under each precision, with the ratios to the float32 encoder mode."""
    args = build_parser().parse_args(argv)

    from unmask.data.world import UnmaskingDataset
    from unmask.faces.io import to_uint8
    from unmask.pipeline import UnmaskPipeline
    from unmask.precision import resolve_precision
    from unmask.synthetic import WorldConfig

    auto = resolve_precision("auto", args.device)
    print(f"precision auto -> {auto.precision} ({auto.reason})")
    rows = []
    modes = (("encoder", None), ("encoder+refine", args.refine_steps), ("optimize", args.optimize_steps))
    for precision in (p for p in args.precisions.split(",") if p):
        pipe = UnmaskPipeline.from_pretrained("teaching", device=args.device, precision=precision)
        item = UnmaskingDataset(WorldConfig(size=pipe.size, seed=0), split="test", length=8).batch([0])
        face = to_uint8(item["masked"])[0]
        mask = item["mask"][0, 0].numpy()
        for mode, steps in modes:
            def run(pipe=pipe, face=face, mask=mask, mode=mode, steps=steps) -> None:
                pipe(face, mode=mode, steps=steps, aligned=True, mask=mask)

            t = time_call(run, warmup=1, repeat=args.repeat if mode == "encoder" else max(1, args.repeat - 1))
            rows.append({"precision": precision, "mode": mode, "steps": steps or 0, **t})
    base = rows[0]["median_ms"]
    for row in rows:
        row["x_fp32_encoder"] = row["median_ms"] / base
    print_table(f"inference per face, teaching bundle, 64px aligned, device={args.device}", rows)
    by = {(r["precision"], r["mode"]): r["median_ms"] for r in rows}
    print(f"optimize / encoder latency ratio ({rows[0]['precision']}): "
          f"{by[(rows[0]['precision'], 'optimize')] / base:.1f}x")
    for mode, _ in modes:
        if ("fp32", mode) in by and ("bf16", mode) in by:
            print(f"{mode}: bf16 is {by[('fp32', mode)] / by[('bf16', mode)]:.2f}x the speed of fp32")
