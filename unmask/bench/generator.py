"""The teaching generators' speed: ``python -m unmask.bench generator [--sizes 64,128] [--batch 32] [--repeat 5]``.

The painter generator (:class:`unmask.models.painter.PainterGenerator`, the world's own painter) beside the StyleGAN2
teaching generator (the architecture of ``weights/teaching_next/generator`` or ``weights/teaching/generator``, its
weights where the size matches, random weights of the same widths at other sizes: speed does not depend on their
values), in one run, on the same batch of latents:

* **forward**: ``synthesis(w_plus)`` without autograd (inference, generated pairs);
* **forward + backward**: the same with the latent requiring a gradient and the generator frozen, then the
  backward of a scalar loss (encoder training and inversion: the gradient reaches the latent, not the weights).

Prints img/s and ms per batch (median of ``--repeat``), the painter's speed-up over StyleGAN2 per size, the
precision (float32: the painter paints in float32; bf16 is emulated on CPUs without bf16 units) and the threads.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from unmask.measure import print_table, time_call

_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
#: Where the StyleGAN2 teaching generator's config is read from, first found.
STYLEGAN_FOLDERS = (_WEIGHTS / "teaching_next" / "generator", _WEIGHTS / "teaching" / "generator")


def _stylegan(size: int) -> torch.nn.Module | None:
    """The StyleGAN2 teaching generator at ``size`` (its weights where they fit, else random), or None."""
    from unmask.hub import ARCHITECTURE_KEY, from_pretrained, parse_config, read_config
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    for folder in STYLEGAN_FOLDERS:
        config_file = folder / "config.json"
        if not config_file.is_file():
            continue
        raw = read_config(config_file)
        if raw.get(ARCHITECTURE_KEY) != "Generator":
            continue
        if raw.get("size") == size:
            return from_pretrained(folder).eval().requires_grad_(False)
        raw.pop(ARCHITECTURE_KEY, None)
        raw["size"] = size
        torch.manual_seed(0)
        return Generator(parse_config(GeneratorConfig, raw, source=str(config_file))).eval().requires_grad_(False)
    return None


def _rows(name: str, generator: torch.nn.Module, batch: int, warmup: int, repeat: int) -> dict[str, object]:
    torch.manual_seed(0)
    z = torch.randn(batch, generator.style_dim)
    with torch.no_grad():
        w_plus = generator.mapping(z)[:, None].repeat(1, generator.n_latent, 1)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return generator.synthesis(w_plus)

    def forward_backward() -> None:
        latent = w_plus.clone().requires_grad_(True)
        generator.synthesis(latent).square().mean().backward()

    times: dict[str, float] = {}
    for key, fn in (("fwd", forward), ("fwd+bwd", forward_backward)):
        times[key] = time_call(fn, warmup=warmup, repeat=repeat)["median_ms"]
    return {"generator": name, "size": generator.size, "batch": batch,
            "fwd img/s": 1000.0 * batch / times["fwd"], "fwd ms": times["fwd"],
            "fwd+bwd img/s": 1000.0 * batch / times["fwd+bwd"], "fwd+bwd ms": times["fwd+bwd"]}


def measure(sizes: list[int], batch: int, warmup: int, repeat: int,
            log: Callable[[str], None] = print) -> list[dict[str, object]]:
    """One row per generator and size, the painter first; the StyleGAN2 row is left out where none is found."""
    from unmask.models.painter import PainterConfig, PainterGenerator

    rows = []
    for size in sizes:
        painter = PainterGenerator(PainterConfig(size=size))
        painter_row = _rows("painter (exact)", painter, batch, warmup, repeat)
        rows.append(painter_row)
        stylegan = _stylegan(size)
        if stylegan is None:
            log(f"(no StyleGAN2 teaching generator config under {[str(f) for f in STYLEGAN_FOLDERS]}: its row is "
                "left out)")
            continue
        row = _rows("StyleGAN2 teaching", stylegan, batch, warmup, repeat)
        rows.append(row)
        for key in ("fwd img/s", "fwd+bwd img/s"):
            painter_row[f"x StyleGAN2 {key.split()[0]}"] = painter_row[key] / row[key]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench generator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128", help="image sides, comma separated (default 64,128)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = measure(sizes, args.batch, args.warmup, args.repeat)
    for row in rows:  # the speed-up columns only on painter rows
        row.setdefault("x StyleGAN2 fwd", "")
        row.setdefault("x StyleGAN2 fwd+bwd", "")
    print_table(f"teaching generators, float32, {torch.get_num_threads()} threads, ms per batch of {args.batch} "
                "(median)", rows)


if __name__ == "__main__":
    main()
