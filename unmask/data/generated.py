"""Paired training data drawn by a frozen generator: G(z) with a mask painted on its landmarks.

:class:`GeneratedPairs` samples ``z``, renders ``target = G(z)`` with the frozen StyleGAN2 (fixed noise
maps, so an item is a function of its z), finds the face's 68 landmarks and draws a protective mask
on them with :func:`unmask.faces.masks.draw_mask`. Each item carries its true ``w_plus``: the
mapping of z (optionally truncated), broadcast to every layer, which the true-latent loss
(``w_plus_true``) needs. No face dataset is read, so this recipe trains an FFHQ unmasking encoder
on a GPU from the public StyleGAN2-FFHQ weights alone.

Landmarks, by generator:

* **teaching** generator (its config's ``z_names`` are :data:`unmask.synthetic.latent.FACTOR_NAMES`):
  z is the world's factors, so the landmarks are the world's exact landmarks of ``render_z(z)``
  (:func:`teaching_landmarks`); a teaching generator draws the face of its z up to its error.
* **any other** generator (StyleGAN2-FFHQ, the DigiFace-1M DCGAN): dlib's 68 landmarks of G(z)
  (:func:`dlib_landmarks`, the largest face). Where dlib finds no face the item is **resampled**: attempt
  ``k = 1, 2, …`` of item ``i`` draws a fresh z from the seed ``(seed, split, i, k)``, up to ``max_tries``
  attempts (then :class:`unmask.errors.NoFaceError`). The item stays a pure function of its index, so
  resumed runs see the same data.

Images, by ``images``:

* ``generator`` (default): the target is the generator's own drawing G(z), which it can reproduce
  exactly from the true W+.
* ``world`` (teaching generators only): the target is the world's exact render of the same z,
  ``render_z(world, z)``, and ``w_plus`` is still the mapping of z: the true face *and* its true
  latent, which no real dataset has. The encoder then learns from the faces it will be given (the
  world's renders), not from the generator's approximation of them, and the generator is not run
  to make the data.

Item ``i`` is a pure function of ``(z_seed, split, i)`` (its z) and of the trainer's seed (its mask,
:func:`unmask.data.source.mask_seed`), like the other paired sources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from unmask.data.source import PairSource, mask_seed
from unmask.errors import ConfigError, NoFaceError
from unmask.faces.io import from_uint8, resize_images, to_uint8
from unmask.models.generators import generator_device, mean_latent, truncate

#: Mapped latents averaged for the truncation centre when the folder holds no mean latent.
MEAN_LATENT_SAMPLES = 4096
#: Resampling attempts per item before giving up on finding a face.
DEFAULT_MAX_TRIES = 8
#: What a generated item's images are (see the module docstring).
IMAGE_SOURCES = ("generator", "world")
#: Split codes in the z seed, so training and validation never share a z.
_SPLIT_CODE = {"train": 0, "test": 1}
#: Landmark finder: uint8 ``(N, H, W, 3)`` faces and their z -> list of ``(68, 2)`` pixel landmarks or None.
LandmarkFn = Callable[[np.ndarray, torch.Tensor], list]


def z_seed(seed: int, split: str, index: int, attempt: int = 0) -> int:
    """The 63-bit seed of the z of attempt ``attempt`` of item ``index`` of ``split``."""
    state = np.random.SeedSequence([seed, _SPLIT_CODE[split], index, attempt]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1] >> 1)


def sample_z(seed: int, split: str, indices: Sequence[int], style_dim: int,
             attempts: Sequence[int] | None = None) -> torch.Tensor:
    """``(B, style_dim)`` float32 N(0, I) latents, one seeded draw per item (independent of the batch)."""
    attempts = [0] * len(indices) if attempts is None else list(attempts)
    rows = [torch.randn(style_dim, generator=torch.Generator().manual_seed(z_seed(seed, split, int(i), int(a))))
            for i, a in zip(indices, attempts)]
    return torch.stack(rows) if rows else torch.zeros(0, style_dim)


def is_teaching(generator: torch.nn.Module) -> bool:
    """Whether ``generator``'s z is the teaching world's factors (``config.z_names`` = ``FACTOR_NAMES``)."""
    from unmask.synthetic.latent import FACTOR_NAMES

    return tuple(getattr(getattr(generator, "config", None), "z_names", ())) == FACTOR_NAMES


def teaching_landmarks(world_config) -> LandmarkFn:
    """The world's exact landmarks of ``render_z(z)``, in the pixels of the images given.

    Computed with ``FaceWorld.landmarks`` on the factors of z (the geometry ``render_z`` paints, without
    painting pixels).

    Args:
        world_config: :class:`unmask.synthetic.config.WorldConfig` of the world the generator was taught
            (its seed names the texture banks; geometry depends only on z).
    """
    from unmask.synthetic import FaceWorld
    from unmask.synthetic.latent import factor_params, z_to_factors

    world = FaceWorld(world_config)

    def find(images: np.ndarray, z: torch.Tensor) -> list:
        params = factor_params(world, z_to_factors(z.detach().double().cpu()))
        zeros = torch.zeros(len(z), dtype=torch.long)
        points = world.landmarks(zeros, zeros, zeros, size=images.shape[1], overrides=params)
        return list(np.asarray(points, dtype=np.float32))

    return find


def dlib_landmarks(**detector_options) -> LandmarkFn:
    """dlib's 68 landmarks of the largest face in each image, ``None`` where no face is found."""
    from unmask.faces.detect import get_detector

    detector = get_detector("dlib", **detector_options)

    def find(images: np.ndarray, z: torch.Tensor) -> list:
        found = []
        for image in images:
            faces = detector.detect(np.ascontiguousarray(image))
            found.append(None if not faces else np.asarray(faces[0].landmarks68, dtype=np.float32))
        return found

    return find


def landmark_template(generator: torch.nn.Module, n: int, *, seed: int = 0, upsample: int | None = 1,
                      chunk: int = 64) -> dict[str, np.ndarray | float]:
    """Where dlib's 68 landmarks fall on a generator's samples: the template its crop implies.

    Draws ``n`` samples ``G(z)``, ``z ~ N(0, I)`` (seeded, truncation 1), finds dlib's landmarks of the largest
    face in each (:func:`dlib_landmarks`) and averages them as fractions of the image side (pixel centres at
    ``(i + 0.5) / size``).

    Returns:
        ``{"mean": (68, 2), "std": (68, 2), "face_rate": float, "faces": int}``: the mean is the alignment template
        (:func:`unmask.faces.align.template_quad`), the standard deviation its spread over samples.

    Raises:
        NoFaceError: dlib found no face in any sample.
    """
    find = dlib_landmarks(upsample=upsample)
    rng = torch.Generator().manual_seed(seed)
    device = generator_device(generator)
    points = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            z = torch.randn(min(chunk, n - start), generator.style_dim, generator=rng)
            w_plus = generator.mapping(z.to(device))[:, None].expand(-1, generator.n_latent, -1)
            images = generator.synthesis(w_plus, randomize_noise=False).clamp(-1, 1).float().cpu()
            size = images.shape[-1]
            points += [(p + 0.5) / size for p in find(to_uint8(images), z) if p is not None]
    if not points:
        raise NoFaceError(f"dlib found no face in {n} samples of this generator; it cannot give a template.")
    stack = np.stack(points).astype(np.float64)
    return {"mean": stack.mean(0), "std": stack.std(0), "face_rate": len(points) / n, "faces": len(points)}


class GeneratedPairs(PairSource):
    """Paired items ``masked``, ``target``, ``mask``, ``w_plus`` drawn by a frozen generator.

    Args:
        generator: a frozen generator (:class:`unmask.models.generators.FrozenGenerator`: a StyleGAN2 or a
            DCGAN), on the device to render on.
        length: items ``0 .. length - 1``.
        size: output side; G's images (and landmarks) are resized to it.
        split: ``train`` or ``test`` (disjoint z streams).
        landmarks: a :data:`LandmarkFn`; ``None`` picks :func:`teaching_landmarks` (with ``world``) for a
            teaching generator and :func:`dlib_landmarks` otherwise.
        world: the teaching world's config (needed for a teaching generator without ``landmarks``).
        truncation: ``psi`` of ``w = avg + psi (w - avg)``; 1 = none.
        latent_avg: ``(1, style_dim)`` truncation centre (default: ``generator.mean_latent``).
        seed: seed of the z draws.
        mask_type: passed to ``draw_mask`` (``random``, a mask type, or a list of those).
        max_tries: attempts per item while no landmarks are found (see the module docstring).
        images: ``generator`` (targets are G(z)) or ``world`` (targets are ``render_z(world, z)``; a
            teaching generator and ``world`` needed, no truncation).
    """

    def __init__(self, generator: torch.nn.Module, length: int, size: int, *, split: str = "train",
                 landmarks: LandmarkFn | None = None, world=None, truncation: float = 1.0,
                 latent_avg: torch.Tensor | None = None, seed: int = 0, mask_type: str | Sequence[str] = "random",
                 max_tries: int = DEFAULT_MAX_TRIES, images: str = "generator") -> None:
        if images not in IMAGE_SOURCES:
            raise ConfigError(f"images must be one of {IMAGE_SOURCES}, got {images!r}.")
        if images == "world" and (world is None or not is_teaching(generator) or truncation != 1.0):
            raise ConfigError("images='world' paints the world's face of each z: it needs a teaching generator "
                              "(z_names = the world's factors), the world's config (data.world) and truncation 1.")
        if split not in _SPLIT_CODE:
            raise ConfigError(f"split must be one of {tuple(_SPLIT_CODE)}, got {split!r}.")
        if length < 1 or max_tries < 1:
            raise ConfigError("a generated source needs length >= 1 and max_tries >= 1.")
        self.generator = generator
        self.length, self.size, self.split = int(length), int(size), split
        self.truncation, self.seed = float(truncation), int(seed)
        from unmask.faces.masks import check_mask_type

        check_mask_type(mask_type)
        self.mask_type, self.max_tries = mask_type, int(max_tries)
        self.images = images
        self._world = None
        if images == "world":
            from unmask.synthetic import FaceWorld

            self._world = FaceWorld(world)
        self.device = generator_device(generator)
        if self.truncation != 1.0 and latent_avg is None:
            latent_avg = mean_latent(generator, MEAN_LATENT_SAMPLES)
        self.latent_avg = None if latent_avg is None else latent_avg.reshape(1, -1).float().to(self.device)
        if landmarks is None:
            if is_teaching(generator):
                if world is None:
                    raise ConfigError("a teaching generator's landmarks come from its world: pass world= (the "
                                      "data.world section) or a landmarks function.")
                landmarks = teaching_landmarks(world)
            else:
                landmarks = dlib_landmarks()
        self.landmarks = landmarks

    def __len__(self) -> int:
        return self.length

    @torch.no_grad()
    def render(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (B, 3, size, size) in [-1, 1] on the CPU, w_plus (B, n_latent, D))`` of latents ``z``."""
        z = z.to(self.device, torch.float32)
        w = truncate(self.generator.mapping(z), self.latent_avg, self.truncation)
        w_plus = w[:, None, :].expand(-1, self.generator.n_latent, -1).contiguous()
        if self.images == "world":
            from unmask.synthetic.latent import render_z

            images = render_z(self._world, z.cpu()).images.float().clamp(-1, 1)
        else:
            images = self.generator.synthesis(w_plus, randomize_noise=False).clamp(-1, 1)
        return resize_images(images, self.size).float().cpu(), w_plus.float().cpu()

    def batch(self, indices: Sequence[int], seed: int = 0) -> dict[str, torch.Tensor]:
        """Items ``indices`` (masks seeded by the trainer's ``seed``); see the class docstring.

        Raises:
            NoFaceError: an item found no landmarks in ``max_tries`` draws.
            IndexError: an index outside ``0 .. len - 1``.
        """
        from unmask.data.world import apply_masks

        indices = [int(i) for i in indices]
        if any(i < 0 or i >= self.length for i in indices):
            raise IndexError(f"index out of range for a generated source of {self.length} items.")
        n = len(indices)
        images = torch.zeros(n, 3, self.size, self.size)
        w_plus: torch.Tensor | None = None
        points: list = [None] * n
        attempts = [0] * n
        todo = list(range(n))
        while todo:
            z = sample_z(self.seed, self.split, [indices[k] for k in todo], self.generator.style_dim,
                         [attempts[k] for k in todo])
            drawn, latents = self.render(z)
            if w_plus is None:
                w_plus = torch.zeros(n, *latents.shape[1:])
            found = self.landmarks(to_uint8(drawn), z)
            missing = []
            for row, k in enumerate(todo):
                images[k], w_plus[k] = drawn[row], latents[row]
                if found[row] is None:
                    attempts[k] += 1
                    if attempts[k] >= self.max_tries:
                        raise NoFaceError(
                            f"no face found in {self.max_tries} generator samples for item {indices[k]}; the "
                            "generator may not draw faces dlib can find (check its samples), or raise max_tries.")
                    missing.append(k)
                else:
                    points[k] = np.asarray(found[row], dtype=np.float32)
            todo = missing
        target_u8 = to_uint8(images)
        seeds = np.array([mask_seed(seed, i) for i in indices], dtype=np.int64)
        masked_u8, occlusion = apply_masks(target_u8, np.stack(points), [self.mask_type] * n, seeds)
        assert w_plus is not None
        return {"masked": from_uint8(masked_u8), "target": from_uint8(target_u8),
                "mask": torch.from_numpy(occlusion)[:, None], "w_plus": w_plus}
