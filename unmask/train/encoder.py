"""Train the unmasking encoder: masked face -> W+ of a frozen StyleGAN2 that renders it UNMASKED.

Masked facial recovery as a specialised GAN inversion (arXiv 2212.14110): the generator stays
frozen; a pSp / e4e encoder (:mod:`unmask.models.encoder`) reads the masked face (optionally
with the mask as a 4th channel) and predicts W+ as an offset from the generator's mean latent.
Its rendering is compared with the face WITHOUT the mask: pixel and LPIPS losses weighted more
inside the mask, an identity loss through a frozen identity network, and latent regularisers,
all through :class:`unmask.losses.combiner.LossCombiner` built from the config's ``losses:``.

Two variants (issue 10): (b) reads the mask as a 4th channel (``input_nc: 4``, for when a mask is
given); (a) reads the masked image only (``input_nc: 3``) and, with ``encoder.mask_head: true``, also
predicts the occlusion mask from the encoder's pyramid, trained by the ``mask_bce`` loss against the
pair's true mask alongside the paper's losses. Sources that know the true W+ of the unmasked face
(``data.source: generated``) also allow the ``w_plus_true`` loss. The loss inputs are
``recovered``, ``target``, ``mask``, ``w_plus``, ``latent_avg``, and where available ``w_plus_true``
(the batch's ``w_plus``), ``mask_logits`` (the head) and ``mask_true`` (the batch's ``mask``).

``model.target: generic`` trains the paper's baseline instead: a generic inversion encoder (the usual
pSp/e4e recipe) that sees only *unmasked* faces, input = target, with an empty mask (every pixel
"visible"); the comparison then gives it the masked face. ``model.target: input`` reconstructs the
masked input itself, mask included.

Validation logs PSNR and SSIM inside / outside the mask (on [0, 1] images), identity
similarity of recovered and masked faces to the target, the predicted-mask IoU (``mask_iou``, with
a head), and an image grid masked | recovered | target.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unmask.data.pairs import DataConfig, build_sources
from unmask.errors import ConfigError
from unmask.evaluate.metrics import mask_iou, region_quality
from unmask.faces.io import resize_images
from unmask.losses.combiner import loss_weights
from unmask.models.encoder import EncoderConfig, build_encoder
from unmask.train.loop import ScheduleConfig, TrainTask

TARGETS = ("unmasked", "input", "generic")
OPTIMIZERS = ("adam", "adamw")
#: The shipped teaching generator (``python -m unmask.train generator`` export), relative to the repo root.
TEACHING_GENERATOR = "weights/teaching/generator"
#: Validation samples shown in the image grid.
GRID_ROWS = 8
# Streams of TrainTask.rng.
_INDICES = 0


@dataclass(frozen=True)
class EncoderModelConfig:
    """The ``model:`` section.

    Attributes:
        encoder: the encoder architecture; ``n_styles`` must equal the generator's ``n_latent`` and
            ``input_size`` the data size (the generator's output is resized to it).
        generator: folder or Hub repo of the frozen StyleGAN2 (``save_pretrained`` format, optionally
            with ``latent_avg.safetensors`` as ``python -m unmask.train generator`` exports).
        identity: folder or Hub repo of the frozen identity network (anything with ``embed``); needed
            when the identity loss has a positive weight, optional otherwise (then validation skips
            identity similarity).
        init: optional folder / repo of an encoder to start from (fine-tuning); same architecture.
        target: ``unmasked`` (the paper: render the face without the mask), ``input`` (reconstruct
            the masked input, mask included) or ``generic`` (the generic pSp/e4e baseline of the paper's
            comparison: trained on *unmasked* faces only, input = target = the unmasked face, no mask;
            at test time it is given the masked face).
        latent_avg_samples: mapped latents averaged when the generator folder holds no mean latent.
        randomize_noise: render with fresh per-layer noise instead of the generator's fixed maps.
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(input_size=64, n_styles=10))
    generator: str = TEACHING_GENERATOR
    identity: str | None = None
    init: str | None = None
    target: str = "unmasked"
    latent_avg_samples: int = 10_000
    randomize_noise: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"model.target must be one of {TARGETS}, got {self.target!r}.")


@dataclass(frozen=True)
class EncoderOptimConfig(ScheduleConfig):
    """The ``optim:`` section: the schedule fields of :class:`~unmask.train.loop.ScheduleConfig` (``lr``: pSp's
    1e-4; ``min_lr_ratio`` 0.1) and

    Attributes:
        batch_size: faces per micro-batch (per process).
        optimizer: ``adam`` or ``adamw``.
        betas / weight_decay: optimiser settings.
        grad_clip: clip the gradient norm to this (0: off).
        progressive_start / progressive_every: e4e's progressive training: from step
            ``progressive_start`` one more W+ offset is switched on every ``progressive_every`` steps
            (``progressive_every: 0`` switches all on from the start). Ignored by pSp.
    """

    batch_size: int = 8
    lr: float = 1e-4
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.0
    progressive_start: int = 0
    progressive_every: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optim.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("optim.batch_size must be >= 1 and optim.lr > 0.")


@dataclass(frozen=True)
class EncoderTaskConfig:
    """The sections of ``configs/unmask_*.yaml`` besides ``train:``."""

    losses: dict[str, Any] = field(default_factory=lambda: {"l2": 1.0})
    model: EncoderModelConfig = field(default_factory=EncoderModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: EncoderOptimConfig = field(default_factory=EncoderOptimConfig)


# ------------------------------------------------------------------------------ metrics
def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


# ------------------------------------------------------------------------------ task
class Task(TrainTask):
    """The unmasking encoder as a :class:`TrainTask` (see the module docstring)."""

    def __init__(self, config: EncoderTaskConfig) -> None:
        self.config = config
        self._val_batch: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, accelerator: Any) -> None:
        from unmask.hub import from_pretrained
        from unmask.losses.combiner import LossCombiner
        from unmask.models.generators import load_frozen_generator

        cfg = self.config
        enc_cfg = cfg.model.encoder
        device = accelerator.device
        self.generator, latent_avg = load_frozen_generator(
            cfg.model.generator, map_location=device, n_samples=cfg.model.latent_avg_samples)
        if enc_cfg.n_styles != self.generator.n_latent or enc_cfg.style_dim != self.generator.style_dim:
            raise ConfigError(
                f"model.encoder predicts {enc_cfg.n_styles} x {enc_cfg.style_dim} styles but the generator "
                f"{cfg.model.generator} takes {self.generator.n_latent} x {self.generator.style_dim}; set "
                f"model.encoder.n_styles: {self.generator.n_latent} and style_dim: {self.generator.style_dim}.")
        self.size = enc_cfg.input_size
        self.latent_avg = latent_avg.to(device)

        weights = loss_weights(cfg.losses)
        self.identity_net = None
        if cfg.model.identity:
            self.identity_net = from_pretrained(cfg.model.identity, map_location=device)
            if not callable(getattr(self.identity_net, "embed", None)):
                raise ConfigError(f"model.identity={cfg.model.identity} is a {type(self.identity_net).__name__} "
                                  "without embed(images); give an identity network (IR-SE-50, iresnet or the "
                                  "teaching identity net).")
            self.identity_net.requires_grad_(False).eval()
        elif weights.get("identity", 0.0) > 0:
            raise ConfigError("the identity loss has a positive weight but model.identity is not set: give the "
                              "folder of the frozen identity network (teaching identity net for the synthetic "
                              "world, IR-SE-50 for real faces) or set its weight to 0.")
        head_weight = weights.get("mask_bce", 0.0)
        if enc_cfg.mask_head and head_weight <= 0:
            raise ConfigError("model.encoder.mask_head is true but the mask_bce loss has no positive weight, so the "
                              "head would stay untrained (and the pipeline would paste back over its random mask); "
                              "add mask_bce to the losses or set mask_head: false.")
        if head_weight > 0 and not enc_cfg.mask_head:
            raise ConfigError("the mask_bce loss has a positive weight but model.encoder has no mask head; set "
                              "model.encoder.mask_head: true (with input_nc: 3) or set its weight to 0.")
        shared: dict[str, Any] = {"style_dim": enc_cfg.style_dim}
        if self.identity_net is not None:
            shared["identity_net"] = self.identity_net
        self.losses = LossCombiner.from_config(cfg.losses, **shared).to(device)

        if cfg.model.init:
            from unmask.models.encoder import GradualStyleEncoder

            encoder = GradualStyleEncoder.from_pretrained(cfg.model.init)
            if encoder.config != enc_cfg:
                raise ConfigError(f"model.init={cfg.model.init} has architecture {encoder.config}, which differs "
                                  f"from model.encoder {enc_cfg}; copy its config into model.encoder.")
            encoder.train()
        else:
            encoder = build_encoder(enc_cfg)
        with torch.no_grad():
            encoder.latent_avg.copy_(self.latent_avg.reshape(1, -1).expand_as(encoder.latent_avg))
        opt = cfg.optim
        optim_cls = torch.optim.AdamW if opt.optimizer == "adamw" else torch.optim.Adam
        optimizer = optim_cls(encoder.parameters(), lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay)
        self.encoder, self.optimizer = accelerator.prepare(encoder, optimizer)
        self.train_source, self.val_source = build_sources(cfg.data, self.size, device)
        if hasattr(self.train_source, "materialise"):
            self.train_source.materialise(device)

    # ------------------------------------------------------------------ forward
    @property
    def encoder_module(self):
        return self.accelerator.unwrap_model(self.encoder)

    def batch(self, micro: int) -> dict[str, torch.Tensor]:
        """Training batch of micro-batch ``micro`` (a pure function of ``(seed, micro)``), on the device."""
        gen = self.rng(micro, _INDICES)
        index = torch.randint(len(self.train_source), (self.config.optim.batch_size,), generator=gen)
        data = self.train_source.batch(index.tolist(), seed=int(gen.initial_seed()))
        return {k: v.to(self.device, non_blocking=True) for k, v in data.items()}

    def encoder_pair(self, data: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """What the encoder is given in training: ``(masked, mask)``, or for ``target: generic`` the
        unmasked face with an empty mask (the generic encoder never sees a mask)."""
        if self.config.model.target == "generic":
            return data["target"], torch.zeros_like(data["mask"])
        return data["masked"], data["mask"]

    def encoder_input(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, input_nc, S, S)``: the masked face, plus the mask (1 = occluded) as channel 4 if asked
        (:func:`unmask.models.encoder.encoder_input`, as the pipeline builds it)."""
        from unmask.models.encoder import encoder_input

        return encoder_input(masked, mask, mask_channel=self.config.model.encoder.input_nc == 4)

    def encode(self, masked: torch.Tensor, mask: torch.Tensor,
               encoder=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """W+ ``(B, n_latent, D)`` and, with a mask head, its logits ``(B, 1, S, S)`` (else ``None``)."""
        encoder = encoder if encoder is not None else self.encoder
        x = self.encoder_input(masked, mask)
        if self.config.model.encoder.mask_head:
            return encoder(x, with_mask=True)
        return encoder(x), None

    def render(self, w_plus: torch.Tensor) -> torch.Tensor:
        """The frozen generator's face of ``w_plus``, resized to the data size ``(B, 3, S, S)``."""
        image = self.generator.synthesis(w_plus, randomize_noise=self.config.model.randomize_noise)
        return resize_images(image, self.size)

    def recover(self, masked: torch.Tensor, mask: torch.Tensor, encoder=None) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ and the recovered face ``(B, 3, S, S)`` (the generator output resized to the data size)."""
        w_plus, _ = self.encode(masked, mask, encoder)
        return w_plus, self.render(w_plus)

    def loss_inputs(self, data: Mapping[str, torch.Tensor], w_plus: torch.Tensor, recovered: torch.Tensor,
                    mask_logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.config.model.target == "input":  # generic inversion: reproduce every input pixel
            target, mask = data["masked"], torch.zeros_like(data["mask"])
        elif self.config.model.target == "generic":  # invert the unmasked face: every pixel is visible
            target, mask = data["target"], torch.zeros_like(data["mask"])
        else:
            target, mask = data["target"], data["mask"]
        inputs = {"recovered": recovered, "target": target, "mask": mask, "w_plus": w_plus,
                  "latent_avg": self.latent_avg}
        if "w_plus" in data and self.config.model.target in ("unmasked", "generic"):
            inputs["w_plus_true"] = data["w_plus"]
        if mask_logits is not None:
            inputs["mask_logits"], inputs["mask_true"] = mask_logits.float(), data["mask"]
        return inputs

    def _set_progressive_stage(self, step: int) -> None:
        encoder, opt = self.encoder_module, self.config.optim
        if not hasattr(encoder, "set_progressive_stage"):
            return
        if opt.progressive_every <= 0:
            stage = encoder.n_styles
        else:
            stage = 0 if step < opt.progressive_start else 1 + (step - opt.progressive_start) // opt.progressive_every
        encoder.set_progressive_stage(min(stage, encoder.n_styles))
        if "delta" in self.losses:
            self.losses.losses["delta"].active_layers = min(stage, encoder.n_styles) + 1

    # ------------------------------------------------------------------ step
    def training_step(self, step: int) -> dict[str, float]:
        acc = self.accelerator
        lr = self.set_learning_rate(step, self.optimizer)
        self._set_progressive_stage(step)
        self.encoder.train()
        logs: dict[str, float] = {}
        for micro in self.micro_steps(step, self.encoder):
            data = self.batch(micro)
            with acc.autocast():
                w_plus, mask_logits = self.encode(*self.encoder_pair(data))
                recovered = self.render(w_plus)
                total, logs = self.losses(self.loss_inputs(data, w_plus, recovered.float(), mask_logits))
            self.optimizer_step(total, self.optimizer, clip=self.encoder.parameters(),
                                max_norm=self.config.optim.grad_clip)
        logs["lr"] = lr
        return logs

    # ------------------------------------------------------------------ validation
    def validation_batch(self) -> dict[str, torch.Tensor]:
        """The fixed validation items (masks drawn with a fixed seed), on the CPU."""
        if self._val_batch is None:
            self._val_batch = self.val_source.batch(range(len(self.val_source)), seed=self.train_config.seed)
        return self._val_batch

    def validation_step(self, step: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        data = self.validation_batch()
        encoder = self.encoder_module
        was_training = encoder.training
        encoder.eval()
        rows: dict[str, list[torch.Tensor]] = {}
        chunk = max(1, self.config.optim.batch_size)
        recovered_all = []
        for start in range(0, len(data["target"]), chunk):
            part = {k: v[start:start + chunk].to(self.device) for k, v in data.items()}
            with self.accelerator.autocast():
                w_plus, mask_logits = self.encode(*self.encoder_pair(part), encoder=encoder)
                recovered = self.render(w_plus)
            recovered = recovered.float()
            target = part["masked"] if self.config.model.target == "input" else part["target"]
            quality = region_quality(recovered, target, part["mask"])
            if self.identity_net is not None:
                ref = F.normalize(self.identity_net.embed(part["target"]), dim=1)
                quality["identity"] = (F.normalize(self.identity_net.embed(recovered), dim=1) * ref).sum(1)
                quality["identity_masked"] = (F.normalize(self.identity_net.embed(part["masked"]), dim=1) * ref).sum(1)
            if mask_logits is not None:
                quality["mask_iou"] = mask_iou(torch.sigmoid(mask_logits.float()), part["mask"])
            _, loss_logs = self.losses(self.loss_inputs(part, w_plus, recovered, mask_logits))
            for name, value in loss_logs.items():
                quality[f"loss_{name}"] = torch.full((len(recovered),), value)
            for name, value in quality.items():
                rows.setdefault(name, []).append(value.detach().float().cpu())
            recovered_all.append(recovered.cpu())
        encoder.train(was_training)
        metrics = {name: _nanmean(torch.cat(values)) for name, values in rows.items()}
        n = min(GRID_ROWS, len(data["target"]))
        grid = torch.cat([data["masked"][:n], torch.cat(recovered_all)[:n].clamp(-1, 1), data["target"][:n]], dim=3)
        return metrics, {"masked|recovered|target": grid}

    # ------------------------------------------------------------------ export
    @property
    def micro_batch_size(self) -> int:
        return self.config.optim.batch_size

    def export(self, output_dir: str | os.PathLike) -> None:
        output_dir = Path(output_dir)
        cfg = self.config
        mode = {"unmasked": "recovers the face under a mask (specialised GAN inversion, arXiv 2212.14110)",
                "generic": "inverts unmasked faces (the generic GAN inversion baseline: trained on unmasked "
                           "faces only; given a masked face it reproduces the mask)",
                "input": "reconstructs its masked input, mask included"}[cfg.model.target]
        card = (f"# Unmasking encoder ({cfg.model.encoder.kind}, {self.size} px, input_nc "
                f"{cfg.model.encoder.input_nc})\n\nTrained with `python -m unmask.train encoder`; it {mode}. "
                f"It predicts the {self.generator.n_latent} x {self.generator.style_dim} latent of the frozen "
                f"{type(self.generator).__name__} `{cfg.model.generator}`, relative to its mean latent.\n\n"
                + ("It also predicts the occlusion mask (mask head, trained with mask_bce against the true "
                   "mask).\n\n" if cfg.model.encoder.mask_head else "")
                + f"Losses: {loss_weights(cfg.losses)}. Data: {cfg.data.source}"
                + (f" (teaching world, preset {cfg.data.world.preset})" if cfg.data.source == "world" else "")
                + ".\n")
        self.encoder_module.save_pretrained(output_dir, model_card=card)
        (output_dir / "training.json").write_text(json.dumps({
            "generator": cfg.model.generator, "identity": cfg.model.identity, "target": cfg.model.target,
            "size": self.size, "losses": loss_weights(cfg.losses), "mask_head": cfg.model.encoder.mask_head,
            "data": cfg.data.source}, indent=2), "utf-8")


TASK_CONFIG = EncoderTaskConfig

