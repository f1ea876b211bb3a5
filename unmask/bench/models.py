"""Model speed on this machine: ``python -m unmask.bench models [--quick] [--skip-1024] [--training-only]``.

Random weights (speed does not depend on their values). Prints ms per image for the FFHQ-1024
config-F StyleGAN2 generator at batch 1 and 4, a 256 px generator (default fast path and the
plain reference-style path), the pSp encoder at 256 px when ``unmask.models.encoder`` exists,
and the peak resident memory.

Then a training step of the teaching generator (``weights/teaching/generator/config.json``, batch
32, random noise): forward with autograd recording, forward + backward of a scalar loss, their
ratio, and the same forward without autograd, on the old training path (``per_sample``) and the
new one (``batched``, what ``auto`` trains with); and on the new path with the generator frozen
and gradients reaching only W+ (encoder training, inversion).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from unmask.measure import peak_rss_mib, print_table, time_call


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


#: The shipped teaching generator's architecture (only its config is read).
TEACHING_GENERATOR_CONFIG = Path(__file__).resolve().parents[2] / "weights" / "teaching" / "generator" / "config.json"
TRAINING_BATCH = 32
TRAINING_PATHS = (("old (per_sample)", "per_sample"), ("new (batched)", "batched"))


def _training_rows(batch: int, warmup: int, repeat: int) -> list[dict[str, object]]:
    """fwd, fwd+bwd and their ratio of one generator training step, per modulated-conv path."""
    from unmask.hub import ARCHITECTURE_KEY, parse_config, read_config
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    raw = read_config(TEACHING_GENERATOR_CONFIG)
    raw.pop(ARCHITECTURE_KEY, None)
    torch.manual_seed(0)
    g = Generator(parse_config(GeneratorConfig, raw, source=str(TEACHING_GENERATOR_CONFIG))).train()
    z = torch.randn(batch, g.style_dim)

    def forward() -> torch.Tensor:
        return g(z, randomize_noise=True).square().mean()

    def step() -> None:
        g.zero_grad(set_to_none=True)
        forward().backward()

    def no_grad_forward() -> None:
        with torch.no_grad():
            forward()

    def row(name: str, grads: str, fwd_fn, step_fn) -> dict[str, object]:
        fwd = time_call(fwd_fn, warmup=warmup, repeat=repeat)["median_ms"]
        fwd_bwd = time_call(step_fn, warmup=warmup, repeat=repeat)["median_ms"]
        no_grad = time_call(no_grad_forward, warmup=warmup, repeat=repeat)["median_ms"]
        return {"path": name, "grads": grads, "size": g.size, "batch": batch, "fwd ms": fwd, "fwd+bwd ms": fwd_bwd,
                "ratio": fwd_bwd / fwd, "no-grad fwd ms": no_grad, "repeats": repeat}

    rows = []
    for name, impl in TRAINING_PATHS:
        g.set_modconv_impl(impl)
        rows.append(row(name, "weights", forward, step))
    # Encoder training and inversion: the generator is frozen and gradients reach only W+.
    g.requires_grad_(False)
    w_plus = g.mapping(z)[:, None].expand(-1, g.n_latent, -1).contiguous().requires_grad_(True)

    def latent_forward() -> torch.Tensor:
        return g(w_plus=w_plus, randomize_noise=True).square().mean()

    def latent_step() -> None:
        w_plus.grad = None
        latent_forward().backward()

    rows.append(row(TRAINING_PATHS[-1][0], "W+ only", latent_forward, latent_step))
    g.set_modconv_impl("auto")
    return rows


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
    parser.add_argument("--training-only", action="store_true", help="only the generator training-step table")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, repeat = (0, 1) if args.quick else (1, 3)

    title = f"(torch {torch.__version__}, threads={torch.get_num_threads()}, load average {_load():.2f})"
    if not args.training_only:
        _inference_tables(args, warmup, repeat, title)
    print_table(f"teaching generator training step {title}", _training_rows(TRAINING_BATCH, warmup, repeat))
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


def _load() -> float:
    """1-minute load average (the machine may be shared; timings scale with it)."""
    return os.getloadavg()[0]


def _inference_tables(args: argparse.Namespace, warmup: int, repeat: int, title: str) -> None:
    rows = []
    if not args.skip_1024:
        for batch in (1, 4):
            rows.append(_generator_row("StyleGAN2 G 1024px config-f", 1024, batch, warmup, repeat))
    rows.append(_generator_row("StyleGAN2 G 256px cm=2", 256, 1, warmup, repeat))
    rows.append(_generator_row("StyleGAN2 G 256px cm=2 (plain path)", 256, 1, warmup, repeat, plain=True))
    encoder = _encoder_row(warmup, repeat)
    if encoder is not None:
        rows.append(encoder)
    print_table(f"models {title}", rows)
    if encoder is None:
        print("encoder: not available")


if __name__ == "__main__":
    main()
