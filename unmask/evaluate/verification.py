"""Face verification metrics: k-fold accuracy, ROC, AUC, TAR at fixed FAR, EER.

The protocol is LFW's (Huang et al. 2007, "unrestricted, labeled outside data"): pairs come in 10
folds; for each fold the decision threshold is the one that maximises accuracy on the other nine,
and the reported accuracy is the mean ± std over the ten held-out folds. Scores are similarities
(higher = more alike, e.g. cosine of L2-normalised embeddings); a pair is declared "same" when its
score is strictly above the threshold.

Everything here is NumPy on 1-D arrays; the embedding model is not needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unmask.data.folds import DEFAULT_FOLDS, default_folds
from unmask.errors import InputShapeError

#: False-accept rates at which the true-accept rate is reported.
DEFAULT_FARS = (1e-3, 1e-4)


def cosine_scores(embeddings1, embeddings2) -> np.ndarray:
    """Cosine similarity of each pair of rows.

    Args:
        embeddings1, embeddings2: ``(N, D)`` arrays or tensors (any norm).

    Returns:
        ``(N,)`` similarities in ``[-1, 1]``.
    """
    a = _as_numpy(embeddings1).astype(np.float64)
    b = _as_numpy(embeddings2).astype(np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputShapeError(f"pair embeddings must both be (N, D), got {a.shape} and {b.shape}.")
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(1)


def roc_curve(scores, issame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC over every distinct score used as a threshold (accept when ``score >= threshold``).

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(T + 1,)``; the first point is ``(0, 0)`` at ``+inf``.
    """
    scores, issame = _check(scores, issame)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], issame[order]
    last_of_value = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # group ties
    tp = np.cumsum(y)[last_of_value]
    fp = np.cumsum(~y)[last_of_value]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, s[last_of_value]]


def roc_auc(scores, issame) -> float:
    """Area under the ROC curve (ties count one half)."""
    fpr, tpr, _ = roc_curve(scores, issame)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tar_at_far(scores, issame, far: float) -> tuple[float, float]:
    """True-accept rate at the threshold that lets at most ``far`` of the negatives through.

    The threshold is the ``(⌊far·N⁻⌋ + 1)``-th highest negative score, and a pair is accepted when
    its score is strictly above it. With fewer than ``1 / far`` negatives this is the strictest
    threshold (no false accept), so the result is a lower bound; the actual FAR is returned too.

    Returns:
        ``(tar, actual_far)``.
    """
    scores, issame = _check(scores, issame)
    neg = np.sort(scores[~issame])[::-1]
    pos = scores[issame]
    k = int(np.floor(far * len(neg) + 1e-9))
    threshold = -np.inf if k >= len(neg) else neg[k]
    return float(np.mean(pos > threshold)) if len(pos) else 0.0, float(np.mean(neg > threshold)) if len(neg) else 0.0


def equal_error_rate(scores, issame) -> float:
    """Rate at which false accepts equal false rejects, interpolated linearly along the ROC."""
    fpr, tpr, _ = roc_curve(scores, issame)
    diff = fpr - (1.0 - tpr)  # rises from -1 to +1 as the threshold falls
    i = int(np.argmax(diff >= 0))
    if i == 0:
        return float(fpr[0])
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def best_threshold(scores, issame) -> tuple[float, float]:
    """The threshold maximising accuracy (same when ``score > threshold``) and that accuracy.

    Candidates are midpoints between consecutive distinct scores plus one below and one above all;
    the lowest best candidate wins ties.
    """
    scores, issame = _check(scores, issame)
    values, inverse = np.unique(scores, return_inverse=True)
    pos_per = np.bincount(inverse, weights=issame.astype(np.float64), minlength=len(values))
    neg_per = np.bincount(inverse, weights=(~issame).astype(np.float64), minlength=len(values))
    n_pos = pos_per.sum()
    # candidate j puts values[:j] below the threshold: j = 0 (all accepted) … len(values) (none)
    neg_below = np.r_[0.0, np.cumsum(neg_per)]
    pos_above = n_pos - np.r_[0.0, np.cumsum(pos_per)]
    correct = neg_below + pos_above
    j = int(np.argmax(correct))
    if j == 0:
        threshold = values[0] - 1.0
    elif j == len(values):
        threshold = values[-1] + 1.0
    else:
        threshold = (values[j - 1] + values[j]) / 2.0
    return float(threshold), float(correct[j] / len(scores))


def kfold_accuracy(scores, issame, folds=None, n_folds: int = DEFAULT_FOLDS) -> dict[str, object]:
    """Accuracy with each fold's threshold chosen on the other folds.

    Args:
        scores: ``(N,)`` similarities.
        issame: ``(N,)`` booleans.
        folds: ``(N,)`` fold index per pair; default :func:`default_folds`.
        n_folds: folds when ``folds`` is not given.

    Returns:
        ``{"accuracy": mean, "accuracy_std": std, "fold_accuracies": (F,), "thresholds": (F,)}``.
    """
    scores, issame = _check(scores, issame)
    folds = default_folds(len(scores), n_folds) if folds is None else np.asarray(folds).reshape(-1)
    if len(folds) != len(scores):
        raise InputShapeError(f"folds has {len(folds)} entries for {len(scores)} pairs.")
    accs, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        if test.all():
            raise InputShapeError("k-fold accuracy needs at least two folds.")
        threshold, _ = best_threshold(scores[~test], issame[~test])
        accs.append(float(np.mean((scores[test] > threshold) == issame[test])))
        thresholds.append(threshold)
    accs_arr = np.array(accs)
    return {"accuracy": float(accs_arr.mean()), "accuracy_std": float(accs_arr.std()),
            "fold_accuracies": accs_arr, "thresholds": np.array(thresholds)}


def verification_metrics(scores, issame, folds=None, *, n_folds: int = DEFAULT_FOLDS,
                         fars: Sequence[float] = DEFAULT_FARS) -> dict[str, float]:
    """All verification numbers in one dict of floats.

    Keys: ``accuracy``, ``accuracy_std`` (k-fold), ``threshold`` (mean fold threshold), ``auc``,
    ``eer``, and ``tar@far=<far>`` plus ``far@far=<far>`` (the FAR actually reached) per ``far``.
    """
    kfold = kfold_accuracy(scores, issame, folds, n_folds)
    out = {"accuracy": kfold["accuracy"], "accuracy_std": kfold["accuracy_std"],
           "threshold": float(np.mean(kfold["thresholds"])), "auc": roc_auc(scores, issame),
           "eer": equal_error_rate(scores, issame)}
    for far in fars:
        tar, actual = tar_at_far(scores, issame, far)
        out[f"tar@far={far:g}"] = tar
        out[f"far@far={far:g}"] = actual
    return out


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check(scores, issame) -> tuple[np.ndarray, np.ndarray]:
    s = _as_numpy(scores).astype(np.float64).reshape(-1)
    y = _as_numpy(issame).astype(bool).reshape(-1)
    if len(s) != len(y):
        raise InputShapeError(f"{len(s)} scores but {len(y)} same/different labels.")
    if len(s) == 0:
        raise InputShapeError("no pairs to evaluate.")
    if not np.isfinite(s).all():
        raise InputShapeError("scores contain NaN or inf; check the embeddings.")
    return s, y
