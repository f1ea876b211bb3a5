"""The re-id benchmark's protocol, the paired decision of the paper's claims, early stopping and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from unmask.data.reid import DISTRACTOR_LABEL, ReIDProtocol, world_reid_data
from unmask.errors import ConfigError
from unmask.evaluate import ablation_report as rep
from unmask.evaluate.claims import (
    HELD,
    NOT_HELD,
    UNDECIDED,
    combine,
    non_inferiority,
    paired_difference,
    superiority,
)
from unmask.evaluate.reid import evaluate_reid
from unmask.synthetic.config import WorldConfig
from unmask.train.loop import Plateau

PROTOCOL = ReIDProtocol(train_identities=8, val_identities=3, test_identities=6, distractor_identities=4,
                        train_views=4, views=8, distractor_views=2, queries_per_identity=2, n_folds=2,
                        pairs_per_fold=3)


@pytest.fixture(scope="module")
def data():
    return world_reid_data(WorldConfig(size=32, n_identities=100, preset="hard"), PROTOCOL)


def test_identities_are_disjoint_across_roles(data):
    roles = data.identities
    assert [len(roles[k]) for k in ("train", "val", "test", "distractor")] == [8, 3, 6, 4]
    for a in roles:
        for b in roles:
            if a != b:
                assert not set(roles[a]) & set(roles[b]), (a, b)
    assert set(data.test.query.labels.tolist()) == {i + 1 for i in roles["test"]}
    assert set(data.val.query.labels.tolist()) == {i + 1 for i in roles["val"]}
    assert sorted(set(data.train.labels.tolist())) == list(range(8))  # contiguous for the softmax
    assert len(data.train) == 8 * 4


def test_queries_are_cross_camera_with_same_camera_matches_and_distractors(data):
    q, g = data.test.query, data.test.gallery
    assert len(q) == 6 * 2 and len(g) == 6 * 6 + 4 * 2
    assert DISTRACTOR_LABEL not in q.labels and (g.labels == DISTRACTOR_LABEL).sum() == 4 * 2
    for pid in np.unique(q.labels):
        cams = q.cameras[q.labels == pid]
        assert len(set(cams.tolist())) == 2  # each query of a person from its own camera
        for cam in cams:
            mine = g.labels == pid
            assert (mine & (g.cameras != cam)).any()  # a cross-camera match exists
            assert (mine & (g.cameras == cam)).any()  # and a same-camera one, which the protocol must drop


def test_protocol_drops_same_camera_matches_and_counts_distractors_wrong(data):
    q, g = data.test.query, data.test.gallery
    same_id = q.labels[:, None] == g.labels[None, :]
    same_cam = q.cameras[:, None] == g.cameras[None, :]
    dist = np.ones((len(q), len(g)))
    dist[same_id & same_cam] = 0.0  # nearest: the same person in the same camera (must be ignored)
    dist[same_id & ~same_cam] = 0.5
    out = evaluate_reid(dist, q.labels, g.labels, q.cameras, g.cameras)
    assert out["rank-1"] == 1.0 and out["mAP"] == 1.0
    dist[:, g.labels == DISTRACTOR_LABEL] = 0.1  # distractors now rank before every true match
    out = evaluate_reid(dist, q.labels, g.labels, q.cameras, g.cameras)
    assert out["rank-1"] == 0.0 and out["num_valid_queries"] == len(q)


def test_verification_pairs_use_test_people_only(data):
    ids = {i + 1 for i in data.identities["test"]}
    labels = set(data.pairs.first.labels.tolist()) | set(data.pairs.second.labels.tolist())
    assert labels <= ids and data.pairs.issame.sum() == 2 * 3


def test_protocol_refuses_what_it_cannot_follow():
    with pytest.raises(ConfigError, match="below views"):
        ReIDProtocol(views=2, queries_per_identity=2)
    with pytest.raises(ConfigError, match="cameras"):
        ReIDProtocol(queries_per_identity=6, views=10).check_world(WorldConfig(n_cameras=6))
    with pytest.raises(ConfigError, match="Raise world.n_identities"):
        ReIDProtocol().check_world(WorldConfig(n_identities=200))


def test_paired_difference_is_the_paired_t_test():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.6, 0.02, 6), rng.normal(0.58, 0.02, 6)
    diff = paired_difference(a, b)
    ref = stats.ttest_rel(a, b)
    assert diff.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (diff.low, diff.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert diff.wins == int((a > b).sum()) and diff.n == 6


def test_verdicts():
    better = paired_difference([0.70, 0.71, 0.72, 0.69, 0.70], [0.60, 0.62, 0.61, 0.60, 0.59])
    worse = paired_difference([0.60, 0.62, 0.61, 0.60, 0.59], [0.70, 0.71, 0.72, 0.69, 0.70])
    noise = paired_difference([0.60, 0.70, 0.61, 0.69, 0.65], [0.65, 0.64, 0.66, 0.63, 0.67])
    assert (superiority(better), superiority(worse), superiority(noise)) == (HELD, NOT_HELD, UNDECIDED)
    close = paired_difference([0.700, 0.702, 0.699, 0.701, 0.700], [0.703, 0.703, 0.701, 0.704, 0.702])
    assert superiority(close) == NOT_HELD and non_inferiority(close, 0.01) == HELD
    assert non_inferiority(worse, 0.01) == NOT_HELD and non_inferiority(noise, 0.01) == UNDECIDED
    assert superiority(paired_difference([0.9], [0.1])) == UNDECIDED  # one seed decides nothing
    assert combine([HELD, HELD]) == HELD and combine([HELD, UNDECIDED]) == UNDECIDED
    assert combine([HELD, NOT_HELD, UNDECIDED]) == NOT_HELD
    with pytest.raises(ConfigError):
        paired_difference([1.0, 2.0], [1.0])


def test_plateau_stops_when_the_curve_is_flat():
    p = Plateau("mAP", patience=2, min_delta=0.01)
    seq = [0.5, 0.6, 0.605, 0.61, 0.615]  # +0.1, then gains of at most 0.01 over the best: flat after two
    flags = [p.update(100 * (i + 1), {"mAP": v}) for i, v in enumerate(seq[:4])]
    assert flags == [False, False, False, True] and p.best_step == 200
    assert p.curve == [(100, 0.5), (200, 0.6), (300, 0.605), (400, 0.61)]
    with pytest.raises(ConfigError, match="not among"):
        Plateau("rank-1", 1, 0.0).update(1, {"mAP": 0.5})
    assert Plateau(None, 1, 0.0).update(1, {}) is False


def _results(values: dict[str, list[float]]) -> dict:
    runs = []
    for name, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            runs.append({"setting": name, "seed": seed, "steps": 1000, "wall_s": 60.0, "precision": "fp32",
                         "hardware": "CPU", "stopped_early": True,
                         "metrics": {"rank-1": v + 0.1, "rank-5": v + 0.2, "mAP": v, "accuracy": 0.9},
                         "cmc": list(np.linspace(v, 1.0, 20)), "curve": [[250, v - 0.1], [500, v]]})
    spec = {"world": {"preset": "hard", "size": 32}, "protocol": {"train_identities": 400, "test_identities": 150,
                                                                   "distractor_identities": 150},
            "training": {"patience": 3, "validate_every": 250, "max_steps": 3000, "p": 8, "k": 4}}
    return {"spec": spec, "runs": runs}


def test_report_decides_each_claim_from_the_results(tmp_path):
    base = [0.60, 0.62, 0.61, 0.63, 0.60]
    values = {name: [v - 0.10 for v in base] for name in rep.SETTINGS}  # every other setting far below
    values[rep.JOINT] = base
    for m in rep.MARGINS[1:]:
        values[f"joint, m = {m:g}"] = [v + 0.002 * ((i % 2) * 2 - 1) for i, v in enumerate(base)]  # the same
    values["joint + attributes, m = 0"] = [v + (0.03 if i % 2 else -0.03) for i, v in enumerate(base)]  # noise
    results = _results(values)
    verdicts = rep.verdicts(results)
    assert verdicts == {rep.CLAIMS[0].name: HELD, rep.CLAIMS[1].name: HELD, rep.CLAIMS[2].name: UNDECIDED}
    (tmp_path / "results.json").write_text(json.dumps(results))
    paths = rep.write_report(rep.read_results(tmp_path), tmp_path)
    text = paths[0].read_text()
    assert "| joint, m = 0 | 5 | 71.2 ± 1.3 |" in text and "undecided at this power" in text
    assert all(p.stat().st_size > 1000 for p in paths[1:])
    with pytest.raises(ConfigError, match="ablation-identity --out"):
        rep.read_results(tmp_path / "missing")


@pytest.mark.slow
def test_ablation_command_trains_resumes_and_refuses_other_settings(tmp_path, capsys):
    from unmask.train.ablation import main

    tiny = ["--out", str(tmp_path), "--only", "triplet", "--max-steps", "4", "--validate-every", "2",
            "--patience", "1", "--train-identities", "8", "--val-identities", "3", "--test-identities", "20",
            "--distractors", "2", "--views", "4", "--train-views", "4", "--widths", "4,4,8,8", "--p", "4", "--k", "2"]
    assert main(tiny) == 0
    results = rep.read_results(tmp_path)
    (run,) = results["runs"]
    assert run["setting"] == "triplet" and run["seed"] == 0 and 2 <= run["steps"] <= 4 and len(run["cmc"]) == 20
    assert run["precision"] == "fp32" and 0.0 <= run["metrics"]["mAP"] <= 1.0
    assert (tmp_path / "report.md").is_file() and (tmp_path / "cmc.png").is_file()
    assert main(tiny) == 0 and len(rep.read_results(tmp_path)["runs"]) == 1  # done runs are not repeated
    assert "0 runs to go, 1 done" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(tiny[:-2] + ["--k", "4"])  # another batch shape cannot be mixed into these results
    assert "made with other settings" in capsys.readouterr().err


def test_docs_and_committed_report_show_the_committed_results():
    """The ablation page's tables are those the committed results.json gives (no stale or hand-made numbers)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = rep.read_results(root / "docs" / "reid_ablation")
    page = (root / "docs" / "reid_ablation.md").read_text()
    assert rep.results_table(results) in page
    assert rep.claims_table(results) in page
    assert rep.report(results) == (root / "docs" / "reid_ablation" / "report.md").read_text()
    seeds = {name: {r["seed"] for r in results["runs"] if r["setting"] == name} for name in rep.SETTINGS}
    assert all(len(seeds[name]) >= 5 for name in rep.PAPER_SETTINGS)  # the ablation's power: >= 5 seeds each
    for claim in rep.CLAIMS:  # every comparison of every claim is paired over at least 5 shared seeds
        for comp in claim.comparisons:
            assert len(seeds[comp.first] & seeds[comp.second]) >= 5, comp


def test_claim_1_compares_at_matched_margins():
    """Claim 1 (joining beats each loss alone) holds the margin fixed; claim 2 alone asks whether it matters."""
    from pathlib import Path

    claim1, claim2 = rep.CLAIMS[0], rep.CLAIMS[1]
    pairs = {(c.first, c.second) for c in claim1.comparisons}
    assert pairs == {(rep.JOINT, "triplet")} | {(f"joint, m = {m:g}", f"softmax, m = {m:g}") for m in rep.MARGINS}
    for comp in claim1.comparisons:
        first, second = rep.SETTINGS[comp.first], rep.SETTINGS[comp.second]
        assert comp.kind == "superiority" and first.triplet > 0 and first.softmax > 0
        assert second.softmax == 0 or second.margin == first.margin, comp
    assert all(rep.SETTINGS[c.first].margin != rep.SETTINGS[c.second].margin for c in claim2.comparisons)

    results = rep.read_results(Path(__file__).resolve().parents[1] / "docs" / "reid_ablation")
    table = rep.claims_table(results)
    assert "| joint, m = 0.3 > softmax, m = 0.3 | +0.0 [-1.4, +1.4] | 2/5 | undecided |" in table
    assert "joint, m = 0 > softmax, m = 0.3" not in table  # the margin question is claim 2's
    assert rep.verdicts(results) == {"1. joint beats each loss alone": "undecided",
                                     "2. no margin needed with the join": "not held",
                                     "3. attributes help": "undecided"}
