"""Training-step benchmarks (the unmasking encoder, the teaching decoder): the training part of
``python -m unmask.bench pipeline``.

It lives with training (the ``unmask.bench`` package imports nothing from ``unmask.train``);
``python -m unmask.bench pipeline`` runs :func:`main` after the inference timings of
:mod:`unmask.bench.pipeline`, with the same options.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unmask.bench.pipeline import build_parser
from unmask.faces.io import resize_images
from unmask.losses.combiner import LossCombiner
from unmask.measure import peak_rss_mib, print_table, time_call
from unmask.models.encoder import EncoderConfig, build_encoder
from unmask.models.identity import IResNet, IResNetConfig, IRSEConfig, IRSEIdentity
from unmask.models.stylegan2 import Generator, GeneratorConfig


def benchmark_step(size: int, *, batch_size: int = 8, device: str | torch.device | None = None,
                   repeat: int = 10, lpips: bool = True) -> dict[str, float]:
    """Time one optimisation step of the unmasking encoder with random weights and data.

    The architecture follows the shipped configs: at 64 px the teaching pSp of
    ``configs/unmask_teaching.yaml`` against a 64 px StyleGAN2 (channel_max 256) and the teaching
    iresnet identity net; at 256 px (or any other size) the public pSp IR-SE-50 against a 1024 px
    StyleGAN2 (output pooled to the input size) and IR-SE-50. Losses: l2 inside / outside the mask,
    LPIPS whole + mask crop (random backbone: same cost, no download), identity, w-norm.

    Returns:
        ``{"median_ms", "min_ms", "max_ms", "images_per_s", "peak_mem_mib"}`` (memory on CUDA only).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if size == 64:
        generator = Generator(GeneratorConfig(size=64, channel_max=256))
        encoder_config = EncoderConfig(input_nc=4, input_size=64, n_styles=10, stage_channels=(32, 64, 128, 256),
                                       stage_blocks=(2, 2, 2, 2), head_channels=256)
        identity = IResNet(IResNetConfig(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), input_size=64,
                                         embedding_dim=128))
    else:
        generator = Generator(GeneratorConfig(size=1024))
        encoder_config = EncoderConfig(input_nc=4, input_size=size, n_styles=18)
        identity = IRSEIdentity(IRSEConfig())
    generator = generator.to(device).eval().requires_grad_(False)
    identity = identity.to(device).eval().requires_grad_(False)
    encoder = build_encoder(encoder_config).to(device).train()
    weights = {"l2_mask": 2.0, "l2_visible": 1.0, "identity": 0.1, "w_norm": 0.005}
    if lpips:
        weights.update(lpips=0.8, lpips_mask=0.8)
    losses = LossCombiner(weights, identity_net=identity, pretrained_backbone=False).to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(batch_size, 3, size, size, generator=gen) * 2 - 1).to(device)
    mask = torch.zeros(batch_size, 1, size, size, device=device)
    mask[:, :, size // 2:, size // 4: 3 * size // 4] = 1.0
    masked = target * (1 - mask) + 0.3 * mask
    latent_avg = generator.mean_latent(1000).reshape(-1)

    def step() -> None:
        w_plus = encoder(torch.cat([masked, mask], dim=1))
        recovered = resize_images(generator.synthesis(w_plus), size)
        total, _ = losses({"recovered": recovered, "target": target, "mask": mask, "w_plus": w_plus,
                           "latent_avg": latent_avg})
        total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timing = time_call(step, warmup=2, repeat=repeat)
    timing["images_per_s"] = batch_size / (timing["median_ms"] / 1000.0)
    if device.type == "cuda":
        timing["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return timing


def benchmark_decoder_step(*, batch_size: int = 32, device: str | torch.device | None = None,
                           repeat: int = 5) -> dict[str, float]:
    """Time one step of ``python -m unmask.train decoder`` (``configs/generator_teaching_v2.yaml``) and its forward.

    The shipped teaching generator architecture (64 px, ``channel_max`` 128) on the batched training
    path of the modulated conv, with the config's losses (l1 + multi-scale gradient + identity through
    a teaching-shaped iresnet with random weights: the same cost), random z and targets.

    Returns:
        ``{"median_ms", "min_ms", "max_ms", "images_per_s", "forward_ms", "fwd_bwd_over_fwd"}``.
    """
    from unmask.train.decoder import DecoderTaskConfig

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = DecoderTaskConfig()
    generator = Generator(config.generator_config).to(device).train()
    generator.set_modconv_impl("auto")
    identity = IResNet(IResNetConfig(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), input_size=64,
                                     embedding_dim=128)).to(device).eval().requires_grad_(False)
    losses = LossCombiner({"l1": 1.0, "gradient": 1.0, "identity": 0.1}, identity_net=identity).to(device)
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.002, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch_size, config.generator.style_dim, generator=gen).to(device)
    size = config.generator.size
    target = (torch.rand(batch_size, 3, size, size, generator=gen) * 2 - 1).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        total, _ = losses({"recovered": generator(z=z, randomize_noise=True), "target": target})
        total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()

    def forward() -> None:  # the same forward with autograd recording, as in training
        losses({"recovered": generator(z=z, randomize_noise=True), "target": target})
        sync()

    timing = time_call(step, warmup=1, repeat=repeat)
    forward_ms = time_call(forward, warmup=1, repeat=repeat)["median_ms"]
    timing.update(images_per_s=batch_size / (timing["median_ms"] / 1000.0), forward_ms=forward_ms,
                  fwd_bwd_over_fwd=timing["median_ms"] / forward_ms)
    return timing


def main(argv: Sequence[str] | None = None) -> None:
    """Print the encoder training-step table (unless ``--skip-train``), then the suite's peak memory."""
    args = build_parser().parse_args(argv)
    if not args.skip_train:
        train_rows = []
        for size in (int(s) for s in args.train_sizes.split(",") if s):
            batch = 16 if size <= 64 else 2
            result = benchmark_step(size, batch_size=batch, device=args.device, repeat=3)
            train_rows.append({"size": size, "batch": batch, **result})
        print_table(f"encoder training step, device={args.device}", train_rows)
        decoder = benchmark_decoder_step(batch_size=32, device=args.device, repeat=3)
        print_table(f"teaching decoder training step (64 px), device={args.device}",
                    [{"size": 64, "batch": 32, **decoder}])
    print(f"\npeak RSS: {peak_rss_mib():.0f} MiB")
