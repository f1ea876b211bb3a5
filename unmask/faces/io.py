"""Load any user image as uint8 RGB, refusing bad input with a clear :class:`ImageError`.

Handles what ordinary photos bring: EXIF orientation, grayscale, palette, RGBA / LA (composited on
white), CMYK, and 16-bit PNGs. Empty files, text, SVG (vector) files and animations are refused by name.
The pixel count is checked from the header *before* any pixels are
decoded, so a file that claims 20000×20000 pixels is refused in microseconds instead of eating memory.

The small image helpers every module shares also live here, once: :data:`IMAGE_SUFFIXES` (which files
are images), :func:`to_uint8` / :func:`from_uint8` (tensors in ``[-1, 1]`` ↔ uint8 HWC arrays) and
:func:`quantize` / :func:`dequantize` (↔ uint8 tensors, for pools kept on a device),
:func:`resize_images` (tensors) and :func:`resize_image` (arrays), and :func:`atomic_write` /
:func:`save_image` (temporary name, then ``os.replace``, so a killed run never leaves a half-written file).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unmask.errors import ImageError, InputShapeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Largest image accepted, in pixels (40 megapixels, e.g. 7300×5470). Bigger photos are refused
#: before decoding; downscale them first (any face is still far larger than the 1024-px FFHQ crop).
MAX_PIXELS: int = 40_000_000
#: Smallest side accepted, in pixels. Below this there cannot be a usable face.
MIN_SIDE: int = 16

_WHITE = 255.0
#: File suffixes treated as images by every reader and CLI (lower case; compare ``path.suffix.lower()``).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Bytes read to recognise what a file that is not a raster image is.
_SNIFF_BYTES = 512


def load_image(source: str | os.PathLike | bytes | np.ndarray | Image.Image, *, name: str | None = None) -> np.ndarray:
    """Decode ``source`` into a contiguous ``uint8`` array of shape ``(H, W, 3)``, RGB.

    Args:
        source: a file path, the encoded bytes of a file, a PIL image, or an array
            ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of dtype uint8, uint16
            (0..65535), bool, or float (0..1, or 0..255 when the maximum exceeds 1).
        name: how error messages call the source (e.g. the uploaded file's own name); default: the path,
            or its kind.

    Returns:
        ``np.ndarray`` uint8 ``(H, W, 3)``; EXIF orientation applied; alpha composited on white.

    Raises:
        ImageError: the source is missing, not an image, truncated, smaller than ``MIN_SIDE`` or
            larger than ``MAX_PIXELS``. The message says which, and what to do.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, what=name or "array")
    if isinstance(source, Image.Image):
        return _from_pil(source, what=name or "PIL image")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), what=name or "image bytes")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No image file at {str(path)!r}: check the path.")
        with open(path, "rb") as handle:
            return _decode(handle, what=name or f"{str(path)!r}")
    raise ImageError(
        f"Cannot read an image from a {type(source).__name__}; give a file path, bytes, a PIL image or a numpy array."
    )


def _check_size(width: int, height: int, what: str) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(
            f"{what} is {width}×{height} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed to hold a face."
        )
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{what} is {width}×{height} = {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{MAX_PIXELS / 1e6:.0f}; downscale it first (or raise unmask.faces.io.MAX_PIXELS)."
        )


def _sniff(head: bytes) -> str | None:
    """What a file that PIL cannot read most likely is, from its first bytes (``None``: no idea)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text) or b"<svg" in text[:_SNIFF_BYTES]:
        return "an SVG (vector) file; export it as a PNG or JPEG photo first"
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page, not an image; save the picture itself (right click → save image)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file, not an image; upload a JPEG, PNG or WebP photo"


def _decode(handle, what: str) -> np.ndarray:
    head = handle.read(_SNIFF_BYTES)
    if not head:
        raise ImageError(f"{what} is empty (0 bytes); the upload or download did not finish, try again.")
    handle.seek(0)
    try:
        with warnings.catch_warnings():
            # Our own MAX_PIXELS check below is stricter than PIL's bomb warning; silence the warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(handle)  # reads the header only
    except Image.DecompressionBombError as err:  # PIL's own header check, at 2 × Image.MAX_IMAGE_PIXELS
        raise ImageError(
            f"{what} claims over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels, over the limit of "
            f"{MAX_PIXELS / 1e6:.0f}; downscale it first."
        ) from err
    except UnidentifiedImageError as err:
        kind = _sniff(head)
        if kind is not None:
            raise ImageError(f"{what} is {kind}.") from err
        raise ImageError(f"{what} is not an image PIL can read (JPEG, PNG, WebP, BMP, TIFF, ...).") from err
    except OSError as err:
        raise ImageError(f"{what} could not be opened: {err}.") from err
    with image:
        width, height = image.size
        _check_size(width, height, what)
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and image.format != "MPO":  # MPO: a camera JPEG with a preview frame, a still photo
            raise ImageError(f"{what} is an animation ({frames} frames); upload a still photo, e.g. one frame "
                             "exported as PNG or JPEG.")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise ImageError(f"{what} is damaged or truncated ({err}); re-export or re-download it.") from err
        return _from_pil(image, what)


def _from_pil(image: Image.Image, what: str) -> np.ndarray:
    _check_size(image.width, image.height, what)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose an otherwise good photo
        pass
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _from_array(np.asarray(image), what, max_value=65535.0 if mode != "I" else None)
    if mode == "F":
        return _from_array(np.asarray(image), what)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        return _from_array(np.asarray(image.convert("RGBA")), what)
    if mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _from_array(array: np.ndarray, what: str, max_value: float | None = None) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"{what} has shape {array.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).")
    _check_size(array.shape[1], array.shape[0], what)
    if array.dtype == np.uint8:
        out = array
    elif array.dtype == np.bool_:
        out = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise ImageError(f"{what} contains NaN or infinite values.")
        if max_value is None:
            top = float(values.max()) if values.size else 0.0
            if array.dtype == np.uint16 or top > 255.0:
                max_value = 65535.0
            elif np.issubdtype(array.dtype, np.floating) and top <= 1.0:
                max_value = 1.0
            else:
                max_value = 255.0
        out = np.clip(values * (255.0 / max_value) + 0.5, 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"{what} has dtype {array.dtype}; expected uint8, uint16, bool or float.")
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    elif out.shape[2] == 4:
        alpha = out[:, :, 3:4].astype(np.float32) / 255.0
        out = (out[:, :, :3].astype(np.float32) * alpha + _WHITE * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(out)


def check_rgb_uint8(image: np.ndarray, who: str) -> np.ndarray:
    """``image`` unchanged if it is an RGB uint8 ``(H, W, 3)`` array, else :class:`InputShapeError` naming ``who``."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise InputShapeError(f"{who} needs an RGB uint8 (H, W, 3) array, got {got}; use unmask.faces.load_image().")
    return image


def check_landmarks68(landmarks68: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """68 finite iBUG landmarks as a ``(68, 2)`` array of ``dtype``, else :class:`InputShapeError`."""
    lm = np.asarray(landmarks68, dtype=dtype)
    if lm.shape != (68, 2):
        raise InputShapeError(f"Expected 68 landmarks of shape (68, 2) in iBUG order, got {lm.shape}.")
    if not np.isfinite(lm).all():
        raise InputShapeError("The landmarks contain NaN or infinite values.")
    return lm


# ---------------------------------------------------------------------------- small shared helpers
def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image suffix (:data:`IMAGE_SUFFIXES`) and is not a hidden file."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float images in ``[-1, 1]`` → uint8 tensor of the same shape and device (clamp, scale, round).

    The compact form in which pools of images are kept; :func:`dequantize` undoes it.
    """
    import torch

    return ((images.detach().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def dequantize(images: torch.Tensor) -> torch.Tensor:
    """uint8 tensor → float in ``[-1, 1]``, same shape and device (the inverse of :func:`quantize`)."""
    return images.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images ``(B, 3, H, W)`` in ``[-1, 1]`` → C-contiguous uint8 ``(B, H, W, 3)``.

    The quantisation of a saved photo: clamp, scale, round.
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputShapeError(f"to_uint8 needs float images (B, 3, H, W), got {got}.")
    # C order: dlib and cv2 read raw buffers.
    return np.ascontiguousarray(quantize(images.detach().cpu()).permute(0, 2, 3, 1).numpy())


def from_uint8(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` (or one ``(H, W, 3)`` image) → float ``(B, 3, H, W)`` in ``[-1, 1]`` on ``device``."""
    import torch

    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim not in (3, 4) \
            or images.shape[-1] != 3:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
        raise InputShapeError(f"from_uint8 needs uint8 (H, W, 3) or (B, H, W, 3) images, got {got}; "
                              "decode files with unmask.faces.load_image().")
    batch = np.ascontiguousarray(images[None] if images.ndim == 3 else images)
    if not batch.flags.writeable:  # PIL's arrays are read-only; torch wants to own writable memory
        batch = batch.copy()
    return dequantize(torch.from_numpy(batch).to(device).permute(0, 3, 1, 2))


def resize_images(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize float images ``(B, C, H, W)`` to ``size`` (side or ``(height, width)``).

    Area averaging when no side grows (exact box filter for integer factors), bilinear with
    antialiasing otherwise; the input itself when it already has that size.
    """
    import torch.nn.functional as F

    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == (h, w):
        return images
    if images.shape[-2] >= h and images.shape[-1] >= w:
        return F.interpolate(images, size=(h, w), mode="area")
    return F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` array to ``size`` (side or ``(height, width)``) with OpenCV.

    ``INTER_AREA`` when the longer side shrinks, ``INTER_LINEAR`` otherwise; the input itself when it already
    has that size.
    """
    import cv2

    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_AREA if max(h, w) < max(image.shape[:2]) else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interp)
    return out[:, :, None] if image.ndim == 3 and out.ndim == 2 else out


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` under a temporary name, then rename it into place.

    A killed run never leaves a half-written file under the final name; parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else bytes(data))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_image(path: str | os.PathLike, image: np.ndarray, **save_kwargs) -> Path:
    """Save a uint8 ``(H, W, 3)`` (or ``(H, W)``) array atomically (:func:`atomic_write`).

    The format follows the suffix (``.png``, ``.jpg``, …); ``save_kwargs`` go to PIL (e.g. ``quality=90``).
    """
    path = Path(path)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise InputShapeError(f"save_image needs a uint8 (H, W, 3) or (H, W) array, got {got}.")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot tell the image format of {str(path)!r} from its suffix; use one of {IMAGE_SUFFIXES}.")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **save_kwargs)
    return atomic_write(path, buffer.getvalue())
