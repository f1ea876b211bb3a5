"""Identity-embedding training: ``python -m unmask.train identity --config configs/identity_teaching.yaml``.

Joint discriminative + metric learning (Sabri, Randhawa, Doretto, arXiv 2212.14107): an
:class:`~unmask.models.embedding.IdentityEmbedder` trained with angular-margin softmax +
batch-hard triplet + attribute losses on P×K batches, through the same
:class:`~unmask.losses.combiner.LossCombiner` as the encoder (``losses:`` section with the
names ``arcface``, ``triplet``, ``attributes``; see :func:`unmask.losses.metric.joint_loss_section`).
Data: the teaching world (default) or a Market-1501 folder; validation reports rank-1 / mAP
(Market protocol) and k-fold verification accuracy, and saves a retrieval strip. The export is
the embedder without its class weights.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from unmask.errors import ConfigError
from unmask.losses.combiner import loss_weights
from unmask.losses.metric import joint_loss_section
from unmask.models.embedding import EmbeddingConfig
from unmask.synthetic.config import WorldConfig
from unmask.train.loop import ScheduleConfig, TrainTask

DATA_SOURCES = ("world", "market1501")
#: The losses identity training can feed: the embedder's outputs and the batch's labels.
METRIC_LOSSES = ("arcface", "triplet", "attributes")
#: Stream of ``TrainTask.rng`` used for flips, apart from any other randomness of a step.
FLIP_STREAM = 1


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
class IdentityOptimConfig(ScheduleConfig):
    """Optimiser (the ``optim:`` section): Adam with weight decay, linear warm-up then cosine decay
    (:class:`~unmask.train.loop.ScheduleConfig`)."""

    lr: float = 1e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 20
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05


@dataclass(frozen=True)
class IdentityEvalConfig:
    """Validation (the ``eval:`` section)."""

    batch_size: int = 128
    strip_k: int = 8


@dataclass(frozen=True)
class IdentityTaskConfig:
    """Every section of an identity run config except ``train:``.

    ``losses`` is a :class:`~unmask.losses.combiner.LossCombiner` section over ``arcface``,
    ``triplet`` and ``attributes`` (default: :func:`~unmask.losses.metric.joint_loss_section`,
    softmax and triplet weighted 1, no softmax margin). ``model.num_classes`` /
    ``model.num_attributes`` of 0 are filled from the data when the arcface / attribute loss is on.
    """

    model: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    losses: dict[str, Any] = field(default_factory=joint_loss_section)
    data: IdentityDataConfig = field(default_factory=IdentityDataConfig)
    optim: IdentityOptimConfig = field(default_factory=IdentityOptimConfig)
    eval: IdentityEvalConfig = field(default_factory=IdentityEvalConfig)

    def __post_init__(self) -> None:
        try:
            weights = loss_weights(self.losses)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"losses must map loss names to weights (or hold weights: and options:): {exc}.") from exc
        other = sorted(set(weights) - set(METRIC_LOSSES))
        if other:
            raise ConfigError(f"losses: identity training computes only {list(METRIC_LOSSES)}, not {other}; "
                              "remove them from the losses section.")
        if weights.get("arcface", 0.0) <= 0 and weights.get("triplet", 0.0) <= 0:
            raise ConfigError("losses: give arcface or triplet a positive weight (attributes alone do not "
                              "separate identities).")
        from unmask.losses.combiner import LossCombiner

        try:  # the metric losses hold no weights: building them checks every option now, not at setup
            LossCombiner.from_config(self.losses)
        except ConfigError as exc:
            raise ConfigError(f"losses: {exc}") from exc


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
    model, weights = config.model, loss_weights(config.losses)
    softmax, attributes = weights.get("arcface", 0.0) > 0, weights.get("attributes", 0.0) > 0
    updates: dict[str, Any] = {}
    if softmax and model.num_classes == 0:
        updates["num_classes"] = int(train.num_classes)
    if attributes and model.num_attributes == 0:
        names = tuple(getattr(train, "attribute_names", ()))
        n = len(names) or int(train.batch([0])["attributes"].shape[1])
        if n == 0:
            raise ConfigError("losses: attributes > 0 but the training data have no attribute labels; set its "
                              "weight to 0.")
        updates.update(num_attributes=n, attribute_names=names)
    if softmax and (updates.get("num_classes", model.num_classes) < int(train.num_classes)):
        raise ConfigError(f"model.num_classes={model.num_classes} is below the {train.num_classes} "
                          "training identities.")
    return dataclasses.replace(model, **updates) if updates else model


class Task(TrainTask):
    """The identity-embedding task for :class:`unmask.train.loop.Trainer`.

    Args:
        config: the task config.
        data: optional prebuilt ``(train, reid, pairs)`` (the ablation renders once and shares it).
    """

    def __init__(self, config: IdentityTaskConfig, *, data: tuple | None = None) -> None:
        self.config = config
        self._data = data

    def setup(self, accelerator: Any) -> None:
        from unmask.data.sampler import PKSampler
        from unmask.losses.combiner import LossCombiner
        from unmask.models.embedding import IdentityEmbedder

        cfg = self.config
        data = self._data if self._data is not None else build_identity_data(cfg.data)
        self.train_source, self.reid, self.pairs = data
        self.model_config = resolve_model_config(cfg, self.train_source)
        model = IdentityEmbedder(self.model_config)
        self.losses = LossCombiner.from_config(cfg.losses).to(accelerator.device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.sampler = PKSampler(self.train_source.labels, cfg.data.p, cfg.data.k, seed=self.train_config.seed)

    def training_step(self, step: int) -> dict[str, float]:
        from unmask.data.identity import load_batch

        lr = self.set_learning_rate(step, self.optimizer)
        logs: dict[str, float] = {}
        for micro in self.micro_steps(step, self.model):
            batch = load_batch(self.train_source, self.sampler.batch_for_step(micro))
            images = batch["image"]
            if self.config.data.flip:
                flip = torch.rand(len(images), generator=self.rng(micro, FLIP_STREAM)) < 0.5
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            outputs = self.model(images.to(self.device))
            total, logs = self.losses({**outputs, "labels": batch["identity"].to(self.device),
                                       "attribute_labels": batch["attributes"].to(self.device)})
            self.optimizer_step(total, self.optimizer)
        logs["lr"] = lr
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

    @property
    def micro_batch_size(self) -> int:
        return self.config.data.p * self.config.data.k

    def export(self, output_dir: str | os.PathLike) -> None:
        model = self.accelerator.unwrap_model(self.model)
        model.without_classifier().cpu().save_pretrained(output_dir)
