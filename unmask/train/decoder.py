"""Train the teaching StyleGAN2 as a supervised decoder of the world's factors: G(z) ≈ render(z).

The teaching world paints every face from known factors (:mod:`unmask.synthetic.latent`): with
``z ~ N(0, I)`` of ``style_dim`` dims, whose first ``N_FACTORS`` coordinates are the factors in
Gaussian coordinates, ``render_z(world, z)`` is the face of z. So the same rosinality-compatible
:class:`~unmask.models.stylegan2.Generator` (unchanged layout, so the encoder, the pipeline and
every StyleGAN2 API keep working) can be trained by regression instead of adversarially, which
needs no discriminator and converges in far fewer steps on a CPU.

**Padding rule.** The coordinates after the factors are drawn from N(0, 1) like the factors (as
``factors_to_z(u, style_dim, generator=…)`` pads), so z is exactly standard normal: ``mean_latent``,
truncation and sampling ``z ~ N(0, I)`` mean what they mean for any StyleGAN2. The world ignores
them; the mapping network's pixel norm sees them, and the decoder learns to ignore them. Use the
same rule in use (``factors_to_z`` with a generator), not zero padding.

**Data.** A pool of ``data.pool_size`` pairs ``(z, render_z(world, z))`` is rendered once at setup
from ``train.seed`` (a pure function of it), so the painter (≈ 50 ms per 64 px face on a CPU) stays
off the step; each step samples a batch from the pool with the step's seeded generator. Held-out z
come from ``data.val_seed``, a different stream, and are rendered once.

**Losses** (one path: :class:`unmask.losses.combiner.LossCombiner` from the ``losses:`` section,
inputs ``recovered`` = G(z), ``target`` = render(z)): pixel ``l1``, the multi-scale structure term
``gradient`` (:class:`unmask.losses.reconstruction.GradientLoss`) and a perceptual term whose
network is offline: ``identity`` through the frozen teaching identity network (``model.identity``),
or ``lpips`` with ``pretrained_backbone: false`` in its options (a fixed random-feature backbone).
Noise inputs are randomised every step (``randomize_noise=True``); validation uses the stored noise.

**Validation**: ``val/psnr`` (dB, images in [0, 1]) and ``val/l1`` of G(z) against render(z) on the
held-out z, and a grid of pairs ``G(z) | render(z)``.

**Export** (``model/``): the generator with ``save_pretrained`` (its config carries
``z_names = FACTOR_NAMES``) and ``latent_avg.safetensors`` (the mean mapped latent the encoder and
pipeline read, written by :func:`unmask.models.generators.save_latent_avg`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unmask.errors import ConfigError
from unmask.losses.combiner import loss_weights
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.synthetic.config import WorldConfig
from unmask.synthetic.latent import FACTOR_NAMES, N_FACTORS
from unmask.train.loop import ScheduleConfig, TrainTask
from unmask.train.seeding import batch_seed, seeded_generator

#: Stream of :meth:`TrainTask.rng` that picks each step's pool indices.
_BATCH = 0
#: Stream of ``batch_seed`` that draws the pool's z (distinct from every per-step stream).
_POOL_STREAM = 1 << 21


@dataclass(frozen=True)
class DecoderDataConfig:
    """Pairs ``(z, render(z))`` of the decoder (the ``data:`` section).

    Attributes:
        world: the teaching world that paints the targets; ``world.size`` must equal ``generator.size``.
        pool_size: pairs rendered once at setup (from ``train.seed``) and sampled every step.
        render_batch: faces painted per call while building the pool and the held-out set.
        render_device: where the world paints: ``auto`` (the training device; a GPU paints a 50k pool
            in seconds) or ``cpu``.
        val_samples: held-out z of validation (the issue's target is measured on 1,000).
        val_seed: seed of the held-out z (a stream disjoint from the pool's).
        grid_size: pairs shown in the validation grid.
    """

    world: WorldConfig = field(default_factory=lambda: WorldConfig(size=64))
    pool_size: int = 2048
    render_batch: int = 256
    render_device: str = "auto"
    val_samples: int = 256
    val_seed: int = 1_000_003
    grid_size: int = 8

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.render_batch < 1 or self.val_samples < 1 or self.grid_size < 0:
            raise ConfigError("data.pool_size, render_batch and val_samples must be >= 1, grid_size >= 0.")
        if self.render_device not in ("auto", "cpu"):
            raise ConfigError(f"data.render_device must be auto (the training device) or cpu, got "
                              f"{self.render_device!r}.")


@dataclass(frozen=True)
class DecoderModelConfig:
    """Frozen networks and the optional start (the ``model:`` section).

    Attributes:
        identity: folder of the frozen identity network for the ``identity`` loss (teaching:
            ``weights/teaching/identity``); needed when that loss has a positive weight.
        init_from: a generator folder to start from (strict load); its architecture must equal
            ``generator:`` (``z_names`` aside). ``None``: random initialisation.
        latent_avg_samples: mapped z averaged into the exported ``latent_avg``.
    """

    identity: str | None = None
    init_from: str | None = None
    latent_avg_samples: int = 10_000


@dataclass(frozen=True)
class DecoderOptimConfig(ScheduleConfig):
    """Optimisation (the ``optim:`` section): the schedule fields of :class:`~unmask.train.loop.ScheduleConfig`
    (``lr``: Adam's, 0.002; the generator's layers use StyleGAN2's equalised learning rate) and

    Attributes:
        batch_size: pairs per micro-batch (per process).
        betas: Adam betas. A regression target is stationary, so momentum helps (unlike a GAN's (0, 0.99)).
        grad_clip: clip the gradient norm to this (0: off).
    """

    batch_size: int = 32
    lr: float = 0.002
    betas: tuple[float, float] = (0.9, 0.99)
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ConfigError(f"optim.batch_size must be >= 1, got {self.batch_size}.")


@dataclass(frozen=True)
class DecoderTaskConfig:
    """The sections of ``configs/generator_teaching_v2.yaml`` besides ``train:``."""

    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(
        size=64, style_dim=256, n_mlp=4, channel_max=128))  # the shipped teaching architecture
    losses: dict[str, Any] = field(default_factory=lambda: {"l1": 1.0, "gradient": 1.0})
    model: DecoderModelConfig = field(default_factory=DecoderModelConfig)
    data: DecoderDataConfig = field(default_factory=DecoderDataConfig)
    optim: DecoderOptimConfig = field(default_factory=DecoderOptimConfig)

    def __post_init__(self) -> None:
        if self.generator.style_dim < N_FACTORS:
            raise ConfigError(f"generator.style_dim={self.generator.style_dim} cannot hold the world's {N_FACTORS} "
                              f"factors; use style_dim >= {N_FACTORS} (256 for the teaching generator).")
        if self.generator.z_names not in ((), FACTOR_NAMES):
            raise ConfigError("generator.z_names must be empty (the decoder sets unmask.synthetic.latent."
                              "FACTOR_NAMES) or exactly FACTOR_NAMES; remove it from the config.")
        if self.data.world.size != self.generator.size:
            raise ConfigError(f"data.world.size={self.data.world.size} must equal generator.size="
                              f"{self.generator.size}.")

    @property
    def generator_config(self) -> GeneratorConfig:
        """``generator:`` with ``z_names = FACTOR_NAMES`` (what is built and exported)."""
        return dataclasses.replace(self.generator, z_names=FACTOR_NAMES)


def render_pairs(world: Any, z: torch.Tensor, render_batch: int) -> torch.Tensor:
    """``render_z`` of ``(N, style_dim)`` z in chunks: ``(N, 3, S, S)`` float32 in [-1, 1] on the CPU."""
    from unmask.synthetic.latent import render_z

    return torch.cat([render_z(world, z[i:i + render_batch]).images.float().cpu()
                      for i in range(0, len(z), render_batch)])


def rescale_mapping(state: dict[str, torch.Tensor], lr_mlp_from: float, lr_mlp_to: float) -> dict[str, torch.Tensor]:
    """A generator state dict whose mapping (``style.*``) is stored for ``lr_mlp_to`` instead of ``lr_mlp_from``.

    The equalised-learning-rate linear layers compute ``x @ (weight * lr_mul / sqrt(in)) + bias * lr_mul``,
    so multiplying the stored weight and bias by ``lr_mlp_from / lr_mlp_to`` keeps the function exactly
    while the optimiser's steps on them scale with the new ``lr_mul``.
    """
    ratio = lr_mlp_from / lr_mlp_to
    if ratio == 1.0:
        return dict(state)
    return {k: (v * ratio if k.startswith("style.") else v) for k, v in state.items()}


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of ``(B, 3, H, W)`` images in [-1, 1], compared in [0, 1]: ``(B,)``."""
    mse = ((pred.clamp(-1, 1) - target) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


class Task(TrainTask):
    """The supervised teaching decoder as a :class:`TrainTask` (see the module docstring)."""

    def __init__(self, config: DecoderTaskConfig) -> None:
        self.config = config
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, accelerator: Any) -> None:
        from unmask.losses.combiner import LossCombiner
        from unmask.synthetic import FaceWorld

        cfg, device = self.config, accelerator.device
        self.world = FaceWorld(cfg.data.world, device=device if cfg.data.render_device == "auto" else "cpu")
        shared: dict[str, Any] = {}
        if cfg.model.identity:
            from unmask.hub import from_pretrained

            identity_net = from_pretrained(cfg.model.identity, map_location=device)
            if not callable(getattr(identity_net, "embed", None)):
                raise ConfigError(f"model.identity={cfg.model.identity} is a {type(identity_net).__name__} without "
                                  "embed(images); give the teaching identity network (weights/teaching/identity).")
            shared["identity_net"] = identity_net.requires_grad_(False).eval()
        elif loss_weights(cfg.losses).get("identity", 0.0) > 0:
            raise ConfigError("the identity loss has a positive weight but model.identity is not set: give "
                              "weights/teaching/identity or set its weight to 0.")
        self.losses = LossCombiner.from_config(cfg.losses, **shared).to(device)

        generator = self.build_generator()
        optimizer = torch.optim.Adam(generator.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
        self.g, self.optimizer = accelerator.prepare(generator, optimizer)
        self.generator_module.set_modconv_impl("auto")
        pool_gen = seeded_generator(batch_seed(self.train_config.seed, 0, 0, _POOL_STREAM))
        self.pool_z = torch.randn(cfg.data.pool_size, cfg.generator.style_dim, generator=pool_gen)
        self.pool_images = render_pairs(self.world, self.pool_z, cfg.data.render_batch).to(device)

    def build_generator(self) -> Generator:
        """A fresh generator of ``generator_config``, or the ``model.init_from`` weights loaded strictly into it.

        The start may differ from ``generator:`` in ``lr_mlp`` only: its mapping weights are then stored
        rescaled (:func:`rescale_mapping`), so the network computes the same function and only the
        mapping's learning rate changes (a regression must re-teach the mapping what z means).
        """
        cfg = self.config
        generator = Generator(cfg.generator_config)
        if cfg.model.init_from:
            start = Generator.from_pretrained(cfg.model.init_from)
            if dataclasses.replace(start.config, z_names=FACTOR_NAMES, lr_mlp=cfg.generator.lr_mlp) != \
                    cfg.generator_config:
                raise ConfigError(f"model.init_from={cfg.model.init_from} has architecture {start.config}, which "
                                  f"differs from generator: {cfg.generator}; copy its size, style_dim, n_mlp and "
                                  "channel settings into the generator section.")
            state = rescale_mapping(start.state_dict(), start.config.lr_mlp, cfg.generator.lr_mlp)
            generator.load_state_dict(state, strict=True)
        return generator.train()

    @property
    def generator_module(self) -> Generator:
        return self.accelerator.unwrap_model(self.g)

    # ------------------------------------------------------------------ step
    def batch(self, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool pairs of micro-batch ``micro``: z ``(B, style_dim)`` and targets ``(B, 3, S, S)`` on the device."""
        index = torch.randint(len(self.pool_z), (self.config.optim.batch_size,), generator=self.rng(micro, _BATCH))
        return self.pool_z[index].to(self.device), self.pool_images[index.to(self.pool_images.device)]

    def training_step(self, step: int) -> dict[str, float]:
        opt = self.config.optim
        lr = self.set_learning_rate(step, self.optimizer)
        logs: dict[str, float] = {}
        for micro in self.micro_steps(step, self.g):
            z, target = self.batch(micro)
            recovered = self.g(z=z, randomize_noise=True)
            total, logs = self.losses({"recovered": recovered.float(), "target": target})
            self.optimizer_step(total, self.optimizer, clip=self.g.parameters(), max_norm=opt.grad_clip)
        logs["lr"] = lr
        return logs

    # ------------------------------------------------------------------ validation
    def held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out z ``(V, style_dim)`` from ``data.val_seed`` and their renders ``(V, 3, S, S)`` (built once)."""
        if self._val is None:
            data = self.config.data
            gen = seeded_generator(data.val_seed)
            z = torch.randn(data.val_samples, self.config.generator.style_dim, generator=gen)
            self._val = z, render_pairs(self.world, z, data.render_batch)
        return self._val

    def validation_step(self, step: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        z_all, target_all = self.held_out()
        generator = self.generator_module
        was_training = generator.training
        generator.eval()
        chunk = self.config.data.render_batch
        preds = torch.cat([generator(z=z_all[i:i + chunk].to(self.device)).float().cpu()
                           for i in range(0, len(z_all), chunk)])
        generator.train(was_training)
        metrics = {"psnr": psnr(preds, target_all).mean().item(),
                   "l1": (preds.clamp(-1, 1) - target_all).abs().mean().item()}
        n = min(self.config.data.grid_size, len(z_all))
        images = {"decoder|render": torch.cat([preds[:n].clamp(-1, 1), target_all[:n]], dim=3)} if n else {}
        return metrics, images

    # ------------------------------------------------------------------ export
    @property
    def micro_batch_size(self) -> int:
        return self.config.optim.batch_size

    def export(self, output_dir: str | os.PathLike) -> None:
        from unmask.models.generators import save_latent_avg

        cfg, output_dir = self.config, Path(output_dir)
        generator = self.generator_module
        with torch.no_grad():
            latent_avg = generator.mean_latent(cfg.model.latent_avg_samples, seed=0).reshape(-1)
        steps = self.train_config.max_steps
        images = steps * cfg.optim.batch_size * self.accelerator.num_processes * \
            self.train_config.gradient_accumulation_steps
        start = f"initialised from `{cfg.model.init_from}`" if cfg.model.init_from else "randomly initialised"
        card = (f"# Teaching StyleGAN2 decoder ({cfg.generator.size} px)\n\n"
                "A rosinality-layout StyleGAN2 generator trained as a supervised decoder of the unmask teaching "
                "world (procedural faces, no real people): G(z) ≈ render(z), where the first "
                f"{N_FACTORS} coordinates of z are the world's factors in Gaussian coordinates (`z_names` in "
                "config.json) and the rest N(0, 1) padding the world ignores.\n\n"
                f"Trained with `python -m unmask.train decoder`: {steps} steps of batch {cfg.optim.batch_size} "
                f"({images} images) from a pool of {cfg.data.pool_size} painted pairs, {start}, Adam lr "
                f"{cfg.optim.lr} ({cfg.optim.schedule}), losses {loss_weights(cfg.losses)}, noise randomised. "
                "No adversarial loss. `latent_avg.safetensors` holds the mean mapped latent.\n\n"
                "Licence: Apache-2.0 (code and weights of the teaching world).\n")
        generator.save_pretrained(output_dir, model_card=card)
        save_latent_avg(output_dir, latent_avg)


TASK_CONFIG = DecoderTaskConfig
