"""Re-identification metrics under the Market-1501 protocol: CMC rank-k and mAP.

Protocol (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015): for each
query, the gallery is ranked by distance; gallery images of the query's identity taken by the
query's own camera are removed (they are too easy), junk images (identity -1) are removed for
every query, and distractors (identity 0) stay as ordinary negatives. Queries left with no
correct match are skipped. CMC rank-k is the fraction of queries whose first correct match is
within the top k; AP is the mean of the precision at each correct match's rank (not
interpolated, as in most re-id code since), and mAP its mean over queries.

The computation is vectorised in torch over blocks of queries, so a 10,000 × 10,000 distance
matrix evaluates in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from unmask.errors import InputShapeError

#: Identities the Market-1501 protocol ignores in the gallery.
JUNK_IDS = (-1,)
#: CMC ranks reported by default.
DEFAULT_RANKS = (1, 5, 10)
# Queries per block: a block holds a few (block, G) int64/bool arrays.
_QUERY_BLOCK = 512
_JUNK_MARK = -(1 << 62)


def distance_matrix(query, gallery, metric: str = "euclidean", *, block: int = 4096) -> torch.Tensor:
    """Distances between every query and gallery feature.

    Args:
        query: ``(Q, D)`` features.
        gallery: ``(G, D)`` features.
        metric: ``"euclidean"`` or ``"cosine"`` (``1 − cos``).

    Returns:
        ``(Q, G)`` float32 tensor.
    """
    q = torch.as_tensor(query).float()
    g = torch.as_tensor(gallery).float()
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise InputShapeError(f"features must be (Q, D) and (G, D), got {tuple(q.shape)} and {tuple(g.shape)}.")
    if metric == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
        return torch.cat([1.0 - q[i:i + block] @ g.t() for i in range(0, len(q), block)])
    if metric != "euclidean":
        raise InputShapeError(f"metric {metric!r} unknown; use 'euclidean' or 'cosine'.")
    return torch.cat([torch.cdist(q[i:i + block], g) for i in range(0, len(q), block)])


def evaluate_reid(distances, query_ids, gallery_ids, query_cams, gallery_cams, *,
                  ranks: Sequence[int] = DEFAULT_RANKS, junk_ids: Sequence[int] = JUNK_IDS,
                  return_per_query: bool = False) -> dict[str, object]:
    """CMC and mAP of a query × gallery distance matrix.

    Args:
        distances: ``(Q, G)`` distances (smaller = more alike), array or tensor.
        query_ids, gallery_ids: ``(Q,)`` and ``(G,)`` integer identities.
        query_cams, gallery_cams: ``(Q,)`` and ``(G,)`` integer camera ids.
        ranks: CMC ranks to report.
        junk_ids: gallery identities ignored for every query.
        return_per_query: also return per-query AP and first-match rank (``-1`` = skipped query).

    Returns:
        ``{"rank-1": …, "rank-5": …, "mAP": …, "cmc": (max_rank,) array, "num_valid_queries": int}``
        (fractions in ``[0, 1]``), plus ``"ap"`` and ``"first_match"`` arrays when asked.
    """
    dist = torch.as_tensor(np.asarray(distances) if not isinstance(distances, torch.Tensor) else distances)
    qid, gid, qcam, gcam = (torch.as_tensor(np.asarray(x)).long().reshape(-1)
                            for x in (query_ids, gallery_ids, query_cams, gallery_cams))
    n_q, n_g = dist.shape if dist.ndim == 2 else (-1, -1)
    if dist.ndim != 2 or len(qid) != n_q or len(qcam) != n_q or len(gid) != n_g or len(gcam) != n_g:
        raise InputShapeError(f"distances {tuple(dist.shape)} do not fit {len(qid)} query ids/{len(qcam)} cams "
                              f"and {len(gid)} gallery ids/{len(gcam)} cams.")
    max_rank = max(ranks) if ranks else 1
    # Junk gallery items get an id no query has, so one gathered id array finds matches and junk.
    gid_marked = torch.where(torch.isin(gid, torch.as_tensor(list(junk_ids), dtype=torch.long)),
                             torch.full_like(gid, _JUNK_MARK), gid)
    ap = torch.zeros(n_q, dtype=torch.float64)
    first = torch.full((n_q,), -1, dtype=torch.long)
    for start in range(0, n_q, _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, n_q)
        ap[start:stop], first[start:stop] = _block_ap_and_first_match(
            dist[start:stop], gid_marked, gcam, qid[start:stop], qcam[start:stop])
    valid = first >= 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise InputShapeError("no query has a correct match in the gallery (after removing same-camera "
                              "matches and junk); check identities and cameras.")
    cmc = torch.stack([(first[valid] < r).double().mean() for r in range(1, max_rank + 1)]).numpy()
    out: dict[str, object] = {f"rank-{r}": float(cmc[r - 1]) for r in ranks}
    out.update({"mAP": float(ap[valid].mean()), "cmc": cmc, "num_valid_queries": n_valid})
    if return_per_query:
        out["ap"] = ap.numpy()
        out["first_match"] = first.numpy()
    return out


def _block_ap_and_first_match(dist: torch.Tensor, gid_marked: torch.Tensor, gcam: torch.Tensor,
                              qid: torch.Tensor, qcam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AP and 0-based rank of the first correct match for a block of queries (``-1``: no match).

    Only the sort touches every (query, gallery) entry; everything after works on the sparse
    positions of matches and junk, so the cost stays close to that of sorting.
    """
    n, n_g = dist.shape
    order = torch.sort(dist.float(), dim=1, stable=True).indices
    ids = gid_marked[order]
    match_r, match_c = (ids == qid[:, None]).nonzero(as_tuple=True)
    same_cam = gcam[order[match_r, match_c]] == qcam[match_r]
    good_r, good_c = match_r[~same_cam], match_c[~same_cam]  # row-major order, so sorted by rank per row
    junk_r, junk_c = (ids == _JUNK_MARK).nonzero(as_tuple=True)
    removed = torch.sort(torch.cat([match_r[same_cam] * n_g + match_c[same_cam], junk_r * n_g + junk_c])).values
    # rank among kept images = rank among all - removed images ranked before it in the same row
    removed_before = (torch.searchsorted(removed, good_r * n_g + good_c)
                      - torch.searchsorted(removed, good_r * n_g))
    rank_kept = good_c - removed_before
    n_good = torch.bincount(good_r, minlength=n)
    row_start = torch.cumsum(n_good, 0) - n_good
    hit = torch.arange(len(good_r)) - row_start[good_r] + 1  # 1-based index among the row's correct matches
    precision = hit.double() / (rank_kept + 1).double()
    ap = torch.zeros(n, dtype=torch.float64).index_add_(0, good_r, precision) / n_good.clamp_min(1).double()
    valid = n_good > 0
    first = torch.full((n,), -1, dtype=torch.long)
    first[valid] = rank_kept[row_start[valid]]
    return ap, first


def top_k(distances, query_index: int, gallery_ids, gallery_cams, query_id: int, query_cam: int, k: int = 10, *,
          junk_ids: Sequence[int] = JUNK_IDS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest kept gallery items of one query and whether each is a correct match.

    Same-camera images of the query's identity and junk are skipped, as in :func:`evaluate_reid`.

    Returns:
        ``(gallery_indices (k,), correct (k,) bool)``.
    """
    row = torch.as_tensor(np.asarray(distances[query_index])).float()
    gid = np.asarray(gallery_ids).reshape(-1)
    gcam = np.asarray(gallery_cams).reshape(-1)
    order = torch.sort(row, stable=True).indices.numpy()
    keep = ~(np.isin(gid[order], junk_ids) | ((gid[order] == query_id) & (gcam[order] == query_cam)))
    chosen = order[keep][:k]
    return chosen, gid[chosen] == query_id
