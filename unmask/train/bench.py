"""``python -m unmask.bench train``: training-step throughput of every task in float32 and bf16, side by side.

For each training task (the teaching decoder / generator, the unmasking encoder with its frozen generator
and identity net, the identity embedder with the joint loss) one optimisation step and its forward are
timed under each precision in the same run, with random weights and data of the shipped architectures.
The step's floating-point work is counted once (``torch.utils.flop_counter``), so each row also says
how much of the machine's measured convolution peak, for that precision, the step reaches. The peak is
measured first in the same run: a channels_last 3×3 convolution, 256 → 256 channels at 32², batch 8.

It lives with training (``unmask.bench`` imports nothing from ``unmask.train``); the ``train`` suite of
``python -m unmask.bench`` names it. Nothing here is asserted by tests; numbers go to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unmask.losses.combiner import LossCombiner
from unmask.measure import peak_rss_mib, print_table, time_call
from unmask.models.identity import IResNet, IResNetConfig
from unmask.models.stylegan2 import Generator
from unmask.precision import autocast, resolve_precision

#: The tasks the bench times, in order.
TASKS: tuple[str, ...] = ("decoder", "encoder", "identity")
#: Shape of the convolution that measures the peak: (batch, channels, side).
PEAK_CONV = (8, 256, 32)


@dataclass
class StepBench:
    """One task's training step: ``step()`` runs forward, backward and the optimiser; ``forward()`` only the
    forward with autograd recording (as in training); ``batch`` images per step."""

    step: Callable[[], None]
    forward: Callable[[], None]
    batch: int


def _teaching_identity(device: torch.device) -> IResNet:
    """An iresnet of the teaching identity net's shape (random weights: the same cost)."""
    net = IResNet(IResNetConfig(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), input_size=64, embedding_dim=128))
    return net.to(device).eval().requires_grad_(False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decoder_step(device: torch.device, batch: int) -> StepBench:
    """``python -m unmask.train decoder`` (``configs/generator_teaching_v3.yaml``): the shipped 64-px generator on
    its training path, losses l1 + multi-scale gradient + identity."""
    from unmask.train.decoder import DecoderTaskConfig

    config = DecoderTaskConfig()
    generator = Generator(config.generator_config).to(device).train()
    losses = LossCombiner({"l1": 1.0, "gradient": 1.0, "identity": 0.1},
                          identity_net=_teaching_identity(device)).to(device)
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.002, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, config.generator.style_dim, generator=gen).to(device)
    size = config.generator.size
    target = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)

    def forward() -> torch.Tensor:
        total, _ = losses({"recovered": generator(z=z, randomize_noise=True).float(), "target": target})
        return total

    return _bench(forward, optimizer, device, batch)


def encoder_step(device: torch.device, batch: int) -> StepBench:
    """``python -m unmask.train encoder`` (``configs/unmask_teaching.yaml``, variant (a)): the shipped teaching pSp
    with its mask head, the frozen 64-px generator and identity net, losses l2 in / out of the mask, identity,
    w-norm, the true-latent term and the mask BCE."""
    from unmask.models.encoder import EncoderConfig, build_encoder
    from unmask.models.stylegan2 import GeneratorConfig

    size = 64
    generator = Generator(GeneratorConfig(size=size, style_dim=256, n_mlp=4, channel_max=128, lr_mlp=1.0))
    generator = generator.to(device).eval().requires_grad_(False)
    encoder = build_encoder(EncoderConfig(input_size=size, n_styles=generator.n_latent, style_dim=256,
                                          stage_channels=(32, 48, 64, 96), stage_blocks=(1, 1, 1, 1),
                                          head_channels=64, mask_head=True)).to(device).train()
    losses = LossCombiner({"l2_mask": 2.0, "l2_visible": 1.0, "identity": 0.1, "w_norm": 0.005,
                           "w_plus_true": 1.0, "mask_bce": 0.5}, identity_net=_teaching_identity(device)).to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[:, :, size // 2:, size // 4: 3 * size // 4] = 1.0
    masked = target * (1 - mask) + 0.3 * mask
    latent_avg = generator.mean_latent(1000).reshape(-1)
    w_true = latent_avg.expand(batch, generator.n_latent, -1) + 0.1 * torch.randn(
        batch, generator.n_latent, latent_avg.shape[-1], generator=gen).to(device)

    def forward() -> torch.Tensor:
        w_plus, logits = encoder(masked, with_mask=True)
        recovered = generator.synthesis(w_plus).float()
        total, _ = losses({"recovered": recovered, "target": target, "mask": mask, "w_plus": w_plus.float(),
                           "latent_avg": latent_avg, "w_plus_true": w_true, "mask_logits": logits.float(),
                           "mask_true": mask})
        return total

    return _bench(forward, optimizer, device, batch)


def identity_step(device: torch.device, batch: int) -> StepBench:
    """``python -m unmask.train identity`` (``configs/identity_teaching.yaml``): the teaching embedder, joint
    angular-margin softmax + batch-hard triplet + attributes, P×K batches of 4 views per identity."""
    from unmask.losses.metric import joint_loss_section
    from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder

    views = 4
    classes, attributes = 600, 15
    model = IdentityEmbedder(EmbeddingConfig(backbone="iresnet", input_size=64, layers=(1, 1, 1, 1),
                                             widths=(16, 32, 64, 128), embedding_dim=128, num_classes=classes,
                                             num_attributes=attributes)).to(device).train()
    losses = LossCombiner.from_config(joint_loss_section(1.0, 1.0, 0.5)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(batch, 3, 64, 64, generator=gen) * 2 - 1).to(device)
    labels = torch.arange(batch // views).repeat_interleave(views)[:batch].to(device)
    attribute_labels = torch.randint(0, 2, (batch, attributes), generator=gen).float().to(device)

    def forward() -> torch.Tensor:
        outputs = {k: v.float() if torch.is_tensor(v) else v for k, v in model(images).items()}
        total, _ = losses({**outputs, "labels": labels, "attribute_labels": attribute_labels})
        return total

    return _bench(forward, optimizer, device, batch)


STEPS: dict[str, Callable[[torch.device, int], StepBench]] = {
    "decoder": decoder_step, "encoder": encoder_step, "identity": identity_step}
#: Batch per task (the shipped configs' CPU batches).
DEFAULT_BATCH = {"decoder": 32, "encoder": 16, "identity": 64}


def _bench(forward: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer, device: torch.device,
           batch: int) -> StepBench:
    def step() -> None:
        forward().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)

    def forward_only() -> None:
        forward()
        _sync(device)

    return StepBench(step=step, forward=forward_only, batch=batch)


def step_flops(bench: StepBench) -> float:
    """Floating-point operations of one training step (forward + backward), counted by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        bench.step()
    return float(counter.get_total_flops())


def conv_peak_gflops(precision: str, device: torch.device, repeat: int = 3) -> float:
    """GFLOP/s of a channels_last 3×3 convolution (:data:`PEAK_CONV`) under ``precision`` on ``device``."""
    batch, channels, side = PEAK_CONV
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, side, side, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, generator=gen).to(device).contiguous(memory_format=torch.channels_last)

    def conv() -> None:
        with autocast(precision, device):
            F.conv2d(x, w, padding=1)
        _sync(device)

    ms = time_call(conv, warmup=1, repeat=repeat)["median_ms"]
    return 2.0 * batch * channels * channels * 9 * side * side / (ms / 1000.0) / 1e9


def measure(task: str, bench: StepBench, precision: str, device: torch.device, *, repeat: int,
            flops: float | None = None) -> dict[str, object]:
    """One row: ``bench``'s step and forward times under ``precision``, images/s and achieved GFLOP/s."""
    batch = bench.batch

    def under(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with autocast(precision, device):
                fn()
        return run

    step = time_call(under(bench.step), warmup=1, repeat=repeat)
    forward_ms = time_call(under(bench.forward), warmup=1, repeat=repeat)["median_ms"]
    row: dict[str, object] = {"task": task, "precision": precision, "batch": batch, "step_ms": step["median_ms"],
                              "img_per_s": batch / (step["median_ms"] / 1000.0), "fwd_ms": forward_ms,
                              "fwd_bwd_over_fwd": step["median_ms"] / forward_ms}
    if flops is not None:
        row["gflop_per_s"] = flops / (step["median_ms"] / 1000.0) / 1e9
    return row


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m unmask.bench train", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {TASKS}")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated, of fp32 and bf16")
    p.add_argument("--batch", type=int, default=0, help="images per step for every task (0: each config's batch)")
    p.add_argument("--repeat", type=int, default=3, help="timed steps per row (bf16 rows where the CPU emulates "
                                                          "bf16 use 1)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Print the machine's conv peak per precision, then one row per task and precision, then the speed-ups."""
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    tasks = [t for t in args.tasks.split(",") if t]
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = sorted(set(tasks) - set(TASKS)) + sorted(set(precisions) - {"fp32", "bf16"})
    if unknown:
        raise SystemExit(f"unknown task or precision {unknown}; tasks: {TASKS}, precisions: fp32, bf16")
    auto = resolve_precision("auto", device)
    print(f"device={device}, threads={torch.get_num_threads()}; precision auto -> {auto.precision} ({auto.reason})")
    emulated = auto.precision != "bf16"
    peaks = {p: conv_peak_gflops(p, device, repeat=1 if p == "bf16" and emulated else 3) for p in precisions}
    print_table("3x3 conv peak, channels_last, 256->256 ch, 32x32, batch 8",
                [{"precision": p, "gflop_per_s": g} for p, g in peaks.items()])
    rows = []
    for task in tasks:
        torch.manual_seed(0)
        bench = STEPS[task](device, args.batch or DEFAULT_BATCH[task])
        flops = step_flops(bench)
        for precision in precisions:
            repeat = 1 if precision == "bf16" and emulated else args.repeat
            row = measure(task, bench, precision, device, repeat=repeat, flops=flops)
            row["of_conv_peak"] = row["gflop_per_s"] / peaks[precision]
            rows.append(row)
    print_table(f"training step per task and precision, device={device}", rows)
    if set(precisions) >= {"fp32", "bf16"}:
        for task in tasks:
            by = {r["precision"]: r for r in rows if r["task"] == task}
            print(f"{task}: bf16 / fp32 throughput {by['bf16']['img_per_s'] / by['fp32']['img_per_s']:.2f}x")
    print(f"\npeak RSS: {peak_rss_mib():.0f} MiB")
