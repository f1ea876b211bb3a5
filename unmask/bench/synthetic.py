"""``python -m unmask.bench synthetic``: how fast the teaching world renders, and how face-like it is.

Rows: images per second at 64 and 128 px, batch 256, for the bare renderer and for full unmasking
samples (render + 8-bit quantisation + ``unmask.faces.masks.draw_mask`` per image). With
``--dlib N`` it also reports the share of N 128-px renders on which dlib's HOG frontal face detector
finds a face (at 0 and 1 upsampling steps).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from unmask.measure import peak_rss_mib, print_table, time_call


def _rate(fn, batch: int, repeat: int) -> dict[str, float]:
    t = time_call(fn, warmup=1, repeat=repeat)
    return {"ms_per_batch": t["median_ms"], "images_per_s": batch / (t["median_ms"] / 1000.0)}


def dlib_share(n: int, preset: str = "standard", seed: int = 0) -> dict[str, float]:
    """Share of ``n`` 128-px renders (train identities) on which dlib finds at least one face."""
    import dlib

    from unmask.faces.io import to_uint8
    from unmask.synthetic import FaceWorld, WorldConfig

    world = FaceWorld(WorldConfig(size=128, preset=preset, seed=seed))
    ids = world.identity_split("train")[:n]
    images = to_uint8(world.render(ids, torch.arange(len(ids)), ids % world.config.n_cameras).images)
    detector = dlib.get_frontal_face_detector()
    found = {0: 0, 1: 0}
    for image in images:
        for up in found:
            found[up] += int(len(detector(image, up)) > 0)
    return {f"upsample_{up}": count / len(images) for up, count in found.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench synthetic")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dlib", type=int, default=0, help="also measure dlib's detection share on N renders")
    args = parser.parse_args(argv)

    from unmask.data.world import UnmaskingDataset
    from unmask.synthetic import FaceWorld, WorldConfig

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        config = WorldConfig(size=size, preset=args.preset)
        world = FaceWorld(config, device=args.device)
        data = UnmaskingDataset(config, device=args.device)
        ids = torch.arange(args.batch) % config.n_identities
        counter = iter(range(1 << 30))

        def render(world=world, ids=ids, counter=counter, n_cameras=config.n_cameras):
            k = next(counter)
            world.render(ids, torch.full_like(ids, k), (ids + k) % n_cameras)

        def samples(data=data, counter=counter):
            k = next(counter)
            data.batch(range(k * args.batch, (k + 1) * args.batch))

        for what, fn in (("render", render), ("render+mask", samples)):
            rows.append({"size": size, "what": what, "batch": args.batch, **_rate(fn, args.batch, args.repeat)})
    print_table(f"synthetic world ({args.preset}, {args.device}, torch threads={torch.get_num_threads()})", rows)
    if args.dlib:
        share = dlib_share(args.dlib, args.preset)
        print_table("dlib HOG frontal detector on 128-px renders",
                    [{"renders": args.dlib, **{k: float(np.round(v, 3)) for k, v in share.items()}}])
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
