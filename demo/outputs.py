"""What the app writes: every output image encoded once, with its provenance, into a unique file that the app
removes itself after a while.

A *preview* (the before / after slider, the aligned input and recovered crops of the gallery, the painting
editor's background: images the page only shows) is a JPEG; a *download* (the full recovered photo of the page
and of the API, the mask) stays lossless (PNG; JPEG only above 2 megapixels, where PNG costs seconds). All of
them carry the XMP provenance of :mod:`unmask.faces.provenance`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

#: Seconds the app's result files live (:class:`OutputFiles` removes them itself): in a 30-minute soak of this app
#: Gradio's scheduled deletion removed none of them (``python -m unmask.bench app --soak 1800``: +2 files per
#: request throughout), so the app does not rely on it. At 10 requests a second this keeps ~20 minutes of
#: results, ~0.6 GB.
OUTPUT_MAX_AGE_S = 900.0
#: Downloads above this many pixels are written as JPEG (``DOWNLOAD_JPEG_QUALITY``) instead of PNG.
LOSSLESS_MAX_PIXELS = 2_000_000
DOWNLOAD_JPEG_QUALITY = 92
#: JPEG quality of the images the page only shows.
PREVIEW_QUALITY = 88


class OutputFiles:
    """Unique output files in ``root`` (default: ``unmask-outputs/`` in Gradio's cache), removed after
    ``max_age_s``.

    Gradio names a returned *array* by the hash of its encoded bytes and rewrites that file in place, so two
    identical requests at once write the file one of them is streaming ("Too little data for declared
    Content-Length"); hence unique files. A returned path outside Gradio's cache is hashed and copied into it
    (a SHA-256 pass and a second file per output), one inside is served as it is: hence Gradio's cache.
    """

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
        self._root = Path(root) if root is not None else None
        self.max_age_s = max_age_s
        self._last_sweep = time.monotonic()
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder the files go to (created on first use; Gradio's cache is read then, after ``TMPDIR``
        or ``GRADIO_TEMP_DIR`` are set)."""
        with self._lock:
            if self._root is None:
                from gradio.utils import get_upload_folder

                self._root = Path(get_upload_folder()) / "unmask-outputs"
            self._root.mkdir(parents=True, exist_ok=True)
            return self._root

    def save(self, image: np.ndarray, stem: str, provenance=None, *, label: bool = False,
             preview: bool = False) -> str:
        """Write uint8 ``(H, W)`` or ``(H, W, 3)`` ``image`` to a new file and return its path.

        Args:
            provenance: :class:`unmask.faces.provenance.Provenance` for the file's XMP (every image of a recovery
                carries it).
            label: add the visible "face region synthesised" band below the image.
            preview: an image the page only shows: JPEG at :data:`PREVIEW_QUALITY`. Otherwise lossless PNG, or
                JPEG above :data:`LOSSLESS_MAX_PIXELS`.
        """
        from PIL import Image

        from unmask.faces.provenance import encode_image

        self._sweep()
        if preview or image.shape[0] * image.shape[1] > LOSSLESS_MAX_PIXELS:
            fmt, options = "jpg", {"quality": PREVIEW_QUALITY if preview else DOWNLOAD_JPEG_QUALITY}
        else:
            fmt, options = "png", {"compress_level": 1}
        pil_format = "JPEG" if fmt == "jpg" else "PNG"
        fd, path = tempfile.mkstemp(prefix=f"{stem}-", suffix=f".{fmt}", dir=self.root)
        with os.fdopen(fd, "wb") as handle:
            if provenance is None:
                Image.fromarray(image).save(handle, format=pil_format, **options)
            else:
                handle.write(encode_image(image, pil_format, provenance, label=label, **options))
        return path

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.max_age_s / 4:
            return
        self._last_sweep = now
        cutoff = time.time() - self.max_age_s
        for path in self.root.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:  # another request removed it first
                pass


OUTPUTS = OutputFiles()
