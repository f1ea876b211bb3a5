"""Figures for evaluation reports: ROC curves (matplotlib) and re-id retrieval strips (PIL).

matplotlib is imported inside :func:`plot_roc` with the non-interactive Agg backend, so importing
this module stays light and never opens a window.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from unmask.errors import InputShapeError

#: Border colours of the retrieval strip (RGB).
QUERY_COLOUR = (60, 110, 230)
CORRECT_COLOUR = (40, 180, 70)
WRONG_COLOUR = (220, 50, 50)
#: Lowest FAR drawn on the log axis of the ROC plot.
MIN_PLOTTED_FAR = 1e-5


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, *,
             title: str = "ROC", log_far: bool = True) -> None:
    """Save ROC curves (TAR against FAR) to a PNG.

    Args:
        curves: ``{label: (fpr, tpr)}``, e.g. from :func:`unmask.evaluate.verification.roc_curve`.
        path: output ``.png``.
        title: figure title.
        log_far: log-scale FAR axis (where face verification is judged).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    try:
        for label, (fpr, tpr) in curves.items():
            fpr = np.asarray(fpr, dtype=np.float64)
            ax.plot(np.maximum(fpr, MIN_PLOTTED_FAR) if log_far else fpr, tpr, label=label)
        if log_far:
            ax.set_xscale("log")
            ax.set_xlim(MIN_PLOTTED_FAR, 1.0)
        ax.set_ylim(0.0, 1.01)
        ax.set_xlabel("false accept rate")
        ax.set_ylabel("true accept rate")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if curves:
            ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.fspath(path))
    finally:
        plt.close(fig)


def retrieval_strip(query, gallery: Sequence, correct: Sequence[bool], path: str | os.PathLike | None = None, *,
                    tile: int = 96, border: int = 4, gap: int = 8) -> Image.Image:
    """A row of images: the query (blue frame), then the top-k gallery hits, green if right, red if wrong.

    Args:
        query: the query image: uint8 ``(H, W, 3)`` array, PIL image, or tensor ``(3, H, W)`` in ``[-1, 1]``.
        gallery: the ranked gallery images, same forms.
        correct: one bool per gallery image.
        path: optional ``.png`` to save.
        tile: size each image is resized to.

    Returns:
        the strip as a PIL image.
    """
    if len(gallery) != len(correct):
        raise InputShapeError(f"{len(gallery)} gallery images but {len(correct)} correct flags.")
    cell = tile + 2 * border
    width = cell * (1 + len(gallery)) + gap * len(gallery) + gap  # extra gap after the query
    strip = Image.new("RGB", (width, cell), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    items = [(query, QUERY_COLOUR)] + [(g, CORRECT_COLOUR if ok else WRONG_COLOUR) for g, ok in zip(gallery, correct)]
    x = 0
    for i, (image, colour) in enumerate(items):
        draw.rectangle([x, 0, x + cell - 1, cell - 1], fill=colour)
        strip.paste(_to_pil(image).resize((tile, tile), Image.BILINEAR), (x + border, border))
        x += cell + gap + (gap if i == 0 else 0)
    if path is not None:
        strip.save(os.fspath(path))
    return strip


def _to_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if hasattr(image, "detach"):  # a (3, H, W) tensor in [-1, 1]
        from unmask.faces.io import to_uint8

        return Image.fromarray(to_uint8(image.detach().float()[None])[0])
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise InputShapeError(f"images must be uint8 (H, W, 3), PIL, or (3, H, W) tensors; got {array.dtype} "
                              f"{array.shape}.")
    return Image.fromarray(array)
