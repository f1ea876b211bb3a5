"""Train the teaching StyleGAN2 on faces of the synthetic teaching world.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020): the
non-saturating logistic GAN loss, lazy R1 regularisation of the discriminator on real images
(every ``d_reg_every`` steps, scaled up by that interval), an exponential moving average of the
generator weights (``g_ema``, the one exported), optional style mixing and optional path-length
regularisation (off by default: it costs a double backward and matters little at 64 px).
Adam with betas (0, 0.99); the lazy-regularisation correction of the learning rate and betas.

Quality number logged at validation: ``val/rfd``, a Fréchet distance between real and generated
images computed on the features of a fixed, randomly initialised (seeded) small conv net. Random
features track sample quality and diversity well enough to compare checkpoints of one run or runs
with the same settings (Naeem et al. 2020 use random embeddings likewise), but the number is NOT
comparable to FID. ``val/mean_gap`` / ``val/std_gap`` compare per-channel pixel statistics.

Export (``model/``): ``g_ema`` with ``save_pretrained`` (the frozen teaching generator the
unmasking encoder is trained against) and its ``latent_avg`` (mean of ``latent_avg_samples``
mapped latents) in ``latent_avg.safetensors``.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unmask.data.pairs import WorldFaces
from unmask.errors import ConfigError
from unmask.models.generators import save_latent_avg
from unmask.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from unmask.synthetic.config import WorldConfig
from unmask.train.loop import TrainTask
from unmask.train.seeding import seeded_generator

#: Input side of the random feature network of the Fréchet distance.
RFD_SIZE = 64
RFD_SEED = 1234
#: Momentum of the running mean path length (StyleGAN2's pl_decay).
PATH_LENGTH_DECAY = 0.01

# Streams of TrainTask.rng used per step.
_REAL, _LATENT, _MIX, _PATH = 0, 1, 2, 3


@dataclass(frozen=True)
class GanDataConfig:
    """Real images of the teaching GAN (the ``data:`` section).

    Attributes:
        world: the teaching world; ``world.size`` must equal ``generator.size``.
        split: identities the GAN learns from (``train``; the ``test`` identities stay unseen).
        render_device: where the world renders: ``auto`` (the training device) or ``cpu``.
        pool_size: render this many faces once at setup and sample from them (0: render every batch;
            on a GPU the renderer otherwise costs about as much as a GAN step at 64 px).
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    split: str = "train"
    render_device: str = "auto"
    pool_size: int = 0


@dataclass(frozen=True)
class GanOptimConfig:
    """Optimisation of the teaching GAN (the ``optim:`` section).

    Attributes:
        batch_size: images per micro-batch (per process).
        g_lr / d_lr: Adam learning rates.
        betas: Adam betas; StyleGAN2 uses (0, 0.99).
        r1_gamma: R1 weight gamma (penalty gamma/2 * |grad D(real)|^2). StyleGAN2-ADA's heuristic is
            0.0002 * resolution^2 / batch, about 0.03 at 64 px and batch 32.
        d_reg_every: lazy R1 interval (steps); 0 disables R1.
        path_length_weight: path-length regulariser weight; 0 (default) disables it.
        g_reg_every: lazy path-length interval (steps).
        path_batch_shrink: path-length batch = batch_size // this.
        mixing_prob: probability, per sample, of style mixing two latents at a random crossover.
        ema_half_life_kimg: half-life of the generator EMA in thousands of images.
        ema_rampup: the half-life is at most ``images seen * ema_rampup`` (StyleGAN2-ADA), so short
            runs are not dominated by the random initial weights; 0 disables.
    """

    batch_size: int = 32
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.05
    d_reg_every: int = 16
    path_length_weight: float = 0.0
    g_reg_every: int = 4
    path_batch_shrink: int = 2
    mixing_prob: float = 0.9
    ema_half_life_kimg: float = 10.0
    ema_rampup: float = 0.05

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("optim.batch_size must be >= 1.")
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ConfigError(f"optim.mixing_prob must lie in [0, 1], got {self.mixing_prob}.")
        if self.d_reg_every < 0 or self.g_reg_every < 1 or self.path_batch_shrink < 1:
            raise ConfigError("optim.d_reg_every must be >= 0, g_reg_every and path_batch_shrink >= 1.")


@dataclass(frozen=True)
class GanValidationConfig:
    """What validation computes (the ``validation:`` section).

    Attributes:
        grid_size: samples in the image grid (fixed latents, so grids compare across steps).
        fd_samples: real and generated images for the random-feature Fréchet distance.
        fd_batch: batch size while computing it.
        truncation: truncation psi of the grid samples (1 = none).
        latent_avg_samples: mapped latents averaged into ``latent_avg`` at export.
    """

    grid_size: int = 16
    fd_samples: int = 1024
    fd_batch: int = 128
    truncation: float = 1.0
    latent_avg_samples: int = 10_000


@dataclass(frozen=True)
class GeneratorTaskConfig:
    """The sections of ``configs/generator_teaching.yaml`` besides ``train:``."""

    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(size=64))
    discriminator: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(size=64))
    data: GanDataConfig = field(default_factory=GanDataConfig)
    optim: GanOptimConfig = field(default_factory=GanOptimConfig)
    validation: GanValidationConfig = field(default_factory=GanValidationConfig)

    def __post_init__(self) -> None:
        if self.generator.size != self.discriminator.size:
            raise ConfigError(f"generator.size={self.generator.size} and discriminator.size="
                              f"{self.discriminator.size} must match.")
        if self.data.world.size != self.generator.size:
            raise ConfigError(f"data.world.size={self.data.world.size} must equal generator.size="
                              f"{self.generator.size}.")


class StyleMixingGenerator(nn.Module):
    """``G(z)`` with per-sample style mixing as one ``forward`` (so DDP sees a single call).

    Args:
        generator: the StyleGAN2 generator being trained.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, z_mix: torch.Tensor | None = None,
                crossover: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Render ``(B, 3, S, S)`` images; also return the ``(B, n_latent, D)`` W+ used.

        Args:
            z: ``(B, D)`` latents.
            z_mix: ``(B, D)`` second latents for style mixing, or ``None``.
            crossover: ``(B,)`` layer index from which ``z_mix``'s style is used (``n_latent``: no mixing).
        """
        g = self.generator
        w = g.mapping(z)
        w_plus = w[:, None, :].expand(-1, g.n_latent, -1)
        if z_mix is not None and crossover is not None:
            w_mix = g.mapping(z_mix)
            layer = torch.arange(g.n_latent, device=z.device)[None, :, None]
            w_plus = torch.where(layer < crossover[:, None, None], w_plus, w_mix[:, None, :])
        return g.synthesis(w_plus, randomize_noise=True), w_plus


class RandomFeatures(nn.Module):
    """Fixed, randomly initialised conv features for the Fréchet distance (see module docstring)."""

    def __init__(self, seed: int = RFD_SEED, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        layers, channels = [], 3
        for width in widths:
            conv = nn.Conv2d(channels, width, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / (9 * channels)))
                conv.bias.zero_()
            layers.append(conv)
            channels = width
        self.convs = nn.ModuleList(layers)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, sum(widths))`` spatially pooled features."""
        x = F.interpolate(images.float(), size=(RFD_SIZE, RFD_SIZE), mode="bilinear", align_corners=False)
        pooled = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b`` (N, D).

    ``tr sqrt(Ca Cb)`` is computed as the sum of square roots of the eigenvalues of the symmetric
    ``sqrt(Ca) Cb sqrt(Ca)``, which needs no general matrix square root.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class Task(TrainTask):
    """The teaching StyleGAN2 as a :class:`TrainTask` (see the module docstring)."""

    def __init__(self, config: GeneratorTaskConfig) -> None:
        self.config = config
        self.pl_mean = torch.zeros(())
        self.images_seen = 0
        self._real_stats: np.ndarray | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, accelerator: Any) -> None:
        cfg, opt = self.config, self.config.optim
        self.size = cfg.generator.size
        render_device = accelerator.device if cfg.data.render_device == "auto" else torch.device(cfg.data.render_device)
        self.faces = WorldFaces(cfg.data.world, cfg.data.split, device=render_device, pool_size=cfg.data.pool_size,
                                pool_seed=self.train_config.seed)
        if cfg.data.pool_size:
            self.faces.materialise()
        generator = Generator(cfg.generator)
        self.g_ema = copy.deepcopy(generator).to(accelerator.device).eval()
        self.g_ema.requires_grad_(False)
        discriminator = Discriminator(cfg.discriminator)
        g_ratio = cfg.optim.g_reg_every / (cfg.optim.g_reg_every + 1) if opt.path_length_weight > 0 else 1.0
        d_ratio = opt.d_reg_every / (opt.d_reg_every + 1) if opt.d_reg_every > 0 else 1.0
        g_optim = torch.optim.Adam(generator.parameters(), lr=opt.g_lr * g_ratio,
                                   betas=(opt.betas[0] ** g_ratio, opt.betas[1] ** g_ratio))
        d_optim = torch.optim.Adam(discriminator.parameters(), lr=opt.d_lr * d_ratio,
                                   betas=(opt.betas[0] ** d_ratio, opt.betas[1] ** d_ratio))
        self.g, self.d, self.g_optim, self.d_optim = accelerator.prepare(
            StyleMixingGenerator(generator), discriminator, g_optim, d_optim)
        self.features = RandomFeatures().to(accelerator.device)

    @property
    def generator_module(self) -> Generator:
        return self.accelerator.unwrap_model(self.g).generator

    # ------------------------------------------------------------------ data
    def real_batch(self, micro: int) -> torch.Tensor:
        """Real faces of micro-batch ``micro``: ``(B, 3, S, S)`` on the device."""
        faces = self.faces.sample(self.config.optim.batch_size, self.rng(micro, _REAL))
        return faces.to(self.device)

    def latents(self, micro: int, stream: int = _LATENT, batch: int | None = None) -> dict[str, torch.Tensor]:
        """Latents (and style-mixing partners / crossovers) of micro-batch ``micro``."""
        batch = batch or self.config.optim.batch_size
        gen = self.rng(micro, stream)
        style_dim, n_latent = self.config.generator.style_dim, self.generator_module.n_latent
        z = torch.randn(batch, style_dim, generator=gen)
        z_mix = torch.randn(batch, style_dim, generator=gen)
        crossover = torch.randint(1, n_latent, (batch,), generator=gen)
        mixing = torch.rand(batch, generator=gen) < self.config.optim.mixing_prob
        crossover = torch.where(mixing, crossover, torch.full_like(crossover, n_latent))
        return {"z": z.to(self.device), "z_mix": z_mix.to(self.device), "crossover": crossover.to(self.device)}

    # ------------------------------------------------------------------ step
    def training_step(self, step: int) -> dict[str, float]:
        acc, opt = self.accelerator, self.config.optim
        logs: dict[str, float] = {}
        # Discriminator: non-saturating logistic loss on real vs generated faces.
        _requires_grad(self.g, False)
        _requires_grad(self.d, True)
        for micro in self.micro_steps(step, self.d):
            real = self.real_batch(micro)
            with torch.no_grad():
                fake, _ = self.g(**self.latents(micro))
            real_pred, fake_pred = self.d(real), self.d(fake)
            d_loss = F.softplus(fake_pred).mean() + F.softplus(-real_pred).mean()
            self.optimizer_step(d_loss, self.d_optim)
        logs.update(d_loss=d_loss.item(), real_score=real_pred.mean().item(), fake_score=fake_pred.mean().item())

        if opt.d_reg_every and step % opt.d_reg_every == 0 and opt.r1_gamma > 0:
            for micro in self.micro_steps(step, self.d):
                real = self.real_batch(micro).detach().requires_grad_(True)
                real_pred = self.d(real)
                (grad,) = torch.autograd.grad(real_pred.sum(), real, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                # The 0 * pred term keeps every discriminator output in the graph (DDP).
                self.optimizer_step(opt.r1_gamma / 2 * r1 * opt.d_reg_every + 0 * real_pred[0, 0], self.d_optim)
            logs["r1"] = r1.item()

        # Generator: non-saturating loss through the frozen-for-now discriminator.
        _requires_grad(self.g, True)
        _requires_grad(self.d, False)
        for micro in self.micro_steps(step, self.g):
            fake, _ = self.g(**self.latents(micro, stream=_MIX))
            g_loss = F.softplus(-self.d(fake)).mean()
            self.optimizer_step(g_loss, self.g_optim)
        logs["g_loss"] = g_loss.item()

        if opt.path_length_weight > 0 and step % opt.g_reg_every == 0:
            logs["path_length"] = self._path_length_step(step)

        self.images_seen += opt.batch_size * acc.num_processes * self.train_config.gradient_accumulation_steps
        self._update_ema()
        return logs

    def _path_length_step(self, step: int) -> float:
        opt = self.config.optim
        batch = max(1, opt.batch_size // opt.path_batch_shrink)
        for micro in self.micro_steps(step, self.g):
            latents = self.latents(micro, stream=_PATH, batch=batch)
            fake, w_plus = self.g(latents["z"])
            noise = torch.randn(fake.shape, generator=self.rng(micro, _PATH + 100, self.device),
                                device=self.device) / math.sqrt(fake.shape[2] * fake.shape[3])
            (grad,) = torch.autograd.grad((fake * noise).sum(), w_plus, create_graph=True)
            lengths = grad.pow(2).sum(2).mean(1).sqrt()
            self.pl_mean = self.pl_mean.to(self.device)
            self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), PATH_LENGTH_DECAY)
            penalty = (lengths - self.pl_mean).pow(2).mean()
            self.optimizer_step(opt.path_length_weight * opt.g_reg_every * penalty + 0 * fake[0, 0, 0, 0],
                                self.g_optim)
        return float(lengths.detach().mean())

    @torch.no_grad()
    def _update_ema(self) -> None:
        opt = self.config.optim
        half_life = opt.ema_half_life_kimg * 1000.0
        if opt.ema_rampup > 0:
            half_life = min(half_life, self.images_seen * opt.ema_rampup)
        batch = opt.batch_size * self.accelerator.num_processes * self.train_config.gradient_accumulation_steps
        beta = 0.5 ** (batch / max(half_life, 1e-8))
        source = self.generator_module
        # One fused call per list instead of one kernel per tensor: the step is launch-bound at 64 px.
        torch._foreach_lerp_(list(self.g_ema.parameters()), [p.detach() for p in source.parameters()], 1.0 - beta)
        for b_ema, b in zip(self.g_ema.buffers(), source.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ validation
    def _features_of(self, images_fn, n: int) -> np.ndarray:
        batch = self.config.validation.fd_batch
        rows = [self.features(images_fn(start, min(batch, n - start)).to(self.device)).cpu()
                for start in range(0, n, batch)]
        return torch.cat(rows).double().numpy()

    def validation_step(self, step: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        val = self.config.validation
        style_dim = self.config.generator.style_dim
        n = max(2, val.fd_samples)
        if self._real_stats is None:  # a fixed sample of real faces, the same at every validation
            real_gen = seeded_generator(RFD_SEED + 2)
            self._real_stats = self._features_of(lambda s, b: self.faces.render(b, real_gen), n)
        gen = seeded_generator(RFD_SEED)
        z_all = torch.randn(n, style_dim, generator=gen)
        fake_features = self._features_of(
            lambda s, b: self.g_ema(z=z_all[s:s + b].to(self.device)), n)
        real = self._real_stats
        grid_z = torch.randn(val.grid_size, style_dim, generator=seeded_generator(RFD_SEED + 1)).to(self.device)
        truncation_latent = None
        if val.truncation < 1.0:
            truncation_latent = self.g_ema.mean_latent(4096, seed=RFD_SEED)
        samples = self.g_ema(z=grid_z, truncation=val.truncation, truncation_latent=truncation_latent)
        fake_pixels = samples.float()
        real_pixels = self.faces.render(val.grid_size, seeded_generator(RFD_SEED + 3)).float()
        metrics = {
            "rfd": frechet_distance(real, fake_features),
            "mean_gap": (fake_pixels.mean((0, 2, 3)).cpu() - real_pixels.mean((0, 2, 3)).cpu()).abs().mean().item(),
            "std_gap": (fake_pixels.std((0, 2, 3)).cpu() - real_pixels.std((0, 2, 3)).cpu()).abs().mean().item(),
        }
        return metrics, {"samples": samples.clamp(-1, 1), "real": real_pixels}

    # ------------------------------------------------------------------ state / export
    def state_dict(self) -> dict[str, Any]:
        return {"g_ema": {k: v.detach().cpu() for k, v in self.g_ema.state_dict().items()},
                "pl_mean": self.pl_mean.detach().cpu(), "images_seen": self.images_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g_ema.load_state_dict(state["g_ema"], strict=True)
        self.pl_mean = state["pl_mean"].to(self.device)
        self.images_seen = int(state["images_seen"])

    @property
    def micro_batch_size(self) -> int:
        return self.config.optim.batch_size

    def export(self, output_dir: str | os.PathLike) -> None:
        output_dir = Path(output_dir)
        val = self.config.validation
        with torch.no_grad():
            latent_avg = self.g_ema.mean_latent(val.latent_avg_samples, seed=0).reshape(-1)
        card = (f"# Teaching StyleGAN2 ({self.size} px)\n\nA StyleGAN2 generator (`g_ema`) trained with "
                f"`python -m unmask.train generator` for {self.images_seen} images on faces of the unmask "
                "synthetic teaching world (procedural, no real people). It is the frozen generator the "
                "teaching unmasking encoder inverts. `latent_avg.safetensors` holds its mean mapped latent.\n\n"
                "Licence: Apache-2.0 (code and weights of the teaching world).\n")
        self.g_ema.save_pretrained(output_dir, model_card=card)
        save_latent_avg(output_dir, latent_avg)


TASK_CONFIG = GeneratorTaskConfig
