"""Writing and reading image files with their provenance: the XMP packet in every one, and a signed C2PA manifest
in those with synthesised pixels (the output photo and the recovered crops). Every image the app, the CLI,
:meth:`unmask.pipeline.UnmaskResult.save`, the API and the MCP tools write goes through :func:`encode_image`."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unmask.errors import ImageError, InputShapeError
from unmask.faces.provenance.credentials import sign_image, signs
from unmask.faces.provenance.label import label_image
from unmask.faces.provenance.record import FORMATS, LABEL, PNG_XMP_KEYWORD, Provenance


def pil_save_kwargs(fmt: str, provenance: Provenance) -> dict[str, Any]:
    """The ``Image.save`` arguments that embed ``provenance`` in a file of Pillow format ``fmt``.

    Raises:
        ImageError: the format cannot carry XMP (use PNG, JPEG or WebP).
    """
    fmt = fmt.upper()
    xmp = provenance.to_xmp()
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt(PNG_XMP_KEYWORD, xmp, zip=False)  # XMP Part 3: uncompressed iTXt, empty language
        return {"pnginfo": info}
    if fmt in ("JPEG", "WEBP"):
        return {"xmp": xmp.encode("utf-8")}
    raise ImageError(f"{fmt} files cannot carry unmask's provenance metadata; save as .png, .jpg or .webp.")


def encode_with_xmp(image: np.ndarray, fmt: str, provenance: Provenance, *, label: bool = False,
                    **save_kwargs: Any) -> bytes:
    """Encode uint8 ``image`` as ``fmt`` (``"PNG"``, ``"JPEG"``, ``"WEBP"``) with ``provenance`` in XMP only:
    the first half of :func:`encode_image` (which every writer calls)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputShapeError(f"images are written from uint8 (H, W, 3) or (H, W) arrays, got {image.dtype} "
                              f"{image.shape}.")
    if label:
        image = label_image(image)
        provenance = dataclasses.replace(provenance, label=LABEL)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt.upper(), **save_kwargs, **pil_save_kwargs(fmt, provenance))
    return buffer.getvalue()


def encode_image(image: np.ndarray, fmt: str, provenance: Provenance, *, label: bool = False,
                 **save_kwargs: Any) -> bytes:
    """Encode uint8 ``image`` as ``fmt`` (``"PNG"``, ``"JPEG"``, ``"WEBP"``) with ``provenance`` in XMP, and, for
    an image with synthesised pixels, a signed C2PA manifest (:mod:`unmask.faces.provenance.credentials`).

    ``label`` first adds the visible band (:func:`~unmask.faces.provenance.label.label_image`) and records its
    text; ``save_kwargs`` go to Pillow (``quality=92``, ``compress_level=1``…).

    Raises:
        ImageError: the format carries neither.
        ConfigError: the operator's signing key is unusable.
    """
    data = encode_with_xmp(image, fmt, provenance, label=label, **save_kwargs)
    if signs(provenance):
        data = sign_image(data, fmt, dataclasses.replace(provenance, label=LABEL) if label else provenance)
    return data


def save_image(path: str | os.PathLike, image: np.ndarray, provenance: Provenance, *, label: bool = False,
               **save_kwargs: Any) -> Path:
    """Write ``image`` to ``path`` (``.png``, ``.jpg``/``.jpeg`` or ``.webp``) atomically, with its provenance
    (:func:`encode_image`).

    Raises:
        ImageError: the suffix names no format that carries it.
    """
    from unmask.faces.io import atomic_write

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ImageError(f"cannot write {path.name!r} with provenance metadata: use a .png, .jpg or .webp name.")
    return atomic_write(path, encode_image(image, fmt, provenance, label=label, **save_kwargs))


def read_provenance(source: str | os.PathLike | bytes) -> Provenance | None:
    """The provenance in an image file's XMP (path or encoded bytes); ``None`` when it holds none of unmask's.

    Raises:
        ImageError: the file is not an image, or its XMP is not well-formed.
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            xmp = im.info.get("xmp")
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read the metadata of {source if not isinstance(source, bytes) else 'the bytes'}: "
                         f"{exc}") from exc
    return Provenance.from_xmp(xmp) if xmp else None
