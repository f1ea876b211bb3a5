"""Readers for user-supplied datasets, on tiny folders and files built here."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from unmask.data.readers import (
    ImageFileDataset,
    load_image_tensor,
    parse_market_name,
    read_celeba,
    read_celeba_attributes,
    read_lfw_pairs,
    read_market1501,
    read_verification_bin,
)
from unmask.errors import ConfigError, ImageError


def _png(path, colour=(255, 0, 0), size=(16, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _encoded(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_market1501_names_and_splits(tmp_path):
    root = tmp_path / "Market-1501"
    _png(root / "bounding_box_train" / "0002_c1s1_000451_03.png")
    _png(root / "bounding_box_train" / "0007_c2s3_070952_01.png")
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"x")
    _png(root / "bounding_box_test" / "-1_c3s1_000001_00.png")
    _png(root / "bounding_box_test" / "0000_c6s1_000002_00.png")
    _png(root / "bounding_box_test" / "0002_c4s2_000003_00.png")
    _png(root / "query" / "0002_c5s1_000004_00.png")
    market = read_market1501(root)
    assert [(r.identity, r.camera) for r in market.train] == [(2, 1), (7, 2)]
    assert sorted((r.identity, r.camera) for r in market.gallery) == [(-1, 3), (0, 6), (2, 4)]
    assert [(r.identity, r.camera) for r in market.query] == [(2, 5)]
    assert parse_market_name("1501_c6s4_001902_01.jpg") == (1501, 6)
    data = ImageFileDataset(market.train, size=(32, 16), relabel=True)
    assert data.labels.tolist() == [0, 1] and data.num_classes == 2
    item = data[1]
    assert item["image"].shape == (3, 32, 16) and item["identity"] == 1 and item["camera"] == 2
    assert item["image"][0].max() == 1.0 and item["image"][1].min() == -1.0  # red in [-1, 1]
    os.remove(root / "query" / "0002_c5s1_000004_00.png")
    with pytest.raises(ConfigError):
        read_market1501(root)


def test_celeba_identities_and_attributes(tmp_path):
    images = tmp_path / "img_align_celeba"
    for name in ("000001.png", "000002.png", "000003.png"):
        _png(images / name)
    (tmp_path / "identity_CelebA.txt").write_text("000001.png 7\n000002.png 3\n000003.png 7\n000004.png 9\n")
    (tmp_path / "list_attr_celeba.txt").write_text(
        "2\nSmiling Male Eyeglasses \n000001.png  1 -1 -1\n000002.png -1  1  1\n")
    attrs = read_celeba_attributes(tmp_path / "list_attr_celeba.txt")
    assert attrs.names == ("Smiling", "Male", "Eyeglasses")
    assert attrs.values.tolist() == [[1, 0, 0], [0, 1, 1]]
    records, names = read_celeba(images, tmp_path / "identity_CelebA.txt", tmp_path / "list_attr_celeba.txt")
    assert names == attrs.names
    assert [(r.path.name, r.identity, r.attributes) for r in records] == [
        ("000001.png", 7, (1, 0, 0)), ("000002.png", 3, (0, 1, 1)), ("000003.png", 7, (-1, -1, -1))]
    item = ImageFileDataset(records, 8, relabel=True)[2]
    assert item["identity"] == 1 and item["attributes"].tolist() == [-1, -1, -1]
    (tmp_path / "bad.txt").write_text("3\nA B\n000001.png 1 -1\n")
    with pytest.raises(ConfigError, match="truncated"):
        read_celeba_attributes(tmp_path / "bad.txt")


def test_lfw_pairs(tmp_path):
    for name, n in (("Ann_Lee", 2), ("Bo_Chan", 1), ("Cy_Dar", 2)):
        for i in range(1, n + 1):
            _png(tmp_path / "lfw" / name / f"{name}_{i:04d}.png")
    (tmp_path / "pairs.txt").write_text(
        "2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Chan\t1\nCy_Dar\t1\t2\nBo_Chan\t1\tCy_Dar\t2\n")
    pairs = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "lfw")
    assert [(p.first.name, p.second.name, p.same, p.fold) for p in pairs] == [
        ("Ann_Lee_0001.png", "Ann_Lee_0002.png", True, 0),
        ("Ann_Lee_0001.png", "Bo_Chan_0001.png", False, 0),
        ("Cy_Dar_0001.png", "Cy_Dar_0002.png", True, 1),
        ("Bo_Chan_0001.png", "Cy_Dar_0002.png", False, 1)]
    assert load_image_tensor(pairs[0].first, 4).shape == (3, 4, 4)
    (tmp_path / "missing.txt").write_text("1\nAnn_Lee\t1\t3\nAnn_Lee\t1\tBo_Chan\t1\n")
    with pytest.raises(ConfigError, match="not found"):
        read_lfw_pairs(tmp_path / "missing.txt", tmp_path / "lfw")


@pytest.mark.parametrize("protocol", [2, 4])
def test_verification_bin_reads_bytes_and_booleans(tmp_path, protocol):
    images = [_encoded((255, 0, 0)), _encoded((0, 255, 0)), _encoded((0, 0, 255)), _encoded((0, 0, 255))]
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps((images, [False, True]), protocol=protocol))
    data = read_verification_bin(path)
    assert data.issame.tolist() == [False, True] and len(data.images) == 4
    first, second = data.pair_images(1)
    assert torch.equal(first, second) and first.shape == (3, 16, 16)
    assert first[2].min() == 1.0  # blue


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


class _Plain:
    pass


@pytest.mark.parametrize("payload", [
    lambda: ([_Exploit()], [True]),
    lambda: ([_encoded((1, 2, 3))] * 2, [_Plain()]),
    lambda: ([np.zeros(3)] * 2, [True]),
    lambda: ([_encoded((1, 2, 3))] * 2, np.array([True])),
])
def test_verification_bin_refuses_any_other_object(tmp_path, payload, monkeypatch):
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(payload(), protocol=2))
    calls = []  # if the reader ever called os.system, we would see it here instead of a shell
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with pytest.raises(ConfigError, match="refusing"):
        read_verification_bin(path)
    assert calls == []


def test_verification_bin_checks_structure(tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b", b"c"], [True])))
    with pytest.raises(ConfigError, match="two per pair"):
        read_verification_bin(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(ConfigError):
        read_verification_bin(path)


def test_load_image_tensor_decodes_through_faces_io_and_resizes(tmp_path):
    """One decoder: the readers' tensor is faces.io's uint8 image, converted and resized in one place."""
    from unmask.faces.io import load_image as load_uint8

    rng = np.random.default_rng(0)
    path = tmp_path / "face.png"
    Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)).save(path)
    tensor = load_image_tensor(path)
    assert tensor.shape == (3, 40, 24) and tensor.dtype == torch.float32
    expected = torch.from_numpy(load_uint8(path).copy()).permute(2, 0, 1).float() / 127.5 - 1.0
    assert torch.equal(tensor, expected)
    assert load_image_tensor(path, (20, 12)).shape == (3, 20, 12) and load_image_tensor(path, 16).shape == (3, 16, 16)
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(rgba)
    assert load_image_tensor(rgba).min() == 1.0  # transparent pixels composited on white, as faces.io does
    with pytest.raises(ImageError, match="No image file"):
        load_image_tensor(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="not an image"):
        load_image_tensor(tmp_path / "broken.png")
    _png(tmp_path / "tiny.png", size=(4, 4))
    with pytest.raises(ImageError, match="at least 16"):
        load_image_tensor(tmp_path / "tiny.png")
