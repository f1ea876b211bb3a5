"""The world's information ceiling: the face an unmasking method could draw if it knew everything visible.

The **oracle** of a masked face keeps every visible identity factor and every per-image factor (pose, light,
expression, camera) true and sets every hidden identity factor (:func:`unmask.synthetic.hidden.hidden_factors`,
measured) to its best prediction from the visible ones. No method that sees only the visible face can do
better on average, so the oracle bounds every unmasking method in that world.

**The prediction** is a linear least-squares fit, in Gaussian coordinates ``z = Φ⁻¹(u)``, of each hidden
factor on all visible identity factors, fitted on :attr:`OracleFit.n_fit` identity draws of the world and
scored (R²) on other draws. Under the world's Gaussian copula (:mod:`unmask.synthetic.correlation`) the
conditional mean of a hidden ``z`` is linear in the visible ``z``, so the fit is the conditional mean up to
sampling error. A discrete visible factor is observable only through its category (whether someone is male,
not where their uniform fell), so it enters the fit as the mean ``z`` of its category on the fit draws. The
hidden factor's uniform is then ``Φ(ẑ)``: its conditional median, which for a discrete hidden factor (the beard
type) is the category in the middle of its conditional law.

At ``ρ = 0`` nothing visible predicts a hidden uniform (R² ≈ 0, ``ẑ ≈ 0``), and the oracle draws each hidden
factor at its median *given sex*: the uniforms → factors maps apply the true sex's shifts.

    >>> world = FaceWorld(WorldConfig(size=64, face_correlation=0.5))
    >>> oracle = fit_oracle(world)
    >>> out = oracle.render(world, torch.arange(4), torch.zeros(4, dtype=torch.long), torch.arange(4))
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from unmask.errors import ConfigError
from unmask.synthetic import params as P
from unmask.synthetic.config import WorldConfig
from unmask.synthetic.correlation import U_MAX, U_MIN, identity_uniforms
from unmask.synthetic.hidden import hidden_factors
from unmask.synthetic.world import FaceWorld, RenderOutput

#: Identity fields observable only through a category, and the factor (``FaceWorld.params`` name) that shows it.
DISCRETE_IDENTITY = {"iris_u": "iris_col", "style_u": "hair_style", "hair_col_u": "hair_col", "male_u": "male",
                     "beard_u": "beard", "glasses_u": "glasses_p", "glasses_col_u": "glasses_col", "hat_u": "hat_p",
                     "bangs_u": "bangs"}
#: Identity ids of the fit and test draws lie far beyond any world's identities (the draws are never rendered).
FIT_OFFSET = 1 << 40
TEST_OFFSET = 1 << 41


def _gauss(u: np.ndarray) -> np.ndarray:
    return torch.special.ndtri(torch.from_numpy(np.asarray(u, dtype=np.float64)).clamp(U_MIN, U_MAX)).numpy()


@dataclasses.dataclass(frozen=True)
class OracleFit:
    """The oracle's predictor of the hidden factors from the visible ones.

    Attributes:
        seed, correlation: the world it was fitted on.
        hidden, visible: identity fields, in ``IDENTITY_FIELDS`` order.
        coef: ``(1 + len(visible), len(hidden))`` least-squares coefficients (intercept first).
        category_means: ``{discrete visible field: {category value: mean z}}`` from the fit draws.
        r2: ``{hidden field: R²}`` of the prediction on :attr:`n_test` held-out draws (Gaussian coordinates).
        n_fit, n_test: draws used.
    """

    seed: int
    correlation: float
    hidden: tuple[str, ...]
    visible: tuple[str, ...]
    coef: np.ndarray
    category_means: dict[str, dict[float, float]]
    r2: dict[str, float]
    n_fit: int
    n_test: int

    def features(self, u: np.ndarray) -> np.ndarray:
        """Regressors ``(B, 1 + len(visible))`` of identity uniforms ``u (B, len(IDENTITY_FIELDS))``."""
        return _features(u, self.visible, self.category_means)

    def predict_uniforms(self, u: np.ndarray) -> np.ndarray:
        """``u`` with every hidden column replaced by ``Φ(ẑ)``, its prediction from the visible columns."""
        u = np.asarray(u, dtype=np.float64)
        z_hat = self.features(u) @ self.coef
        out = u.copy()
        columns = [P.IDENTITY_FIELDS.index(name) for name in self.hidden]
        out[:, columns] = torch.special.ndtr(torch.from_numpy(z_hat)).clamp(0.0, U_MAX).numpy()
        return out

    def factors(self, world: FaceWorld, identities, image_ids, cameras) -> torch.Tensor:
        """The oracle's factor uniforms ``(B, N_FACTORS)`` float64 (:data:`unmask.synthetic.latent.FACTOR_NAMES`)."""
        from unmask.synthetic.latent import world_factors

        self._check_world(world)
        factors = world_factors(world, identities, image_ids, cameras)
        n = len(P.IDENTITY_FIELDS)
        factors[:, :n] = torch.from_numpy(self.predict_uniforms(factors[:, :n].numpy()))
        return factors

    def render(self, world: FaceWorld, identities, image_ids, cameras, *, size: int | None = None) -> RenderOutput:
        """Paint the oracle of each face (as ``FaceWorld.render``: ``(B, 3, size, size)`` in [-1, 1])."""
        from unmask.synthetic.latent import factor_params

        params = factor_params(world, self.factors(world, identities, image_ids, cameras))
        return world.render(identities, image_ids, cameras, size=size, overrides=params)

    def _check_world(self, world: FaceWorld) -> None:
        if (world.config.seed, world.config.face_correlation) != (self.seed, self.correlation):
            raise ConfigError(f"this oracle was fitted on the world with seed={self.seed}, face_correlation="
                              f"{self.correlation}; fit one for seed={world.config.seed}, face_correlation="
                              f"{world.config.face_correlation} with fit_oracle(world).")


def _categories(u: np.ndarray, fields) -> dict[str, np.ndarray]:
    params = P.identity_params_from_uniforms(u)
    return {name: params[DISCRETE_IDENTITY[name]].numpy().astype(np.float64)
            for name in fields if name in DISCRETE_IDENTITY}


def _features(u: np.ndarray, visible, category_means) -> np.ndarray:
    z = _gauss(u)
    categories = _categories(u, visible)
    columns = [np.ones(len(u))]
    for name in visible:
        if name in DISCRETE_IDENTITY:
            means = category_means[name]
            columns.append(np.array([means.get(float(c), 0.0) for c in categories[name]]))
        else:
            columns.append(z[:, P.IDENTITY_FIELDS.index(name)])
    return np.stack(columns, axis=1)


def fit_oracle(world: FaceWorld, hidden: tuple[str, ...] | None = None, *, n_fit: int = 50000,
               n_test: int = 5000) -> OracleFit:
    """Fit the oracle's predictor on ``n_fit`` identity draws of ``world`` and score it on ``n_test`` others.

    Args:
        world: its seed and face correlation define the draws.
        hidden: the hidden identity fields (default: the measured :func:`~unmask.synthetic.hidden.hidden_factors`).
        n_fit, n_test: identity draws (only uniforms, nothing is rendered: a few seconds). The fit's own
            sampling error moves a prediction by about 0.03 standard deviations (at ρ = 0 the hidden uniforms land
            within 0.05 of their median 0.5).
    """
    hidden = hidden_factors() if hidden is None else tuple(hidden)
    unknown = sorted(set(hidden) - set(P.IDENTITY_FIELDS))
    if unknown or not hidden:
        raise ConfigError("hidden must name identity fields of unmask.synthetic.params.IDENTITY_FIELDS; "
                          f"got {unknown or '()'}.")
    if n_fit < 10 * len(P.IDENTITY_FIELDS) or n_test < 10:
        raise ConfigError(f"n_fit={n_fit} is too few draws for {len(P.IDENTITY_FIELDS)} factors; use at least "
                          f"{10 * len(P.IDENTITY_FIELDS)} (and n_test >= 10).")
    seed, rho = world.config.seed, world.config.face_correlation
    hidden = tuple(name for name in P.IDENTITY_FIELDS if name in hidden)
    visible = tuple(name for name in P.IDENTITY_FIELDS if name not in hidden)
    columns = [P.IDENTITY_FIELDS.index(name) for name in hidden]
    u_fit = identity_uniforms(seed, FIT_OFFSET + np.arange(n_fit), rho, P.IDENTITY_FIELDS)
    z_fit = _gauss(u_fit)
    category_means = {}
    for name, values in _categories(u_fit, visible).items():
        zi = z_fit[:, P.IDENTITY_FIELDS.index(name)]
        category_means[name] = {float(c): float(zi[values == c].mean()) for c in np.unique(values)}
    coef, *_ = np.linalg.lstsq(_features(u_fit, visible, category_means), z_fit[:, columns], rcond=None)
    u_test = identity_uniforms(seed, TEST_OFFSET + np.arange(n_test), rho, P.IDENTITY_FIELDS)
    z_test = _gauss(u_test)[:, columns]
    residual = z_test - _features(u_test, visible, category_means) @ coef
    r2 = 1.0 - (residual**2).mean(0) / z_test.var(0)
    return OracleFit(seed=seed, correlation=rho, hidden=hidden, visible=visible, coef=coef,
                     category_means=category_means, r2=dict(zip(hidden, r2.tolist(), strict=True)),
                     n_fit=n_fit, n_test=n_test)


@functools.lru_cache(maxsize=8)
def _cached_fit(seed: int, correlation: float, hidden: tuple[str, ...]) -> OracleFit:
    return fit_oracle(FaceWorld(WorldConfig(seed=seed, face_correlation=correlation)), hidden)


def oracle_for(world: FaceWorld, hidden: tuple[str, ...] | None = None) -> OracleFit:
    """The oracle of ``world`` (fitted once per seed, face correlation and hidden set, then reused)."""
    hidden = hidden_factors() if hidden is None else tuple(hidden)
    return _cached_fit(world.config.seed, world.config.face_correlation, hidden)


__all__ = ["DISCRETE_IDENTITY", "OracleFit", "fit_oracle", "oracle_for"]
