"""The teaching world's exact generator: the painter behind the frozen-generator interface.

What users rely on: ``G(z)`` of a world draw's z is that draw, bit for bit (the world's renders did not change when
its factor maps moved to torch); every continuous factor gets its true gradient; an optimisation from a nearby z
finds the face again; the generator loads like any other (folder, built-in name) and keeps its discrete choices.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from unmask.errors import ConfigError, InputShapeError
from unmask.invert import InversionConfig, invert
from unmask.models.generators import FrozenGenerator, load_frozen_generator
from unmask.models.painter import PainterConfig, PainterGenerator, edge_schedule
from unmask.synthetic import FaceWorld, WorldConfig, world_z
from unmask.synthetic.latent import DISCRETE_FACTORS, FACTOR_NAMES, N_FACTORS, TEXTURE_SELECTORS

DIGESTS = Path(__file__).parent / "data" / "world_factor_digests.json"
CONTINUOUS = [i for i, name in enumerate(FACTOR_NAMES) if name not in DISCRETE_FACTORS]


def _draws(n: int):
    """The draws the digests were made from: seed 3, ids 37 i mod 10000, image ids i mod 7, cameras i mod 6."""
    i = torch.arange(n)
    return i * 37 % 10000, i % 7, i % 6


@pytest.mark.parametrize("preset", ["easy", "standard", "hard"])
def test_world_factors_are_pinned(preset):
    """The world's factors of 256 draws are the bits they were before the maps moved to torch."""
    pinned = json.loads(DIGESTS.read_text())["presets"][preset]
    params = FaceWorld(WorldConfig(size=64, preset=preset, seed=3)).params(*_draws(256))
    assert set(params) == set(pinned)
    changed = [k for k, v in params.items()
               if hashlib.sha256(v.numpy().astype("<f4").tobytes()).hexdigest()[:16] != pinned[k]]
    assert not changed, f"factors changed: {changed}"


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["easy", "standard", "hard"])
@pytest.mark.parametrize("size", [64, 128])
def test_generator_is_the_world_bit_for_bit(preset, size):
    """G(z) of 256 world draws equals FaceWorld.render exactly: images, landmarks and attributes."""
    world = FaceWorld(WorldConfig(size=size, preset=preset, seed=3))
    generator = PainterGenerator(PainterConfig(size=size, preset=preset, seed=3))
    draws = _draws(256)
    drawn = world.render(*draws)
    z = world_z(world, *draws)  # float64: the factors are the world's bit for bit
    with torch.no_grad():
        painted = generator.render(z[:, None])
    assert torch.equal(painted.images, drawn.images)
    assert torch.equal(painted.landmarks, drawn.landmarks)
    assert torch.equal(painted.attributes, drawn.attributes)
    assert torch.equal(generator.landmarks(z[:, None]), drawn.landmarks)


def test_float32_z_is_within_a_rounding_of_the_world():
    world = FaceWorld(WorldConfig(size=64))
    draws = _draws(16)
    z = world_z(world, *draws).float()
    assert (PainterGenerator()(z) - world.render(*draws).images).abs().mean() < 1e-3


def test_the_generator_interface():
    g = PainterGenerator(PainterConfig(size=32))
    assert isinstance(g, FrozenGenerator)
    assert (g.size, g.style_dim, g.n_latent) == (32, N_FACTORS, 1)
    z = torch.randn(3, N_FACTORS, generator=torch.Generator().manual_seed(0))
    assert torch.equal(g.mapping(z), z)
    assert torch.equal(g.mean_latent(), torch.zeros(1, N_FACTORS))
    assert g.make_noise() == []
    image = g.synthesis(z[:, None])
    assert image.shape == (3, 3, 32, 32) and image.min() >= -1 and image.max() <= 1
    assert torch.equal(g(z), image)
    assert torch.equal(g(w_plus=z[:, None]), image)
    # Truncation pulls every factor to its median: psi = 0 is the mean face for every z.
    median = g(z, truncation=0.0)
    assert torch.equal(median, g(torch.zeros(3, N_FACTORS)))
    assert torch.equal(median[0], median[2])
    # No parameters to train; the discrete coordinates are marked for the inversion.
    assert sum(p.numel() for p in g.parameters()) == 0
    names = {FACTOR_NAMES[i] for i in g.discrete_latents[0, 0].nonzero().flatten().tolist()}
    assert names == set(DISCRETE_FACTORS) | set(TEXTURE_SELECTORS)


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_every_size_paints(size):
    g = PainterGenerator(PainterConfig(size=size))
    z = torch.randn(2, N_FACTORS, generator=torch.Generator().manual_seed(size))
    assert g(z).shape == (2, 3, size, size)
    # The size is a property of the picture only: landmarks scale with it.
    lm = g.landmarks(z[:, None])
    assert torch.allclose((g.landmarks(z[:, None], size=2 * size) + 0.5) / 2, lm + 0.5, atol=1e-4)


def test_bad_inputs_are_named():
    g = PainterGenerator(PainterConfig(size=32))
    with pytest.raises(InputShapeError, match=r"\(B, 102\)"):
        g(torch.zeros(2, 64))
    with pytest.raises(InputShapeError, match=r"\(B, 1, 102\)"):
        g.synthesis(torch.zeros(2, 3, N_FACTORS))
    with pytest.raises(InputShapeError, match="exactly one"):
        g()
    with pytest.raises(InputShapeError, match="no noise inputs"):
        g.synthesis(torch.zeros(1, 1, N_FACTORS), noise=[torch.zeros(1)])
    with pytest.raises(InputShapeError, match="float"):
        g(torch.zeros(2, N_FACTORS, dtype=torch.long))
    with pytest.raises(ConfigError, match="size"):
        PainterConfig(size=48)
    with pytest.raises(ConfigError, match="preset"):
        PainterConfig(preset="nope")
    with pytest.raises(ConfigError, match="edge"):
        g.synthesis(torch.zeros(1, 1, N_FACTORS), edge=0.5)


def test_loads_like_any_generator(tmp_path):
    """A folder in the save_pretrained format and the built-in names both load through load_frozen_generator."""
    g = PainterGenerator(PainterConfig(size=32, preset="hard", seed=5))
    g.save_pretrained(tmp_path / "painter")
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "painter").iterdir()}
    loaded, latent_avg = load_frozen_generator(tmp_path / "painter")
    assert isinstance(loaded, PainterGenerator) and loaded.config == g.config
    assert torch.equal(latent_avg, torch.zeros(N_FACTORS))
    z = torch.randn(2, N_FACTORS, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded(z), g(z))
    builtin, _ = load_frozen_generator("teaching-painter-128")
    assert isinstance(builtin, PainterGenerator) and builtin.size == 128
    assert not any(p.requires_grad for p in builtin.parameters())


def test_edge_width_is_exact_at_one_and_softer_above():
    g = PainterGenerator()
    z = torch.randn(4, N_FACTORS, generator=torch.Generator().manual_seed(2))
    exact = g.synthesis(z[:, None])
    assert torch.equal(g.synthesis(z[:, None], edge=1.0), exact)
    soft = g.synthesis(z[:, None], edge=4.0)
    tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert tv(soft) < tv(exact)
    assert 0 < (soft - exact).abs().mean() < 0.1  # softer edges, the same face
    assert edge_schedule(0, 100) == 4.0 and edge_schedule(60, 100) == 1.0 and edge_schedule(99, 100) == 1.0
    assert edge_schedule(0, 1) == 1.0


def test_gradients_reach_every_continuous_factor_and_the_forward_is_unchanged():
    """Standard preset (with compression banding): through the straight-through banding, every continuous
    coordinate gets a gradient; the discrete ones none except the texture shifts' straight-through; painting with
    a graph gives the same pixels as without."""
    g = PainterGenerator()
    z = torch.randn(64, N_FACTORS, generator=torch.Generator().manual_seed(0), requires_grad=True)
    image = g(z)
    with torch.no_grad():
        assert torch.equal(image, g(z))
    image.square().mean().backward()
    moved = z.grad.abs().sum(0) > 0
    missing = [FACTOR_NAMES[i] for i in CONTINUOUS if not moved[i]]
    assert not missing, f"continuous factors without a gradient: {missing}"
    discrete_with_grad = {FACTOR_NAMES[i] for i in range(N_FACTORS) if moved[i] and i not in CONTINUOUS}
    assert discrete_with_grad == {"image.tex_sx", "image.tex_sy", "image.noise_sx", "image.noise_sy"}
    # Without the straight-through, the banding's true derivative (zero) stops everything upstream of it.
    g.straight_through = False
    z.grad = None
    g(z).square().mean().backward()
    upstream = [FACTOR_NAMES[i] for i in CONTINUOUS if z.grad[:, i].abs().sum() > 0]
    assert set(upstream) <= {"image.jpeg", "image.noise", "camera.noise"}


def _coverage_latents(n: int) -> torch.Tensor:
    """Random z, with the discrete switches set on some so every accessory's factors matter somewhere."""
    z = torch.randn(n, N_FACTORS, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    col = {name: i for i, name in enumerate(FACTOR_NAMES)}
    low, high = -3.0, 3.0
    z[0:4, col["identity.glasses_u"]], z[0:4, col["image.glasses_draw"]] = low, low
    z[4:8, col["identity.hat_u"]], z[4:8, col["image.hat_draw"]] = low, low
    z[8:12, col["identity.male_u"]], z[8:12, col["identity.beard_u"]] = low, high  # full beards
    z[12:16, col["image.open_u"]] = low  # open mouths
    return z


@pytest.mark.slow
def test_gradients_match_central_differences():
    """At 16 z, every continuous factor's autograd derivative of a smooth image loss agrees with a central
    difference within 5 % (float64 painting, true derivatives of the quantisers, the easy preset's uncompressed
    images), and every factor that changes the picture has a non-zero one."""
    g = PainterGenerator(PainterConfig(size=64, preset="easy"))
    g.straight_through = False
    z = _coverage_latents(16)
    weight = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def loss(images: torch.Tensor) -> torch.Tensor:  # one value per image
        return (images * weight).mean((1, 2, 3)) + 0.5 * images.square().mean((1, 2, 3))

    # Factors and painting in float64: a step far below a pixel's anti-aliasing ramp (so few ramps bend inside it), far
    # above the rounding of the float32 texture banks (at 1e-6 that rounding shows).
    h = 1e-4
    changes = torch.zeros(len(CONTINUOUS), dtype=torch.bool)
    worst = []
    for zi in z:
        latent = zi[None, None].clone().requires_grad_(True)
        loss(g.render(latent, dtype=torch.float64).images).sum().backward()
        assert torch.isfinite(latent.grad).all()
        autograd = latent.grad[0, 0, CONTINUOUS]
        steps = torch.zeros(2 * len(CONTINUOUS), N_FACTORS, dtype=torch.float64)
        for k, i in enumerate(CONTINUOUS):
            steps[2 * k, i], steps[2 * k + 1, i] = h, -h
        with torch.no_grad():
            values = loss(g.render((zi[None] + steps)[:, None], dtype=torch.float64).images)
        central = (values[0::2] - values[1::2]) / (2 * h)
        scale = central.abs().max()
        error = (autograd - central).abs()
        bad = error > 0.05 * central.abs() + 1e-4 * scale
        worst += [(FACTOR_NAMES[CONTINUOUS[k]], float(autograd[k]), float(central[k])) for k in bad.nonzero().flatten()]
        changes |= central.abs() > 1e-4 * scale
    assert not worst, f"autograd vs central difference: {worst[:10]}"
    # In the easy preset at 64 px nothing is compressed or blurred; every other factor changes some picture.
    silent = {FACTOR_NAMES[CONTINUOUS[k]] for k in (~changes).nonzero().flatten().tolist()}
    assert silent <= {"image.jpeg", "image.blur", "camera.blur"}, silent


@pytest.mark.slow
def test_inversion_from_a_perturbed_z_finds_the_face():
    """From the true z perturbed by N(0, 0.3^2) on the continuous coordinates (discrete choices and texture
    selectors kept), 200 Adam steps on the unmasked image reach >= 35 dB on >= 80 % of 32 held-out faces."""
    g = PainterGenerator()
    world = FaceWorld(WorldConfig(size=64))
    ids = world.identity_split("test")[:32]
    z = world_z(world, ids, torch.zeros(32, dtype=torch.long), torch.arange(32) % 6).float()
    target = g(z)
    free = (~g.discrete_latents[0, 0]).float()
    start = z + 0.3 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0)) * free
    result = invert(g, target, init_w_plus=start[:, None],
                    config=InversionConfig(steps=200, lr=0.03, w_norm_weight=0.0))
    psnr = 10 * torch.log10(4.0 / (result.image - target).square().mean((1, 2, 3)).clamp_min(1e-12))
    before = 10 * torch.log10(4.0 / (g(start) - target).square().mean((1, 2, 3)))
    assert before.median() < 30
    assert (psnr >= 35).float().mean() >= 0.8, sorted(psnr.tolist())
    kept = g.discrete_latents[0, 0]
    assert torch.equal(result.w_plus[:, 0, kept], start[:, kept])


def test_inversion_keeps_discrete_choices_under_the_latent_prior():
    """The w-norm prior pulls towards the median face; it must not flip a discrete choice (sex, glasses...)."""
    g = PainterGenerator(PainterConfig(size=32))
    z = torch.randn(2, N_FACTORS, generator=torch.Generator().manual_seed(4))
    result = invert(g, g(z), init_w_plus=z[:, None], config=InversionConfig(steps=5, lr=0.5, w_norm_weight=10.0))
    kept = g.discrete_latents[0, 0]
    assert torch.equal(result.w_plus[:, 0, kept], z[:, kept])
    assert not torch.equal(result.w_plus[:, 0, ~kept], z[:, ~kept])


def test_coarse_to_fine_needs_soft_edges():
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    stylegan = Generator(GeneratorConfig(size=16, style_dim=8, n_mlp=1, channel_multiplier=1))
    with pytest.raises(ConfigError, match="soft edges"):
        invert(stylegan, torch.zeros(1, 3, 16, 16), config=InversionConfig(steps=1, edge_start=4.0))
    g = PainterGenerator(PainterConfig(size=32))
    z = torch.zeros(1, N_FACTORS)
    result = invert(g, g(z), init_w_plus=z[:, None], config=InversionConfig(steps=3, edge_start=4.0))
    assert g.edge == 1.0 and result.image.shape == (1, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_paints_what_the_cpu_paints():
    g = PainterGenerator()
    z = torch.randn(8, N_FACTORS, generator=torch.Generator().manual_seed(5))
    assert (g(z.cuda()).cpu() - g(z)).abs().max() < 1e-4
