"""The teaching world's API: :class:`FaceWorld` maps (identity, image id, camera) to factors, landmarks,
attributes and rendered faces, all pure functions of the world seed.

The factors come from ``params.py`` (counter-based draws, see ``rng.py``), the landmarks from the
same geometry (``geometry.py``) the painter (``render.py``) draws, so they are exact by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from unmask.errors import ConfigError, InputShapeError
from unmask.synthetic import geometry, rng
from unmask.synthetic import params as P
from unmask.synthetic.config import SIZES, WorldConfig
from unmask.synthetic.correlation import identity_uniforms
from unmask.synthetic.render import Painter, texture_bank

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Male", "Eyeglasses", "Beard", "Mustache", "Smiling", "Mouth_Slightly_Open", "Eyes_Closed",
    "Wearing_Hat", "Black_Hair", "Blond_Hair", "Bald", "Bangs", "Bushy_Eyebrows", "Big_Nose", "Pale_Skin",
)
# Attributes fixed per identity; the others change from image to image.
IDENTITY_ATTRIBUTES = frozenset(
    {"Male", "Beard", "Mustache", "Black_Hair", "Blond_Hair", "Bald", "Bangs", "Bushy_Eyebrows", "Big_Nose",
     "Pale_Skin"}
)
@dataclass
class RenderOutput:
    """What ``FaceWorld.render`` returns.

    Attributes:
        images: ``(B, 3, H, W)`` float in [-1, 1].
        landmarks: ``(B, 68, 2)`` iBUG landmarks, pixel (x, y), pixel centres at integers.
        attributes: ``(B, A)`` float in {0, 1}, columns named by ``FaceWorld.ATTRIBUTE_NAMES``.
        identities, image_ids, cameras: ``(B,)`` long, as given.
    """

    images: torch.Tensor
    landmarks: torch.Tensor
    attributes: torch.Tensor
    identities: torch.Tensor
    image_ids: torch.Tensor
    cameras: torch.Tensor


class FaceWorld:
    """Procedural faces with identities, attributes, cameras and exact landmarks.

    Args:
        config: the world (seed, preset, identities, cameras).
        device: where ``render`` computes ("cpu" or "cuda").

    Example:
        >>> world = FaceWorld(WorldConfig(size=64))
        >>> out = world.render(torch.arange(8), torch.zeros(8, dtype=torch.long), torch.arange(8) % 6)
        >>> out.images.shape
        torch.Size([8, 3, 64, 64])
    """

    ATTRIBUTE_NAMES = ATTRIBUTE_NAMES

    def __init__(self, config: WorldConfig | None = None, device: str | torch.device = "cpu") -> None:
        self.config = config or WorldConfig()
        self.device = torch.device(device)
        self._banks: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        self._splits: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ factors
    def params(
        self, identities, image_ids, cameras, overrides: dict[str, object] | None = None
    ) -> dict[str, torch.Tensor]:
        """All factors of a batch as ``(B,)`` float32 tensors on ``self.device``.

        ``overrides`` replaces named factors (a number or a ``(B,)`` array), e.g. ``{"tx": 0.9}`` to
        push the face out of frame or ``{"yaw": 0.0}`` for a frontal view.
        """
        ids, img, cams = (self._as_numpy(x, name) for x, name in
                          ((identities, "identities"), (image_ids, "image_ids"), (cameras, "cameras")))
        if not (len(ids) == len(img) == len(cams)):
            raise InputShapeError(
                f"identities, image_ids and cameras must have the same length; got {len(ids)}, {len(img)}, "
                f"{len(cams)}.")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.config.n_identities):
            raise InputShapeError(f"identity ids must lie in [0, {self.config.n_identities}).")
        if len(cams) and (cams.min() < 0 or cams.max() >= self.config.n_cameras):
            raise InputShapeError(f"camera ids must lie in [0, {self.config.n_cameras}).")
        seed, preset = self.config.seed, self.config.nuisance
        ident = P.identity_params(seed, ids, correlation=self.config.face_correlation)
        cam = P.camera_params(seed, cams, preset.camera_strength)
        image = P.image_params(seed, ids, img, cams, preset, ident, cam)
        merged = {**ident, **{f"cam_{k}": v for k, v in cam.items()}, **image}
        for key, value in (overrides or {}).items():
            if key not in merged:
                raise ConfigError(f"Unknown factor {key!r} in overrides; known: {sorted(merged)}.")
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            value = np.broadcast_to(np.asarray(value, dtype=np.float32), tuple(merged[key].shape)).copy()
            merged[key] = torch.from_numpy(value)
        return P.to_torch(merged, self.device)

    @staticmethod
    def _as_numpy(x, name: str) -> np.ndarray:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputShapeError(f"{name} must be a 1-D integer tensor (B,); got {arr.dtype} {arr.shape}.")
        return arr.astype(np.int64)

    def identity_factors(self, identities) -> torch.Tensor:
        """Standardised continuous identity factors ``(B, F)`` (zero mean, unit variance per factor)."""
        ids = self._as_numpy(identities, "identities")
        u = identity_uniforms(self.config.seed, ids, self.config.face_correlation, P.IDENTITY_FIELDS)
        cols = [P.IDENTITY_FIELDS.index(name) for name in P.CONTINUOUS_IDENTITY]
        return torch.from_numpy((u[:, cols] - 0.5) * math.sqrt(12.0)).float()

    def attributes(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Binary attributes ``(B, A)`` in the order of ``ATTRIBUTE_NAMES``."""
        hair_col = p["hair_col"]
        values = {
            "Male": p["male"],
            "Eyeglasses": p["glasses"],
            "Beard": (p["beard"] == P.BEARD_GOATEE) | (p["beard"] == P.BEARD_FULL),
            "Mustache": p["beard"] >= P.BEARD_MOUSTACHE,
            "Smiling": p["smile"] > 0.35,
            "Mouth_Slightly_Open": p["mouth_open"] > 0.0,
            "Eyes_Closed": p["eyes_closed"],
            "Wearing_Hat": p["hat"],
            "Black_Hair": (hair_col == P.BLACK_HAIR) & (p["hair_style"] != P.HAIR_BALD),
            "Blond_Hair": (hair_col == P.BLOND_HAIR) & (p["hair_style"] != P.HAIR_BALD),
            "Bald": p["hair_style"] == P.HAIR_BALD,
            "Bangs": p["bangs"],
            "Bushy_Eyebrows": p["brow_thick"] > 0.0175,
            "Big_Nose": (p["nose_w"] > 0.047) & (p["nose_len"] > 0.6),
            "Pale_Skin": p["skin_tone"] < 0.08,
        }
        return torch.stack([values[name].float() for name in ATTRIBUTE_NAMES], dim=1)

    def identity_split(self, split: str) -> torch.Tensor:
        """Identity ids of ``"train"`` or ``"test"`` (disjoint, sorted, fixed by the seed)."""
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test'; got {split!r}.")
        if not self._splits:
            n = self.config.n_identities
            keys = rng.hash_keys(self.config.seed, "split", np.arange(n))
            order = np.argsort(keys, kind="stable")
            n_test = max(10, int(round(n * self.config.test_fraction)))
            self._splits["test"] = torch.from_numpy(np.sort(order[:n_test]))
            self._splits["train"] = torch.from_numpy(np.sort(order[n_test:]))
        return self._splits[split].clone()

    # ---------------------------------------------------------------- landmarks
    def landmarks(self, identities, image_ids, cameras, *, size: int | None = None,
                  overrides: dict[str, object] | None = None) -> torch.Tensor:
        """68 iBUG landmarks ``(B, 68, 2)`` in pixels, without rendering pixels."""
        p = self.params(identities, image_ids, cameras, overrides)
        g = geometry.derived(p)
        return geometry.to_image(geometry.landmarks_canonical(p, g), p, self._size(size))

    def _size(self, size: int | None) -> int:
        size = int(size or self.config.size)
        if size not in SIZES:
            raise ConfigError(f"size={size} is not supported; use one of {SIZES}.")
        return size

    # ---------------------------------------------------------------- rendering
    @torch.no_grad()
    def render(self, identities, image_ids, cameras, *, size: int | None = None,
               overrides: dict[str, object] | None = None) -> RenderOutput:
        """Render a batch.

        Args:
            identities: ``(B,)`` long identity ids in ``[0, n_identities)``.
            image_ids: ``(B,)`` long; each value gives a different draw of the per-image nuisance.
            cameras: ``(B,)`` long camera ids in ``[0, n_cameras)``.
            size: output side in pixels (default ``config.size``).
            overrides: factor values to force (see ``params``).

        Returns:
            ``RenderOutput`` with images ``(B, 3, size, size)`` in [-1, 1].
        """
        p = self.params(identities, image_ids, cameras, overrides)
        images, lm = self.paint(p, size=size)
        to_long = lambda x: torch.as_tensor(self._as_numpy(x, "ids"))  # noqa: E731
        return RenderOutput(images, lm, self.attributes(p), to_long(identities), to_long(image_ids),
                            to_long(cameras))

    def paint(self, p: dict[str, torch.Tensor], *, size: int | None = None, edge: float = 1.0,
              straight_through: bool = True, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Paint given factors: the world's painter, differentiable in the continuous factors.

        :meth:`render` and the painter generator (:class:`unmask.models.painter.PainterGenerator`) both paint
        through here, so a world draw and the generator's image of its z are the same pixels.

        Args:
            p: factors as :meth:`params` returns them (float32 ``(B,)`` tensors, all on one device).
            size: output side in pixels (default ``config.size``).
            edge: width of every anti-aliasing ramp, in multiples of the exact one. 1 paints the world exactly;
                wider ramps (2-8) give every edge a gradient over more pixels, for optimisation that starts soft
                and ends exact.
            straight_through: the backward of the world's quantisers (the compression's level banding, texture
                shifts): straight-through (identity through the banding; the texture's slope for a shift) where True,
                their true derivative (zero) where False. The forward pass is the same either way.
            dtype: the painting precision; float32 is the world's, float64 serves finite-difference checks.

        Returns:
            images ``(B, 3, size, size)`` in [-1, 1] and landmarks ``(B, 68, 2)`` in pixels.
        """
        size = self._size(size)
        if not edge >= 1.0:
            raise ConfigError(f"edge={edge} must be >= 1 (1 paints the world exactly; wider ramps are softer).")
        if dtype != torch.float32:
            p = {k: v.to(dtype) for k, v in p.items()}
        g = geometry.derived(p)
        lm = geometry.to_image(geometry.landmarks_canonical(p, g), p, size)
        device = p["yaw"].device
        if p["yaw"].shape[0] == 0:
            return torch.zeros(0, 3, size, size, device=device, dtype=dtype), lm
        pre = self.config.nuisance
        bounds = (math.radians(pre.roll_deg), pre.scale_jitter, pre.translate)
        images = Painter(p, g, size, self._bank(size, device), bounds, edge=edge,
                         straight_through=straight_through).paint()
        return images, lm

    def _bank(self, size: int, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        """The seeded texture banks at ``size`` on ``device`` (built once per size and device, see
        :func:`texture_bank`)."""
        device = torch.device(device or self.device)
        key = (size, str(device))
        if key not in self._banks:
            self._banks[key] = texture_bank(self.config.seed, size, device)
        return self._banks[key]
