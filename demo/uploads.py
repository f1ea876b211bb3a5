"""What the app reads: uploaded files, decoded once with the project's checks, and the validators that refuse a bad
one before any model runs.

The input components hand over raw file paths, so every upload is decoded here through
:func:`unmask.faces.io.load_image`: a bad file gets the project's own message. A validator decodes the file to
check it; the handler that runs next takes that decoded image from a small cache instead of decoding it again.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: Bytes of decoded uploads kept between a validator and its handler (a 40-megapixel photo is 120 MB; an entry
#: leaves the cache when its handler takes it, or when newer ones need the room).
DECODED_CACHE_BYTES = 256 * 2**20


class DecodedUploads:
    """Decoded images by file (path, size, modification time), least recently used first out, ``max_bytes`` in all.

    The arrays are read-only: every reader shares them.
    """

    def __init__(self, max_bytes: int = DECODED_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._images: collections.OrderedDict[tuple, np.ndarray] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(path: str) -> tuple | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return path, stat.st_size, stat.st_mtime_ns

    def put(self, path: str, image: np.ndarray) -> None:
        key = self.key(path)
        if key is None or image.nbytes > self.max_bytes:
            return
        image.setflags(write=False)
        with self._lock:
            if key in self._images:
                return
            self._images[key] = image
            self._bytes += image.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._images.popitem(last=False)
                self._bytes -= old.nbytes

    def take(self, path: str) -> np.ndarray | None:
        """The decoded image of ``path`` if cached (and no longer kept), else ``None``."""
        key = self.key(path)
        with self._lock:
            image = self._images.pop(key, None) if key is not None else None
            if image is not None:
                self._bytes -= image.nbytes
                self.hits += 1
            return image


DECODED = DecodedUploads()


def file_path(value: Any) -> str | None:
    """The path in a Gradio file value (a path string, a FileData-like dict or an object with ``.path``)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return str(getattr(value, "path", value))


def read_image(value: Any, label: str, *, keep: bool = False) -> np.ndarray:
    """Decode an uploaded file with the project's checks; errors name the upload by its own file name.

    ``keep``: leave the decoded image in :data:`DECODED` for the next reader (what a validator does); otherwise a
    cached decoding is taken from it, so the validator's work is not done twice.
    """
    from unmask.errors import ImageError
    from unmask.faces.io import load_image

    path = file_path(value)
    if path is None:
        raise ImageError(f"no {label} given: upload a photo, or pick an example.")
    cached = DECODED.take(path)
    if cached is not None:
        if keep:
            DECODED.put(path, cached)
        return cached
    image = load_image(path, name=f"the {label} ({Path(path).name})")
    if keep:
        DECODED.put(path, image)
    return image


def read_mask(value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """A mask image (white = covered) as float ``(H, W)`` in [0, 1]; ``None`` when not given."""
    from unmask.errors import InputShapeError

    if file_path(value) is None:
        return None
    mask = read_image(value, "mask image").astype(np.float32).mean(axis=2) / 255.0
    if mask.shape != shape:
        raise InputShapeError(f"the mask image is {mask.shape[1]}×{mask.shape[0]} but the photo is "
                              f"{shape[1]}×{shape[0]}; give a mask of the photo's size (white = covered).")
    return mask


def painted_mask(editor_value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """What the user painted on the editor's layers, as float ``(H, W)`` (1 = covered); ``None`` if nothing."""
    import cv2

    if not isinstance(editor_value, dict):
        return None
    painted = None
    for layer in editor_value.get("layers") or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue
        alpha = layer[..., 3].astype(np.float32) / 255.0
        if alpha.shape != shape:
            alpha = cv2.resize(alpha, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        painted = alpha if painted is None else np.maximum(painted, alpha)
    if painted is None or painted.max() < 0.5:
        return None
    return painted


def check_file(value: Any, label: str, required: bool) -> dict:
    """``gr.validate`` for one file input: decoded with the project's checks before any model runs (and kept for
    the handler)."""
    import gradio as gr

    from unmask.errors import UnmaskError

    if file_path(value) is None:
        return gr.validate(not required, f"no {label} given: upload a photo, or pick an example." if required else "")
    try:
        read_image(value, label, keep=True)
    except UnmaskError as exc:
        return gr.validate(False, str(exc))
    return gr.validate(True, "")


def check_steps(steps: Any) -> dict:
    """``gr.validate`` for the optimisation steps: a whole number from 0 to :data:`demo.models.MAX_STEPS`."""
    import gradio as gr

    from demo.models import steps_error

    message = steps_error(steps)
    return gr.validate(message is None, message or "")


def validate_page(image, mask, editor, reference, model, mode, steps, *rest) -> list:
    """Validator of the page's Unmask button (one entry per input)."""
    return [check_file(image, "photo", True), check_file(mask, "mask image", False), None,
            check_file(reference, "reference photo", False), None, None, check_steps(steps), *[None] * len(rest)]


def validate_unmask(image, mask, mode, steps, *rest) -> list:
    """Validator of ``/unmask``."""
    return [check_file(image, "photo", True), check_file(mask, "mask image", False), None, check_steps(steps),
            *[None] * len(rest)]


def validate_verify(image, reference, *rest) -> list:
    """Validator of ``/verify``."""
    return [check_file(image, "photo", True), check_file(reference, "reference photo", True), *[None] * len(rest)]
