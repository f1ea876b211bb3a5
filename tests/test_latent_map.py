"""The teaching z <-> factors map: round trip, N(0, 1) marginals, renders equal to the world's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from unmask.errors import InputShapeError
from unmask.synthetic import FaceWorld, WorldConfig
from unmask.synthetic import params as P
from unmask.synthetic.latent import (
    DISCRETE_FACTORS,
    FACTOR_NAMES,
    N_FACTORS,
    factor_params,
    factors_to_z,
    render_z,
    world_factors,
    world_z,
    z_to_factors,
)

STYLE_DIM = 128


def _ids(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 10000, (n,), generator=gen), torch.randint(0, 50, (n,), generator=gen),
            torch.randint(0, 6, (n,), generator=gen))


def test_factor_names_are_ordered_unique_and_cover_every_uniform():
    assert len(FACTOR_NAMES) == len(set(FACTOR_NAMES)) == N_FACTORS
    assert N_FACTORS == len(P.IDENTITY_FIELDS) + len(P.CAMERA_FIELDS) + 1 + len(P.IMAGE_FIELDS)
    assert FACTOR_NAMES[0] == "identity.head_w" and FACTOR_NAMES[-1] == "image.noise_sy"
    assert "image.yaw" in FACTOR_NAMES and "identity.nose_w" in FACTOR_NAMES
    assert DISCRETE_FACTORS < set(FACTOR_NAMES)
    assert "camera.bg_family" in DISCRETE_FACTORS and "image.yaw" not in DISCRETE_FACTORS


def test_round_trip_factors_to_z_to_factors():
    world = FaceWorld(WorldConfig(size=32))
    u = world_factors(world, *_ids(256))
    z = factors_to_z(u, STYLE_DIM, generator=torch.Generator().manual_seed(1))
    assert z.shape == (256, STYLE_DIM) and z.dtype == torch.float64 and bool(z.isfinite().all())
    assert torch.allclose(z_to_factors(z), u, atol=1e-12, rtol=0)
    assert torch.allclose(z_to_factors(z.float()), u, atol=1e-6, rtol=0)  # the generator's dtype
    # The other way: any z (padding ignored) comes back through its factors.
    z2 = torch.randn(64, STYLE_DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(factors_to_z(z_to_factors(z2)), z2[:, :N_FACTORS], atol=1e-9, rtol=0)


def test_padding_is_zero_or_seeded_gaussian_and_ignored():
    u = torch.rand(4, N_FACTORS, dtype=torch.float64)
    zero_pad = factors_to_z(u, STYLE_DIM)
    assert torch.equal(zero_pad[:, N_FACTORS:], torch.zeros(4, STYLE_DIM - N_FACTORS, dtype=torch.float64))
    a = factors_to_z(u, STYLE_DIM, generator=torch.Generator().manual_seed(3))
    b = factors_to_z(u, STYLE_DIM, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a[:, N_FACTORS:].std() > 0.5
    assert torch.equal(z_to_factors(a), z_to_factors(zero_pad))


def test_z_of_world_draws_has_standard_normal_marginals():
    world = FaceWorld(WorldConfig(size=32))
    ids = torch.arange(2000)
    z = world_z(world, ids, ids % 7, ids % 6).numpy()
    continuous = [i for i, name in enumerate(FACTOR_NAMES) if not name.startswith("camera.")]
    # Camera factors take only n_cameras values in the world; identity and image ones are i.i.d.
    for i in continuous:
        result = stats.kstest(z[:, i], "norm")
        assert result.pvalue > 1e-4, (FACTOR_NAMES[i], result)
    assert abs(z[:, continuous].mean()) < 0.02 and abs(z[:, continuous].std() - 1.0) < 0.02
    # A mis-scaled map would fail: the uniforms themselves are far from N(0, 1).
    assert stats.kstest(world_factors(world, ids, ids % 7, ids % 6).numpy()[:, 0], "norm").pvalue < 1e-6


def test_background_family_quantile_rule():
    world = FaceWorld(WorldConfig(size=32))
    cams = torch.arange(6)
    u = world_factors(world, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long), cams)
    col = FACTOR_NAMES.index("camera.bg_family")
    assert torch.allclose(u[:, col], (cams.double() + 0.5) / 6)
    assert np.array_equal(factor_params(world, u)["cam_bg_family"], np.arange(6, dtype=np.float32))


@pytest.mark.parametrize("preset", ["standard", "hard"])
@pytest.mark.parametrize("seed", [0, 11])
def test_render_of_true_z_equals_the_world_render_bit_for_bit(preset, seed):
    world = FaceWorld(WorldConfig(size=32, preset=preset, seed=seed))
    ids, img, cams = _ids(6, seed)
    own = world.render(ids, img, cams)
    from_z = render_z(world, world_z(world, ids, img, cams, STYLE_DIM))
    assert torch.equal(from_z.images, own.images)
    assert torch.equal(from_z.landmarks, own.landmarks)
    assert torch.equal(from_z.attributes, own.attributes)
    assert torch.equal(from_z.identities, torch.full((6,), -1))


def test_render_of_float32_z_is_close_and_of_other_z_differs():
    world = FaceWorld(WorldConfig(size=32))
    ids, img, cams = _ids(2, 5)
    own = world.render(ids, img, cams).images
    z = world_z(world, ids, img, cams, STYLE_DIM)
    assert (render_z(world, z.float()).images - own).abs().mean() < 1e-3
    assert (render_z(world, z.flip(0)).images - own).abs().mean() > 0.05


def test_random_z_renders_world_like_faces():
    world = FaceWorld(WorldConfig(size=32))
    z = torch.randn(4, STYLE_DIM, generator=torch.Generator().manual_seed(0))
    out = render_z(world, z)
    assert out.images.shape == (4, 3, 32, 32) and out.landmarks.shape == (4, 68, 2)
    assert bool(out.images.isfinite().all()) and out.images.min() >= -1.5 and out.images.max() <= 1.5
    assert torch.equal(render_z(world, z).images, out.images)  # a function of z


def test_bad_inputs_raise():
    with pytest.raises(InputShapeError, match="style_dim"):
        factors_to_z(torch.rand(2, N_FACTORS), 64)
    with pytest.raises(InputShapeError, match=r"\[0, 1\]"):
        factors_to_z(torch.full((2, N_FACTORS), 1.5))
    with pytest.raises(InputShapeError, match="FACTOR_NAMES"):
        factors_to_z(torch.rand(2, N_FACTORS - 1))
    with pytest.raises(InputShapeError, match=f"D >= {N_FACTORS}"):
        z_to_factors(torch.randn(2, 64))
    with pytest.raises(InputShapeError, match="identity ids"):
        world_factors(FaceWorld(WorldConfig(size=32)), torch.tensor([10**6]), torch.tensor([0]), torch.tensor([0]))
