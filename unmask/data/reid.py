"""The teaching world's re-identification benchmark: a Market-1501-style split with distractors.

The protocol (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015) as the
teaching world can follow it exactly, since every view's identity and camera are known:

* **Disjoint people.** Training, validation, test and distractor identities never overlap: training and
  validation identities come from the world's ``train`` split, test and distractor identities from its
  ``test`` split, so nothing evaluated was ever trained on.
* **Cross-camera queries.** Each test identity has ``views`` renders; view ``j`` is seen by camera
  ``(j + identity) mod n_cameras``. Its first ``queries_per_identity`` views (distinct cameras) are
  queries, the rest are gallery.
* **Same-camera exclusion.** With ``views > n_cameras`` the gallery holds a view of the query's own
  camera; :func:`unmask.evaluate.reid.evaluate_reid` removes those from each query's ranking, as Market
  does, so a query is matched only across cameras.
* **Distractors.** ``distractor_identities`` further people appear only in the gallery, with the
  Market label ``0``: they are never a correct match and always count as wrong ones.

Validation identities form a second, smaller query/gallery set (no distractors) that early stopping
watches, so the test set is used once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unmask.data.identity import (
    EVAL_IMAGE_OFFSET,
    InMemoryImages,
    PairSet,
    ReIDSet,
    render_identities,
    verification_pairs,
)
from unmask.errors import ConfigError

#: Market-1501's label of a distractor: in the gallery, never a correct match.
DISTRACTOR_LABEL = 0


@dataclass(frozen=True)
class ReIDProtocol:
    """Sizes of the teaching-world re-id benchmark (see the module docstring for the rules).

    Attributes:
        train_identities: people the embedder trains on.
        val_identities: people early stopping watches (never trained on, never tested).
        test_identities: people of the test queries and gallery.
        distractor_identities: people only in the test gallery (label ``0``).
        train_views: renders per training identity.
        views: renders per validation / test identity (queries + gallery).
        distractor_views: renders per distractor identity.
        queries_per_identity: queries per validation / test identity, each from its own camera.
        n_folds / pairs_per_fold: the verification pairs on the test identities (10-fold accuracy).
    """

    train_identities: int = 400
    val_identities: int = 60
    test_identities: int = 150
    distractor_identities: int = 150
    train_views: int = 12
    views: int = 10
    distractor_views: int = 4
    queries_per_identity: int = 2
    n_folds: int = 10
    pairs_per_fold: int = 60

    def __post_init__(self) -> None:
        for name in ("train_identities", "val_identities", "test_identities", "train_views", "views"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ReIDProtocol.{name} must be >= 1; got {getattr(self, name)}.")
        if self.distractor_identities < 0 or self.distractor_views < 1:
            raise ConfigError("ReIDProtocol: distractor_identities must be >= 0 and distractor_views >= 1.")
        if not 1 <= self.queries_per_identity < self.views:
            raise ConfigError(f"queries_per_identity={self.queries_per_identity} must be at least 1 and below "
                              f"views={self.views}, so every query keeps a gallery match.")

    def check_world(self, world_config) -> None:
        """Raise :class:`ConfigError` unless the world has the cameras and identities this protocol needs."""
        cams = world_config.n_cameras
        if self.queries_per_identity >= cams:
            raise ConfigError(f"queries_per_identity={self.queries_per_identity} needs more than that many cameras "
                              f"(the world has {cams}): queries must come from distinct cameras and leave one "
                              "for a cross-camera match.")
        n_test = max(10, int(round(world_config.n_identities * world_config.test_fraction)))
        n_train = world_config.n_identities - n_test
        if self.train_identities + self.val_identities > n_train or \
                self.test_identities + self.distractor_identities > n_test:
            raise ConfigError(
                f"the world has {n_train} train-split and {n_test} test-split identities; the protocol needs "
                f"{self.train_identities + self.val_identities} and "
                f"{self.test_identities + self.distractor_identities}. Raise world.n_identities.")


@dataclass
class ReIDData:
    """Everything one re-id experiment needs, rendered once.

    Attributes:
        train: training images (labels ``0 .. train_identities - 1``, cameras, attributes).
        val: validation query/gallery (labels = world id + 1).
        test: test query/gallery (labels = world id + 1; distractors ``0``).
        pairs: verification pairs on the test identities.
        identities: the world ids of each role (``train``, ``val``, ``test``, ``distractor``).
    """

    train: InMemoryImages
    val: ReIDSet
    test: ReIDSet
    pairs: PairSet
    identities: dict[str, list[int]]


def concat_images(first: InMemoryImages, second: InMemoryImages) -> InMemoryImages:
    """``first`` followed by ``second`` (same image size and attribute columns)."""
    if first.images.shape[1:] != second.images.shape[1:]:
        raise ConfigError(f"cannot join images of shape {tuple(first.images.shape[1:])} and "
                          f"{tuple(second.images.shape[1:])}.")
    return InMemoryImages(torch.cat([first.images, second.images]),
                          np.concatenate([first.labels, second.labels]),
                          np.concatenate([first.cameras, second.cameras]),
                          torch.cat([first.attributes, second.attributes]), first.attribute_names)


def market_split(images: InMemoryImages, views: int, queries_per_identity: int,
                 distractors: InMemoryImages | None = None) -> ReIDSet:
    """Query/gallery of identity-major renders: leading views query; the rest and ``distractors`` are gallery.

    Args:
        images: ``views`` renders of each identity in identity-major order (as
            :func:`~unmask.data.identity.render_identities` makes them), labels ``>= 1``.
        views: renders per identity.
        queries_per_identity: leading views of each identity used as queries.
        distractors: gallery-only images; their labels are set to :data:`DISTRACTOR_LABEL`.
    """
    if len(images) % views:
        raise ConfigError(f"{len(images)} images are not {views} views of each identity.")
    view = np.tile(np.arange(views), len(images) // views)
    is_query = view < queries_per_identity
    query = images.subset(np.nonzero(is_query)[0].tolist())
    gallery = images.subset(np.nonzero(~is_query)[0].tolist())
    if distractors is not None and len(distractors):
        labelled = InMemoryImages(distractors.images, np.full(len(distractors), DISTRACTOR_LABEL),
                                  distractors.cameras, distractors.attributes, distractors.attribute_names)
        gallery = concat_images(gallery, labelled)
    return ReIDSet(query, gallery)


def world_reid_data(world_config, protocol: ReIDProtocol, *, device: str | torch.device = "cpu") -> ReIDData:
    """Render the teaching-world re-id benchmark of ``protocol`` (deterministic in the world's seed)."""
    from unmask.synthetic import FaceWorld

    protocol.check_world(world_config)
    world = FaceWorld(world_config, device=device)
    train_split = world.identity_split("train").tolist()
    test_split = world.identity_split("test").tolist()
    p = protocol
    train_ids = train_split[:p.train_identities]
    val_ids = train_split[p.train_identities:p.train_identities + p.val_identities]
    test_ids = test_split[:p.test_identities]
    distractor_ids = test_split[p.test_identities:p.test_identities + p.distractor_identities]

    train = render_identities(world, train_ids, p.train_views, labels=range(len(train_ids)))

    def evaluation(ids: list[int]) -> InMemoryImages:
        return render_identities(world, ids, p.views, image_offset=EVAL_IMAGE_OFFSET, labels=[i + 1 for i in ids])

    val = market_split(evaluation(val_ids), p.views, p.queries_per_identity)
    test_images = evaluation(test_ids)
    distractors = (render_identities(world, distractor_ids, p.distractor_views, image_offset=EVAL_IMAGE_OFFSET,
                                     labels=[DISTRACTOR_LABEL] * len(distractor_ids))
                   if distractor_ids else None)
    test = market_split(test_images, p.views, p.queries_per_identity, distractors)
    pairs = verification_pairs(test_images, test_ids, p.views, seed=world_config.seed, n_folds=p.n_folds,
                               pairs_per_fold=p.pairs_per_fold)
    return ReIDData(train, val, test, pairs, {"train": train_ids, "val": val_ids, "test": test_ids,
                                              "distractor": distractor_ids})
