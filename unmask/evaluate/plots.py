"""Figures for evaluation reports: ROC curves (matplotlib), re-id retrieval strips and face grids (PIL).

matplotlib is imported inside the ROC functions with the non-interactive Agg backend, so importing
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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _draw_roc(ax, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, log_far: bool) -> None:
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
        ax.legend(loc="lower right", fontsize=7)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, *,
             title: str = "ROC", log_far: bool = True) -> None:
    """Save ROC curves (TAR against FAR) to a PNG.

    Args:
        curves: ``{label: (fpr, tpr)}``, e.g. from :func:`unmask.evaluate.verification.roc_curve`.
        path: output ``.png``.
        title: figure title.
        log_far: log-scale FAR axis (where face verification is judged).
    """
    plot_roc_panels({title: curves}, path, log_far=log_far)


def plot_roc_panels(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], path: str | os.PathLike,
                    *, log_far: bool = True, suptitle: str | None = None) -> None:
    """Save one ROC panel per judge side by side in a PNG.

    Args:
        panels: ``{panel title: {label: (fpr, tpr)}}`` (e.g. one panel per verification network).
        path: output ``.png``.
        log_far: log-scale FAR axes.
        suptitle: optional title over all panels.
    """
    if not panels:
        raise InputShapeError("plot_roc_panels needs at least one panel of curves.")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=100, squeeze=False)
    try:
        for ax, (title, curves) in zip(axes[0], panels.items()):
            _draw_roc(ax, curves, title, log_far)
        if suptitle:
            fig.suptitle(suptitle)
        fig.tight_layout()
        fig.savefig(os.fspath(path))
    finally:
        plt.close(fig)


def image_grid(columns: Mapping[str, Sequence], path: str | os.PathLike | None = None, *, tile: int = 96,
               gap: int = 4, header: int = 18) -> Image.Image:
    """A grid of faces: one labelled column per method, one row per face (e.g. masked | … | target).

    Args:
        columns: ``{label: images}``, every column the same number of images (uint8 ``(H, W, 3)``
            arrays, PIL images, or ``(3, H, W)`` tensors in ``[-1, 1]``).
        path: optional ``.png`` to save.
        tile: size each image is resized to; gap: pixels between tiles; header: height of the label row.

    Returns:
        the grid as a PIL image.
    """
    lengths = {len(images) for images in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise InputShapeError(f"every grid column needs the same, non-zero number of images; got "
                              f"{ {label: len(images) for label, images in columns.items()} }.")
    rows = lengths.pop()
    width = len(columns) * (tile + gap) + gap
    grid = Image.new("RGB", (width, header + rows * (tile + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for c, (label, images) in enumerate(columns.items()):
        x = gap + c * (tile + gap)
        draw.text((x + 2, 3), label[: max(1, tile // 6)], fill=(0, 0, 0))
        for r, image in enumerate(images):
            grid.paste(_to_pil(image).resize((tile, tile), Image.BILINEAR), (x, header + gap + r * (tile + gap)))
    if path is not None:
        grid.save(os.fspath(path))
    return grid


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
