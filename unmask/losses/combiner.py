"""Build a weighted sum of losses from a ``{name: weight}`` table.

Replaces pSp/e4e's chain of ``if lambda > 0`` branches: each loss is built once from the
:data:`LOSSES` registry when its weight is positive (a weight of 0 means the loss is not built
and its inputs are not needed), and each reads its inputs from the model's output dict by a
declared mapping (:data:`INPUTS`)::

    combiner = LossCombiner({"l2_visible": 1.0, "l2_mask": 2.0, "lpips": 0.8, "w_norm": 0.005},
                            pretrained_backbone=False)
    total, logs = combiner({"recovered": out, "target": target, "mask": mask,
                            "w_plus": w_plus, "latent_avg": generator.latent_avg})
    total.backward()

``logs`` holds every built term (unweighted) and ``"total"`` (weighted sum), all as floats.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from unmask.errors import ConfigError
from unmask.losses import identity, latent, occlusion, perceptual, reconstruction
from unmask.losses.base import Loss

#: Where a loss finds ``(pred, target, mask)`` in the outputs dict; ``None`` = pass ``None``.
InputKeys = tuple[str, "str | None", "str | None"]

#: Images: the model's recovered face, the unmasked ground truth, the mask (1 = occluded).
IMAGE_INPUTS: InputKeys = ("recovered", "target", "mask")
#: Latent priors: the encoder's ``w_plus`` and the generator's ``latent_avg``.
LATENT_INPUTS: InputKeys = ("w_plus", "latent_avg", None)
#: Name of the weighted sum in the logs.
TOTAL = "total"

_METRIC_MODULE = "unmask.losses.metric"


class LazyLoss:
    """Builder of a loss class that lives in a module imported only when the loss is built.

    Args:
        module: dotted module path.
        loss_name: the ``name`` class attribute of the :class:`Loss` subclass to build.
    """

    def __init__(self, module: str, loss_name: str) -> None:
        self.module = module
        self.loss_name = loss_name

    def resolve(self) -> type[Loss]:
        """Import the module and return the ``Loss`` subclass whose ``name`` is ``loss_name``."""
        module = importlib.import_module(self.module)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Loss) and value is not Loss
                    and getattr(value, "name", None) == self.loss_name):
                return value
        raise ConfigError(f"{self.module} defines no Loss named {self.loss_name!r}.")

    def __call__(self, **kwargs: Any) -> Loss:
        return self.resolve()(**kwargs)

    def __repr__(self) -> str:
        return f"LazyLoss({self.module!r}, {self.loss_name!r})"


#: Registry: combiner name -> builder taking keyword options and returning a :class:`Loss`.
LOSSES: dict[str, Callable[..., Loss]] = {
    "l2": reconstruction.l2,
    "l1": reconstruction.l1,
    "l2_mask": reconstruction.l2_mask,
    "l1_mask": reconstruction.l1_mask,
    "l2_visible": reconstruction.l2_visible,
    "l1_visible": reconstruction.l1_visible,
    "gradient": reconstruction.GradientLoss,
    "lpips": perceptual.lpips_loss,
    "lpips_mask": perceptual.lpips_mask_loss,
    "identity": identity.IdentityLoss,
    "w_norm": latent.WNormLoss,
    "delta": latent.DeltaLoss,
    "w_plus_true": latent.TrueLatentLoss,
    "mask_bce": occlusion.MaskBCELoss,
    "arcface": LazyLoss(_METRIC_MODULE, "arcface"),
    "triplet": LazyLoss(_METRIC_MODULE, "triplet"),
    "attributes": LazyLoss(_METRIC_MODULE, "attributes"),
}

#: Default input mapping of each registered loss.
INPUTS: dict[str, InputKeys] = {
    **{name: IMAGE_INPUTS for name in ("l2", "l1", "l2_mask", "l1_mask", "l2_visible", "l1_visible",
                                       "gradient", "lpips", "lpips_mask")},
    "identity": ("recovered", "target", None),
    "w_norm": LATENT_INPUTS,
    "delta": ("w_plus", None, None),
    # The true W+ of the unmasked face (batch key ``w_plus``), passed by trainers as ``w_plus_true``.
    "w_plus_true": ("w_plus", "w_plus_true", None),
    # The encoder's mask-head logits against the pair's true mask (passed as ``mask_true``: the generic
    # baseline's loss ``mask`` is all zeros, the head still learns the real occlusion).
    "mask_bce": ("mask_logits", "mask_true", None),
    # Only for a trainer that trains the latent discriminator and passes the loss in ``modules``.
    "w_discriminator": ("w_plus", None, None),
    # Metric losses follow unmask.models.embedding's output names plus the batch's labels
    # (see metric.joint_loss_section and train.identity).
    "arcface": ("cosine", "labels", None),
    "triplet": ("embedding", "labels", None),
    "attributes": ("attributes", "attribute_labels", "attribute_mask"),
}


#: Losses that exist but cannot be built from a weight alone, with what to do instead.
NOT_BUILT_FROM_WEIGHT: dict[str, str] = {
    "w_discriminator": (
        "e4e's adversarial latent prior needs a latent discriminator trained alongside the encoder, and no "
        "trainer here trains one, so a positive weight would add the loss of a random network. Remove "
        "w_discriminator from the losses (or set it to 0); a trainer that adds the discriminator step "
        "(unmask.losses.latent: LatentDiscriminator, discriminator_loss, r1_penalty) passes its loss as "
        "modules={'w_discriminator': LatentAdversarialLoss(discriminator)}."),
}


def register_loss(name: str, builder: Callable[..., Loss], inputs: InputKeys) -> None:
    """Add a loss to :data:`LOSSES` and :data:`INPUTS` (e.g. from a research script)."""
    LOSSES[name] = builder
    INPUTS[name] = tuple(inputs)  # type: ignore[assignment]


def _signature_target(builder: Callable[..., Loss]) -> Callable[..., Any]:
    return builder.resolve() if isinstance(builder, LazyLoss) else builder


def _accepted(builder: Callable[..., Loss], shared: Mapping[str, Any]) -> dict[str, Any]:
    """The shared keyword arguments that ``builder`` declares (all of them if it takes ``**kwargs``)."""
    params = inspect.signature(_signature_target(builder)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(shared)
    return {k: v for k, v in shared.items() if k in params}


def loss_weights(section: Mapping[str, Any]) -> dict[str, float]:
    """The ``{name: weight}`` table of a ``losses:`` section (flat, or nested under ``weights:``)."""
    table = section["weights"] if isinstance(section.get("weights"), Mapping) else section
    return {str(k): float(v) for k, v in table.items()}


class LossCombiner(nn.Module):
    """Weighted sum of the losses named in a ``{name: weight}`` table.

    Args:
        weights: ``{name: weight}`` with names from :data:`LOSSES`; weights must be ``>= 0`` and a
            weight of 0 leaves the loss unbuilt.
        options: per-loss keyword arguments, ``{name: {arg: value}}`` (all passed; a wrong one is an error).
        inputs: per-loss overrides of :data:`INPUTS`, ``{name: (pred_key, target_key, mask_key)}``.
        modules: ready-built loss modules to use instead of building, ``{name: module}``.
        **builder_kwargs: shared resources (``identity_net``, ``pretrained_backbone``, ``net``,
            ``lpips_network``, ``style_dim``…) given to every builder that declares the argument.

    Raises:
        ConfigError: unknown name, negative weight, or a builder that rejects its options.
    """

    def __init__(self, weights: Mapping[str, float], *,
                 options: Mapping[str, Mapping[str, Any]] | None = None,
                 inputs: Mapping[str, InputKeys] | None = None,
                 modules: Mapping[str, nn.Module] | None = None,
                 **builder_kwargs: Any) -> None:
        super().__init__()
        options = dict(options or {})
        inputs = dict(inputs or {})
        modules = dict(modules or {})
        for name in (*weights, *options, *inputs, *modules):
            if name in NOT_BUILT_FROM_WEIGHT:
                if name not in modules and float(weights.get(name, 0)) > 0:
                    raise ConfigError(f"loss {name!r} cannot be built from a weight: {NOT_BUILT_FROM_WEIGHT[name]}")
            elif name not in LOSSES and name not in inputs and name not in modules:
                raise ConfigError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}.")
        self.weights: dict[str, float] = {}
        self.input_keys: dict[str, InputKeys] = {}
        self.losses = nn.ModuleDict()
        lpips_cache: dict[tuple[Any, ...], nn.Module] = {}
        for name, weight in weights.items():
            weight = float(weight)
            if weight < 0 or weight != weight:
                raise ConfigError(f"loss weight {name}={weight} must be a number >= 0 "
                                  "(0 turns the loss off).")
            if weight == 0:
                continue
            if name in modules:
                self.losses[name] = modules[name]
            else:
                self.losses[name] = self._build(name, options.get(name, {}), builder_kwargs, lpips_cache)
            self.weights[name] = weight
            if name not in inputs and name not in INPUTS:
                raise ConfigError(f"loss {name!r} has no input mapping; pass "
                                  f"inputs={{{name!r}: (pred_key, target_key, mask_key)}}.")
            self.input_keys[name] = tuple(inputs.get(name, INPUTS.get(name)))  # type: ignore[assignment]

    @staticmethod
    def _build(name: str, options: Mapping[str, Any], shared: Mapping[str, Any],
               lpips_cache: dict[tuple[Any, ...], nn.Module]) -> nn.Module:
        builder = LOSSES[name]
        kwargs = {**_accepted(builder, shared), **options}
        # "lpips" and "lpips_mask" with the same backbone share one frozen network.
        share = (builder in (perceptual.lpips_loss, perceptual.lpips_mask_loss)
                 and "lpips_network" not in kwargs)
        key = (kwargs.get("net", "alex"), bool(kwargs.get("pretrained_backbone", True)))
        if share and key in lpips_cache:
            kwargs["lpips_network"] = lpips_cache[key]
        try:
            loss = builder(**kwargs)
        except TypeError as err:
            raise ConfigError(f"cannot build loss {name!r} with {sorted(kwargs)}: {err}. Check the options "
                              f"given for it (and pass shared resources such as identity_net).") from err
        if share:
            lpips_cache.setdefault(key, loss.network)
        return loss

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **builder_kwargs: Any) -> LossCombiner:
        """Build from a config's ``losses:`` section.

        ``section`` is either a flat ``{name: weight}`` table or ``{"weights": {...}, "options":
        {...}, "inputs": {...}}`` (see ``configs/unmask_*.yaml``).
        """
        if "weights" in section and isinstance(section["weights"], Mapping):
            unknown = set(section) - {"weights", "options", "inputs"}
            if unknown:
                raise ConfigError(f"losses section has unknown keys {sorted(unknown)}; "
                                  "use weights, options, inputs.")
            inputs = {k: tuple(v) for k, v in (section.get("inputs") or {}).items()}
            return cls(section["weights"], options=section.get("options") or {}, inputs=inputs,
                       **builder_kwargs)
        return cls(section, **builder_kwargs)

    @property
    def names(self) -> list[str]:
        """Names of the built losses, in table order."""
        return list(self.losses.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.losses

    def forward(self, outputs: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute every built loss and their weighted sum.

        Args:
            outputs: tensors by name (``recovered``, ``target``, ``mask``, ``w_plus``,
                ``latent_avg``…); a missing mask key means ``mask=None``.

        Returns:
            ``(total, logs)``: the scalar weighted sum and ``{name: unweighted value}`` for each
            built loss plus ``"total"``, all Python floats.

        Raises:
            ConfigError: a built loss needs a key that ``outputs`` lacks.
        """
        if not self.losses:
            raise ConfigError("no loss has a positive weight; set at least one weight in the losses section.")
        total: torch.Tensor | None = None
        logs: dict[str, float] = {}
        for name, loss in self.losses.items():
            pred_key, target_key, mask_key = self.input_keys[name]
            missing = [k for k in (pred_key, target_key) if k is not None and outputs.get(k) is None]
            if missing:
                raise ConfigError(f"loss {name!r} needs outputs {missing}; add them to the dict given to the "
                                  f"combiner or set its weight to 0.")
            value = loss(outputs[pred_key], None if target_key is None else outputs[target_key],
                         None if mask_key is None else outputs.get(mask_key)).float()  # float32 sums under bf16
            logs[name] = float(value.detach())
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        assert total is not None
        logs[TOTAL] = float(total.detach())
        return total, logs

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={weight:g}" for name, weight in self.weights.items())
