"""Identity-embedding training: ``python -m unmask.train identity --config configs/identity_teaching.yaml``.

Joint discriminative + metric learning (Sabri, Randhawa, Doretto, arXiv 2212.14107): an
:class:`~unmask.models.embedding.IdentityEmbedder` trained with angular-margin softmax +
batch-hard triplet + attribute losses on P×K batches. Data: the teaching world (default) or a
Market-1501 folder; validation reports rank-1 / mAP (Market protocol) and k-fold verification
accuracy, and saves a retrieval strip. The export is the embedder without its class weights.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from unmask.errors import ConfigError
from unmask.models.embedding import EmbeddingConfig
from unmask.synthetic.config import WorldConfig
from unmask.train.harness import TrainTask

DATA_SOURCES = ("world", "market1501")
SCHEDULES = ("cosine", "constant")
#: Stream of ``TrainTask.generator`` used for flips, apart from any other randomness of a step.
FLIP_STREAM = 1


@dataclass(frozen=True)
class IdentityLossConfig:
    """Loss weights and settings (the ``loss:`` section); a weight of 0 turns a loss off.

    Attributes:
        softmax / triplet / attributes: weights of the three losses.
        kind: ``arcface``, ``cosface`` or ``normface``.
        scale / margin: ``s`` and ``m`` of the angular-margin softmax (``m = 0``: normalised softmax).
        triplet_margin: hard margin, or ``null`` for the soft margin.
        triplet_metric: ``euclidean`` or ``cosine``.
    """

    softmax: float = 1.0
    triplet: float = 1.0
    attributes: float = 0.0
    kind: str = "arcface"
    scale: float = 30.0
    margin: float = 0.0
    triplet_margin: float | None = 0.3
    triplet_metric: str = "euclidean"


@dataclass(frozen=True)
class IdentityDataConfig:
    """Where identities come from (the ``data:`` section).

    Attributes:
        source: ``world`` (teaching world) or ``market1501`` (a folder given by ``root``).
        world: the teaching world; its ``size`` is the render size.
        train_identities / test_identities: world identities rendered for training / evaluation.
        images_per_identity: world views per identity.
        root: Market-1501 folder (``source: market1501``).
        image_height / image_width: size Market images are resized to (128 × 64 in the literature).
        pairs_file / pairs_root: optional LFW ``pairs.txt`` and image folder for verification.
        bin_file: optional insightface ``.bin`` verification set.
        p / k: identities per batch and images per identity.
        flip: random horizontal flips.
    """

    source: str = "world"
    world: WorldConfig = field(default_factory=lambda: WorldConfig(size=64, n_identities=1000))
    train_identities: int = 128
    test_identities: int = 48
    images_per_identity: int = 8
    root: str | None = None
    image_height: int = 128
    image_width: int = 64
    pairs_file: str | None = None
    pairs_root: str | None = None
    bin_file: str | None = None
    p: int = 8
    k: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ConfigError(f"data.source must be one of {DATA_SOURCES}, got {self.source!r}.")
        if self.source == "market1501" and not self.root:
            raise ConfigError("data.source: market1501 needs data.root, the Market-1501 folder.")


@dataclass(frozen=True)
class IdentityOptimConfig:
    """Optimiser (the ``optim:`` section): Adam with weight decay, linear warm-up then cosine decay."""

    lr: float = 1e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 20
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}.")


@dataclass(frozen=True)
class IdentityEvalConfig:
    """Validation (the ``eval:`` section)."""

    batch_size: int = 128
    strip_k: int = 8


@dataclass(frozen=True)
class IdentityTaskConfig:
    """Every section of an identity run config except ``train:``.

    ``model.num_classes`` / ``model.num_attributes`` of 0 are filled from the data when the
    softmax / attribute loss is on.
    """

    model: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    loss: IdentityLossConfig = field(default_factory=IdentityLossConfig)
    data: IdentityDataConfig = field(default_factory=IdentityDataConfig)
    optim: IdentityOptimConfig = field(default_factory=IdentityOptimConfig)
    eval: IdentityEvalConfig = field(default_factory=IdentityEvalConfig)


TASK_CONFIG = IdentityTaskConfig


def build_identity_data(config: IdentityDataConfig):
    """``(train source, ReIDSet, PairSet or None)`` for a data config (renders or reads; may take a while)."""
    from unmask.data import identity as data

    if config.source == "world":
        train, reid, pairs = data.world_identity_data(
            config.world, train_identities=config.train_identities, test_identities=config.test_identities,
            images_per_identity=config.images_per_identity)
        size: Any = config.world.size
    else:
        size = (config.image_height, config.image_width)
        train, reid = data.market_data(config.root, size)
        pairs = None
    if config.pairs_file:
        pairs = data.lfw_pair_set(config.pairs_file, config.pairs_root or os.path.dirname(config.pairs_file), size)
    elif config.bin_file:
        pairs = data.bin_pair_set(config.bin_file, size)
    return train, reid, pairs


def resolve_model_config(config: IdentityTaskConfig, train) -> EmbeddingConfig:
    """The model config with ``num_classes`` / ``num_attributes`` taken from the data where left at 0."""
    model = config.model
    updates: dict[str, Any] = {}
    if config.loss.softmax > 0 and model.num_classes == 0:
        updates["num_classes"] = int(train.num_classes)
    if config.loss.attributes > 0 and model.num_attributes == 0:
        names = tuple(getattr(train, "attribute_names", ()))
        n = len(names) or int(train.batch([0])["attributes"].shape[1])
        if n == 0:
            raise ConfigError("loss.attributes > 0 but the training data have no attribute labels.")
        updates.update(num_attributes=n, attribute_names=names)
    if config.loss.softmax > 0 and (updates.get("num_classes", model.num_classes) < int(train.num_classes)):
        raise ConfigError(f"model.num_classes={model.num_classes} is below the {train.num_classes} "
                          "training identities.")
    return dataclasses.replace(model, **updates) if updates else model


class Task(TrainTask):
    """The identity-embedding task for :class:`unmask.train.harness.Trainer`.

    Args:
        config: the task config.
        data: optional prebuilt ``(train, reid, pairs)`` (the ablation renders once and shares it).
    """

    def __init__(self, config: IdentityTaskConfig, *, data: tuple | None = None) -> None:
        self.config = config
        self._data = data

    def setup(self, accelerator: Any) -> None:
        from unmask.data.sampler import PKSampler
        from unmask.losses.metric import JointMetricLoss
        from unmask.models.embedding import IdentityEmbedder

        cfg = self.config
        data = self._data if self._data is not None else build_identity_data(cfg.data)
        self.train_source, self.reid, self.pairs = data
        self.model_config = resolve_model_config(cfg, self.train_source)
        model = IdentityEmbedder(self.model_config)
        lc = cfg.loss
        self.loss = JointMetricLoss(lc.softmax, lc.triplet, lc.attributes, scale=lc.scale, margin=lc.margin,
                                    kind=lc.kind, triplet_margin=lc.triplet_margin,
                                    triplet_metric=lc.triplet_metric)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor)
        self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.sampler = PKSampler(self.train_source.labels, cfg.data.p, cfg.data.k, seed=self.train_config.seed)

    def _lr_factor(self, step: int) -> float:
        opt = self.config.optim
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        total = max(self.train_config.max_steps - opt.warmup_steps, 1)
        progress = min(max(step - opt.warmup_steps, 0) / total, 1.0)
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def training_step(self, step: int) -> dict[str, float]:
        from unmask.data.identity import load_batch

        logs: dict[str, float] = {}
        for micro in self.micro_steps(step, self.model):
            batch = load_batch(self.train_source, self.sampler.batch_for_step(micro))
            images = batch["image"]
            if self.config.data.flip:
                flip = torch.rand(len(images), generator=self.generator(micro, FLIP_STREAM)) < 0.5
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            out = self.model(images.to(self.device))
            total, logs = self.loss(out, batch["identity"].to(self.device), batch["attributes"].to(self.device))
            self.accelerator.backward(total)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        return logs

    def validation_step(self, step: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        from unmask.evaluate.identity import evaluate_embedder

        model = self.accelerator.unwrap_model(self.model)
        metrics, extras = evaluate_embedder(model, self.reid, self.pairs, batch_size=self.config.eval.batch_size,
                                            device=self.device, strip_k=self.config.eval.strip_k)
        images = {}
        if "strip" in extras:
            import numpy as np

            from unmask.faces.io import from_uint8

            images["retrieval"] = from_uint8(np.asarray(extras["strip"], dtype=np.uint8))
        return metrics, images

    def export(self, output_dir: str | os.PathLike) -> None:
        model = self.accelerator.unwrap_model(self.model)
        model.without_classifier().cpu().save_pretrained(output_dir)
