"""How much of the hidden face the visible face predicts: a Gaussian copula over the identity uniforms.

Each identity is drawn as independent uniforms ``u`` (one per :data:`~unmask.synthetic.params.IDENTITY_FIELDS`
entry, :func:`unmask.synthetic.rng.uniform`; the functions here take that field order as ``fields``, so this
module needs nothing from the factor maps). With a face correlation ``ρ > 0`` a few shared latent causes
(:data:`CAUSES`), drawn per identity from their own counter-based stream, enter some factors of both the upper
and the lower face:

    z = Φ⁻¹(u)        c ~ N(0, I_K)        z'_i = sqrt(1 - ρ) z_i + sqrt(ρ) ℓ_i · c        u' = Φ(z'_i)

``ℓ_i`` is factor ``i``'s row of :data:`LOADINGS` scaled to unit length (:func:`loading_matrix`): the table
says in which mix of causes a factor moves, ``ρ`` says how much. Every ``z'_i`` is exactly N(0, 1), so every
marginal stays uniform and the rest of the world (the uniforms → factors maps, the painter) is unchanged;
only the joint law moves. ``ρ`` is the share of each loaded factor's variance that the shared causes explain;
two loaded factors correlate, in Gaussian coordinates, by ``ρ · ℓ_i · ℓ_j`` (by ``ρ`` when they load on one
cause alone). At ``ρ = 1`` every loaded factor is a function of the causes, which the visible face reveals:
the hidden face becomes predictable. ``ρ = 0`` returns the input array itself, so every existing world is bit
for bit what it was.

The causes follow what anthropometry reports as the shared sources of facial variation (sizes and shape
that move the upper and lower face together); see ``docs/teaching_world.md`` for the anchors and for the
value recommended for the teaching bundle (:data:`TEACHING_CORRELATION`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from unmask.errors import ConfigError
from unmask.synthetic import rng

#: The shared latent causes, in the order of their stream's counters.
CAUSES = ("face_width", "face_height", "masculinity", "colouring")

#: Loadings ``{cause: {identity field: weight}}``, each factor's weights scaled to unit length when used; a
#: factor not listed keeps its independent draw. The sign says the direction in the factor's own uniform
#: (``male_u < 0.5`` is male, hence the negative masculinity loading; a larger ``top_y`` is a lower top of the
#: head, hence a negative face-height loading).
LOADINGS: dict[str, dict[str, float]] = {
    # build / face width: head, cheekbones, jaw, eyes apart, nose and mouth widths scale together
    "face_width": {"head_w": 0.85, "eye_dx": 0.55, "ear_size": 0.35, "neck_w": 0.5, "jaw_w": 0.75,
                   "cheek": 0.45, "nose_w": 0.5, "mouth_w": 0.6},
    # face length / vertical proportions: a long face has a high hairline, low eyes, a long nose, low mouth and chin
    "face_height": {"top_y": -0.6, "hairline": -0.4, "eye_y": 0.45, "brow_y": 0.35, "nose_len": 0.55,
                    "mouth_y": 0.6, "chin_y": 0.7},
    # sex-linked shape beyond the binary sex: heavier brows, squarer jaw, thinner lips, more and denser beard
    "masculinity": {"male_u": -0.8, "brow_thick": 0.55, "jaw_k": 0.5, "lip_up": -0.45, "lip_lo": -0.45,
                    "beard_u": 0.5, "beard_density": 0.45},
    # ancestry / colouring: skin, hair and iris shade with lip colour and blush
    "colouring": {"skin_tone": 0.75, "skin_warm": 0.4, "hair_shade": -0.4, "iris_shade": -0.35,
                  "lip_red": 0.5, "blush": 0.4, "lip_bow": 0.2},
}

#: The face correlation recommended for the teaching bundle (reason in ``docs/teaching_world.md``).
TEACHING_CORRELATION = 0.25

#: Uniforms are clipped to ``[U_MIN, U_MAX]`` before Φ⁻¹ (``rng.uniform`` can return 0), and the result of
#: Φ to ``[0, U_MAX]`` (the world's draws lie in [0, 1)).
U_MIN = 2.0**-53
U_MAX = 1.0 - 2.0**-53


def loading_matrix(fields: Sequence[str]) -> np.ndarray:
    """``ℓ``: ``(len(fields), len(CAUSES))`` float64, the rows of :data:`LOADINGS` in ``fields`` order (the
    identity fields), each loaded row of unit length (rows of unloaded fields are zero)."""
    matrix = np.zeros((len(fields), len(CAUSES)))
    for k, cause in enumerate(CAUSES):
        for field, value in LOADINGS[cause].items():
            matrix[list(fields).index(field), k] = value
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def check_correlation(correlation: float) -> float:
    """``correlation`` as a float in [0, 1], else a :class:`ConfigError` that says so."""
    try:
        value = float(correlation)
    except (TypeError, ValueError):
        raise ConfigError(f"face_correlation must be a number in [0, 1]; got {correlation!r}.") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"face_correlation={correlation!r} must lie in [0, 1] (0: independent factors, as every "
                          "world before it; 1: the shared causes explain all of a fully loaded factor).")
    return value


def cause_draws(seed: int, identities: np.ndarray) -> np.ndarray:
    """The shared causes of each identity: ``(B, len(CAUSES))`` float64 standard normals (their own stream)."""
    u = rng.uniform(seed, "identity_causes", np.asarray(identities, dtype=np.int64), n=len(CAUSES))
    return torch.special.ndtri(torch.from_numpy(u).clamp(U_MIN, U_MAX)).numpy()


def correlate_uniforms(u: np.ndarray, correlation: float, fields: Sequence[str],
                       causes: np.ndarray | None = None) -> np.ndarray:
    """Identity uniforms with the shared causes mixed in, every marginal still uniform.

    Args:
        u: ``(B, len(fields))`` independent uniforms in [0, 1) (``rng.uniform(seed, "identity", ...)``).
        correlation: ρ in [0, 1].
        fields: the identity field of each column (``unmask.synthetic.params.IDENTITY_FIELDS``).
        causes: ``(B, len(CAUSES))`` standard normals (:func:`cause_draws`); needed when ``ρ > 0``.

    Returns:
        ``u`` itself when ``ρ = 0``; otherwise a new ``(B, F)`` float64 array (fields without a loading are
        copied unchanged).
    """
    rho = check_correlation(correlation)
    if rho == 0.0:
        return u
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != len(fields):
        raise ConfigError(f"identity uniforms must be (B, {len(fields)}), one column per field; got {u.shape}.")
    if causes is None or np.shape(causes) != (len(u), len(CAUSES)):
        raise ConfigError(f"face_correlation > 0 needs the causes of every identity, (B, {len(CAUSES)}) normals "
                          "from cause_draws(seed, identities).")
    loadings = loading_matrix(fields)
    loaded = np.nonzero(np.abs(loadings).sum(1) > 0)[0]
    z = torch.special.ndtri(torch.from_numpy(u[:, loaded]).clamp(U_MIN, U_MAX)).numpy()
    rows = loadings[loaded]
    mixed = z * math.sqrt(1.0 - rho) + math.sqrt(rho) * (np.asarray(causes, dtype=np.float64) @ rows.T)
    out = u.copy()
    out[:, loaded] = torch.special.ndtr(torch.from_numpy(mixed)).clamp(0.0, U_MAX).numpy()
    return out


def identity_uniforms(seed: int, identities: np.ndarray, correlation: float, fields: Sequence[str]) -> np.ndarray:
    """The identity uniforms of a world: ``(B, len(fields))`` float64, correlated when ``ρ > 0``.

    ``fields`` is ``unmask.synthetic.params.IDENTITY_FIELDS`` (the stream's counters, in order).
    """
    ids = np.asarray(identities, dtype=np.int64)
    u = rng.uniform(seed, "identity", ids, n=len(fields))
    if check_correlation(correlation) == 0.0:
        return u
    return correlate_uniforms(u, correlation, fields, cause_draws(seed, ids))


__all__ = ["CAUSES", "LOADINGS", "TEACHING_CORRELATION", "cause_draws", "check_correlation", "correlate_uniforms",
           "identity_uniforms", "loading_matrix"]
