"""Verification and re-identification metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unmask.errors import InputShapeError
from unmask.evaluate.plots import plot_roc, retrieval_strip
from unmask.evaluate.reid import distance_matrix, evaluate_reid, top_k
from unmask.evaluate.verification import (
    best_threshold,
    cosine_scores,
    equal_error_rate,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    tar_at_far,
    verification_metrics,
)

# ---------------------------------------------------------------------------- re-id
# Query 0: identity 1, camera 1. Query 1: identity 2, camera 1. Query 2: identity 3 (not in gallery).
Q_IDS, Q_CAMS = [1, 2, 3], [1, 1, 1]
# g0: id 1 same camera (excluded for q0), g1: id 2, g2: id 1, g3: junk, g4: id 1, g5: distractor 0.
G_IDS, G_CAMS = [1, 2, 1, -1, 1, 0], [1, 2, 2, 3, 3, 1]
DIST = np.array([
    [0.10, 0.20, 0.50, 0.05, 0.90, 0.30],
    [0.40, 0.05, 0.30, 0.20, 0.60, 0.10],
    [0.10, 0.20, 0.30, 0.40, 0.50, 0.60],
])


def test_cmc_and_map_with_same_camera_exclusion_and_junk():
    out = evaluate_reid(DIST, Q_IDS, G_IDS, Q_CAMS, G_CAMS, return_per_query=True)
    # q0 ranking after removing junk g3 and same-camera g0: g1 (wrong), g5 (wrong), g2 (right), g4 (right)
    assert out["first_match"].tolist() == [2, 0, -1]
    assert out["ap"][0] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert out["ap"][1] == pytest.approx(1.0)
    assert out["num_valid_queries"] == 2  # q2 has no match and is skipped
    assert out["rank-1"] == pytest.approx(0.5)
    assert out["rank-5"] == pytest.approx(1.0) and out["rank-10"] == pytest.approx(1.0)
    assert out["cmc"].tolist() == pytest.approx([0.5, 0.5, 1.0] + [1.0] * 7)
    assert out["mAP"] == pytest.approx(((1 / 3 + 2 / 4) / 2 + 1.0) / 2)
    indices, correct = top_k(DIST, 0, G_IDS, G_CAMS, 1, 1, k=3)
    assert indices.tolist() == [1, 5, 2] and correct.tolist() == [False, False, True]


def _reference_reid(dist, qids, gids, qcams, gcams):
    """A plain per-query loop of the Market-1501 protocol, to check the vectorised version."""
    aps, firsts = [], []
    for i in range(len(qids)):
        order = np.argsort(dist[i], kind="stable")
        keep = [j for j in order if gids[j] != -1 and not (gids[j] == qids[i] and gcams[j] == qcams[i])]
        good = [gids[j] == qids[i] for j in keep]
        if not any(good):
            continue
        hits, precisions = 0, []
        for rank, g in enumerate(good, 1):
            if g:
                hits += 1
                precisions.append(hits / rank)
        aps.append(np.mean(precisions))
        firsts.append(good.index(True))
    firsts = np.array(firsts)
    return np.mean(aps), [np.mean(firsts < r) for r in (1, 5, 10)]


def test_vectorised_reid_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    qids, gids = rng.integers(-1, 12, 600), rng.integers(-1, 12, 300)
    qcams, gcams = rng.integers(1, 4, 600), rng.integers(1, 4, 300)
    dist = rng.random((600, 300)).astype(np.float32)
    out = evaluate_reid(torch.from_numpy(dist), qids, gids, qcams, gcams)
    ref_map, ref_cmc = _reference_reid(dist, qids, gids, qcams, gcams)
    assert out["mAP"] == pytest.approx(ref_map, abs=1e-9)
    assert [out["rank-1"], out["rank-5"], out["rank-10"]] == pytest.approx(ref_cmc, abs=1e-12)


def test_distance_matrix_and_errors():
    q, g = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert distance_matrix(q, g).flatten().tolist() == pytest.approx([5.0, 1.0, math.sqrt(20), math.sqrt(2)])
    assert distance_matrix(q[1:], g, "cosine").flatten().tolist() == pytest.approx([0.4, 1.0])
    with pytest.raises(InputShapeError):
        evaluate_reid(DIST, Q_IDS[:2], G_IDS, Q_CAMS, G_CAMS)
    with pytest.raises(InputShapeError):
        evaluate_reid(DIST[2:], [3], G_IDS, [1], G_CAMS)  # no query has a match


# ---------------------------------------------------------------------------- verification
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
SAME = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)


def _pair_embeddings(scores):
    """2-D unit embeddings whose pair cosines are exactly ``scores``."""
    first = np.tile([1.0, 0.0], (len(scores), 1))
    second = np.stack([scores, np.sqrt(1 - scores**2)], axis=1)
    return torch.from_numpy(first).float(), torch.from_numpy(second * 3.0).float()  # norm does not matter


def test_verification_metrics_on_synthetic_embeddings_match_hand_values():
    scores = cosine_scores(*_pair_embeddings(SCORES))
    assert scores == pytest.approx(SCORES, abs=1e-6)
    # 12 of the 16 (positive, negative) pairs are ordered correctly
    assert roc_auc(scores, SAME) == pytest.approx(0.75)
    # FAR 0.25 of 4 negatives allows one false accept: threshold 0.4, TAR 3/4
    assert tar_at_far(scores, SAME, 0.25) == pytest.approx((0.75, 0.25))
    # FAR 1e-3 allows none: threshold at the highest negative 0.7, TAR 2/4
    assert tar_at_far(scores, SAME, 1e-3) == pytest.approx((0.5, 0.0))
    # ROC passes (FAR 0.25, TAR 0.75) where FAR = FRR
    assert equal_error_rate(scores, SAME) == pytest.approx(0.25)
    threshold, acc = best_threshold(scores, SAME)
    assert threshold == pytest.approx(0.5) and acc == pytest.approx(0.75)
    fpr, tpr, thr = roc_curve(scores, SAME)
    assert fpr.tolist() == pytest.approx([0, 0, 0, 0.25, 0.25, 0.5, 0.75, 0.75, 1.0])
    assert tpr.tolist() == pytest.approx([0, 0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0, 1.0])


def test_kfold_threshold_is_chosen_on_the_other_folds():
    # fold 1 alone prefers "accept nothing" (threshold 1.4); applied to fold 0 that gets 1/4.
    # fold 0 alone prefers "accept all" (threshold -0.4); applied to fold 1 that gets 1/4.
    out = kfold_accuracy(SCORES, SAME, folds=[0, 0, 0, 0, 1, 1, 1, 1])
    assert out["thresholds"].tolist() == pytest.approx([1.4, -0.4])
    assert out["fold_accuracies"].tolist() == pytest.approx([0.25, 0.25])
    assert out["accuracy"] == pytest.approx(0.25) and out["accuracy_std"] == pytest.approx(0.0)


def test_separable_embeddings_verify_perfectly():
    rng = np.random.default_rng(0)
    n = 200
    same = np.arange(n) % 2 == 0
    scores = np.where(same, rng.uniform(0.6, 1.0, n), rng.uniform(-0.2, 0.4, n))
    out = verification_metrics(scores, same)
    assert out["accuracy"] == 1.0 and out["auc"] == 1.0 and out["eer"] == 0.0
    assert out["tar@far=0.001"] == 1.0 and 0.4 < out["threshold"] < 0.6
    with pytest.raises(InputShapeError):
        verification_metrics(scores[:5], same)


def test_plots_write_pngs(tmp_path):
    from PIL import Image

    fpr, tpr, _ = roc_curve(SCORES, SAME)
    plot_roc({"model": (fpr, tpr)}, tmp_path / "roc.png")
    assert Image.open(tmp_path / "roc.png").size[0] > 100
    query = np.full((20, 10, 3), 128, np.uint8)
    gallery = [torch.zeros(3, 16, 16), Image.new("RGB", (8, 8))]
    strip = retrieval_strip(query, gallery, [True, False], tmp_path / "strip.png", tile=32, border=2, gap=4)
    assert strip.size == (3 * 36 + 3 * 4, 36)
    pixels = np.asarray(Image.open(tmp_path / "strip.png"))
    second_cell_x = 36 + 8
    assert tuple(pixels[0, second_cell_x]) == (40, 180, 70)  # green frame: right
    assert tuple(pixels[0, second_cell_x + 40]) == (220, 50, 50)  # red frame: wrong
