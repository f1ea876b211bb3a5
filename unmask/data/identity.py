"""Identity data for training and evaluating embeddings: one small interface over every source.

An *image source* is any object with ``__len__``, ``labels`` ``(N,)`` and
``batch(indices) -> {"image": (B, 3, H, W) in [-1, 1], "identity": (B,), "camera": (B,), "attributes": (B, A)}``.
:class:`InMemoryImages` (teaching-world renders, kept as uint8) and
:class:`unmask.data.readers.ImageFileDataset` (files on disk) both are. Evaluation data are a
:class:`ReIDSet` (query and gallery sources with identities and cameras) and a :class:`PairSet`
(two aligned sources, same/different flags and protocol folds).

The teaching-world builder :func:`world_identity_data` renders train identities for training and
held-out identities for evaluation: a Market-style query/gallery split (several cameras per
identity) and LFW-style verification pairs in identity-disjoint folds, all fixed by the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from unmask.errors import ConfigError

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
            images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
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
        return {"image": self.images.index_select(0, index).float() / 127.5 - 1.0,
                "identity": torch.from_numpy(self.labels[index.numpy()]),
                "camera": torch.from_numpy(self.cameras[index.numpy()]),
                "attributes": self.attributes.index_select(0, index)}

    def subset(self, indices: Sequence[int]) -> InMemoryImages:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return InMemoryImages(self.images[index], self.labels[index.numpy()], self.cameras[index.numpy()],
                              self.attributes[index], self.attribute_names)


def load_batch(source, indices: Sequence[int], num_workers: int = 4) -> dict[str, torch.Tensor]:
    """A batch from any image source: its own ``batch`` if it has one, else its items, stacked."""
    if hasattr(source, "batch"):
        return source.batch(indices)
    indices = [int(i) for i in indices]
    if num_workers > 1 and len(indices) > 1:
        with ThreadPoolExecutor(min(num_workers, len(indices))) as pool:
            items = list(pool.map(source.__getitem__, indices))
    else:
        items = [source[i] for i in indices]
    return {"image": torch.stack([it["image"] for it in items]),
            "identity": torch.as_tensor([int(it["identity"]) for it in items]),
            "camera": torch.as_tensor([int(it.get("camera", -1)) for it in items]),
            "attributes": torch.stack([torch.as_tensor(it.get("attributes", torch.zeros(0))).float()
                                       for it in items])}


@dataclass
class ReIDSet:
    """A query and a gallery source; ``labels`` are raw identities (``-1`` junk, ``0`` distractor)."""

    query: object
    gallery: object


@dataclass
class PairSet:
    """Verification pairs: ``first[i]`` and ``second[i]`` show the same person iff ``issame[i]``."""

    first: object
    second: object
    issame: np.ndarray
    folds: np.ndarray


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
        world: a :class:`unmask.synthetic.render.FaceWorld`.
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
        images.append(((out.images.cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
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


def verification_pairs(images: InMemoryImages, n_folds: int = 10, pairs_per_fold: int = 60, *,
                       seed: int = 0) -> PairSet:
    """LFW-style pairs: ``n_folds`` identity-disjoint folds, each half matched and half mismatched pairs."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.unique(images.labels))
    if len(ids) < 2 * n_folds:
        raise ConfigError(f"{len(ids)} evaluation identities cannot fill {n_folds} identity-disjoint folds; "
                          f"use at least {2 * n_folds}.")
    first, second, same, folds = [], [], [], []
    for fold, fold_ids in enumerate(np.array_split(ids, n_folds)):
        rows = {pid: np.nonzero(images.labels == pid)[0] for pid in fold_ids}
        n_pos = pairs_per_fold // 2
        for k in range(pairs_per_fold):
            if k < n_pos:
                pid = fold_ids[rng.integers(len(fold_ids))]
                a, b = rng.choice(rows[pid], size=2, replace=False)
            else:
                p1, p2 = rng.choice(fold_ids, size=2, replace=False)
                a, b = rng.choice(rows[p1]), rng.choice(rows[p2])
            first.append(int(a))
            second.append(int(b))
            same.append(k < n_pos)
            folds.append(fold)
    return PairSet(images.subset(first), images.subset(second), np.array(same), np.array(folds))


def world_identity_data(world_config, *, train_identities: int, test_identities: int, images_per_identity: int,
                        test_images_per_identity: int | None = None, device: str | torch.device = "cpu",
                        n_folds: int = 10, pairs_per_fold: int = 60,
                        ) -> tuple[InMemoryImages, ReIDSet, PairSet]:
    """Training images (labels ``0..train_identities-1``) and evaluation sets of the teaching world.

    Train identities come from the world's ``train`` split, evaluation identities from its ``test``
    split, so evaluation measures generalisation to unseen people.
    """
    from unmask.synthetic.render import FaceWorld

    world = FaceWorld(world_config, device=device)
    train_ids = world.identity_split("train")[:train_identities].tolist()
    test_ids = world.identity_split("test")[:test_identities].tolist()
    if len(train_ids) < train_identities or len(test_ids) < test_identities:
        raise ConfigError(f"the world has {len(train_ids)} train and {len(test_ids)} test identities; asked for "
                          f"{train_identities} and {test_identities}. Raise world.n_identities.")
    train = render_identities(world, train_ids, images_per_identity, labels=range(len(train_ids)))
    test = render_identities(world, test_ids, test_images_per_identity or images_per_identity,
                             image_offset=EVAL_IMAGE_OFFSET, labels=[i + 1 for i in test_ids])  # 0 = distractor
    return train, reid_split(test), verification_pairs(test, n_folds, pairs_per_fold, seed=world_config.seed)


# ------------------------------------------------------------------------------ real data
class EncodedImages:
    """Encoded images (the insightface ``.bin`` lists) decoded on demand to ``size``."""

    def __init__(self, images: Sequence[bytes], size: int | tuple[int, int] | None = None) -> None:
        self.images = list(images)
        self.size = size
        self.labels = np.full(len(self.images), -1, np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, object]:
        from unmask.data.readers import decode_image

        return {"image": decode_image(self.images[index], self.size), "identity": -1}


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
