"""The small helpers every module shares, each in one place: suffixes, tensor↔uint8, resize, atomic save, offline."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from unmask.errors import ImageError, InputShapeError
from unmask.faces.io import (
    IMAGE_SUFFIXES,
    atomic_write,
    from_uint8,
    is_image_file,
    load_image,
    resize_image,
    resize_images,
    save_image,
    to_uint8,
)
from unmask.hub import hub_offline


def test_uint8_round_trip_and_quantisation():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    x = from_uint8(u8)
    assert x.shape == (2, 3, 9, 7) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    back = to_uint8(x)
    assert np.array_equal(back, u8) and back.flags.c_contiguous
    assert from_uint8(u8[0]).shape == (1, 3, 9, 7)  # one HWC image becomes a batch of one
    values = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(values)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]  # clamped, rounded (0 -> 127.5 -> 128)
    with pytest.raises(InputShapeError, match="uint8"):
        from_uint8(u8.astype(np.float32))
    with pytest.raises(InputShapeError, match=r"\(B, 3, H, W\)"):
        to_uint8(torch.zeros(3, 4, 4))


def test_resize_images_areas_down_and_interpolates_up():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert resize_images(x, 4) is x
    down = resize_images(x, 2)
    assert torch.equal(down, x.view(1, 1, 2, 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(1, 1, 2, 2, 4).mean(-1))
    up = resize_images(x, (8, 6))
    assert up.shape == (1, 1, 8, 6)
    plain = torch.nn.functional.interpolate(x, size=(8, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, plain, atol=1e-5, rtol=0)  # antialiasing changes nothing when growing


def test_resize_image_keeps_dtype_and_channels():
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert resize_image(image, (40, 30)) is image
    small = resize_image(image, 20)
    assert small.shape == (20, 20, 3) and small.dtype == np.uint8
    mask = np.zeros((40, 30), np.float32)
    mask[10:30] = 1.0
    big = resize_image(mask, (80, 60))
    assert big.shape == (80, 60) and big.dtype == np.float32 and 0 <= big.min() and big.max() <= 1


def test_atomic_write_and_save_image(tmp_path):
    path = atomic_write(tmp_path / "a" / "b.json", '{"x": 1}')
    assert path.read_text() == '{"x": 1}' and os.listdir(tmp_path / "a") == ["b.json"]  # no temporary left
    image = np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    png = save_image(tmp_path / "faces" / "x.png", image)
    assert np.array_equal(load_image(png), image)
    jpg = save_image(tmp_path / "x.jpg", image, quality=95)
    assert Image.open(jpg).format == "JPEG"
    with pytest.raises(InputShapeError, match="uint8"):
        save_image(tmp_path / "y.png", image.astype(np.float32))
    with pytest.raises(ImageError, match="format"):
        save_image(tmp_path / "y.unknown", image)


def test_one_set_of_image_suffixes_for_every_reader():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} == set(IMAGE_SUFFIXES)
    assert is_image_file("a/B.JPG") and is_image_file("x.webp")
    assert not is_image_file(".hidden.png") and not is_image_file("notes.txt") and not is_image_file("landmarks.json")
    from unmask.data import pairs, readers

    assert readers.IMAGE_SUFFIXES is IMAGE_SUFFIXES and pairs.IMAGE_SUFFIXES is IMAGE_SUFFIXES


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "On", "0", "false", "no", "off", "", " 1", "2", "y"])
def test_hub_offline_reads_the_flag_as_huggingface_hub_does(monkeypatch, value):
    from huggingface_hub import constants

    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is constants._is_true(value or None)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert hub_offline() is False
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")  # huggingface_hub's legacy fallback
    assert hub_offline() is True
