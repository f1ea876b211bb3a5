"""Model speed on this machine: ``python -m unmask.bench models [--quick] [--skip-1024]``.

Random weights (speed does not depend on their values). Prints ms per image for the FFHQ-1024
config-F StyleGAN2 generator at batch 1 and 4, a 256 px generator (default fast path and the
plain reference-style path), the pSp encoder at 256 px when ``unmask.models.encoder`` exists,
and the peak resident memory.
"""

from __future__ import annotations

import argparse

import torch

from unmask.bench import peak_rss_mib, print_table, time_call


def _generator_row(name: str, size: int, batch: int, warmup: int, repeat: int, *,
                   plain: bool = False) -> dict[str, object]:
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(size=size)).eval()
    if plain:  # reference layout: NCHW activations and one grouped conv for the whole batch
        g.channels_last = False
        g.set_modconv_impl("grouped")
    z = torch.randn(batch, g.style_dim)
    with torch.no_grad():
        stats = time_call(lambda: g(z), warmup=warmup, repeat=repeat)
    return {"model": name, "batch": batch, "ms/image": stats["median_ms"] / batch,
            "min ms/image": stats["min_ms"] / batch, "repeats": repeat}


def _encoder_row(warmup: int, repeat: int) -> dict[str, object] | None:
    try:
        from unmask.models.encoder import EncoderConfig, GradualStyleEncoder
    except ImportError:
        return None
    torch.manual_seed(0)
    enc = GradualStyleEncoder(EncoderConfig(kind="psp", input_size=256, n_styles=18)).eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        stats = time_call(lambda: enc(x), warmup=warmup, repeat=repeat)
    return {"model": "pSp encoder 256px", "batch": 1, "ms/image": stats["median_ms"],
            "min ms/image": stats["min_ms"], "repeats": repeat}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench models", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="no warm-up, one timed run each")
    parser.add_argument("--skip-1024", action="store_true", help="leave out the slow 1024 px generator")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, repeat = (0, 1) if args.quick else (1, 3)

    rows = []
    if not args.skip_1024:
        for batch in (1, 4):
            rows.append(_generator_row("StyleGAN2 G 1024px config-f", 1024, batch, warmup, repeat))
    rows.append(_generator_row("StyleGAN2 G 256px cm=2", 256, 1, warmup, repeat))
    rows.append(_generator_row("StyleGAN2 G 256px cm=2 (plain path)", 256, 1, warmup, repeat, plain=True))
    encoder = _encoder_row(warmup, repeat)
    if encoder is not None:
        rows.append(encoder)
    print_table(f"models (torch {torch.__version__}, threads={torch.get_num_threads()})", rows)
    if encoder is None:
        print("encoder: not available")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
