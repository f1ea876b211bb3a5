"""Evaluate an identity embedder: verification on pairs and re-identification on query/gallery.

Used by the identity trainer's validation, the ablation and the CLI alike.
"""

from __future__ import annotations

import numpy as np
import torch

from unmask.data.identity import PairSet, ReIDSet, embed_source, load_batch
from unmask.evaluate.reid import distance_matrix, evaluate_reid, top_k
from unmask.evaluate.verification import cosine_scores, roc_curve, verification_metrics


@torch.no_grad()
def evaluate_embedder(model, reid: ReIDSet | None = None, pairs: PairSet | None = None, *,
                      batch_size: int = 128, device: str | torch.device = "cpu",
                      strip_k: int = 0) -> tuple[dict[str, float], dict[str, object]]:
    """Verification and re-id metrics of ``model.embed`` (the model is put in eval mode and restored).

    Args:
        model: anything with ``embed(images) -> (B, D)`` unit-norm embeddings.
        reid: query/gallery set (cosine distances, Market-1501 protocol), or ``None``.
        pairs: verification pairs (k-fold accuracy over ``pairs.folds``), or ``None``.
        strip_k: if > 0, also return a retrieval strip (query + top-k) of the first query.

    Returns:
        ``(metrics, extras)``: floats (``rank-1``, ``rank-5``, ``rank-10``, ``mAP``, ``accuracy``,
        ``accuracy_std``, ``auc``, ``eer``, ``tar@far=…``) and extras (``roc`` = ``(fpr, tpr)``,
        ``strip`` = PIL image, ``fold_accuracies``).
    """
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    extras: dict[str, object] = {}
    try:
        if reid is not None:
            q = embed_source(model, reid.query, batch_size, device)
            g = embed_source(model, reid.gallery, batch_size, device)
            dist = distance_matrix(q, g, "cosine")
            out = evaluate_reid(dist, reid.query.labels, reid.gallery.labels, reid.query.cameras,
                                reid.gallery.cameras, return_per_query=True)
            metrics.update({k: float(v) for k, v in out.items() if k.startswith("rank-") or k == "mAP"})
            extras["ap"], extras["first_match"] = out["ap"], out["first_match"]
            if strip_k > 0:
                from unmask.evaluate.plots import retrieval_strip

                qi = int(np.argmax(out["first_match"] >= 0))
                chosen, correct = top_k(dist, qi, reid.gallery.labels, reid.gallery.cameras,
                                        int(reid.query.labels[qi]), int(reid.query.cameras[qi]), strip_k)
                query_image = load_batch(reid.query, [qi])["image"][0]
                gallery_images = list(load_batch(reid.gallery, chosen.tolist())["image"]) if len(chosen) else []
                extras["strip"] = retrieval_strip(query_image, gallery_images, correct.tolist())
        if pairs is not None:
            scores = cosine_scores(embed_source(model, pairs.first, batch_size, device),
                                   embed_source(model, pairs.second, batch_size, device))
            ver = verification_metrics(scores, pairs.issame, pairs.folds)
            metrics.update({k: float(v) for k, v in ver.items() if not k.startswith("far@")})
            fpr, tpr, _ = roc_curve(scores, pairs.issame)
            extras["roc"] = (fpr, tpr)
            from unmask.evaluate.verification import kfold_accuracy

            extras["fold_accuracies"] = kfold_accuracy(scores, pairs.issame, pairs.folds)["fold_accuracies"]
    finally:
        model.train(was_training)
    return metrics, extras
