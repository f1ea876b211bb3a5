"""``python -m unmask.evaluate generator``: does the generator draw faces, and the faces of its z?

Two measures (issue 10's targets), on z the generator never trained on:

* **dlib face rate**: the share of samples ``G(z)``, ``z ~ N(0, I)`` at truncation ``psi``, on which
  dlib's HOG frontal face detector (trained on real photos, independent of this project) finds a
  face. Images are resized to ``--detect-size`` px (bicubic) and searched at 0 and 1 upsampling
  steps; a face found at either counts. For a teaching generator the same is measured on the
  world's renders of the same z, the reference of what is attainable.
* **PSNR / SSIM of G(z) against render(z)** (teaching generators only: their z is the world's
  factors, :mod:`unmask.synthetic.latent`), on ``--held-out`` z, images compared in [0, 1], with the
  generator's stored noise maps.

It also writes a picture: renders above, the generator's drawings of the same z below. With ``--template N`` it
measures where dlib's 68 landmarks fall on N samples (the mean template of the generator's crop and its spread,
:func:`unmask.data.generated.landmark_template`) and writes them as JSON (``--template-out``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unmask.errors import ConfigError
from unmask.models.generators import generator_device

#: Seed of the evaluation z (a stream of its own: the decoder's pool and validation use others).
DEFAULT_SEED = 424_242


def held_out_z(n: int, style_dim: int, seed: int = DEFAULT_SEED) -> torch.Tensor:
    """``(n, style_dim)`` standard-normal z from ``seed``."""
    return torch.randn(n, style_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def draw(generator: torch.nn.Module, z: torch.Tensor, truncation: float = 1.0, chunk: int = 64) -> torch.Tensor:
    """``G(z)`` in [-1, 1], ``(N, 3, S, S)`` on the CPU, with the stored noise (no randomness)."""
    generator.eval()
    device = generator_device(generator)
    mean = generator.mean_latent(4096, seed=0) if truncation != 1.0 else None
    out = []
    for start in range(0, len(z), chunk):
        part = z[start:start + chunk].to(device)
        if mean is None:
            image = generator(z=part)
        else:
            w = mean + truncation * (generator.mapping(part) - mean)
            image = generator(w=w)
        out.append(image.clamp(-1, 1).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 3, generator.size, generator.size)


def face_rate(images: torch.Tensor, detect_size: int = 128) -> dict[str, float]:
    """Share of ``(N, 3, S, S)`` images in [-1, 1] where dlib's HOG detector finds a face.

    Returns ``upsample_0`` (a face at the original scale) and ``either`` (a face at 0 or, searched only
    where none was found, at 1 upsampling step).
    """
    import dlib

    from unmask.faces.io import resize_images, to_uint8

    if len(images) == 0:
        raise ConfigError("face_rate needs at least one image.")
    detector = dlib.get_frontal_face_detector()
    pixels = to_uint8(resize_images(images, detect_size))
    at_0 = np.zeros(len(pixels), dtype=bool)
    either = np.zeros(len(pixels), dtype=bool)
    for i, image in enumerate(pixels):
        image = np.ascontiguousarray(image)
        at_0[i] = len(detector(image, 0)) > 0
        either[i] = at_0[i] or len(detector(image, 1)) > 0
    return {"upsample_0": float(at_0.mean()), "either": float(either.mean())}


def fidelity(generator: torch.nn.Module, world, z: torch.Tensor, chunk: int = 64) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of ``G(z)`` against ``render_z(world, z)``, images in [0, 1]."""
    from unmask.evaluate.metrics import region_quality
    from unmask.synthetic.latent import render_z

    psnrs, ssims = [], []
    for start in range(0, len(z), chunk):
        part = z[start:start + chunk]
        drawn = draw(generator, part)
        target = render_z(world, part).images.float().clamp(-1, 1).cpu()
        whole = region_quality(drawn, target, torch.zeros(len(part), 1, *target.shape[-2:]))  # all "outside"
        psnrs.append(whole["psnr_outside"])
        ssims.append(whole["ssim_outside"])
    return {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}


def comparison_grid(renders: torch.Tensor, drawn: torch.Tensor, path: str | Path, scale: int = 2) -> Path:
    """Write renders (top row) over the generator's drawings (bottom row) as a PNG; returns the path."""
    from PIL import Image

    from unmask.faces.io import to_uint8

    rows = [np.concatenate(list(to_uint8(images)), axis=1) for images in (renders, drawn)]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate generator", description=__doc__.split("\n")[0])
    parser.add_argument("--generator", default="weights/teaching/generator",
                        help="generator folder, Hub repo or REGISTRY name (digiface-dcgan)")
    parser.add_argument("--samples", type=int, default=200, help="samples for the dlib face rate")
    parser.add_argument("--held-out", type=int, default=1000, help="z for PSNR against the world's renders")
    parser.add_argument("--truncation", type=float, default=1.0)
    parser.add_argument("--detect-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--preset", default="standard", help="the teaching world the generator was taught")
    parser.add_argument("--grid", default="runs/generator_samples.png", help="picture to write ('' to skip)")
    parser.add_argument("--grid-faces", type=int, default=8)
    parser.add_argument("--template", type=int, default=0, metavar="N",
                        help="also measure the dlib landmark template on N samples (0: skip)")
    parser.add_argument("--template-out", default="runs/landmark_template.json")
    args = parser.parse_args(list(argv))
    if args.samples < 1 or args.held_out < 0 or not 0 < args.truncation <= 1:
        raise ConfigError("--samples must be >= 1, --held-out >= 0 and --truncation in (0, 1].")

    from unmask.data.generated import is_teaching
    from unmask.models.generators import load_frozen_generator

    generator, _ = load_frozen_generator(args.generator, n_samples=1)
    teaching = is_teaching(generator)
    z = held_out_z(max(args.samples, args.held_out), generator.style_dim, args.seed)
    drawn = draw(generator, z[:args.samples], args.truncation)
    rows = [{"images": f"G(z), psi={args.truncation:g}", **face_rate(drawn, args.detect_size)}]
    renders = None
    if teaching:
        from unmask.synthetic import FaceWorld, WorldConfig
        from unmask.synthetic.latent import render_z

        world = FaceWorld(WorldConfig(size=generator.size, preset=args.preset))
        renders = render_z(world, z[:args.samples]).images.float().clamp(-1, 1).cpu()
        rows.append({"images": "render(z)", **face_rate(renders, args.detect_size)})
    from unmask.measure import print_table

    print_table(f"dlib HOG face rate, {args.samples} samples at {args.detect_size} px ({args.generator})", rows)
    if teaching and args.held_out:
        scores = fidelity(generator, world, z[:args.held_out])
        print_table(f"G(z) against render(z), {args.held_out} held-out z",
                    [{"psnr_db": round(scores["psnr"], 2), "ssim": round(scores["ssim"], 3)}])
    elif not teaching:
        print("PSNR against render(z) skipped: this generator's z is not the teaching world's factors.")
    if args.grid:
        n = min(args.grid_faces, args.samples)
        top = renders[:n] if renders is not None else drawn[:n]
        print(f"wrote {comparison_grid(top, drawn[:n], args.grid)}"
              + (" (renders above, G(z) below)" if renders is not None else ""))
    if args.template:
        _template(generator, args)
    return 0


def _template(generator: torch.nn.Module, args: argparse.Namespace) -> None:
    """Measure and print the landmark template (mean and spread), and write it as JSON."""
    import json

    from unmask.data.generated import landmark_template
    from unmask.measure import print_table

    found = landmark_template(generator, args.template, seed=args.seed)
    mean, std = found["mean"], found["std"]
    parts = {"jaw 0-16": slice(0, 17), "brows 17-26": slice(17, 27), "nose 27-35": slice(27, 36),
             "eyes 36-47": slice(36, 48), "mouth 48-67": slice(48, 68)}
    print_table(f"dlib landmark template, {found['faces']} faces in {args.template} samples (fractions of the side)",
                [{"points": name, "mean_x": f"{mean[s, 0].mean():.4f}", "mean_y": f"{mean[s, 1].mean():.4f}",
                  "spread_x": f"{std[s, 0].mean():.4f}", "spread_y": f"{std[s, 1].mean():.4f}"}
                 for name, s in parts.items()])
    out = Path(args.template_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in found.items()}), "utf-8")
    print(f"wrote {out}")
