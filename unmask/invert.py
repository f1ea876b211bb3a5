"""Optimisation-based GAN inversion in W+, on the visible pixels only.

Masked facial recovery (arXiv 2212.14110) is GAN inversion with a twist: the pixels under the
mask must not pull the latent towards the mask, so the reconstruction terms see only the
visible face, and the occluded part is filled in by the frozen StyleGAN2's prior. The encoder
gives a fast first guess; :func:`invert` refines it (or starts from ``latent_avg``) by
gradient descent on ``w_plus``:

* Adam with the StyleGAN2 projector's learning-rate schedule (Karras et al., "Analyzing and
  Improving the Image Quality of StyleGAN", 2020): linear warm-up over the first 5 % of steps,
  cosine ramp-down over the last 25 %;
* L2 on the visible pixels (weight ``1 − mask``), optional LPIPS and identity on the face with
  the occluded region blanked in both images, and the w-norm prior towards ``latent_avg``;
* optionally the per-layer noise maps as well, with the projector's noise regulariser
  (multi-scale autocorrelation penalty) and re-normalisation after every step.

The generator stays frozen: its parameters get no gradient (flags restored afterwards);
gradients flow only into ``w_plus`` (and the noise maps when optimised).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.errors import ConfigError, InputShapeError
from unmask.faces.io import resize_images
from unmask.losses.combiner import LossCombiner
from unmask.losses.identity import IdentityLoss
from unmask.losses.reconstruction import ReconstructionLoss, prepare_mask
from unmask.models.generators import mapping_samples, mean_latent
from unmask.optim import lr_factor

#: StyleGAN2 projector schedule: warm-up and cosine ramp-down as fractions of the run.
LR_RAMPUP = 0.05
LR_RAMPDOWN = 0.25
#: StyleGAN2 projector noise regulariser weight and the size where its pyramid stops.
NOISE_REGULARIZE = 1e5
NOISE_PYRAMID_MIN = 8
#: Samples of the mapping network averaged for ``latent_avg`` (and ``latent_std``) when not given.
N_MEAN_LATENT = 4096
#: Default pull towards ``latent_avg``: weak enough not to bias the visible fit (a per-layer
#: offset of norm ~10 costs ~0.01, an MSE of ~0.01 is 26 dB), strong enough to keep the
#: occluded region on the face manifold.
W_NORM_WEIGHT = 1e-3

Callback = Callable[[int, int, dict[str, float]], None]
#: ``monitor(w_plus, rendered) -> {name: float}``: extra quantities to record at every step (no gradient).
Monitor = Callable[[torch.Tensor, torch.Tensor], Mapping[str, float]]


@dataclass(frozen=True)
class InversionConfig:
    """Settings of :func:`invert`.

    Attributes:
        steps: optimisation steps.
        lr: peak Adam learning rate (the projector uses 0.1 from ``latent_avg``; 0.05 suits
            refining an encoder's guess as well).
        lr_rampup, lr_rampdown: schedule fractions (StyleGAN2 projector).
        l2_weight: L2 on the visible pixels.
        lpips_weight: LPIPS on the face with the occluded region blanked (needs ``perceptual``).
        identity_weight: 1 − cosine of identity embeddings (needs ``identity_net``).
        w_norm_weight: mean per-layer distance of ``w_plus`` to ``latent_avg``.
        noise_regularize: weight of the noise-map regulariser (only with ``optimize_noise``).
        optimize_noise: optimise the generator's per-layer noise maps as well.
        latent_noise: projector's exploration noise on ``w`` (fraction of ``latent_std``),
            decaying quadratically to 0 at ``latent_noise_ramp`` of the run; 0 = off.
        latent_noise_ramp: see ``latent_noise``.
        n_mean_latent: mapping samples for ``latent_avg`` / ``latent_std`` when needed.
        seed: seeds the noise maps, latent noise and ``latent_avg`` sampling.
        edge_start: coarse to fine, for a generator with soft edges (the teaching painter, ``generator.edge``): its
            anti-aliasing ramps start this many times wider and narrow to exact
            (:func:`unmask.models.painter.edge_schedule`); 1 = exact throughout.
        edge_exact_from: the share of the run from which the edges are exact.
    """

    steps: int = 200
    lr: float = 0.05
    lr_rampup: float = LR_RAMPUP
    lr_rampdown: float = LR_RAMPDOWN
    l2_weight: float = 1.0
    lpips_weight: float = 0.0
    identity_weight: float = 0.0
    w_norm_weight: float = W_NORM_WEIGHT
    noise_regularize: float = NOISE_REGULARIZE
    optimize_noise: bool = False
    latent_noise: float = 0.0
    latent_noise_ramp: float = 0.75
    n_mean_latent: int = N_MEAN_LATENT
    seed: int = 0
    edge_start: float = 1.0
    edge_exact_from: float = 0.6

    def __post_init__(self) -> None:
        if not (self.edge_start >= 1.0 and 0.0 < self.edge_exact_from <= 1.0):
            raise ConfigError(f"edge_start must be >= 1 (1 = exact edges throughout) and edge_exact_from in (0, 1]; "
                              f"got {self.edge_start} and {self.edge_exact_from}.")
        if self.steps < 1:
            raise ConfigError(f"inversion needs at least one step, got steps={self.steps}.")
        if not self.lr > 0:
            raise ConfigError(f"inversion lr must be > 0, got {self.lr}.")
        for name in ("l2_weight", "lpips_weight", "identity_weight", "w_norm_weight", "noise_regularize",
                     "latent_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"InversionConfig.{name} must be >= 0, got {getattr(self, name)}.")
        if not (0 < self.lr_rampup <= 1 and 0 < self.lr_rampdown <= 1 and 0 < self.latent_noise_ramp <= 1):
            raise ConfigError("lr_rampup, lr_rampdown and latent_noise_ramp are fractions of the run "
                              "in (0, 1].")
        if self.l2_weight == 0 and self.lpips_weight == 0 and self.identity_weight == 0:
            raise ConfigError("inversion needs a data term: set l2_weight, lpips_weight or "
                              "identity_weight > 0.")


@dataclass
class InversionResult:
    """What :func:`invert` returns.

    Attributes:
        w_plus: ``(B, n_latent, D)`` optimised latents (detached).
        image: ``(B, 3, H, W)`` rendering of ``w_plus`` at the target's size, in ``[-1, 1]`` (detached).
        history: one dict of floats per step (every loss term, ``total``, ``lr``, ``step``).
        noise: the optimised noise maps (``optimize_noise``), else ``None``.
    """

    w_plus: torch.Tensor
    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    noise: list[torch.Tensor] | None = None


def learning_rate(t: float, peak: float, rampup: float = LR_RAMPUP, rampdown: float = LR_RAMPDOWN) -> float:
    """StyleGAN2 projector schedule at progress ``t`` in ``[0, 1)``: warm-up from 0, plateau, cosine to 0.

    The warm-up spans the first ``rampup`` of the run, the ramp-down the last ``rampdown``
    (:func:`unmask.optim.lr_factor` on the progress, ``total = 1``).
    """
    return peak * lr_factor(t, 1.0, warmup=rampup, decay_start=1.0 - rampdown, warmup_from_zero=True)


def noise_regularizer(noises: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 projector's noise penalty: squared autocorrelation at lag 1, over a 2× pyramid.

    Keeps optimised noise maps noise-like, so they cannot smuggle image content in.

    Args:
        noises: maps ``(B, 1, s, s)``.
    """
    loss = noises[0].new_zeros(())
    for noise in noises:
        while True:
            loss = loss + (noise * torch.roll(noise, 1, dims=3)).mean().pow(2)
            loss = loss + (noise * torch.roll(noise, 1, dims=2)).mean().pow(2)
            size = noise.shape[-1]
            if size <= NOISE_PYRAMID_MIN:
                break
            noise = F.avg_pool2d(noise, 2)
    return loss


def _normalize_noise_(noises: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for noise in noises:
            mean = noise.mean(dim=(1, 2, 3), keepdim=True)
            std = noise.std(dim=(1, 2, 3), keepdim=True)
            noise.sub_(mean).div_(std)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode with ``requires_grad=False`` everywhere; restore both afterwards."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    training = module.training
    module.requires_grad_(False)
    module.eval()
    try:
        yield module
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)
        module.train(training)


def _check_inputs(target: torch.Tensor, mask: torch.Tensor | None) -> None:
    if target.ndim != 4 or target.shape[1] != 3:
        raise InputShapeError(f"target must be (B, 3, H, W) in [-1, 1], got {tuple(target.shape)}.")
    if not torch.is_floating_point(target):
        raise InputShapeError(f"target must be a float tensor in [-1, 1], got {target.dtype}; convert uint8 "
                              "images with x / 127.5 - 1.")
    if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != target.shape[0]
                             or mask.shape[-2:] != target.shape[-2:]):
        raise InputShapeError(f"mask must be (B, 1, H, W) like the target {tuple(target.shape)} with "
                              f"1 = occluded, got {tuple(mask.shape)}.")


def invert(generator: nn.Module, target: torch.Tensor, mask: torch.Tensor | None = None, *,
           init_w_plus: torch.Tensor | None = None, latent_avg: torch.Tensor | None = None,
           config: InversionConfig = InversionConfig(), identity_net: nn.Module | None = None,
           perceptual: nn.Module | None = None, identity_embedding: torch.Tensor | None = None,
           callback: Callback | None = None, monitor: Monitor | None = None,
           progress: bool = False) -> InversionResult:
    """Find ``w_plus`` whose rendering matches the target's visible pixels.

    Args:
        generator: a frozen StyleGAN2 with ``synthesis(w_plus, noise=None, randomize_noise=False)``,
            ``n_latent``, ``mapping(z)`` / ``mean_latent(n, seed=...)`` and ``make_noise()``
            (:class:`unmask.models.stylegan2.Generator`). Its parameters are never updated.
        target: ``(B, 3, H, W)`` aligned faces in ``[-1, 1]``; the rendering is resized to ``H, W``.
        mask: optional ``(B, 1, H, W)``, 1 = occluded. Reconstruction terms weigh each pixel by
            ``1 − mask``, so pixels with mask 1 have no influence on the result.
        init_w_plus: start point ``(B, n_latent, D)`` or ``(B, D)`` (e.g. an encoder's output);
            default ``latent_avg`` for every layer.
        latent_avg: ``(D,)``, ``(1, D)`` or ``(n_latent, D)``; default ``generator.mean_latent``.
        config: see :class:`InversionConfig`.
        identity_net: frozen module with ``embed(images) -> (B, D)``; needed for ``identity_weight``.
        perceptual: LPIPS-like loss ``(pred, target, mask) -> scalar`` (e.g.
            :class:`unmask.losses.PerceptualLoss`); needed for ``lpips_weight``.
        identity_embedding: precomputed target identity ``(B, D)`` (e.g. from a mask-robust embedder);
            default: ``identity_net`` on the target with the occluded region blanked.
        callback: called after every step as ``callback(step, total_steps, logs)``, step from 1.
        monitor: called at every step, under ``no_grad``, as ``monitor(w_plus, rendered)`` with the
            detached ``(B, n_latent, D)`` latent of that step and its ``(B, 3, H, W)`` rendering
            (before the step's update, i.e. what that step's losses saw); the floats it returns are
            added to the step's logs and history. It only observes: it never changes the result.
            Use it to follow quantities the losses cannot see, such as the error against a true
            latent or against the unmasked face.
        progress: show a tqdm bar.

    Returns:
        :class:`InversionResult` with the optimised ``w_plus``, its rendering and the loss history.

    Raises:
        InputShapeError: bad target, mask or initial latent shapes.
        ConfigError: a weight needs a module that was not given.
    """
    _check_inputs(target, mask)
    if config.lpips_weight > 0 and perceptual is None:
        raise ConfigError("lpips_weight > 0 needs perceptual=PerceptualLoss(...) (or set lpips_weight=0).")
    if config.identity_weight > 0 and identity_net is None:
        raise ConfigError("identity_weight > 0 needs identity_net (a module with embed(images) -> (B, D)) to "
                          "embed the renderings, or set identity_weight=0.")

    if config.edge_start > 1.0 and not hasattr(generator, "edge"):
        raise ConfigError(f"edge_start={config.edge_start} needs a generator with soft edges (the teaching "
                          f"painter); {type(generator).__name__} has none: use edge_start=1.")
    param = next(generator.parameters(), None)
    device = param.device if param is not None else target.device
    target = target.detach().to(device)
    mask = None if mask is None else prepare_mask(mask.detach(), target)
    batch, size = target.shape[0], tuple(target.shape[-2:])
    n_latent = int(generator.n_latent)

    with frozen(generator):
        if latent_avg is None and (init_w_plus is None or config.w_norm_weight > 0):
            style_dim = init_w_plus.shape[-1] if init_w_plus is not None else _style_dim(generator)
            latent_avg = mean_latent(generator, config.n_mean_latent, seed=config.seed, device=device,
                                     style_dim=style_dim)
        if latent_avg is not None:
            latent_avg = latent_avg.detach().to(device).reshape(-1, latent_avg.shape[-1])
            if latent_avg.shape[0] not in (1, n_latent):
                raise InputShapeError(f"latent_avg must be (D,), (1, D) or (n_latent={n_latent}, D), "
                                      f"got {tuple(latent_avg.shape)}.")
        w_plus = _initial_w_plus(init_w_plus, latent_avg, batch, n_latent, device)
        w_plus.requires_grad_(True)
        fixed = getattr(generator, "discrete_latents", None)
        if fixed is not None and bool(fixed.any()):
            # Coordinates that act only through a threshold (the painter's discrete choices) stay where they
            # start: no loss term (the w-norm prior included) may push them across a category boundary.
            keep = (~fixed.to(device)).to(w_plus.dtype)
            w_plus.register_hook(lambda grad: grad * keep)

        rng = torch.Generator(device="cpu").manual_seed(config.seed)
        noises: list[torch.Tensor] | None = None
        params = [w_plus]
        if config.optimize_noise:
            noises = [torch.randn((batch, *n.shape[1:]), generator=rng).to(device).requires_grad_(True)
                      for n in generator.make_noise()]  # per-sample maps: each target is its own problem
            params += noises
        latent_std = 0.0
        if config.latent_noise > 0:
            samples = mapping_samples(generator, config.n_mean_latent, w_plus.shape[-1], config.seed, device)
            latent_std = float((samples - samples.mean(0)).pow(2).sum(1).mean().sqrt())

        combiner = _build_losses(config, perceptual, identity_net)
        visible = None if mask is None else 1.0 - mask
        outputs: dict[str, Any] = {"target": target, "mask": mask, "latent_avg": latent_avg}
        if "lpips" in combiner or "identity" in combiner:
            outputs["target_visible"] = target if visible is None else target * visible
        if "identity" in combiner:
            if identity_embedding is None:
                with torch.no_grad():
                    identity_embedding = combiner.losses["identity"].embed(outputs["target_visible"])
            outputs["identity_target"] = identity_embedding.detach().to(device)

        optimizer = torch.optim.Adam(params, lr=config.lr)
        history: list[dict[str, float]] = []
        steps = range(config.steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="inversion", leave=False)
        for step in steps:
            t = step / config.steps
            lr = learning_rate(t, config.lr, config.lr_rampup, config.lr_rampdown)
            for group in optimizer.param_groups:
                group["lr"] = lr
            w_input = w_plus
            if latent_std > 0:
                decay = max(0.0, 1.0 - t / config.latent_noise_ramp) ** 2
                strength = latent_std * config.latent_noise * decay
                w_input = w_plus + strength * torch.randn(w_plus.shape, generator=rng).to(device)
            with _edge(generator, config, step):
                rendered = generator.synthesis(w_input, noise=noises, randomize_noise=False)
            rendered = resize_images(rendered.float(), size)
            outputs["recovered"] = rendered
            outputs["w_plus"] = w_plus
            if "target_visible" in outputs:
                outputs["recovered_visible"] = rendered if visible is None else rendered * visible
            total, logs = combiner(outputs)
            if monitor is not None:
                with torch.no_grad():
                    watched = monitor(w_plus.detach(), rendered.detach())
                clash = sorted(set(watched) & (set(logs) | {"step", "lr", "noise"}))
                if clash:
                    raise ConfigError(f"monitor returned {clash}, names the inversion logs itself; rename them.")
                logs.update({str(k): float(v) for k, v in watched.items()})
            if noises is not None and config.noise_regularize > 0:
                noise_loss = noise_regularizer(noises)
                total = total + config.noise_regularize * noise_loss
                logs["noise"] = float(noise_loss.detach())
                logs["total"] = float(total.detach())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if noises is not None:
                _normalize_noise_(noises)
            logs.update(step=float(step + 1), lr=lr)
            history.append(logs)
            if callback is not None:
                callback(step + 1, config.steps, logs)
            if progress:
                steps.set_postfix(loss=f"{logs['total']:.4f}")

        with torch.no_grad():
            image = resize_images(generator.synthesis(w_plus, noise=noises, randomize_noise=False), size)
    return InversionResult(w_plus=w_plus.detach(), image=image.detach(), history=history,
                           noise=None if noises is None else [n.detach() for n in noises])


@contextlib.contextmanager
def _edge(generator: nn.Module, config: InversionConfig, step: int) -> Iterator[None]:
    """The generator's edge width at ``step`` of the coarse-to-fine schedule (nothing to do when it is off)."""
    if config.edge_start <= 1.0:
        yield
        return
    from unmask.models.painter import edge_schedule

    before = generator.edge
    generator.edge = edge_schedule(step, config.steps, start=config.edge_start, exact_from=config.edge_exact_from)
    try:
        yield
    finally:
        generator.edge = before


def _style_dim(generator: nn.Module) -> int:
    config = getattr(generator, "config", None)
    style_dim = getattr(config, "style_dim", None) or getattr(generator, "style_dim", None)
    if style_dim is None:
        raise ConfigError("cannot tell the generator's style_dim: pass latent_avg or init_w_plus.")
    return int(style_dim)


def _initial_w_plus(init_w_plus: torch.Tensor | None, latent_avg: torch.Tensor | None, batch: int,
                    n_latent: int, device: torch.device) -> torch.Tensor:
    if init_w_plus is None:
        assert latent_avg is not None
        return latent_avg.expand(n_latent, -1).unsqueeze(0).repeat(batch, 1, 1).clone()
    w_plus = init_w_plus.detach().to(device).float()
    if w_plus.ndim == 2:
        w_plus = w_plus[:, None].repeat(1, n_latent, 1)
    if w_plus.ndim != 3 or w_plus.shape[:2] != (batch, n_latent):
        raise InputShapeError(f"init_w_plus must be (B={batch}, n_latent={n_latent}, D) or (B, D), "
                              f"got {tuple(init_w_plus.shape)}.")
    return w_plus.clone()


def _build_losses(config: InversionConfig, perceptual: nn.Module | None,
                  identity_net: nn.Module | None) -> LossCombiner:
    """The inversion's losses: every image term sees only the visible pixels."""
    modules: dict[str, nn.Module] = {"l2": ReconstructionLoss("l2", inside_weight=0.0, outside_weight=1.0,
                                                              name="l2")}
    if config.lpips_weight > 0 and perceptual is not None:
        modules["lpips"] = perceptual
    if config.identity_weight > 0 and identity_net is not None:
        modules["identity"] = IdentityLoss(identity_net)
    weights = {"l2": config.l2_weight, "lpips": config.lpips_weight, "identity": config.identity_weight,
               "w_norm": config.w_norm_weight}
    inputs = {"lpips": ("recovered_visible", "target_visible", None),
              "identity": ("recovered_visible", "identity_target", None)}
    return LossCombiner(weights, modules=modules, inputs=inputs)
