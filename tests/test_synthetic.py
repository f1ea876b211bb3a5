"""The offline teaching world: determinism, identity, landmarks, masks, datasets, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unmask.data.world import IdentityDataset, ReIDSplit, UnmaskingDataset, VerificationPairs
from unmask.errors import ConfigError, InputShapeError
from unmask.faces.io import to_uint8
from unmask.synthetic import PRESETS, FaceWorld, WorldConfig

CLEAN = {"noise": 0.0, "blur": 0.0, "jpeg": 0.0}


def _batch(n: int, start: int = 0):
    ids = torch.arange(start, start + n)
    return ids, ids * 3 + 1, ids % 6


def test_same_seed_same_bytes_and_other_seed_differs():
    a = FaceWorld(WorldConfig(size=64, seed=3)).render(*_batch(6))
    b = FaceWorld(WorldConfig(size=64, seed=3)).render(*_batch(6))
    c = FaceWorld(WorldConfig(size=64, seed=4)).render(*_batch(6))
    assert a.images.shape == (6, 3, 64, 64) and a.landmarks.shape == (6, 68, 2)
    assert np.array_equal(to_uint8(a.images), to_uint8(b.images))
    assert torch.equal(a.landmarks, b.landmarks) and torch.equal(a.attributes, b.attributes)
    assert (to_uint8(a.images) != to_uint8(c.images)).mean() > 0.5
    assert a.images.min() >= -1 and a.images.max() <= 1


def test_an_image_does_not_depend_on_its_batch():
    world = FaceWorld(WorldConfig(size=64))
    # Identities with and without accessories, so the subset paths are exercised too.
    ids, img, cams = _batch(24)
    together = world.render(ids, img, cams)
    assert 0 < together.attributes[:, world.ATTRIBUTE_NAMES.index("Eyeglasses")].sum() < 24
    for k in (0, 5, 17):
        alone = world.render(ids[k : k + 1], img[k : k + 1], cams[k : k + 1])
        torch.testing.assert_close(alone.images[0], together.images[k], atol=2e-5, rtol=0)
        torch.testing.assert_close(alone.landmarks[0], together.landmarks[k])


def test_identity_is_fixed_across_nuisance():
    world = FaceWorld(WorldConfig(size=64))
    ids = torch.full((5,), 42)
    views = torch.arange(5)
    out = world.render(ids, views, views % 6)
    fixed = [world.ATTRIBUTE_NAMES.index(n) for n in ("Male", "Beard", "Black_Hair", "Bald", "Big_Nose")]
    assert (out.attributes[:, fixed] == out.attributes[:1, fixed]).all()
    f = world.identity_factors(ids)
    assert torch.equal(f, f[:1].expand_as(f))
    # The views differ (nuisance is real) ...
    assert (to_uint8(out.images[0:1]) != to_uint8(out.images[1:2])).mean() > 0.3


def test_views_of_one_identity_are_nearer_than_other_identities():
    """On the easy preset a raw-pixel nearest neighbour of the inner face re-identifies most faces."""
    world = FaceWorld(WorldConfig(size=32, preset="easy"))
    n = 24
    ids = torch.arange(n) * 37
    cams = torch.zeros(n, dtype=torch.long)
    a = world.render(ids, torch.zeros(n, dtype=torch.long), cams).images[:, :, 10:28, 9:23]
    b = world.render(ids, torch.ones(n, dtype=torch.long), cams).images[:, :, 10:28, 9:23]
    d = torch.cdist(a.flatten(1), b.flatten(1))
    accuracy = (d.argmin(1) == torch.arange(n)).float().mean()
    assert accuracy >= 0.75


def test_ten_thousand_identities_are_distinguishable():
    """Every identity differs from its nearest neighbour by >= 1 standard deviation of the face code."""
    world = FaceWorld(WorldConfig())
    f = world.identity_factors(torch.arange(10000))
    assert f.shape[1] >= 25
    nearest = []
    for start in range(0, 10000, 2000):
        d = torch.cdist(f[start : start + 2000], f)
        d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = float("inf")
        nearest.append(d.min(1).values)
    assert torch.cat(nearest).min() >= 1.0


def test_attributes_take_both_values():
    world = FaceWorld(WorldConfig())
    ids = np.arange(3000)
    attrs = world.attributes(world.params(ids, ids % 7, ids % 6))
    assert attrs.shape == (3000, len(world.ATTRIBUTE_NAMES)) and len(world.ATTRIBUTE_NAMES) >= 8
    rate = attrs.mean(0)
    assert (rate > 0.02).all() and (rate < 0.98).all()


def _diff_centroid(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    diff = (a - b).abs().sum(0).numpy()
    ys, xs = np.nonzero(diff > 0.05)
    w = diff[ys, xs]
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()]), np.array([xs.min(), xs.max()])


@pytest.mark.parametrize("identity", [3, 11, 250])
def test_landmarks_land_on_rendered_features(identity):
    world = FaceWorld(WorldConfig(size=128, preset="standard"))
    args = (torch.tensor([identity]), torch.tensor([2]), torch.tensor([1]))
    base = {**CLEAN, "eyes_closed": 0.0, "glasses": 0.0, "hat": 0.0, "beard": 0.0, "mouth_open": 0.0}
    full = world.render(*args, overrides=base)
    lm = full.landmarks[0].numpy()
    # Eyes: removing them changes pixels centred on the eye landmarks.
    no_eyes = world.render(*args, overrides={**base, "eye_h": 0.0})
    for sl in (slice(36, 42), slice(42, 48)):
        region = torch.zeros(3, 128, 128)
        x0, y0 = lm[sl].mean(0)
        ys, xs = slice(int(y0) - 8, int(y0) + 9), slice(int(x0) - 12, int(x0) + 13)
        region[:, ys, xs] = 1
        centre, _ = _diff_centroid(full.images[0] * region, no_eyes.images[0] * region)
        assert np.abs(centre - lm[sl].mean(0)).max() < 2.0
    # Lips: removing them changes pixels between the mouth corners (48, 54).
    no_lips = world.render(*args, overrides={**base, "lip_up": 0.0, "lip_lo": 0.0})
    centre, x_extent = _diff_centroid(full.images[0], no_lips.images[0])
    assert np.abs(centre - lm[48:60].mean(0)).max() < 2.0
    assert abs(x_extent[0] - lm[48, 0]) < 3.0 and abs(x_extent[1] - lm[54, 0]) < 3.0


def test_landmarks_follow_the_pose():
    world = FaceWorld(WorldConfig(size=64))
    args = (torch.tensor([5, 5]), torch.tensor([0, 0]), torch.tensor([0, 0]))
    lm = world.render(*args, overrides={"roll": [0.0, 0.3], "tx": [0.0, 0.1]}).landmarks
    eyes0 = lm[0, 42:48].mean(0) - lm[0, 36:42].mean(0)
    eyes1 = lm[1, 42:48].mean(0) - lm[1, 36:42].mean(0)
    assert abs(torch.atan2(eyes0[1], eyes0[0])) < 0.02
    assert abs(torch.atan2(eyes1[1], eyes1[0]) - 0.3) < 0.02
    assert 30 < lm[0, :, 0].mean() < 34  # FFHQ layout: the face is centred horizontally


def test_unmasking_samples_cover_nose_and_mouth_and_only_there():
    data = UnmaskingDataset(WorldConfig(size=64), length=50)
    batch = data.batch(range(8))
    assert batch["masked"].shape == (8, 3, 64, 64) and batch["mask"].shape == (8, 1, 64, 64)
    landmarks = data.landmarks(range(8))
    assert landmarks.shape == (8, 68, 2)
    for k in range(8):
        lm = np.round(landmarks[k].numpy()).astype(int)
        mask = batch["mask"][k, 0].numpy()
        covered = [mask[y, x] for x, y in lm[[30, *range(48, 68)]]]
        assert min(covered) > 0.5
        assert max(mask[y, x] for x, y in lm[36:48]) < 0.5
        outside = batch["mask"][k, 0] == 0
        assert torch.equal(batch["masked"][k][:, outside], batch["target"][k][:, outside])
    item = data[3]
    assert torch.equal(item["target"], batch["target"][3]) and int(item["identity"]) == int(batch["identity"][3])


def test_splits_are_disjoint_and_datasets_respect_them():
    config = WorldConfig(size=32, n_identities=200)
    world = FaceWorld(config)
    train, test = set(world.identity_split("train").tolist()), set(world.identity_split("test").tolist())
    assert not train & test and len(train | test) == 200 and len(test) == 40
    ids, _, _ = UnmaskingDataset(config, split="test", length=100).locate(range(100))
    assert set(ids.tolist()) <= test
    with pytest.raises(ConfigError):
        world.identity_split("val")


def test_identity_dataset_labels_and_masks():
    data = IdentityDataset(WorldConfig(size=32, n_identities=100), images_per_identity=3, mask_probability=0.5)
    assert len(data) == 80 * 3 and data.num_classes == 80
    assert np.array_equal(data.labels[:6], [0, 0, 0, 1, 1, 1])
    batch = data.batch(range(12))
    assert batch["identity"].tolist() == data.labels[:12].tolist()
    masked = batch["mask"].flatten(1).amax(1) > 0
    assert 0 < int(masked.sum()) < 12


def test_verification_pairs_are_balanced_and_fold_disjoint():
    pairs = VerificationPairs(WorldConfig(size=32, n_identities=400), pairs_per_fold=20, masked="first")
    assert len(pairs) == 10 * 40 and pairs.issame.sum() == len(pairs) // 2
    test = set(pairs.world.identity_split("test").tolist())
    seen = []
    for f in range(10):
        rows = pairs.pairs[pairs.folds == f]
        same = pairs.issame[pairs.folds == f]
        assert same.sum() == 20
        assert (rows[same, 0] == rows[same, 2]).all() and (rows[same, 1] != rows[same, 3]).all()
        assert (rows[~same, 0] != rows[~same, 2]).all()
        ids = set(rows[:, 0].tolist()) | set(rows[:, 2].tolist())
        assert ids <= test
        seen.append(ids)
    assert all(not (seen[i] & seen[j]) for i in range(10) for j in range(i + 1, 10))
    first, second = pairs.first.batch([0, 25]), pairs.second.batch([0, 25])
    assert first["image"].shape == (2, 3, 32, 32) and first["mask"].amax() == 1 and second["mask"].amax() == 0
    assert first["identity"].tolist() == (pairs.pairs[[0, 25], 0] + 1).tolist()  # Market person ids


def test_reid_split_is_market_like():
    split = ReIDSplit(WorldConfig(size=32, n_identities=200), n_train_identities=20, n_test_identities=20)
    train_p, query_p = set(split.train.pids.tolist()), set(split.query.pids.tolist())
    assert not train_p & query_p and len(query_p) == 20
    g = split.gallery
    assert {0, -1} <= set(g.pids.tolist())
    for pid, cam in zip(split.query.pids, split.query.cameras):
        assert ((g.pids == pid) & (g.cameras != cam)).any()
    batch = g.batch(np.nonzero(g.pids <= 0)[0][:4].tolist() + [0])
    assert batch["image"].shape == (5, 3, 32, 32) and batch["identity"][-1] > 0 and (batch["identity"][:4] <= 0).all()
    assert np.array_equal(g.labels, g.pids) and np.array_equal(split.query.labels, split.query.pids)
    assert sorted(set(split.train.labels.tolist())) == list(range(20))  # train labels are contiguous


def test_presets_and_bad_input():
    assert set(PRESETS) == {"easy", "standard", "hard"}
    assert PRESETS["easy"].roll_deg < PRESETS["standard"].roll_deg < PRESETS["hard"].roll_deg
    with pytest.raises(ConfigError):
        WorldConfig(preset="extreme")
    world = FaceWorld(WorldConfig(size=32, n_identities=50))
    with pytest.raises(InputShapeError):
        world.render(torch.tensor([50]), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ConfigError):
        world.render(torch.tensor([1]), torch.tensor([0]), torch.tensor([0]), overrides={"nonsense": 1})


def test_sheet_and_export_are_readable(tmp_path):
    from unmask.data import readers
    from unmask.data.__main__ import main

    main(["sheet", "--size", "32", "--out", str(tmp_path / "sheet.png")])
    from PIL import Image

    assert Image.open(tmp_path / "sheet.png").size[0] > 6 * 32
    argv = ["export", "--size", "32", "--identities", "200", "--n", "10", "--out", str(tmp_path / "w"),
            "--reid-identities", "3", "--pairs-per-fold", "2"]
    main(argv)
    faces = tmp_path / "w" / "faces"
    assert len(list((faces / "train").glob("*.png"))) == 8 and len(list((faces / "test").glob("*.png"))) == 2
    lms = json.loads((faces / "train" / "landmarks.json").read_text())
    assert np.asarray(lms["000000.png"]).shape == (68, 2)
    assert len(readers.read_celeba_identities(faces / "identity_CelebA.txt")) == 10
    attrs = readers.read_celeba_attributes(faces / "list_attr_celeba.txt")
    assert len(attrs.names) >= 8
    market = readers.read_market1501(tmp_path / "w" / "market")
    assert len(market.train) > 0 and len(market.query) == len(list((tmp_path / "w" / "market" / "query").iterdir()))
    pairs = readers.read_lfw_pairs(tmp_path / "w" / "lfw" / "pairs.txt", tmp_path / "w" / "lfw")
    assert len(pairs) == 40 and all(p.first.exists() and p.second.exists() for p in pairs)
    # Resuming rewrites nothing that is already there.
    stamp = (faces / "train" / "000000.png").stat().st_mtime_ns
    main(argv)
    assert (faces / "train" / "000000.png").stat().st_mtime_ns == stamp
