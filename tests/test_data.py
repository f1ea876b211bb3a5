"""The data layer: one batch-key contract, one ReIDSet, one verification protocol, the paired sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unmask.data.batch import BATCH_KEYS, check_batch
from unmask.data.identity import (
    InMemoryImages,
    PairSet,
    ReIDSet,
    load_batch,
    verification_pairs,
    verification_protocol,
    world_identity_data,
)
from unmask.data.pairs import DataConfig, FolderPairs, PooledPairs, WorldFaces, WorldPairs, build_sources, mask_seed
from unmask.data.world import IdentityDataset, ReIDSplit, UnmaskingDataset, VerificationPairs, WorldViews
from unmask.errors import ConfigError, InputShapeError
from unmask.synthetic import FaceWorld, WorldConfig

WORLD = WorldConfig(size=32, n_identities=200)


def _assert_contract(batch, n, size=32):
    """Every key is in the contract, with the documented shape and dtype."""
    assert set(batch) <= set(BATCH_KEYS)
    check_batch(batch)
    for key in ("masked", "target", "image"):
        if key in batch:
            assert batch[key].shape == (n, 3, size, size) and batch[key].dtype == torch.float32
            assert batch[key].min() >= -1 and batch[key].max() <= 1
    if "mask" in batch:
        assert batch["mask"].shape == (n, 1, size, size) and batch["mask"].dtype == torch.float32
        assert batch["mask"].min() >= 0 and batch["mask"].max() <= 1
    for key in ("identity", "camera"):
        if key in batch:
            assert batch[key].shape == (n,) and batch[key].dtype == torch.int64
    if "attributes" in batch:
        assert batch["attributes"].shape[0] == n and batch["attributes"].dtype == torch.float32


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six aligned 48-px faces with landmarks, as ``python -m unmask.faces align`` writes them."""
    from PIL import Image

    root = tmp_path_factory.mktemp("aligned")
    out = FaceWorld(WorldConfig(size=64, n_identities=40)).render(torch.arange(6), torch.zeros(6, dtype=torch.long),
                                                                  torch.arange(6) % 6)
    from unmask.faces.io import resize_image, to_uint8

    table = {}
    for i, (image, points) in enumerate(zip(to_uint8(out.images), out.landmarks.numpy())):
        Image.fromarray(resize_image(image, 48)).save(root / f"{i:02d}.png")
        table[f"{i:02d}.png"] = (points * 48 / 64).tolist()
    (root / "landmarks.json").write_text(json.dumps(table))
    (root / "notes.txt").write_text("not an image")
    return root


def test_paired_sources_keep_the_batch_contract(folder):
    n = 3
    world = WorldPairs(WORLD, "train", 10)
    _assert_contract(world.batch(range(n)), n)
    _assert_contract(PooledPairs(world, 4).batch([3, 0, 1]), n)
    _assert_contract(FolderPairs.from_folder(folder, 32, num_workers=1).batch(range(n), seed=1), n)


@pytest.mark.slow
def test_every_identity_source_keeps_the_batch_contract():
    n = 3
    _assert_contract(UnmaskingDataset(WORLD, length=10).batch(range(n)), n)
    _assert_contract(IdentityDataset(WORLD, images_per_identity=2, n_identities=5, mask_probability=0.5).batch(
        range(n)), n)
    split = ReIDSplit(WORLD, n_train_identities=4, n_test_identities=4)
    for part in (split.train, split.query, split.gallery):
        _assert_contract(part.batch(range(n)), n)
        _assert_contract(load_batch(part, range(n)), n)
    pairs = VerificationPairs(WORLD, n_folds=2, pairs_per_fold=3, masked="both")
    _assert_contract(pairs.first.batch(range(n)), n)
    _assert_contract(pairs.second.batch(range(n)), n)
    train, reid, pair_set = world_identity_data(WORLD, train_identities=3, test_identities=4, images_per_identity=3,
                                                n_folds=2, pairs_per_fold=2)
    for source in (train, reid.query, reid.gallery, pair_set.first, pair_set.second):
        _assert_contract(load_batch(source, range(2)), 2)
    faces = WorldFaces(WORLD).sample(2, torch.Generator().manual_seed(0))
    _assert_contract({"image": faces}, 2)


def test_check_batch_names_what_is_wrong():
    good = {"image": torch.zeros(2, 3, 8, 8), "identity": torch.zeros(2, dtype=torch.long)}
    assert check_batch(good) is good
    with pytest.raises(InputShapeError, match="outside the batch contract"):
        check_batch({**good, "img_a": torch.zeros(2, 3, 8, 8)})
    with pytest.raises(InputShapeError, match="int64"):
        check_batch({**good, "identity": torch.zeros(2)})
    with pytest.raises(InputShapeError, match="channel"):
        check_batch({**good, "mask": torch.zeros(2, 3, 8, 8)})
    with pytest.raises(InputShapeError, match="rank"):
        check_batch({**good, "image": torch.zeros(3, 8, 8)})
    with pytest.raises(InputShapeError, match="batch sizes"):
        check_batch({**good, "camera": torch.zeros(3, dtype=torch.long)})


def test_one_reid_set_for_rendered_and_held_images():
    split = ReIDSplit(WORLD, n_train_identities=5, n_test_identities=5, n_distractors=2, n_junk=2)
    assert isinstance(split, ReIDSet) and isinstance(split.gallery, WorldViews)
    _, reid, _ = world_identity_data(WORLD, train_identities=3, test_identities=4, images_per_identity=3,
                                     n_folds=2, pairs_per_fold=2)
    assert isinstance(reid, ReIDSet) and reid.train is None
    for part in (split.query, split.gallery, reid.query, reid.gallery):  # what evaluate_reid reads
        assert part.labels.shape == part.cameras.shape == (len(part),)
    # Query people are test people, the gallery shares them and adds distractors (0) and junk (-1).
    assert set(split.query.labels.tolist()) <= set(split.gallery.labels.tolist())
    assert {0, -1} <= set(split.gallery.labels.tolist())


def test_the_verification_protocol_is_pure_balanced_and_fold_disjoint():
    ids = np.arange(3, 43)
    rows, same, folds = verification_protocol(ids, seed=5, n_folds=4, pairs_per_fold=12)
    again = verification_protocol(ids[::-1], seed=5, n_folds=4, pairs_per_fold=12)  # order of ids is irrelevant
    assert np.array_equal(rows, again[0]) and np.array_equal(same, again[1]) and np.array_equal(folds, again[2])
    assert rows.shape == (96, 4) and same.sum() == 48
    assert not np.array_equal(rows, verification_protocol(ids, seed=6, n_folds=4, pairs_per_fold=12)[0])
    per_fold = [set(rows[folds == f][:, [0, 2]].ravel().tolist()) for f in range(4)]
    assert all(not (per_fold[i] & per_fold[j]) for i in range(4) for j in range(i + 1, 4))
    for f in range(4):  # LFW's order: the matched pairs of a fold, then its mismatched pairs
        assert same[folds == f].tolist() == [True] * 12 + [False] * 12
    assert (rows[same, 0] == rows[same, 2]).all() and (rows[same, 1] != rows[same, 3]).all()
    assert (rows[~same, 0] != rows[~same, 2]).all()
    bounded, _, _ = verification_protocol(ids, seed=5, n_folds=4, pairs_per_fold=12, n_views=3)
    assert bounded[:, [1, 3]].max() < 3 and (bounded[same, 1] != bounded[same, 3]).all()
    assert np.array_equal(bounded[:, [0, 2]], rows[:, [0, 2]])
    with pytest.raises(ConfigError, match="identity-disjoint folds"):
        verification_protocol(np.arange(7), seed=0, n_folds=4)
    with pytest.raises(ConfigError, match="n_views"):
        verification_protocol(ids, seed=0, n_folds=4, n_views=1)


@pytest.mark.slow
def test_world_pairs_on_demand_and_in_memory_follow_the_same_protocol():
    small = WorldConfig(size=32, n_identities=40)  # 10 test identities
    test_ids = FaceWorld(small).identity_split("test").numpy()
    on_demand = VerificationPairs(small, n_folds=4, pairs_per_fold=5)
    rows, same, folds = verification_protocol(test_ids, seed=small.seed, n_folds=4, pairs_per_fold=5)
    assert np.array_equal(on_demand.pairs, rows) and np.array_equal(on_demand.issame, same)
    assert np.array_equal(on_demand.folds, folds) and len(on_demand) == 40
    _, _, held = world_identity_data(small, train_identities=2, test_identities=len(test_ids), images_per_identity=2,
                                     test_images_per_identity=4, n_folds=4, pairs_per_fold=5)
    assert isinstance(held, PairSet) and np.array_equal(held.issame, same) and np.array_equal(held.folds, folds)
    assert np.array_equal(held.first.labels, rows[:, 0] + 1) and np.array_equal(held.second.labels, rows[:, 2] + 1)


def test_verification_pairs_over_memory_checks_its_layout():
    images = InMemoryImages(torch.zeros(12, 3, 8, 8, dtype=torch.uint8), np.repeat(np.arange(1, 5), 3))
    pairs = verification_pairs(images, [1, 2, 3, 4], 3, seed=0, n_folds=2, pairs_per_fold=2)
    assert len(pairs) == 8 and (pairs.first.labels[pairs.issame] == pairs.second.labels[pairs.issame]).all()
    with pytest.raises(ConfigError, match="views"):
        verification_pairs(images, [1, 2, 3], 3, seed=0, n_folds=1)


def test_masked_pairs_mask_only_the_requested_side():
    first = VerificationPairs(WORLD, n_folds=2, pairs_per_fold=2, masked="first")
    clean = VerificationPairs(WORLD, n_folds=2, pairs_per_fold=2, masked="none")
    a, b = first.first.batch([0, 3]), first.second.batch([0, 3])
    assert (a["mask"].flatten(1).amax(1) == 1).all() and b["mask"].amax() == 0
    ref = clean.first.batch([0, 3])
    outside = a["mask"].expand_as(a["image"]) == 0
    assert torch.allclose(a["image"][outside], ref["image"][outside], atol=1 / 127)  # same faces, one masked
    assert torch.equal(b["image"], clean.second.batch([0, 3])["image"])


def test_folder_pairs_draw_their_masks_from_the_run_seed(folder):
    from unmask.train.seeding import batch_seed

    pairs = FolderPairs.from_folder(folder, 32, num_workers=1)
    assert len(pairs) == 6  # notes.txt is not an image
    a, b, c = pairs.batch([2, 4], seed=3), pairs.batch([2, 4], seed=3), pairs.batch([2, 4], seed=4)
    assert torch.equal(a["masked"], b["masked"]) and not torch.equal(a["mask"], c["mask"])
    assert torch.equal(a["target"], c["target"]) and a["target"].shape == (2, 3, 32, 32)
    for seed, index in ((0, 0), (3, 17), (12345, 99)):  # the data layer's seed equals the trainer's stream
        assert mask_seed(seed, index) == batch_seed(seed, index, stream=7) % (1 << 31)


def test_folder_pairs_mix_mask_types_from_a_config_list(folder):
    # A YAML list becomes a tuple of types; the seed picks one per face: white N95s and black masks here.
    from unmask.config import parse_dataclass

    config = parse_dataclass(DataConfig, {"source": "folder", "folder": str(folder), "mask_type": ["n95", "black"]})
    assert config.mask_type == ("n95", "black")
    pairs = FolderPairs.from_folder(folder, 48, mask_type=config.mask_type, num_workers=1)
    brightness = []
    for seed in range(12):
        batch = pairs.batch(range(6), seed=seed)
        covered = batch["mask"][:, 0] > 0.99
        for i in range(6):
            brightness.append(float(batch["masked"][i][:, covered[i]].mean()))  # in [-1, 1]
    white, dark = sum(b > 0.5 for b in brightness), sum(b < -0.5 for b in brightness)
    assert white + dark == len(brightness) and min(white, dark) > len(brightness) // 4
    assert torch.equal(pairs.batch([1, 2], seed=3)["masked"], pairs.batch([1, 2], seed=3)["masked"])
    with pytest.raises(ConfigError, match="Unknown mask type 'bandana'"):
        FolderPairs.from_folder(folder, 48, mask_type=("n95", "bandana"))


def test_build_sources_splits_a_folder_and_checks_the_world_size(folder):
    train, val = build_sources(DataConfig(source="folder", folder=str(folder), val_length=2, num_workers=1), 32)
    assert len(train) == 4 and len(val) == 2 and not set(train.files) & set(val.files)
    with pytest.raises(ConfigError, match="data.world.size"):
        build_sources(DataConfig(world=WorldConfig(size=64)), 32)
    with pytest.raises(ConfigError, match="too few"):
        build_sources(DataConfig(source="folder", folder=str(folder), val_length=6), 32)
    with pytest.raises(ConfigError, match="landmarks.json"):
        FolderPairs.from_folder(folder / "missing", 32)
