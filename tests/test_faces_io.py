"""load_image: every ordinary photo format becomes uint8 RGB; every bad input is a clear ImageError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from unmask.errors import ImageError
from unmask.faces.io import MAX_PIXELS, MIN_SIDE, load_image


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose IHDR claims ``width`` × ``height`` RGB pixels (CRCs correct)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_array_path_bytes_and_pil_agree(astronaut, tmp_path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    for source in (astronaut, path, str(path), path.read_bytes(), Image.fromarray(astronaut)):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (512, 512, 3) and out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(out, astronaut)


def test_grayscale_becomes_three_equal_channels(astronaut):
    gray = Image.fromarray(astronaut).convert("L")
    out = load_image(_png_bytes(gray))
    assert out.shape == (512, 512, 3)
    np.testing.assert_array_equal(out[..., 0], np.asarray(gray))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_rgba_is_composited_on_white():
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:16, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    out = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[-1, -1], [255, 255, 255])


def test_16_bit_pngs_are_scaled_to_8_bit(tmp_path):
    cv2 = pytest.importorskip("cv2")
    gray16 = np.full((32, 32), 30000, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    out = load_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    assert abs(int(out[0, 0, 0]) - round(30000 / 257)) <= 1

    rgb16 = np.zeros((32, 32, 3), dtype=np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 40000, 1000, 65535
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    out = load_image(tmp_path / "rgb16.png")
    np.testing.assert_allclose(out[0, 0], np.round(rgb16[0, 0] / 257.0), atol=1)


def test_exif_orientation_is_applied():
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :20] = 255  # left half white
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    out = load_image(buffer.getvalue())
    assert out.shape == (40, 20, 3)
    assert out[:15].mean() > 200 and out[-15:].mean() < 50  # the white half is now on top


def test_other_array_dtypes():
    ones = np.ones((32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(load_image(ones), 255)
    np.testing.assert_array_equal(load_image(np.ones((32, 32), dtype=bool)), 255)
    np.testing.assert_array_equal(load_image(np.full((32, 32, 1), 65535, dtype=np.uint16)), 255)


@pytest.mark.parametrize(
    "source, words",
    [
        (b"this is a text file, not a picture", "not an image"),
        (12345, "Cannot read an image"),
        (np.zeros((32, 32, 2), dtype=np.uint8), "shape"),
        (np.full((32, 32, 3), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((32, 32, 3), dtype=np.complex64), "dtype"),
    ],
)
def test_bad_sources_raise_image_error(source, words):
    with pytest.raises(ImageError, match=words):
        load_image(source)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="No image file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="No image file"):
        load_image(tmp_path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(astronaut, fmt):
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, format=fmt)
    data = buffer.getvalue()
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_one_pixel_image():
    with pytest.raises(ImageError, match=f"at least {MIN_SIDE}"):
        load_image(_png_bytes(Image.new("RGB", (1, 1))))
    with pytest.raises(ImageError, match="at least"):
        load_image(np.zeros((1, 1, 3), dtype=np.uint8))


@pytest.mark.parametrize("side", [20000, 8000])  # 400 MP (PIL's own bomb check) and 64 MP (ours)
def test_header_claiming_huge_size_is_refused_before_decoding(side):
    data = _png_claiming(side, side)
    assert len(data) < 200  # the file itself is tiny: only the header lies
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageError, match="megapixels") as info:
        load_image(data)
    assert "downscale" in str(info.value)


def test_header_just_under_the_limit_is_checked_by_decoding_not_size():
    # 100 × 100 claimed, but the pixel data is short: a truncation error, not a size error.
    with pytest.raises(ImageError, match="truncated|damaged"):
        load_image(_png_claiming(100, 100))
