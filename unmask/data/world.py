"""Datasets over the teaching world (:class:`unmask.synthetic.FaceWorld`), rendered on demand.

* :class:`UnmaskingDataset`: paired unmasking samples (``masked``, ``target``, ``mask``, ``identity``,
  ``attributes``, ``camera``).
* :class:`IdentityDataset`: images with contiguous identity labels for identity-embedding training.
* :class:`WorldViews`: any list of (identity, image id, camera) views as an image source; the parts of
  the re-id set and both sides of the verification pairs are ``WorldViews``.
* :class:`VerificationPairs`: a :class:`~unmask.data.identity.PairSet` of LFW-style pairs from
  :func:`unmask.data.identity.verification_protocol`.
* :class:`ReIDSplit`: a Market-1501-like train / query / gallery :class:`~unmask.data.identity.ReIDSet`
  with camera ids, distractors and junk.

Every item depends only on the world seed and its index, never on the batch it is rendered in, and
every batch keeps the contract of :mod:`unmask.data.batch`. Masks are drawn by
:func:`unmask.faces.masks.draw_mask` on the rendered face and its exact landmarks, exactly as on
aligned photos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from unmask.data.identity import PairSet, ReIDSet, verification_protocol
from unmask.errors import ConfigError
from unmask.faces.io import from_uint8, to_uint8
from unmask.synthetic import rng
from unmask.synthetic.config import WorldConfig
from unmask.synthetic.world import FaceWorld

_SPLIT_CODE = {"train": 0, "test": 1}
#: Overrides that turn a render into a Market-1501 distractor (no face in frame) or junk (a partial face).
DISTRACTOR_OVERRIDES = {"tx": 0.85, "ty": -0.3}
JUNK_OVERRIDES = {"scale": 2.4, "ty": 0.25}
#: Image-id offsets of each dataset, so no two datasets repeat a draw.
IDENTITY_IMAGE_OFFSET = 1 << 21
PAIR_IMAGE_OFFSET = 1 << 22


def apply_masks(images_u8: np.ndarray, landmarks: np.ndarray, mask_types: Sequence[str | Sequence[str]],
                seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw one mask per image with ``unmask.faces.masks.draw_mask``.

    Args:
        images_u8: ``(B, H, W, 3)`` uint8.
        landmarks: ``(B, 68, 2)`` pixel landmarks.
        mask_types: one type name, ``"random"`` or list of names (``draw_mask`` picks one) per image.
        seeds: ``(B,)`` integer seeds, one per image.

    Returns:
        masked ``(B, H, W, 3)`` uint8 and occlusion ``(B, H, W)`` float32, 1 = covered.
    """
    from unmask.faces.masks import draw_mask

    masked = np.empty_like(images_u8)
    occlusion = np.empty(images_u8.shape[:3], dtype=np.float32)
    for k in range(len(images_u8)):
        masked[k], occlusion[k] = draw_mask(images_u8[k], landmarks[k], mask_types[k], seed=int(seeds[k]))
    return masked, occlusion


def _seeds(seed: int, stream: str, *keys) -> np.ndarray:
    return (rng.hash_keys(seed, stream, *keys) >> np.uint64(2)).astype(np.int64)


def _mask_types(config: WorldConfig, split: str, keys: np.ndarray) -> list[str]:
    types = config.mask_types
    pick = rng.randint(config.seed, "mask_type", _SPLIT_CODE[split], keys, high=len(types))
    return [types[i] for i in pick]


def _camera(config: WorldConfig, identities: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    return rng.randint(config.seed, "camera_pick", identities, image_ids, high=config.n_cameras)


def _single(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v[0] for k, v in batch.items()}


def _check_indices(indices: Sequence[int], n: int) -> np.ndarray:
    idx = np.asarray([int(i) for i in indices], dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"index out of range for a dataset of {n} items.")
    return idx


class _WorldDataset(Dataset):
    def __init__(self, world_config: WorldConfig | None, split: str, device: str | torch.device) -> None:
        if split not in _SPLIT_CODE:
            raise ConfigError(f"split must be 'train' or 'test'; got {split!r}.")
        self.config = world_config or WorldConfig()
        self.split = split
        self.world = FaceWorld(self.config, device=device)
        self.identities = self.world.identity_split(split).numpy()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _single(self.batch([index]))


class UnmaskingDataset(_WorldDataset):
    """Paired unmasking samples of the teaching world.

    Item ``i`` shows identity ``identities[i % n]`` (``n`` identities in the split) in view
    ``i // n``, so one pass over ``n`` items sees every identity once.

    Args:
        world_config: the world; ``mask_types`` comes from it unless given here.
        split: ``"train"`` or ``"test"`` identities.
        length: number of items (default: 10 views of every identity).
        mask_types: mask type names or ``"random"`` (see ``unmask.faces.masks.MASK_TYPES``).
        device: where images are rendered.

    Batches: ``masked`` and ``target`` ``(B, 3, H, W)`` in [-1, 1] (both quantised to 8 bits, equal
    outside the mask), ``mask`` ``(B, 1, H, W)`` 1 = occluded, ``identity`` (world id), ``attributes``
    ``(B, A)``, ``camera``. :meth:`landmarks` gives the exact landmarks of items.
    """

    def __init__(self, world_config: WorldConfig | None = None, split: str = "train", length: int | None = None,
                 mask_types: str | Sequence[str] | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__(world_config, split, device)
        self.length = int(length) if length is not None else 10 * len(self.identities)
        if mask_types is not None:
            types = (mask_types,) if isinstance(mask_types, str) else tuple(mask_types)
            self.config = WorldConfig(**{**self.config.__dict__, "mask_types": types})

    def __len__(self) -> int:
        return self.length

    def locate(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(world identity, image id, camera) of each index."""
        idx = _check_indices(indices, len(self))
        n = len(self.identities)
        ids = self.identities[idx % n]
        image_ids = idx // n + (1 << 20) * _SPLIT_CODE[self.split]
        return ids, image_ids, _camera(self.config, ids, image_ids)

    def landmarks(self, indices: Sequence[int]) -> torch.Tensor:
        """Exact 68-point landmarks ``(B, 68, 2)`` in pixels of the items at ``indices`` (no pixels rendered)."""
        ids, image_ids, cameras = self.locate(indices)
        return self.world.landmarks(torch.from_numpy(ids), torch.from_numpy(image_ids), torch.from_numpy(cameras))

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """The items at ``indices`` rendered in one batched call (the fast path for training)."""
        ids, image_ids, cameras = self.locate(indices)
        out = self.world.render(torch.from_numpy(ids), torch.from_numpy(image_ids), torch.from_numpy(cameras))
        target = to_uint8(out.images)
        idx = np.asarray([int(i) for i in indices], dtype=np.int64)
        seeds = _seeds(self.config.seed, "mask", _SPLIT_CODE[self.split], idx)
        masked, occlusion = apply_masks(target, out.landmarks.cpu().numpy(),
                                        _mask_types(self.config, self.split, idx), seeds)
        dev = out.images.device
        return {
            "masked": from_uint8(masked, dev),
            "target": from_uint8(target, dev),
            "mask": torch.from_numpy(occlusion)[:, None].to(dev),
            "identity": torch.from_numpy(ids),
            "attributes": out.attributes,
            "camera": torch.from_numpy(cameras),
        }


class IdentityDataset(_WorldDataset):
    """Images with contiguous identity labels, for identity-embedding training.

    Item ``i`` is view ``i % images_per_identity`` of identity ``identities[i // images_per_identity]``.

    Args:
        world_config: the world.
        split: ``"train"`` or ``"test"``.
        images_per_identity: views per identity.
        n_identities: use only the first ``n_identities`` identities of the split (default all).
        mask_probability: share of items drawn with a mask (masked and unmasked faces of one person).
        device: where images are rendered.

    Batches: ``image`` ``(B, 3, H, W)``, ``identity`` (label ``0 .. N - 1``; the world id of label ``k``
    is ``identities[k]``), ``attributes``, ``camera``, ``mask`` ``(B, 1, H, W)`` (zeros when unmasked).
    ``labels`` (numpy ``(len,)``) serves a P x K sampler.
    """

    def __init__(self, world_config: WorldConfig | None = None, split: str = "train",
                 images_per_identity: int = 20, n_identities: int | None = None, mask_probability: float = 0.0,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(world_config, split, device)
        if n_identities is not None:
            if n_identities > len(self.identities):
                raise ConfigError(f"n_identities={n_identities} but the {split} split has {len(self.identities)}.")
            self.identities = self.identities[:n_identities]
        if images_per_identity < 1 or not 0.0 <= mask_probability <= 1.0:
            raise ConfigError("images_per_identity must be >= 1 and mask_probability in [0, 1].")
        self.images_per_identity = images_per_identity
        self.mask_probability = mask_probability
        self.labels = np.repeat(np.arange(len(self.identities)), images_per_identity)
        self.cameras = _camera(self.config, self.identities[self.labels],
                               np.arange(len(self.labels)) % images_per_identity + IDENTITY_IMAGE_OFFSET)

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = _check_indices(indices, len(self))
        labels = self.labels[idx]
        ids = self.identities[labels]
        image_ids = idx % self.images_per_identity + IDENTITY_IMAGE_OFFSET
        cameras = self.cameras[idx]
        out = self.world.render(torch.from_numpy(ids), torch.from_numpy(image_ids), torch.from_numpy(cameras))
        images = out.images
        mask = torch.zeros(len(idx), 1, *images.shape[2:], device=images.device)
        u = rng.uniform(self.config.seed, "identity_mask", _SPLIT_CODE[self.split], idx, n=1)[:, 0]
        chosen = np.nonzero(u < self.mask_probability)[0]
        if len(chosen):
            u8 = to_uint8(images[chosen])
            seeds = _seeds(self.config.seed, "identity_mask_draw", _SPLIT_CODE[self.split], idx[chosen])
            masked, occ = apply_masks(u8, out.landmarks[chosen].cpu().numpy(),
                                      _mask_types(self.config, self.split, idx[chosen]), seeds)
            images = images.clone()
            images[chosen] = from_uint8(masked, images.device)
            mask[chosen] = torch.from_numpy(occ)[:, None].to(images.device)
        return {"image": images, "identity": torch.from_numpy(labels), "attributes": out.attributes,
                "camera": torch.from_numpy(cameras), "mask": mask}


class WorldViews(Dataset):
    """Views of the teaching world as an image source, rendered on demand.

    Item ``i`` renders world identity ``world_ids[i]``, image id ``image_ids[i]`` and camera
    ``cameras[i]`` as a person, a distractor (no face in frame) or junk (a partial face), per ``kinds[i]``.
    Where ``mask_seeds`` is given, items get a mask of ``mask_types[i]`` drawn with seed ``mask_seeds[i]``.

    Args:
        world: the world.
        world_ids, image_ids, cameras: ``(N,)`` what is rendered.
        labels: ``(N,)`` identity labels served as ``identity`` (default: ``pids``).
        pids: ``(N,)`` Market person ids: world identity + 1, ``0`` distractor, ``-1`` junk (default:
            ``world_ids + 1`` for people).
        kinds: ``(N,)`` :attr:`PERSON`, :attr:`DISTRACTOR` or :attr:`JUNK` (default: all people).
        mask_seeds, mask_types: per-item mask draws (default: no masks).

    Batches: ``image``, ``identity``, ``camera``, ``mask`` (zeros where unmasked).
    """

    PERSON, DISTRACTOR, JUNK = 0, 1, 2
    _OVERRIDES = {PERSON: None, DISTRACTOR: DISTRACTOR_OVERRIDES, JUNK: JUNK_OVERRIDES}

    def __init__(self, world: FaceWorld, world_ids, image_ids, cameras, *, labels=None, pids=None, kinds=None,
                 mask_seeds=None, mask_types: Sequence[str] | None = None) -> None:
        self.world = world
        self.world_ids, self.image_ids = np.asarray(world_ids, np.int64), np.asarray(image_ids, np.int64)
        self.cameras = np.asarray(cameras, np.int64)
        n = len(self.world_ids)
        self.kinds = np.zeros(n, np.int64) if kinds is None else np.asarray(kinds, np.int64)
        if pids is None:
            pids = np.where(self.kinds == self.PERSON, self.world_ids + 1, np.where(self.kinds == self.JUNK, -1, 0))
        self.pids = np.asarray(pids, np.int64)
        self.labels = self.pids.copy() if labels is None else np.asarray(labels, np.int64)
        self.mask_seeds = None if mask_seeds is None else np.asarray(mask_seeds, np.int64)
        self.mask_types = None if mask_types is None else list(mask_types)
        sizes = {len(x) for x in (self.image_ids, self.cameras, self.kinds, self.pids, self.labels)}
        if sizes != {n} or (self.mask_seeds is not None and (len(self.mask_seeds) != n or len(self.mask_types) != n)):
            raise ConfigError("WorldViews needs one world id, image id, camera, kind, label and mask draw per item.")

    def __len__(self) -> int:
        return len(self.world_ids)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = _check_indices(indices, len(self))
        size = self.world.config.size
        images = torch.zeros(len(idx), 3, size, size, device=self.world.device)
        landmarks = torch.zeros(len(idx), 68, 2, device=self.world.device)
        for kind, overrides in self._OVERRIDES.items():
            sel = np.nonzero(self.kinds[idx] == kind)[0]
            if len(sel):
                rows = idx[sel]
                out = self.world.render(torch.from_numpy(self.world_ids[rows]), torch.from_numpy(self.image_ids[rows]),
                                        torch.from_numpy(self.cameras[rows]), overrides=overrides)
                where = torch.from_numpy(sel).to(images.device)
                images[where] = out.images
                landmarks[where] = out.landmarks.to(landmarks.device)
        mask = torch.zeros(len(idx), 1, size, size, device=images.device)
        if self.mask_seeds is not None and len(idx):
            masked, occ = apply_masks(to_uint8(images), landmarks.cpu().numpy(),
                                      [self.mask_types[i] for i in idx.tolist()], self.mask_seeds[idx])
            images = from_uint8(masked, images.device)
            mask = torch.from_numpy(occ)[:, None].to(images.device)
        return {"image": images, "identity": torch.from_numpy(self.labels[idx]),
                "camera": torch.from_numpy(self.cameras[idx]), "mask": mask}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _single(self.batch([index]))


def pair_views(world: FaceWorld, identities: np.ndarray, views: np.ndarray, *, mask_keys: np.ndarray | None = None,
               ) -> WorldViews:
    """Verification views ``(identity, view)`` as :class:`WorldViews`: image id ``view + PAIR_IMAGE_OFFSET``,
    a camera picked by hash; with ``mask_keys``, masked with draws keyed by them."""
    identities, views = np.asarray(identities, np.int64), np.asarray(views, np.int64)
    image_ids = views + PAIR_IMAGE_OFFSET
    cameras = _camera(world.config, identities, image_ids)
    seeds = types = None
    if mask_keys is not None:
        mask_keys = np.asarray(mask_keys, np.int64)
        seeds = _seeds(world.config.seed, "pair_mask", mask_keys)
        types = _mask_types(world.config, "test", mask_keys)
    return WorldViews(world, identities, image_ids, cameras, mask_seeds=seeds, mask_types=types)


class VerificationPairs(PairSet):
    """LFW-style verification pairs over the world's test identities, rendered on demand.

    The pairs are those of :func:`unmask.data.identity.verification_protocol`; ``first`` and
    ``second`` are :class:`WorldViews` whose ``identity`` is the Market person id (world id + 1).

    Args:
        world_config: the world.
        n_folds: number of folds (LFW: 10).
        pairs_per_fold: matched pairs per fold, and as many mismatched (LFW: 300).
        masked: ``"none"``, ``"first"`` (mask ``first`` only: masked probe against an unmasked
            reference) or ``"both"``.
        device: where images are rendered.

    Attributes:
        pairs: ``(N, 4)`` int64 ``[identity_a, view_a, identity_b, view_b]``; ``issame`` ``(N,)`` bool;
        folds: ``(N,)`` int64; n_folds; world.
    """

    MASKED = ("none", "first", "both")

    def __init__(self, world_config: WorldConfig | None = None, n_folds: int = 10, pairs_per_fold: int = 300,
                 masked: str = "none", device: str | torch.device = "cpu") -> None:
        if masked not in self.MASKED:
            raise ConfigError(f"masked must be one of {self.MASKED}; got {masked!r}.")
        config = world_config or WorldConfig()
        world = FaceWorld(config, device=device)
        pairs, same, folds = verification_protocol(world.identity_split("test").numpy(), seed=config.seed,
                                                   n_folds=n_folds, pairs_per_fold=pairs_per_fold)
        keys = np.arange(len(pairs), dtype=np.int64)
        first = pair_views(world, pairs[:, 0], pairs[:, 1], mask_keys=2 * keys if masked != "none" else None)
        second = pair_views(world, pairs[:, 2], pairs[:, 3], mask_keys=2 * keys + 1 if masked == "both" else None)
        super().__init__(first, second, same, folds)
        self.pairs, self.n_folds, self.world, self.masked = pairs, n_folds, world, masked


class ReIDSplit(ReIDSet):
    """A Market-1501-like :class:`~unmask.data.identity.ReIDSet` of the teaching world, train part included.

    Train people come from the train identities (contiguous ``labels``); query and gallery people
    from the test identities (``labels`` = person ids, world id + 1). Each person is seen by 2 or more
    cameras, with 2-3 images per camera. For test people the first image per camera is a query and the
    rest go to the gallery, so every query has a match in another camera. The gallery also holds
    distractors (pid 0) and junk (pid -1), as Market-1501 does. Every part is a :class:`WorldViews`.

    Args:
        world_config: the world.
        n_train_identities, n_test_identities: people per side (default: all of the split, at most 751
            and 750 like Market-1501).
        n_distractors, n_junk: gallery images of each kind (default: one per 10 test people).
        device: where images are rendered.
    """

    def __init__(self, world_config: WorldConfig | None = None, n_train_identities: int | None = None,
                 n_test_identities: int | None = None, n_distractors: int | None = None, n_junk: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        config = world_config or WorldConfig()
        if config.n_cameras < 2:
            raise ConfigError("re-identification needs n_cameras >= 2.")
        world = FaceWorld(config, device=device)
        train_ids = world.identity_split("train").numpy()[: n_train_identities or 751]
        test_ids = world.identity_split("test").numpy()[: n_test_identities or 750]
        train = _people(world, train_ids, query=False)[1]
        query, gallery = _people(world, test_ids, query=True)
        train = WorldViews(world, train.world_ids, train.image_ids, train.cameras,
                           labels=np.unique(train.pids, return_inverse=True)[1])
        n_d = len(test_ids) // 10 if n_distractors is None else n_distractors
        n_j = len(test_ids) // 10 if n_junk is None else n_junk
        extra = np.arange(n_d + n_j)
        ids = test_ids[extra % len(test_ids)]
        image_ids = 5000 + extra
        cams = rng.randint(config.seed, "reid_extra_cam", extra, high=config.n_cameras)
        kinds = np.where(extra < n_d, WorldViews.DISTRACTOR, WorldViews.JUNK)
        gallery = WorldViews(world, np.concatenate([gallery.world_ids, ids]),
                             np.concatenate([gallery.image_ids, image_ids]), np.concatenate([gallery.cameras, cams]),
                             kinds=np.concatenate([gallery.kinds, kinds]))
        super().__init__(query, gallery, train)
        self.config, self.world = config, world


def _people(world: FaceWorld, identities: np.ndarray, query: bool) -> tuple[WorldViews | None, WorldViews]:
    """(query, gallery) views of ``identities`` (query ``None`` unless ``query``): 2-3 images per seen camera."""
    seed, n_cam = world.config.seed, world.config.n_cameras
    cols: dict[str, tuple[list[int], list[int]]] = {k: ([], []) for k in ("cam", "wid", "img")}
    for wid in identities.tolist():
        seen = rng.uniform(seed, "reid_cams", wid, n=n_cam)[0] < 0.6
        if seen.sum() < 2:
            seen[np.argsort(rng.uniform(seed, "reid_cams_fix", wid, n=n_cam)[0])[:2]] = True
        counts = 2 + rng.randint(seed, "reid_count", wid, np.arange(n_cam), high=2)
        image_id = 0
        for cam in np.nonzero(seen)[0].tolist():
            for j in range(int(counts[cam])):
                side = 0 if (query and j == 0) else 1
                cols["cam"][side].append(cam)
                cols["wid"][side].append(wid)
                cols["img"][side].append(10000 + image_id)
                image_id += 1
    parts = [WorldViews(world, cols["wid"][side], cols["img"][side], cols["cam"][side]) for side in (0, 1)]
    return (parts[0] if query else None), parts[1]
