"""Torch datasets over the teaching world, generated on the fly and deterministic by seed.

* ``UnmaskingDataset``: paired unmasking samples (masked, target, mask, identity, attributes, camera).
* ``IdentityDataset``: images with contiguous identity labels for identity-embedding training.
* ``VerificationPairs``: LFW-style pairs, 10 folds, balanced, disjoint identities per fold.
* ``ReIDSplit``: Market-1501-like train / query / gallery sets with camera ids, distractors and junk.

Every item depends only on the world seed and its index, never on the batch it is rendered in.
Masks are drawn by ``unmask.faces.masks.draw_mask`` on the rendered face and its exact landmarks,
exactly as on aligned photos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from unmask.errors import ConfigError
from unmask.synthetic import rng
from unmask.synthetic.config import WorldConfig
from unmask.synthetic.render import FaceWorld

_SPLIT_CODE = {"train": 0, "test": 1}
#: Overrides that turn a render into a Market-1501 distractor (no face in frame) or junk (a partial face).
DISTRACTOR_OVERRIDES = {"tx": 0.85, "ty": -0.3}
JUNK_OVERRIDES = {"scale": 2.4, "ty": 0.25}


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, H, W, 3)`` uint8 (the quantisation of a saved photo)."""
    u8 = ((images.detach().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(u8.permute(0, 2, 3, 1).numpy())  # C order: dlib and cv2 read raw buffers


def from_uint8(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 -> ``(B, 3, H, W)`` float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def apply_masks(images_u8: np.ndarray, landmarks: np.ndarray, mask_types: Sequence[str],
                seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw one mask per image with ``unmask.faces.masks.draw_mask``.

    Args:
        images_u8: ``(B, H, W, 3)`` uint8.
        landmarks: ``(B, 68, 2)`` pixel landmarks.
        mask_types: one type name (or ``"random"``) per image.
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


def _single(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v[0] for k, v in batch.items()}


class _WorldDataset(Dataset):
    def __init__(self, world_config: WorldConfig | None, split: str, device: str | torch.device) -> None:
        if split not in _SPLIT_CODE:
            raise ConfigError(f"split must be 'train' or 'test'; got {split!r}.")
        self.config = world_config or WorldConfig()
        self.split = split
        self.world = FaceWorld(self.config, device=device)
        self.identities = self.world.identity_split(split).numpy()

    def _camera(self, identities: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
        return rng.randint(self.config.seed, "camera_pick", identities, image_ids, high=self.config.n_cameras)

    def _mask_types(self, keys: np.ndarray) -> list[str]:
        types = self.config.mask_types
        pick = rng.randint(self.config.seed, "mask_type", _SPLIT_CODE[self.split], keys, high=len(types))
        return [types[i] for i in pick]

    def _check(self, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray([int(i) for i in indices], dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} items.")
        return idx


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

    Items are dicts: ``masked`` and ``target`` ``(3, H, W)`` in [-1, 1] (both quantised to 8 bits,
    equal outside the mask), ``mask`` ``(1, H, W)`` 1 = occluded, ``identity`` (world id, long),
    ``attributes`` ``(A,)``, ``camera`` (long), ``landmarks`` ``(68, 2)``.
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
        idx = self._check(indices)
        n = len(self.identities)
        ids = self.identities[idx % n]
        image_ids = idx // n + (1 << 20) * _SPLIT_CODE[self.split]
        return ids, image_ids, self._camera(ids, image_ids)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """The items at ``indices`` rendered in one batched call (the fast path for training)."""
        ids, image_ids, cameras = self.locate(indices)
        out = self.world.render(torch.from_numpy(ids), torch.from_numpy(image_ids), torch.from_numpy(cameras))
        target = to_uint8(out.images)
        idx = np.asarray([int(i) for i in indices], dtype=np.int64)
        seeds = _seeds(self.config.seed, "mask", _SPLIT_CODE[self.split], idx)
        masked, occlusion = apply_masks(target, out.landmarks.cpu().numpy(), self._mask_types(idx), seeds)
        dev = out.images.device
        return {
            "masked": from_uint8(masked, dev),
            "target": from_uint8(target, dev),
            "mask": torch.from_numpy(occlusion)[:, None].to(dev),
            "identity": torch.from_numpy(ids),
            "attributes": out.attributes,
            "camera": torch.from_numpy(cameras),
            "landmarks": out.landmarks,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _single(self.batch([index]))


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

    Items: ``image`` ``(3, H, W)``, ``identity`` (label ``0 .. N - 1``), ``world_identity``,
    ``attributes``, ``camera``, ``mask`` ``(1, H, W)`` (zeros when unmasked).
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

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = self._check(indices)
        labels = self.labels[idx]
        ids = self.identities[labels]
        image_ids = idx % self.images_per_identity + (1 << 21)
        cameras = self._camera(ids, image_ids)
        out = self.world.render(torch.from_numpy(ids), torch.from_numpy(image_ids), torch.from_numpy(cameras))
        images = out.images
        mask = torch.zeros(len(idx), 1, *images.shape[2:], device=images.device)
        u = rng.uniform(self.config.seed, "identity_mask", _SPLIT_CODE[self.split], idx, n=1)[:, 0]
        chosen = np.nonzero(u < self.mask_probability)[0]
        if len(chosen):
            u8 = to_uint8(images[chosen])
            seeds = _seeds(self.config.seed, "identity_mask_draw", _SPLIT_CODE[self.split], idx[chosen])
            masked, occ = apply_masks(u8, out.landmarks[chosen].cpu().numpy(), self._mask_types(idx[chosen]), seeds)
            images = images.clone()
            images[chosen] = from_uint8(masked, images.device)
            mask[chosen] = torch.from_numpy(occ)[:, None].to(images.device)
        return {"image": images, "identity": torch.from_numpy(labels), "world_identity": torch.from_numpy(ids),
                "attributes": out.attributes, "camera": torch.from_numpy(cameras), "mask": mask}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _single(self.batch([index]))


class VerificationPairs(_WorldDataset):
    """LFW-style verification pairs over test identities.

    ``n_folds`` folds with disjoint identities; each fold has ``pairs_per_fold`` matched pairs (two
    views of one identity) followed by ``pairs_per_fold`` mismatched pairs (two identities of that fold),
    the order of LFW's ``pairs.txt``.

    Args:
        world_config: the world.
        n_folds: number of folds (LFW: 10).
        pairs_per_fold: matched pairs per fold, and as many mismatched (LFW: 300).
        masked: ``"none"``, ``"first"`` (mask ``img_a`` only: masked probe against an unmasked
            reference) or ``"both"``.
        device: where images are rendered.

    Attributes:
        pairs: ``(N, 4)`` int64 ``[identity_a, image_a, identity_b, image_b]``.
        same: ``(N,)`` bool. folds: ``(N,)`` int64.

    Items: ``img_a``, ``img_b`` ``(3, H, W)``, ``same`` (bool), ``fold`` (long), ``identity_a``,
    ``identity_b``, ``mask_a``, ``mask_b`` ``(1, H, W)``.
    """

    MASKED = ("none", "first", "both")

    def __init__(self, world_config: WorldConfig | None = None, n_folds: int = 10, pairs_per_fold: int = 300,
                 masked: str = "none", device: str | torch.device = "cpu") -> None:
        super().__init__(world_config, "test", device)
        if masked not in self.MASKED:
            raise ConfigError(f"masked must be one of {self.MASKED}; got {masked!r}.")
        if len(self.identities) < 2 * n_folds:
            raise ConfigError(f"{len(self.identities)} test identities cannot fill {n_folds} folds; raise "
                              "n_identities or test_fraction.")
        self.masked = masked
        self.n_folds = n_folds
        seed = self.config.seed
        order = np.argsort(rng.hash_keys(seed, "fold_order", self.identities), kind="stable")
        self.fold_identities = [np.sort(self.identities[order[f::n_folds]]) for f in range(n_folds)]
        rows, same, folds = [], [], []
        for f, ids in enumerate(self.fold_identities):
            m = len(ids)
            j = np.arange(pairs_per_fold)
            a = ids[j % m]
            rounds = j // m
            rows.append(np.stack([a, 2 * rounds, a, 2 * rounds + 1], 1))
            step = 1 + rng.randint(seed, "mismatch", f, j, high=m - 1)
            b = ids[(j % m + step) % m]
            img = rng.randint(seed, "mismatch_view", f, j, high=4)
            rows.append(np.stack([a, img, b, (img + 1) % 4], 1))
            same += [True] * pairs_per_fold + [False] * pairs_per_fold
            folds += [f] * (2 * pairs_per_fold)
        self.pairs = np.concatenate(rows).astype(np.int64)
        self.same = np.asarray(same)
        self.folds = np.asarray(folds, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pairs)

    def render_views(self, identities: np.ndarray, image_ids: np.ndarray, mask: bool,
                     keys: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Render views ``(identity, image id)``; with ``mask``, draw masks seeded by ``keys``."""
        image_ids = image_ids + (1 << 22)
        cams = self._camera(identities, image_ids)
        out = self.world.render(torch.from_numpy(identities), torch.from_numpy(image_ids), torch.from_numpy(cams))
        occ = torch.zeros(len(identities), 1, *out.images.shape[2:], device=out.images.device)
        if not mask:
            return out.images, occ
        seeds = _seeds(self.config.seed, "pair_mask", keys)
        masked, o = apply_masks(to_uint8(out.images), out.landmarks.cpu().numpy(), self._mask_types(keys), seeds)
        return from_uint8(masked, out.images.device), torch.from_numpy(o)[:, None].to(out.images.device)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = self._check(indices)
        rows = self.pairs[idx]
        img_a, mask_a = self.render_views(rows[:, 0], rows[:, 1], self.masked != "none", 2 * idx)
        img_b, mask_b = self.render_views(rows[:, 2], rows[:, 3], self.masked == "both", 2 * idx + 1)
        return {"img_a": img_a, "img_b": img_b, "same": torch.from_numpy(self.same[idx]),
                "fold": torch.from_numpy(self.folds[idx]), "identity_a": torch.from_numpy(rows[:, 0]),
                "identity_b": torch.from_numpy(rows[:, 2]), "mask_a": mask_a, "mask_b": mask_b}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _single(self.batch([index]))


class ReIDSet(Dataset):
    """One Market-1501-like set (train, query or gallery).

    Attributes:
        pids: ``(N,)`` Market person ids: world identity + 1 for people, 0 for distractors, -1 for junk.
        cameras: ``(N,)`` camera ids (0-based; Market file names add 1).
        world_ids, image_ids: ``(N,)`` what is rendered.
        kinds: ``(N,)`` 0 person, 1 distractor (no face in frame), 2 junk (a partial face).
        labels: ``(N,)`` contiguous labels of the people (``-1`` for distractors and junk).
    """

    PERSON, DISTRACTOR, JUNK = 0, 1, 2

    def __init__(self, world: FaceWorld, pids, cameras, world_ids, image_ids, kinds) -> None:
        self.world = world
        self.pids, self.cameras = np.asarray(pids, np.int64), np.asarray(cameras, np.int64)
        self.world_ids, self.image_ids = np.asarray(world_ids, np.int64), np.asarray(image_ids, np.int64)
        self.kinds = np.asarray(kinds, np.int64)
        people = np.unique(self.pids[self.pids > 0])
        lookup = {p: i for i, p in enumerate(people.tolist())}
        self.labels = np.asarray([lookup.get(p, -1) for p in self.pids.tolist()], np.int64)

    def __len__(self) -> int:
        return len(self.pids)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray([int(i) for i in indices], dtype=np.int64)
        size = self.world.config.size
        images = torch.zeros(len(idx), 3, size, size, device=self.world.device)
        for kind, overrides in ((self.PERSON, None), (self.DISTRACTOR, DISTRACTOR_OVERRIDES),
                                (self.JUNK, JUNK_OVERRIDES)):
            sel = np.nonzero(self.kinds[idx] == kind)[0]
            if len(sel):
                rows = idx[sel]
                out = self.world.render(torch.from_numpy(self.world_ids[rows]), torch.from_numpy(self.image_ids[rows]),
                                        torch.from_numpy(self.cameras[rows]), overrides=overrides)
                images[torch.from_numpy(sel).to(images.device)] = out.images
        return {"image": images, "identity": torch.from_numpy(self.pids[idx]),
                "camera": torch.from_numpy(self.cameras[idx]), "label": torch.from_numpy(self.labels[idx])}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _single(self.batch([index]))


class ReIDSplit:
    """Market-1501-like re-identification split of the teaching world.

    Train people come from the train identities; query and gallery people from the test identities.
    Each person is seen by 2 or more cameras, with 2-3 images per camera. For test people the first
    image per camera is a query and the rest go to the gallery, so every query has a match in another
    camera. The gallery also holds distractors (pid 0) and junk (pid -1), as Market-1501 does.

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
        self.config = world_config or WorldConfig()
        if self.config.n_cameras < 2:
            raise ConfigError("re-identification needs n_cameras >= 2.")
        self.world = FaceWorld(self.config, device=device)
        train_ids = self.world.identity_split("train").numpy()[: n_train_identities or 751]
        test_ids = self.world.identity_split("test").numpy()[: n_test_identities or 750]
        self.train = self._people(train_ids, query=False)[0]
        self.query, gallery = self._people(test_ids, query=True)
        n_d = len(test_ids) // 10 if n_distractors is None else n_distractors
        n_j = len(test_ids) // 10 if n_junk is None else n_junk
        extra = np.arange(n_d + n_j)
        ids = test_ids[extra % len(test_ids)]
        image_ids = 5000 + extra
        cams = rng.randint(self.config.seed, "reid_extra_cam", extra, high=self.config.n_cameras)
        kinds = np.where(extra < n_d, ReIDSet.DISTRACTOR, ReIDSet.JUNK)
        self.gallery = ReIDSet(
            self.world,
            np.concatenate([gallery.pids, np.where(kinds == ReIDSet.DISTRACTOR, 0, -1)]),
            np.concatenate([gallery.cameras, cams]), np.concatenate([gallery.world_ids, ids]),
            np.concatenate([gallery.image_ids, image_ids]), np.concatenate([gallery.kinds, kinds]))

    def _people(self, identities: np.ndarray, query: bool) -> tuple[ReIDSet, ReIDSet]:
        seed, n_cam = self.config.seed, self.config.n_cameras
        cols = {k: ([], []) for k in ("pid", "cam", "wid", "img")}
        for wid in identities.tolist():
            seen = rng.uniform(seed, "reid_cams", wid, n=n_cam)[0] < 0.6
            if seen.sum() < 2:
                seen[np.argsort(rng.uniform(seed, "reid_cams_fix", wid, n=n_cam)[0])[:2]] = True
            counts = 2 + rng.randint(seed, "reid_count", wid, np.arange(n_cam), high=2)
            image_id = 0
            for cam in np.nonzero(seen)[0].tolist():
                for j in range(int(counts[cam])):
                    side = 0 if (query and j == 0) else 1
                    cols["pid"][side].append(wid + 1)
                    cols["cam"][side].append(cam)
                    cols["wid"][side].append(wid)
                    cols["img"][side].append(10000 + image_id)
                    image_id += 1
        sets = []
        for side in (0, 1) if query else (1,):
            n = len(cols["pid"][side])
            sets.append(ReIDSet(self.world, cols["pid"][side], cols["cam"][side], cols["wid"][side],
                                cols["img"][side], np.zeros(n, np.int64)))
        return (sets[0], sets[1]) if query else (sets[0], sets[0])
