"""The teaching world's face correlation ρ, the measured hidden factors and the oracle (the information ceiling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from unmask.errors import ConfigError, UnmaskError
from unmask.evaluate.unmasking import UnmaskingEvalConfig
from unmask.synthetic import FaceWorld, WorldConfig, rng
from unmask.synthetic import params as P
from unmask.synthetic.correlation import (
    LOADINGS,
    TEACHING_CORRELATION,
    cause_draws,
    correlate_uniforms,
    identity_uniforms,
    loading_matrix,
)
from unmask.synthetic.hidden import MEASURED_SHARES, hidden_factors, measure_hidden_shares, visible_factors
from unmask.synthetic.latent import N_FACTORS, world_factors
from unmask.synthetic.oracle import fit_oracle, oracle_for

IDS = torch.arange(6)
IMAGES = torch.arange(6) + 3
CAMERAS = torch.arange(6) % 6


def _gauss(u: np.ndarray) -> np.ndarray:
    return stats.norm.ppf(np.clip(u, 2.0**-53, 1 - 2.0**-53))


# ------------------------------------------------------------------------------------------------ ρ = 0
def test_zero_correlation_returns_the_draws_themselves():
    u = rng.uniform(0, "identity", np.arange(50), n=len(P.IDENTITY_FIELDS))
    assert correlate_uniforms(u, 0.0, P.IDENTITY_FIELDS) is u
    assert np.array_equal(identity_uniforms(0, np.arange(50), 0.0, P.IDENTITY_FIELDS), u)


def test_zero_correlation_world_is_the_independent_world():
    """Params, renders, landmarks and attributes at ρ = 0 are those of the independent draws, bit for bit."""
    world = FaceWorld(WorldConfig(size=64, face_correlation=0.0))
    assert WorldConfig().face_correlation == 0.0
    params = world.params(IDS, IMAGES, CAMERAS)
    independent = P.identity_params_from_uniforms(rng.uniform(0, "identity", IDS.numpy(), n=len(P.IDENTITY_FIELDS)))
    for key, value in independent.items():
        assert torch.equal(params[key], value), key
    out = world.render(IDS, IMAGES, CAMERAS)
    forced = world.render(IDS, IMAGES, CAMERAS, overrides=independent)
    assert torch.equal(out.images, forced.images) and torch.equal(out.landmarks, forced.landmarks)
    assert torch.equal(out.attributes, forced.attributes)
    raw = rng.uniform(0, "identity", IDS.numpy(), n=len(P.IDENTITY_FIELDS))
    assert torch.equal(world_factors(world, IDS, IMAGES, CAMERAS)[:, : raw.shape[1]], torch.from_numpy(raw))
    cols = [P.IDENTITY_FIELDS.index(name) for name in P.CONTINUOUS_IDENTITY]
    expected = torch.from_numpy((raw[:, cols] - 0.5) * math.sqrt(12.0)).float()
    assert torch.equal(world.identity_factors(IDS), expected)


def test_reid_split_does_not_depend_on_the_correlation():
    """The re-identification split (who is query, gallery, train, and in which camera) is drawn apart from the
    faces, and the ablation's own world keeps ρ = 0."""
    from unmask.data.world import ReIDSplit

    small = dict(n_identities=60, n_cameras=4)
    default = ReIDSplit(WorldConfig(**small), n_train_identities=8, n_test_identities=8)
    zero = ReIDSplit(WorldConfig(**small, face_correlation=0.0), n_train_identities=8, n_test_identities=8)
    tied = ReIDSplit(WorldConfig(**small, face_correlation=0.5), n_train_identities=8, n_test_identities=8)
    for part in ("query", "gallery", "train"):
        a, b, c = (getattr(split, part) for split in (default, zero, tied))
        for attr in ("world_ids", "image_ids", "cameras", "kinds", "labels"):
            assert np.array_equal(getattr(a, attr), getattr(b, attr)) and np.array_equal(getattr(a, attr),
                                                                                      getattr(c, attr))
    assert torch.equal(default.query.batch([0, 1])["image"], zero.query.batch([0, 1])["image"])


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "strong"])
def test_bad_correlation_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="face_correlation"):
        WorldConfig(face_correlation=bad)
    with pytest.raises(ConfigError, match="face_correlation"):
        UnmaskingEvalConfig(correlation=bad)


# ------------------------------------------------------------------------------------------------ ρ > 0
def test_marginals_stay_uniform():
    u = identity_uniforms(0, np.arange(4000), 0.75, P.IDENTITY_FIELDS)
    # one KS test per factor, Bonferroni over the 46 fields at 1e-3 overall
    p_values = [stats.kstest(u[:, i], "uniform").pvalue for i in range(u.shape[1])]
    assert min(p_values) > 1e-3 / len(p_values), P.IDENTITY_FIELDS[int(np.argmin(p_values))]
    assert (u >= 0).all() and (u < 1).all()
    # unloaded factors keep their own draw exactly
    raw = rng.uniform(0, "identity", np.arange(4000), n=len(P.IDENTITY_FIELDS))
    unloaded = np.abs(loading_matrix(P.IDENTITY_FIELDS)).sum(1) == 0
    assert np.array_equal(u[:, unloaded], raw[:, unloaded])
    # the world's sex ratio and a categorical factor's table are kept
    params = P.identity_params_from_uniforms(u)
    assert abs(params["male"].mean() - 0.5) < 0.03


def test_a_visible_and_a_hidden_factor_that_share_a_cause_correlate_more_with_rho():
    visible, hidden = "head_w", "jaw_w"
    assert visible in visible_factors() and hidden in hidden_factors()
    assert visible in LOADINGS["face_width"] and hidden in LOADINGS["face_width"]
    ell = loading_matrix(P.IDENTITY_FIELDS)
    i, j = P.IDENTITY_FIELDS.index(visible), P.IDENTITY_FIELDS.index(hidden)
    correlations = []
    for rho in (0.0, 0.25, 0.5, 0.75):
        z = _gauss(identity_uniforms(0, np.arange(6000), rho, P.IDENTITY_FIELDS))
        r = np.corrcoef(z[:, i], z[:, j])[0, 1]
        assert r == pytest.approx(rho * ell[i] @ ell[j], abs=0.04)
        correlations.append(r)
    assert np.all(np.diff(correlations) > 0.05)


def test_causes_are_per_identity():
    a = cause_draws(3, np.array([5, 9, 11]))
    b = cause_draws(3, np.array([11, 5]))
    assert np.array_equal(a[[2, 0]], b)
    with pytest.raises(ConfigError, match="causes"):
        correlate_uniforms(np.full((2, len(P.IDENTITY_FIELDS)), 0.5), 0.5, P.IDENTITY_FIELDS)


def test_teaching_correlation_is_a_valid_knob():
    assert 0.0 < TEACHING_CORRELATION < 1.0
    WorldConfig(face_correlation=TEACHING_CORRELATION)


# ------------------------------------------------------------------------------------------------ hidden factors
def test_hidden_factors_come_from_the_measured_table():
    hidden = hidden_factors()
    assert set(MEASURED_SHARES) == set(P.IDENTITY_FIELDS)
    assert {"mouth_w", "lip_up", "lip_lo", "jaw_w", "chin_y"} <= set(hidden)
    assert not {"eye_w", "eye_dx", "brow_y", "hairline", "head_w"} & set(hidden)
    assert set(hidden) | set(visible_factors()) == set(P.IDENTITY_FIELDS)


@pytest.mark.slow
def test_a_small_measurement_agrees_with_the_table():
    """A few clear-cut factors re-measured on 12 faces land on the same side of the threshold."""
    fields = ("mouth_w", "lip_lo", "mouth_y", "eye_w", "brow_y", "top_y")
    shares = measure_hidden_shares(FaceWorld(WorldConfig()), 12, batch_size=12, fields=fields)
    for name in fields:
        assert (shares[name][0] >= 0.5) == (MEASURED_SHARES[name][0] >= 0.5), (name, shares[name])
        assert shares[name][0] == pytest.approx(MEASURED_SHARES[name][0], abs=0.15)


# ------------------------------------------------------------------------------------------------ the oracle
def test_oracle_at_zero_correlation_is_the_median_given_sex():
    world = FaceWorld(WorldConfig(size=64))
    fit = fit_oracle(world, n_fit=20000, n_test=2000)
    assert all(abs(r2) < 0.01 for r2 in fit.r2.values())
    factors = world_factors(world, IDS, IMAGES, CAMERAS)
    oracle = fit.factors(world, IDS, IMAGES, CAMERAS)
    assert oracle.shape == (6, N_FACTORS)
    hidden = [P.IDENTITY_FIELDS.index(name) for name in fit.hidden]
    kept = [k for k in range(N_FACTORS) if k not in hidden]
    assert torch.equal(oracle[:, kept], factors[:, kept])  # visible identity factors and every image factor
    assert (oracle[:, hidden] - 0.5).abs().max() < 0.06  # the fit's sampling error only
    params = world.params(IDS, IMAGES, CAMERAS)
    painted = fit.render(world, IDS, IMAGES, CAMERAS)
    assert torch.equal(painted.attributes[:, 0], params["male"])  # the true sex is kept


def test_oracle_predicts_more_as_rho_grows():
    r2 = {rho: fit_oracle(FaceWorld(WorldConfig(face_correlation=rho)), n_fit=3000, n_test=1500).r2
          for rho in (0.25, 0.75)}
    assert r2[0.75]["mouth_w"] > 0.5 > r2[0.25]["mouth_w"] > 0.05
    assert all(r2[0.75][k] > r2[0.25][k] for k in r2[0.25] if k in LOADINGS["face_width"])


def test_oracle_refuses_another_world():
    fit = oracle_for(FaceWorld(WorldConfig()))
    with pytest.raises(ConfigError, match="fitted on the world"):
        fit.factors(FaceWorld(WorldConfig(face_correlation=0.5)), IDS, IMAGES, CAMERAS)
    with pytest.raises(ConfigError, match="hidden"):
        fit_oracle(FaceWorld(WorldConfig()), hidden=("not_a_factor",))


def test_oracle_method_needs_the_world_views():
    from unmask.evaluate.methods import Method

    with pytest.raises(UnmaskError, match="views"):
        Method("oracle", None).recover(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))


@pytest.mark.slow
def test_oracle_at_zero_reproduces_the_measured_ceiling():
    """At ρ = 0 the oracle reproduces the ceiling measured before the knob existed (150 held-out identities,
    standard preset): in-mask PSNR 24.3 dB (masked 8.4 dB); dlib's accuracy masked 73.0 %, oracle 84.3 %,
    unmasked 92.3 % at 64 px. A smaller sample here, so the accuracies get their binomial spread."""
    from unmask.evaluate.methods import Method, MethodSet
    from unmask.evaluate.unmasking import MASKED_ROW, UNMASKED_ROW, evaluate_quality, evaluate_verification
    from unmask.verify import DlibJudge

    class _Bundle:
        size, identity_net = 64, None

    methods = MethodSet(methods={"masked": Method("masked", None), "oracle": Method("oracle", None)}, skipped={},
                        bundle=_Bundle())
    config = UnmaskingEvalConfig(n_faces=48, pairs_per_fold=5, n_folds=10, batch_size=50, judges=("dlib",))
    quality, _ = evaluate_quality(methods, config, distance=lambda a, b: (a - b).abs().flatten(1).mean(1),
                                  progress=False)
    assert quality["oracle: visible factors true, hidden predicted"]["psnr_inside"] == pytest.approx(24.3, abs=1.2)
    assert quality[MASKED_ROW]["psnr_inside"] == pytest.approx(8.4, abs=1.5)
    rows, _ = evaluate_verification(methods, config, {"dlib": DlibJudge()}, progress=False)
    rows = rows["dlib ResNet (real faces)"]
    spread = 2.5 * math.sqrt(0.25 / 100)  # 2.5 binomial standard errors of an accuracy on 100 pairs
    accuracy = {row: m["accuracy"] for row, m in rows.items()}
    assert accuracy[MASKED_ROW] == pytest.approx(0.730, abs=spread)
    assert accuracy["oracle: visible factors true, hidden predicted"] == pytest.approx(0.843, abs=spread)
    assert accuracy[UNMASKED_ROW] == pytest.approx(0.923, abs=spread)


# ------------------------------------------------------------------------------------------------ the command
def _entry(rho: float, gap: float | None) -> dict:
    rows = {"unmasked": {"accuracy": 0.9, "accuracy_std": 0.02, "auc": 0.95},
            "masked": {"accuracy": 0.7, "accuracy_std": 0.03, "auc": 0.8},
            "oracle": {"accuracy": 0.8, "accuracy_std": 0.03, "auc": 0.9}}
    quality = {"masked": {"psnr_inside": 8.5}, "oracle": {"psnr_inside": 24.0 + 10 * rho}}
    return {"correlation": rho, "r2": {"mouth_w": 0.6 * rho, "jaw_w": -0.001}, "seconds": 10.0,
            "sizes": {"64": {"quality": quality, "verification": {"dlib": rows}, "gap_closed": {"dlib": gap}}}}


def test_results_merge_by_correlation_and_read_as_a_table():
    from unmask.evaluate.world import merge_results, to_markdown

    old = {"curve": [_entry(0.0, 0.5), _entry(0.5, 0.7)], "seconds": 20.0}
    new = {"curve": [_entry(0.25, None), _entry(0.5, 0.9)], "seconds": 20.0}
    merged = merge_results(old, new)
    assert [e["correlation"] for e in merged["curve"]] == [0.0, 0.25, 0.5]
    assert merged["curve"][2]["sizes"]["64"]["gap_closed"]["dlib"] == 0.9  # the new measurement wins
    table = to_markdown(merged)
    assert "| 0.25 |" in table and "8.5 → 26.5 dB" in table and "– (70.0 → 80.0 / 90.0 %); 67 %" in table
    assert "50 % (70.0 → 80.0 / 90.0 %); 67 %" in table  # AUC: (0.9 - 0.8) / (0.95 - 0.8)


@pytest.mark.slow
def test_world_command_writes_the_curve(tmp_path, capsys):
    import json

    from unmask.evaluate.world import main

    out = tmp_path / "curve.json"
    args = ["--sizes", "64", "--faces", "4", "--pairs-per-fold", "1", "--judges", "teaching", "--json", str(out)]
    assert main(["--correlation", "0.5", *args]) == 0
    assert main(["--correlation", "0", *args]) == 0
    results = json.loads(out.read_text())
    assert [e["correlation"] for e in results["curve"]] == [0.0, 0.5]
    entry = results["curve"][1]
    assert set(entry["r2"]) == set(hidden_factors()) and entry["r2"]["mouth_w"] > 0.2
    size = entry["sizes"]["64"]
    assert size["quality"]["oracle"]["psnr_inside"] > size["quality"]["masked"]["psnr_inside"]
    assert set(size["verification"]["teaching embedder"]) == {"unmasked", "masked", "oracle"}
    assert "--correlation 0.5" in entry["command"]
    assert "| 0.5 |" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="face_correlation"):
        main(["--correlation", "1.5", *args])
