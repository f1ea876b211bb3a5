"""Configuration of the teaching world: nuisance presets and the world itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from unmask.errors import ConfigError
from unmask.synthetic.correlation import check_correlation


@dataclass(frozen=True)
class NuisancePreset:
    """How strongly per-image nuisance varies. Every range is sampled uniformly per image.

    Attributes:
        roll_deg: largest in-plane head rotation, degrees (either sign).
        yaw: largest yaw-like turn in [0, 1]; 1 shifts the inner face by ``YAW_SHIFT`` of the image
            width against the head outline (about a 25 degree turn on a real face).
        scale_jitter: largest relative change of face size (0.05 = plus or minus 5 %).
        translate: largest shift of the face centre, fraction of the image side.
        light_jitter_deg: how far one image's light azimuth strays from its camera's.
        light_strength: (low, high) of the directional light strength.
        ambient: (low, high) of the ambient light level.
        smile_p: probability that a face smiles.
        open_mouth_p: probability that the mouth is open.
        closed_eyes_p: probability that the eyes are closed.
        blur_px: largest Gaussian blur sigma, in pixels of a 128 px image (scaled with size).
        noise: largest sensor-noise standard deviation, fraction of the full [0, 1] range.
        compression: largest strength in [0, 1] of compression-like artefacts (8x8 blocks, chroma
            subsampling, level banding).
        camera_strength: multiplies how far the camera styles (colour cast, light, background)
            stray from neutral.
    """

    roll_deg: float
    yaw: float
    scale_jitter: float
    translate: float
    light_jitter_deg: float
    light_strength: tuple[float, float]
    ambient: tuple[float, float]
    smile_p: float
    open_mouth_p: float
    closed_eyes_p: float
    blur_px: float
    noise: float
    compression: float
    camera_strength: float


PRESETS: dict[str, NuisancePreset] = {
    # Near-frontal, well lit, clean: for sanity checks and the CPU notebook profile.
    "easy": NuisancePreset(
        roll_deg=3.0, yaw=0.25, scale_jitter=0.02, translate=0.01, light_jitter_deg=10.0,
        light_strength=(0.55, 0.7), ambient=(0.45, 0.55), smile_p=0.2, open_mouth_p=0.1,
        closed_eyes_p=0.03, blur_px=0.3, noise=0.008, compression=0.0, camera_strength=0.5,
    ),
    # The default: the nuisance of an aligned in-the-wild face crop.
    "standard": NuisancePreset(
        roll_deg=8.0, yaw=0.6, scale_jitter=0.05, translate=0.02, light_jitter_deg=30.0,
        light_strength=(0.4, 0.85), ambient=(0.3, 0.6), smile_p=0.4, open_mouth_p=0.2,
        closed_eyes_p=0.08, blur_px=1.0, noise=0.03, compression=0.4, camera_strength=1.0,
    ),
    # Poorly aligned, harshly lit, degraded: stress tests and robustness claims.
    "hard": NuisancePreset(
        roll_deg=15.0, yaw=1.0, scale_jitter=0.1, translate=0.04, light_jitter_deg=60.0,
        light_strength=(0.3, 1.0), ambient=(0.15, 0.6), smile_p=0.5, open_mouth_p=0.3,
        closed_eyes_p=0.12, blur_px=2.0, noise=0.06, compression=0.8, camera_strength=1.5,
    ),
}

SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class WorldConfig:
    """The teaching world.

    Attributes:
        size: default render size in pixels (square); 64 and 128 are the supported training sizes.
        preset: name in ``PRESETS``.
        seed: world seed; every identity, camera and image follows from it.
        n_identities: number of identities (ids ``0 .. n_identities - 1``).
        n_cameras: number of cameras (ids ``0 .. n_cameras - 1``), each with its own style.
        test_fraction: share of identities held out as test identities.
        mask_types: mask types for the datasets (``"random"`` or names in
            ``unmask.faces.masks.MASK_TYPES``).
        face_correlation: ρ in [0, 1], how strongly shared causes tie the upper face to the lower face
            (``unmask.synthetic.correlation``); 0 draws every identity factor independently.
    """

    size: int = 64
    preset: str = "standard"
    seed: int = 0
    n_identities: int = 10000
    n_cameras: int = 6
    test_fraction: float = 0.2
    mask_types: tuple[str, ...] = field(default=("random",))
    face_correlation: float = 0.0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"WorldConfig.size={self.size} is not supported; use one of {SIZES}.")
        if self.preset not in PRESETS:
            raise ConfigError(f"Unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}.")
        if self.n_identities < 20:
            raise ConfigError(f"n_identities={self.n_identities} is too small; use at least 20.")
        if not 1 <= self.n_cameras <= 64:
            raise ConfigError(f"n_cameras={self.n_cameras} must be between 1 and 64.")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction={self.test_fraction} must lie strictly between 0 and 1.")
        object.__setattr__(self, "face_correlation", check_correlation(self.face_correlation))
        if isinstance(self.mask_types, str):
            object.__setattr__(self, "mask_types", (self.mask_types,))

    @property
    def nuisance(self) -> NuisancePreset:
        return PRESETS[self.preset]
