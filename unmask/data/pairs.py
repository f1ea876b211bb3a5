"""Paired training data for the trainers (the ``data:`` section), as pure functions of item indices.

A source maps item indices (drawn by the task from ``(seed, step)``) to a batch, so a resumed
run needs no iterator replay. Two kinds:

* :class:`WorldPairs`: the offline teaching world (:class:`unmask.data.world.UnmaskingDataset`);
  ``pool_size`` renders a fixed pool once and samples from it (fast on a GPU box whose CPU would
  otherwise bottleneck the renderer).
* :class:`FolderPairs`: a folder of aligned faces (PNG/JPG) plus ``landmarks.json`` (file name ->
  68x2 crop coordinates, as ``python -m unmask.faces align`` writes); masks are drawn on the fly
  with :func:`unmask.faces.masks.draw_mask`, a new mask every time an image is drawn.
* :class:`unmask.data.generated.GeneratedPairs` (``source: generated``): a frozen generator's own
  samples G(z) with masks drawn on their landmarks, and the true ``w_plus`` of each.

Every batch keeps the contract of :mod:`unmask.data.batch`: ``masked`` and ``target``
``(B, 3, H, W)`` in ``[-1, 1]``, ``mask`` ``(B, 1, H, W)`` (1 = occluded), and for the world also
``identity`` ``(B,)``. :class:`WorldFaces` serves the GAN's clean faces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unmask.data.source import MASK_STREAM, PairSource, mask_seed  # noqa: F401 - re-exported here
from unmask.errors import ConfigError
from unmask.faces.io import IMAGE_SUFFIXES, dequantize, from_uint8, load_image, quantize, resize_image
from unmask.synthetic.config import WorldConfig

DATA_SOURCES = ("world", "folder", "generated")
#: Which landmark finder ``source: generated`` uses (see :mod:`unmask.data.generated`).
LANDMARK_SOURCES = ("auto", "world", "dlib")
LANDMARKS_FILE = "landmarks.json"
#: Items rendered per call while filling a pool (bounds peak memory of the renderer).
POOL_CHUNK = 256
#: Faces rendered per call while filling a WorldFaces pool (larger calls amortise the renderer's overhead).
POOL_RENDER_CHUNK = 512
@dataclass(frozen=True)
class DataConfig:
    """Where paired (masked, target, mask) data come from (the ``data:`` section).

    Attributes:
        source: ``world`` (synthetic teaching world), ``folder`` (aligned real faces) or ``generated``
            (a frozen generator's samples, :mod:`unmask.data.generated`).
        world: the teaching world (``source: world``); its ``size`` must equal the model's.
        split: world split for training (``train`` identities).
        length: distinct training items of the world (indices ``0 .. length - 1``).
        val_split: world split for validation (held-out identities).
        val_length: validation items (fixed, the same at every validation).
        pool_size: world only: render this many training items once and sample from them (0: render
            every batch afresh).
        render_device: world and generated: where faces are rendered, ``auto`` (the training device) or a
            device name; masks are always drawn on the CPU.
        folder: aligned training faces with ``landmarks.json`` (``source: folder``).
        val_folder: aligned validation faces; when absent, the last ``val_length`` files of ``folder``
            are held out.
        mask_type: folder and generated: ``random``, a name in ``unmask.faces.masks.MASK_TYPES`` or
            ``PHOTO_MASK_TYPES`` (photos of real masks; needs insightface), or a list of those, one picked per
            face (``[random, photo_blue, photo_white]``: a third of the faces get a real mask photo each).
        num_workers: threads decoding images and drawing masks (folder source).
        generator: generated only: folder or Hub repo of the frozen StyleGAN2 that draws the faces
            (usually the task's own ``model.generator``).
        truncation: generated only: ``psi`` of the sampled latents (1 = none).
        landmarks: generated only: ``auto`` (the world's exact landmarks for a teaching generator, dlib's
            otherwise), ``world`` or ``dlib``. The world's are those of ``data.world``.
        z_seed: generated only: seed of the z draws (training and validation streams are disjoint).
        max_tries: generated only: draws per item while dlib finds no face (then an error).
        images: generated only: ``generator`` (targets are G(z)) or ``world`` (a teaching generator:
            targets are the world's exact renders of the same z, with the same true W+).
        landmark_upsample: generated with dlib landmarks: times dlib doubles a sample before its HOG detector
            (``None``: dlib's automatic search, up to 2048 px, slow on faceless samples; a 64 px DCGAN: 1).
    """

    source: str = "world"
    world: WorldConfig = field(default_factory=WorldConfig)
    split: str = "train"
    length: int = 100_000
    val_split: str = "test"
    val_length: int = 64
    pool_size: int = 0
    render_device: str = "auto"
    folder: str | None = None
    val_folder: str | None = None
    mask_type: str | tuple[str, ...] = "random"
    num_workers: int = 4
    generator: str | None = None
    truncation: float = 1.0
    landmarks: str = "auto"
    z_seed: int = 0
    max_tries: int = 8
    images: str = "generator"
    landmark_upsample: int | None = None

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ConfigError(f"data.source must be one of {DATA_SOURCES}, got {self.source!r}.")
        if self.source == "folder" and not self.folder:
            raise ConfigError("data.source is 'folder' but data.folder is not set: give the folder of aligned "
                              "faces written by `python -m unmask.faces align`.")
        if self.source == "generated" and not self.generator:
            raise ConfigError("data.source is 'generated' but data.generator is not set: give the folder (or Hub "
                              "repo) of the frozen StyleGAN2 that draws the training faces.")
        if self.images not in ("generator", "world"):
            raise ConfigError(f"data.images must be generator (targets G(z)) or world (the teaching world's render "
                              f"of each z), got {self.images!r}.")
        if self.landmarks not in LANDMARK_SOURCES:
            raise ConfigError(f"data.landmarks must be one of {LANDMARK_SOURCES}, got {self.landmarks!r}.")
        if not 0.0 < self.truncation <= 1.0 or self.max_tries < 1:
            raise ConfigError(f"data.truncation must be in (0, 1] and data.max_tries >= 1, got {self.truncation} "
                              f"and {self.max_tries}.")
        if self.length < 1 or self.val_length < 1:
            raise ConfigError("data.length and data.val_length must be >= 1.")
        if self.pool_size < 0:
            raise ConfigError("data.pool_size must be >= 0 (0 renders every batch afresh).")


class WorldPairs(PairSource):
    """Items of :class:`unmask.synthetic.UnmaskingDataset` (masks belong to the item)."""

    def __init__(self, world: WorldConfig, split: str, length: int, device: str | torch.device = "cpu") -> None:
        from unmask.data.world import UnmaskingDataset

        self.dataset = UnmaskingDataset(world, split=split, length=length, device=device)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def batch(self, indices: Sequence[int], seed: int = 0) -> dict[str, torch.Tensor]:
        items = self.dataset.batch([int(i) for i in indices])
        return {key: items[key] for key in ("masked", "target", "mask", "identity")}


class PooledPairs(PairSource):
    """A fixed pool of items of another source, rendered once and kept as uint8 (or on a device)."""

    def __init__(self, source: PairSource, size: int) -> None:
        self.source = source
        self.size = min(size, len(source))
        self.pool: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.size

    def materialise(self, device: torch.device | str = "cpu") -> None:
        """Render the pool (items ``0 .. size - 1``) and keep it compactly on ``device``."""
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, self.size, POOL_CHUNK):
            chunk = self.source.batch(range(start, min(start + POOL_CHUNK, self.size)))
            for key, value in chunk.items():
                if key in ("masked", "target"):
                    value = quantize(value)
                elif key == "mask":
                    value = (value.clamp(0, 1) * 255).round().to(torch.uint8)
                parts.setdefault(key, []).append(value)
        self.pool = {k: torch.cat(v).to(device) for k, v in parts.items()}

    def batch(self, indices: Sequence[int], seed: int = 0) -> dict[str, torch.Tensor]:
        if self.pool is None:
            self.materialise()
        assert self.pool is not None
        index = torch.as_tensor(list(indices), dtype=torch.long, device=self.pool["target"].device)
        out = {}
        for key, value in self.pool.items():
            picked = value.index_select(0, index)
            if key in ("masked", "target"):
                picked = dequantize(picked)
            elif key == "mask":
                picked = picked.float() / 255.0
            out[key] = picked
        return out


class FolderPairs(PairSource):
    """Aligned real faces with 68-point landmarks; a fresh synthetic mask for every draw.

    Args:
        files: image paths (all in folders holding a ``landmarks.json``).
        landmarks: file name -> (68, 2) landmark array in that image's pixel coordinates.
        size: output side; images of another size are resized (landmarks scaled with them).
        mask_type: passed to ``draw_mask``.
        num_workers: decoding threads.
    """

    def __init__(self, files: Sequence[Path], landmarks: dict[str, np.ndarray], size: int,
                 mask_type: str | Sequence[str] = "random", num_workers: int = 4) -> None:
        from unmask.faces.masks import check_mask_type

        check_mask_type(mask_type)
        self.files = list(files)
        self.landmarks = landmarks
        self.size = size
        self.mask_type = mask_type
        self.num_workers = max(1, num_workers)

    @classmethod
    def from_folder(cls, folder: str | Path, size: int, *, mask_type: str | Sequence[str] = "random",
                    num_workers: int = 4,
                    take: slice = slice(None)) -> FolderPairs:
        """Faces of ``folder`` (sorted by name) that have landmarks; ``take`` selects a slice of them."""
        folder = Path(folder)
        table = folder / LANDMARKS_FILE
        if not table.is_file():
            raise ConfigError(f"{folder} has no {LANDMARKS_FILE}. Align the faces first with "
                              f"`python -m unmask.faces align INPUT {folder}`.")
        raw = json.loads(table.read_text("utf-8"))
        landmarks = {}
        for name, points in raw.items():
            array = np.asarray(points, dtype=np.float32)
            if array.shape != (68, 2):
                raise ConfigError(f"{table}: landmarks of {name} have shape {array.shape}, expected (68, 2).")
            landmarks[name] = array
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.name in landmarks)
        if not files:
            raise ConfigError(f"{folder}: no images listed in {LANDMARKS_FILE}.")
        return cls(files[take], landmarks, size, mask_type=mask_type, num_workers=num_workers)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from unmask.faces.masks import draw_mask

        path = self.files[index]
        target = load_image(path)  # ImageError names the file and the fault
        points = self.landmarks[path.name].copy()
        height, width = target.shape[:2]
        if (height, width) != (self.size, self.size):
            points *= np.array([self.size / width, self.size / height], dtype=np.float32)
            target = resize_image(target, self.size)
        masked, occlusion = draw_mask(target, points, mask_type=self.mask_type, seed=seed)
        return target, np.asarray(masked), np.asarray(occlusion, dtype=np.float32)

    def batch(self, indices: Sequence[int], seed: int = 0) -> dict[str, torch.Tensor]:
        jobs = [(int(i), mask_seed(seed, int(i))) for i in indices]
        if self.num_workers > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(min(self.num_workers, len(jobs))) as pool:
                rows = list(pool.map(lambda job: self._load(*job), jobs))
        else:
            rows = [self._load(*job) for job in jobs]
        target = from_uint8(np.stack([r[0] for r in rows]))
        masked = from_uint8(np.stack([r[1] for r in rows]))
        mask = torch.from_numpy(np.stack([r[2] for r in rows])).float()[:, None]
        return {"masked": masked, "target": target, "mask": mask}


class WorldFaces:
    """Clean faces of the teaching world, rendered on ``device`` (the GAN's real images).

    Each draw picks an identity of ``split``, a fresh nuisance draw (image id) and a camera from
    the given ``torch.Generator``, so a batch is a pure function of that generator's seed. With
    ``pool_size > 0`` a fixed pool of that many faces is rendered once (in chunks of
    ``POOL_RENDER_CHUNK``) and kept as uint8 on ``device``; draws then pick from the pool, which
    takes the renderer (CPU-bound per call) off the training step.
    """

    def __init__(self, world: WorldConfig, split: str = "train", device: str | torch.device = "cpu",
                 pool_size: int = 0, pool_seed: int = 0) -> None:
        from unmask.synthetic import FaceWorld

        self.world = FaceWorld(world, device=device)
        self.identities = self.world.identity_split(split)
        self.n_cameras = world.n_cameras
        self.pool_size = pool_size
        self.pool_seed = pool_seed
        self.pool: torch.Tensor | None = None

    def render(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch, 3, S, S)`` freshly rendered faces in ``[-1, 1]`` on the world's device."""
        pick = torch.randint(len(self.identities), (batch,), generator=generator)
        image_ids = torch.randint(0, 1 << 30, (batch,), generator=generator)
        cameras = torch.randint(self.n_cameras, (batch,), generator=generator)
        return self.world.render(self.identities[pick], image_ids, cameras).images

    def materialise(self) -> None:
        """Render the pool (deterministic in ``pool_seed``)."""
        gen = torch.Generator().manual_seed(self.pool_seed)
        chunks = []
        for start in range(0, self.pool_size, POOL_RENDER_CHUNK):
            images = self.render(min(POOL_RENDER_CHUNK, self.pool_size - start), gen)
            chunks.append(quantize(images))
        self.pool = torch.cat(chunks)

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch, 3, S, S)`` faces in ``[-1, 1]`` on the world's device (from the pool if there is one)."""
        if self.pool_size <= 0:
            return self.render(batch, generator)
        if self.pool is None:
            self.materialise()
        assert self.pool is not None
        index = torch.randint(len(self.pool), (batch,), generator=generator).to(self.pool.device)
        return dequantize(self.pool.index_select(0, index))


def build_sources(config: DataConfig, size: int,
                  device: str | torch.device = "cpu") -> tuple[PairSource, PairSource]:
    """Training and validation sources for images of side ``size`` (``device``: the training device)."""
    render = torch.device(device) if config.render_device == "auto" else torch.device(config.render_device)
    if config.source == "generated":
        return _generated_sources(config, size, render)
    if config.source == "world":
        if config.world.size != size:
            raise ConfigError(f"data.world.size={config.world.size} but the model works at {size} px; set "
                              f"data.world.size: {size}.")
        train: PairSource = WorldPairs(config.world, config.split, config.length, render)
        if config.pool_size:
            train = PooledPairs(train, config.pool_size)
        return train, WorldPairs(config.world, config.val_split, config.val_length, render)
    if config.val_folder:
        train = FolderPairs.from_folder(config.folder, size, mask_type=config.mask_type,
                                        num_workers=config.num_workers)
        val = FolderPairs.from_folder(config.val_folder, size, mask_type=config.mask_type,
                                      num_workers=config.num_workers, take=slice(0, config.val_length))
        return train, val
    everything = FolderPairs.from_folder(config.folder, size, mask_type=config.mask_type,
                                         num_workers=config.num_workers)
    if len(everything) <= config.val_length:
        raise ConfigError(f"{config.folder} has {len(everything)} faces, too few to hold out data.val_length="
                          f"{config.val_length} for validation; set data.val_folder or lower data.val_length.")
    cut = len(everything) - config.val_length
    train = FolderPairs(everything.files[:cut], everything.landmarks, size, mask_type=config.mask_type,
                        num_workers=config.num_workers)
    val = FolderPairs(everything.files[cut:], everything.landmarks, size, mask_type=config.mask_type,
                      num_workers=config.num_workers)
    return train, val


def _generated_sources(config: DataConfig, size: int, device: torch.device) -> tuple[PairSource, PairSource]:
    """Training and validation :class:`~unmask.data.generated.GeneratedPairs` sharing one frozen generator."""
    from unmask.data import generated
    from unmask.models.generators import load_frozen_generator

    generator, latent_avg = load_frozen_generator(config.generator, map_location=device,
                                                  n_samples=generated.MEAN_LATENT_SAMPLES)
    teaching = generated.is_teaching(generator)
    kind = config.landmarks if config.landmarks != "auto" else ("world" if teaching else "dlib")
    if kind == "world" and not teaching:
        raise ConfigError(f"data.landmarks is 'world' but {config.generator} is not a teaching generator (its "
                          "config has no world factor names in z_names); use data.landmarks: dlib.")
    finder = (generated.teaching_landmarks(config.world) if kind == "world"
              else generated.dlib_landmarks(upsample=config.landmark_upsample))
    common = dict(landmarks=finder, truncation=config.truncation, latent_avg=latent_avg, seed=config.z_seed,
                  mask_type=config.mask_type, max_tries=config.max_tries, images=config.images,
                  world=config.world)
    train = generated.GeneratedPairs(generator, config.length, size, split="train", **common)
    val = generated.GeneratedPairs(generator, config.val_length, size, split="test", **common)
    return train, val
