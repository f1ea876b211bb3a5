"""Identity data for training and evaluating embeddings: one small interface over every source.

An *image source* is any object with ``__len__``, ``labels`` ``(N,)``, ``cameras`` ``(N,)`` and either
``batch(indices)`` or per-item ``__getitem__``, giving batches of the contract in
:mod:`unmask.data.batch` (``image``, ``identity``, ``camera``, ``attributes``; world views add ``mask``).
:class:`InMemoryImages` (teaching-world renders, kept as uint8), :class:`unmask.data.world.WorldViews`
(rendered on demand) and :class:`unmask.data.readers.ImageFileDataset` (files on disk) all are.

Evaluation data are one :class:`ReIDSet` (query and gallery sources, optionally a train source) and
one :class:`PairSet` (two aligned sources, same/different flags and folds). Teaching-world pairs
come from one protocol, :func:`verification_protocol`, whether rendered on demand
(:class:`unmask.data.world.VerificationPairs`) or from renders held in memory (:func:`world_identity_data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from unmask.data.batch import check_batch, stack_items
from unmask.errors import ConfigError
from unmask.faces.io import dequantize, quantize

#: Images rendered per call of the teaching-world renderer (bounds its peak memory).
RENDER_CHUNK = 128
#: Image-id offset of evaluation renders, so they never repeat a training draw.
EVAL_IMAGE_OFFSET = 1 << 20


class InMemoryImages:
    """Images held as uint8 ``(N, 3, H, W)`` with identity labels, cameras and attributes.

    Args:
        images: uint8 ``(N, 3, H, W)`` (or float in ``[-1, 1]``, converted).
        labels: ``(N,)`` identity labels (contiguous for training, raw ids for evaluation).
        cameras: ``(N,)`` camera ids (``-1`` = unknown).
        attributes: ``(N, A)`` in ``{0, 1}``, ``-1`` = unknown; ``A`` may be 0.
        attribute_names: names of the ``A`` columns.
    """

    def __init__(self, images: torch.Tensor, labels, cameras=None, attributes: torch.Tensor | None = None,
                 attribute_names: Sequence[str] = ()) -> None:
        if images.dtype != torch.uint8:
            images = quantize(images)
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        n = len(self.labels)
        self.cameras = np.full(n, -1, np.int64) if cameras is None else np.asarray(cameras, np.int64).reshape(-1)
        self.attributes = torch.zeros(n, 0) if attributes is None else torch.as_tensor(attributes).float()
        self.attribute_names = tuple(attribute_names)
        if not (len(images) == n == len(self.cameras) == len(self.attributes)):
            raise ConfigError(f"{len(images)} images, {n} labels, {len(self.cameras)} cameras and "
                              f"{len(self.attributes)} attribute rows must match.")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(np.unique(self.labels))

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return {"image": dequantize(self.images.index_select(0, index)),
                "identity": torch.from_numpy(self.labels[index.numpy()]),
                "camera": torch.from_numpy(self.cameras[index.numpy()]),
                "attributes": self.attributes.index_select(0, index)}

    def subset(self, indices: Sequence[int]) -> InMemoryImages:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return InMemoryImages(self.images[index], self.labels[index.numpy()], self.cameras[index.numpy()],
                              self.attributes[index], self.attribute_names)


def load_batch(source, indices: Sequence[int], num_workers: int = 4) -> dict[str, torch.Tensor]:
    """A batch (:mod:`unmask.data.batch` keys) from any image source: its ``batch`` if it has one, else its items."""
    if hasattr(source, "batch"):
        return dict(check_batch(source.batch(indices), type(source).__name__))
    indices = [int(i) for i in indices]
    if num_workers > 1 and len(indices) > 1:
        with ThreadPoolExecutor(min(num_workers, len(indices))) as pool:
            items = list(pool.map(source.__getitem__, indices))
    else:
        items = [source[i] for i in indices]
    items = [{"image": it["image"], "identity": int(it["identity"]), "camera": int(it.get("camera", -1)),
              "attributes": torch.as_tensor(it.get("attributes", torch.zeros(0))).float()} for it in items]
    return dict(check_batch(stack_items(items, ("image", "identity", "camera", "attributes")),
                            type(source).__name__))


@dataclass
class ReIDSet:
    """A re-identification set: query and gallery sources, and optionally the matching train source.

    Query and gallery ``labels`` are raw person ids (``0`` distractor, ``-1`` junk, as in
    Market-1501) and ``cameras`` camera ids, which the protocol of
    :func:`unmask.evaluate.reid.evaluate_reid` needs; ``train`` (when present) has contiguous labels
    ``0 .. N - 1`` for a softmax.
    """

    query: object
    gallery: object
    train: object | None = None


@dataclass
class PairSet:
    """Verification pairs: ``first[i]`` and ``second[i]`` show the same person iff ``issame[i]``.

    ``first`` and ``second`` are image sources of equal length; ``folds`` ``(N,)`` gives each pair's
    fold for k-fold accuracy.
    """

    first: object
    second: object
    issame: np.ndarray
    folds: np.ndarray

    def __len__(self) -> int:
        return len(self.issame)


#: Views of the teaching world a mismatched pair draws from (``view_a`` in ``0..3``, ``view_b = view_a + 1``).
MISMATCH_VIEWS = 4


def verification_protocol(identities: Sequence[int], *, seed: int, n_folds: int = 10, pairs_per_fold: int = 300,
                          n_views: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teaching world's LFW-style verification protocol, a pure function of its arguments.

    Identities are dealt into ``n_folds`` disjoint folds in the order of a seeded hash. Each fold has
    ``pairs_per_fold`` matched pairs (identity ``j mod m`` of the fold's ``m``, views ``2r`` and
    ``2r + 1`` in round ``r = j // m``, so no view pair repeats) followed by ``pairs_per_fold``
    mismatched pairs (identity ``j mod m`` against another identity of the same fold, chosen by a
    seeded hash), the order of LFW's ``pairs.txt``.

    Args:
        identities: world identity ids (at least ``2 * n_folds``).
        seed: the world seed.
        n_folds: folds (LFW: 10).
        pairs_per_fold: matched pairs per fold, and as many mismatched (LFW: 300).
        n_views: when only ``n_views`` views of each identity exist (renders held in memory), view ids
            are taken modulo ``n_views``; ``None`` leaves them unbounded (rendered on demand).

    Returns:
        ``rows`` ``(N, 4)`` int64 ``[identity_a, view_a, identity_b, view_b]``, ``same`` ``(N,)`` bool and
        ``folds`` ``(N,)`` int64, with ``N = 2 * n_folds * pairs_per_fold``.
    """
    from unmask.synthetic import rng

    identities = np.asarray(identities, dtype=np.int64).reshape(-1)
    if len(identities) < 2 * n_folds:
        raise ConfigError(f"{len(identities)} identities cannot fill {n_folds} identity-disjoint folds of at "
                          f"least two; use at least {2 * n_folds} (raise n_identities or test_fraction).")
    if pairs_per_fold < 1 or (n_views is not None and n_views < 2):
        raise ConfigError(f"pairs_per_fold must be >= 1 and n_views >= 2 (a matched pair needs two views); got "
                          f"{pairs_per_fold} and {n_views}.")
    order = np.argsort(rng.hash_keys(seed, "fold_order", identities), kind="stable")
    rows, same, folds = [], [], []
    for f in range(n_folds):
        ids = np.sort(identities[order[f::n_folds]])
        m = len(ids)
        j = np.arange(pairs_per_fold)
        a = ids[j % m]
        rounds = j // m
        rows.append(np.stack([a, 2 * rounds, a, 2 * rounds + 1], 1))
        step = 1 + rng.randint(seed, "mismatch", f, j, high=m - 1)
        b = ids[(j % m + step) % m]
        view = rng.randint(seed, "mismatch_view", f, j, high=MISMATCH_VIEWS)
        rows.append(np.stack([a, view, b, (view + 1) % MISMATCH_VIEWS], 1))
        same += [True] * pairs_per_fold + [False] * pairs_per_fold
        folds += [f] * (2 * pairs_per_fold)
    pairs = np.concatenate(rows).astype(np.int64)
    if n_views is not None:
        pairs[:, 1::2] %= n_views
    return pairs, np.asarray(same), np.asarray(folds, dtype=np.int64)


@torch.no_grad()
def embed_source(model, source, batch_size: int = 128, device: str | torch.device = "cpu") -> torch.Tensor:
    """Unit-norm embeddings ``(N, D)`` of every image of ``source`` with ``model.embed`` (eval mode assumed)."""
    out = []
    for start in range(0, len(source), batch_size):
        images = load_batch(source, range(start, min(start + batch_size, len(source))))["image"]
        out.append(model.embed(images.to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


# ------------------------------------------------------------------------------ teaching world
def render_identities(world, identities: Sequence[int], images_per_identity: int, *, image_offset: int = 0,
                      labels: Sequence[int] | None = None, chunk: int = RENDER_CHUNK) -> InMemoryImages:
    """Render ``images_per_identity`` views of each identity, cameras cycling so each is seen by several.

    Args:
        world: a :class:`unmask.synthetic.FaceWorld`.
        identities: world identity ids.
        images_per_identity: views per identity (image ids ``image_offset + j``).
        labels: label of each identity (default: the ids themselves).
    """
    ids = np.repeat(np.asarray(identities, np.int64), images_per_identity)
    view = np.tile(np.arange(images_per_identity, dtype=np.int64), len(identities))
    cameras = (view + ids) % world.config.n_cameras
    image_ids = view + image_offset
    images, attributes = [], []
    for start in range(0, len(ids), chunk):
        sl = slice(start, start + chunk)
        out = world.render(torch.from_numpy(ids[sl]), torch.from_numpy(image_ids[sl]), torch.from_numpy(cameras[sl]))
        images.append(quantize(out.images.cpu()))
        attributes.append(out.attributes.cpu())
    label_of = dict(zip(np.asarray(identities).tolist(), (labels if labels is not None else identities)))
    return InMemoryImages(torch.cat(images), [label_of[i] for i in ids.tolist()], cameras, torch.cat(attributes),
                          world.ATTRIBUTE_NAMES)


def reid_split(images: InMemoryImages, queries_per_identity: int = 2) -> ReIDSet:
    """Market-style split of evaluation images: the first views of each identity are queries, the rest gallery.

    Later views reuse the query cameras, so the gallery holds same-camera matches that the protocol
    must exclude, as in Market-1501.
    """
    query, gallery = [], []
    for pid in np.unique(images.labels):
        rows = np.nonzero(images.labels == pid)[0]
        query.extend(rows[:queries_per_identity].tolist())
        gallery.extend(rows[queries_per_identity:].tolist())
    return ReIDSet(images.subset(query), images.subset(gallery))


def verification_pairs(images: InMemoryImages, identities: Sequence[int], n_views: int, *, seed: int,
                       n_folds: int = 10, pairs_per_fold: int = 30) -> PairSet:
    """:func:`verification_protocol` pairs over renders held in memory.

    Args:
        images: ``n_views`` views of each identity, identity-major (as :func:`render_identities` makes them).
        identities: the world identity of each block of ``n_views`` rows, in row order.
        n_views: views per identity.
        seed, n_folds, pairs_per_fold: as in :func:`verification_protocol`.
    """
    identities = np.asarray(identities, dtype=np.int64)
    if len(images) != len(identities) * n_views:
        raise ConfigError(f"{len(images)} images are not {n_views} views of each of {len(identities)} identities.")
    rows, same, folds = verification_protocol(identities, seed=seed, n_folds=n_folds, pairs_per_fold=pairs_per_fold,
                                              n_views=n_views)
    block = {int(pid): k * n_views for k, pid in enumerate(identities.tolist())}
    first = [block[int(i)] + int(v) for i, v in rows[:, 0:2].tolist()]
    second = [block[int(i)] + int(v) for i, v in rows[:, 2:4].tolist()]
    return PairSet(images.subset(first), images.subset(second), same, folds)


def world_identity_data(world_config, *, train_identities: int, test_identities: int, images_per_identity: int,
                        test_images_per_identity: int | None = None, device: str | torch.device = "cpu",
                        n_folds: int = 10, pairs_per_fold: int = 30,
                        ) -> tuple[InMemoryImages, ReIDSet, PairSet]:
    """Training images (labels ``0..train_identities-1``) and evaluation sets of the teaching world.

    Train identities come from the world's ``train`` split, evaluation identities from its ``test``
    split, so evaluation measures generalisation to unseen people. The evaluation renders serve a
    :func:`reid_split` and :func:`verification_pairs` (``pairs_per_fold`` matched and as many
    mismatched pairs per fold).
    """
    from unmask.synthetic import FaceWorld

    world = FaceWorld(world_config, device=device)
    train_ids = world.identity_split("train")[:train_identities].tolist()
    test_ids = world.identity_split("test")[:test_identities].tolist()
    if len(train_ids) < train_identities or len(test_ids) < test_identities:
        raise ConfigError(f"the world has {len(train_ids)} train and {len(test_ids)} test identities; asked for "
                          f"{train_identities} and {test_identities}. Raise world.n_identities.")
    test_views = test_images_per_identity or images_per_identity
    train = render_identities(world, train_ids, images_per_identity, labels=range(len(train_ids)))
    test = render_identities(world, test_ids, test_views, image_offset=EVAL_IMAGE_OFFSET,
                             labels=[i + 1 for i in test_ids])  # 0 = distractor
    pairs = verification_pairs(test, test_ids, test_views, seed=world_config.seed, n_folds=n_folds,
                               pairs_per_fold=pairs_per_fold)
    return train, reid_split(test), pairs


# ------------------------------------------------------------------------------ real data
class EncodedImages:
    """Encoded images (the insightface ``.bin`` lists) decoded on demand to ``size``."""

    def __init__(self, images: Sequence[bytes], size: int | tuple[int, int] | None = None) -> None:
        self.images = list(images)
        self.size = size
        self.labels = np.full(len(self.images), -1, np.int64)
        self.cameras = np.full(len(self.images), -1, np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, object]:
        from unmask.data.readers import decode_image

        return {"image": decode_image(self.images[index], self.size), "identity": -1, "camera": -1}


def market_data(root, size: int | tuple[int, int]) -> tuple[object, ReIDSet]:
    """Market-1501 training source (contiguous labels) and its query/gallery set (raw identities)."""
    from unmask.data.readers import ImageFileDataset, read_market1501

    market = read_market1501(root)
    return (ImageFileDataset(market.train, size, relabel=True),
            ReIDSet(ImageFileDataset(market.query, size), ImageFileDataset(market.gallery, size)))


def lfw_pair_set(pairs_file, image_root, size: int | tuple[int, int]) -> PairSet:
    """LFW ``pairs.txt`` pairs as a :class:`PairSet` (folds from the file)."""
    from unmask.data.readers import ImageFileDataset, ImageRecord, read_lfw_pairs

    pairs = read_lfw_pairs(pairs_file, image_root)
    return PairSet(ImageFileDataset([ImageRecord(p.first, -1) for p in pairs], size),
                   ImageFileDataset([ImageRecord(p.second, -1) for p in pairs], size),
                   np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]))


def bin_pair_set(path, size: int | tuple[int, int]) -> PairSet:
    """An insightface ``.bin`` verification set (LFW, CFP-FP, AgeDB-30) as a :class:`PairSet`."""
    from unmask.data.readers import read_verification_bin

    data = read_verification_bin(path)
    return PairSet(EncodedImages(data.images[0::2], size), EncodedImages(data.images[1::2], size),
                   data.issame, data.folds)
