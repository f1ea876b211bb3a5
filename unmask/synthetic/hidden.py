"""Which identity factors a protective mask hides: measured on the world's own renders, never listed by hand.

For each identity factor, :func:`measure_hidden_shares` redraws that factor alone (a fresh uniform from its own
stream, every other factor kept) and renders the face again through ``FaceWorld.render(..., overrides=...)``.
The change ``|redrawn - original|`` (summed over colour channels) is split by a standard mask drawn with
:func:`unmask.faces.masks.draw_mask` on the original face's exact landmarks (a random one of
:data:`unmask.faces.masks.MASK_TYPES`, as the datasets draw it). A factor's *hidden share* is the part of its
change that falls inside the mask, pooled over all draws:

    share_i = Σ_draws Σ_pixels |Δ_i| · mask  /  Σ_draws Σ_pixels |Δ_i|

A factor is **hidden** when its share is at least :data:`HIDDEN_THRESHOLD` (most of what it does to a face is
under the mask), else **visible**. A redraw is a finite difference with a random step; it serves discrete
choices (beard type, hair colour) as well as continuous ones.

Measuring takes about two minutes on a 2-core CPU (46 factors × 256 draws at 64 px); the result is kept in
:data:`MEASURED_SHARES` (written by ``python -m unmask.evaluate world --measure-hidden``), and
:func:`hidden_factors` reads it. A test re-measures a small sample and checks it against the table.
"""

from __future__ import annotations

import numpy as np
import torch

from unmask.synthetic import params as P
from unmask.synthetic import rng

#: A factor is hidden when at least this share of its image change lies inside the mask.
HIDDEN_THRESHOLD = 0.5

#: ``{identity field: (hidden share, mean |Δ| per pixel in [-1, 1] units)}``, measured on 256 draws of the
#: standard preset at 64 px, seed 0, random mask types (``python -m unmask.evaluate world --measure-hidden``).
MEASURED_SHARES: dict[str, tuple[float, float]] = {
    "head_w": (0.202, 0.01383),
    "jaw_w": (0.735, 0.00239),
    "jaw_k": (0.748, 0.00276),
    "chin_y": (0.692, 0.00266),
    "top_y": (0.012, 0.00550),
    "skin_tone": (0.464, 0.07096),
    "skin_warm": (0.454, 0.00502),
    "eye_dx": (0.046, 0.00167),
    "eye_w": (0.000, 0.00072),
    "eye_h": (0.000, 0.00065),
    "eye_tilt": (0.000, 0.00072),
    "iris_u": (0.000, 0.00025),
    "iris_shade": (0.000, 0.00005),
    "brow_thick": (0.000, 0.00022),
    "brow_arch": (0.000, 0.00062),
    "brow_y": (0.000, 0.00164),
    "nose_len": (0.902, 0.00146),
    "nose_w": (0.789, 0.00028),
    "mouth_w": (0.999, 0.00033),
    "lip_up": (1.000, 0.00021),
    "lip_lo": (1.000, 0.00044),
    "lip_red": (1.000, 0.00014),
    "style_u": (0.082, 0.03162),
    "hair_col_u": (0.106, 0.02801),
    "hair_shade": (0.098, 0.00349),
    "hairline": (0.000, 0.00438),
    "hair_vol": (0.034, 0.01307),
    "male_u": (0.314, 0.03105),
    "beard_u": (0.867, 0.00756),
    "glasses_u": (0.016, 0.00159),
    "glasses_style": (0.029, 0.00046),
    "glasses_col_u": (0.018, 0.00109),
    "hat_u": (0.000, 0.00191),
    "bangs_u": (0.000, 0.01171),
    "part": (0.025, 0.00424),
    "eye_y": (0.123, 0.00613),
    "mouth_y": (0.977, 0.00230),
    "ear_size": (0.275, 0.00030),
    "blush": (0.541, 0.00012),
    "neck_w": (0.318, 0.00054),
    "tex_u": (0.029, 0.00446),
    "beard_density": (0.877, 0.00085),
    "brow_gap": (0.000, 0.00027),
    "nose_bridge": (0.513, 0.00013),
    "cheek": (0.373, 0.00023),
    "lip_bow": (1.000, 0.00001),
}


def measure_hidden_shares(world, n_draws: int = 256, *, size: int = 64, batch_size: int = 64,
                          fields: tuple[str, ...] = P.IDENTITY_FIELDS, mask_types: str = "random",
                          ) -> dict[str, tuple[float, float]]:
    """Measure each identity factor's hidden share (see the module docstring).

    Args:
        world: a :class:`~unmask.synthetic.FaceWorld` (its seed, preset and face correlation).
        n_draws: faces per factor; draw ``k`` is identity ``k % n_identities``, image ``k``, camera ``k % n_cameras``.
        size: render size in pixels.
        batch_size: faces per render call.
        fields: the identity fields to measure.
        mask_types: the masks' types (``"random"`` or a name in ``MASK_TYPES``).

    Returns:
        ``{field: (hidden share in [0, 1], mean absolute change per pixel)}``; the share is NaN for a factor
        that changed no pixel in any draw.
    """
    from unmask.faces.masks import draw_mask
    from unmask.synthetic.latent import factor_params, world_factors

    config = world.config
    totals = {name: np.zeros(2) for name in fields}  # (inside, all)
    changes = {name: 0.0 for name in fields}
    for start in range(0, n_draws, batch_size):
        draws = np.arange(start, min(n_draws, start + batch_size), dtype=np.int64)
        ids = torch.from_numpy(draws % config.n_identities)
        image_ids = torch.from_numpy(draws)
        cameras = torch.from_numpy(draws % config.n_cameras)
        base = world.render(ids, image_ids, cameras, size=size)
        masks = _masks(base, draws, config.seed, mask_types, draw_mask)
        factors = world_factors(world, ids, image_ids, cameras)
        redraw = torch.from_numpy(rng.uniform(config.seed, "hidden_probe", draws, n=len(P.IDENTITY_FIELDS)))
        for name in fields:
            column = P.IDENTITY_FIELDS.index(name)
            changed = factors.clone()
            changed[:, column] = redraw[:, column]
            out = world.render(ids, image_ids, cameras, size=size, overrides=factor_params(world, changed))
            delta = (out.images - base.images).abs().sum(1).double().cpu()  # (B, H, W)
            totals[name] += [float((delta * masks).sum()), float(delta.sum())]
            changes[name] += float(delta.sum()) / (3 * size * size)
    return {name: (float(inside / total) if total > 0 else float("nan"), changes[name] / n_draws)
            for name, (inside, total) in totals.items()}


def _masks(base, draws: np.ndarray, seed: int, mask_types: str, draw_mask) -> torch.Tensor:
    """Occlusion ``(B, H, W)`` float64 of one mask per face, drawn on its exact landmarks."""
    from unmask.faces.io import to_uint8

    images = to_uint8(base.images)
    landmarks = base.landmarks.cpu().numpy()
    seeds = (rng.hash_keys(seed, "hidden_probe_mask", draws) >> np.uint64(2)).astype(np.int64)
    return torch.from_numpy(np.stack([draw_mask(images[k], landmarks[k], mask_types, seed=int(seeds[k]))[1]
                                      for k in range(len(draws))]).astype(np.float64))


def hidden_factors(shares: dict[str, tuple[float, float]] | None = None,
                   threshold: float = HIDDEN_THRESHOLD) -> tuple[str, ...]:
    """Identity fields whose hidden share is at least ``threshold`` (default: from :data:`MEASURED_SHARES`),
    in :data:`~unmask.synthetic.params.IDENTITY_FIELDS` order."""
    shares = MEASURED_SHARES if shares is None else shares
    return tuple(name for name in P.IDENTITY_FIELDS if name in shares and shares[name][0] >= threshold)


def visible_factors(shares: dict[str, tuple[float, float]] | None = None,
                    threshold: float = HIDDEN_THRESHOLD) -> tuple[str, ...]:
    """The identity fields that are not hidden (:func:`hidden_factors`), in field order."""
    hidden = set(hidden_factors(shares, threshold))
    return tuple(name for name in P.IDENTITY_FIELDS if name not in hidden)


__all__ = ["HIDDEN_THRESHOLD", "MEASURED_SHARES", "hidden_factors", "measure_hidden_shares", "visible_factors"]
