"""Generator-sampled training pairs (``data.source: generated``) with tiny random generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmask.data import generated
from unmask.data.batch import check_batch
from unmask.data.generated import GeneratedPairs, sample_z
from unmask.data.pairs import DataConfig, build_sources
from unmask.errors import ConfigError, NoFaceError
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.synthetic import FaceWorld
from unmask.synthetic.config import WorldConfig
from unmask.synthetic.latent import FACTOR_NAMES, N_FACTORS, render_z

SIZE = 32
TEACHING_DIM = 128  # >= N_FACTORS


def tiny(size: int = SIZE, style_dim: int = 32, z_names: tuple[str, ...] = ()) -> Generator:
    torch.manual_seed(0)
    config = GeneratorConfig(size=size, style_dim=style_dim, n_mlp=2, channel_max=16, channel_multiplier=1,
                             z_names=z_names)
    return Generator(config).requires_grad_(False).eval()


@pytest.fixture(scope="module")
def teaching():
    return tiny(style_dim=TEACHING_DIM, z_names=FACTOR_NAMES)


def fixed_landmarks(calls: list | None = None, fail: set | None = None):
    """Landmarks of a frontal template face; ``None`` for the images whose call number is in ``fail``."""
    from unmask.faces.template import template_landmarks

    points = np.asarray(template_landmarks(SIZE), dtype=np.float32)
    counter = iter(range(10_000))

    def find(images, z):
        out = []
        for _ in images:
            n = next(counter)
            if calls is not None:
                calls.append(n)
            out.append(None if fail and n in fail else points)
        return out

    return find


def test_teaching_generator_uses_the_worlds_exact_landmarks(teaching):
    world = WorldConfig(size=SIZE)
    source = GeneratedPairs(teaching, 10, SIZE, world=world)
    batch = check_batch(source.batch([0, 3, 5], seed=1))
    assert batch["masked"].shape == (3, 3, SIZE, SIZE) and batch["w_plus"].shape == (3, teaching.n_latent,
                                                                                      TEACHING_DIM)
    # The landmark finder returns render_z's landmarks of each item's z.
    z = sample_z(0, "train", [0, 3, 5], TEACHING_DIM)
    found = np.stack(source.landmarks(np.zeros((3, SIZE, SIZE, 3), np.uint8), z))
    truth = render_z(FaceWorld(world), z.double(), size=SIZE).landmarks.numpy()
    np.testing.assert_allclose(found, truth, atol=1e-3)
    # Masks were drawn, and the target is kept outside them.
    assert (batch["mask"].flatten(1).sum(1) > 0).all()
    outside = (batch["mask"] == 0).expand_as(batch["target"])
    assert torch.equal(batch["masked"][outside], batch["target"][outside])
    assert (batch["masked"] != batch["target"]).any()


@pytest.mark.slow
def test_items_are_pure_functions_of_seed_and_index(teaching):
    source = GeneratedPairs(teaching, 10, SIZE, world=WorldConfig(size=SIZE))
    a = source.batch([2, 7], seed=4)
    b = source.batch([7, 9, 2], seed=4)
    for key in a:
        assert torch.equal(a[key][0], b[key][2]) and torch.equal(a[key][1], b[key][0]), key
    other = source.batch([2, 7], seed=5)  # the trainer's seed moves the masks, not the faces
    assert torch.equal(other["target"], a["target"]) and not torch.equal(other["mask"], a["mask"])
    val = GeneratedPairs(teaching, 10, SIZE, split="test", world=WorldConfig(size=SIZE)).batch([2], seed=4)
    assert not torch.equal(val["target"][0], a["target"][0])  # disjoint z streams
    with pytest.raises(IndexError):
        source.batch([10])


def test_w_plus_is_the_mapping_of_z_and_truncation_pulls_it_to_the_mean():
    generator = tiny()
    z = sample_z(0, "train", [1, 4], 32)
    plain = GeneratedPairs(generator, 8, SIZE, landmarks=fixed_landmarks()).batch([1, 4])
    w = generator.mapping(z)
    assert torch.allclose(plain["w_plus"], w[:, None].expand(-1, generator.n_latent, -1), atol=1e-6)
    image = generator.synthesis(plain["w_plus"], randomize_noise=False).clamp(-1, 1)
    assert torch.allclose(plain["target"], image, atol=1 / 127.5 + 1e-6)  # up to the uint8 quantisation
    avg = generator.mean_latent(256, seed=0)
    trunc = GeneratedPairs(generator, 8, SIZE, landmarks=fixed_landmarks(), truncation=0.5,
                           latent_avg=avg).batch([1, 4])
    assert torch.allclose(trunc["w_plus"][:, 0], avg + 0.5 * (w - avg), atol=1e-5)


def test_output_is_resized_to_the_model_size():
    generator = tiny(size=64)
    from unmask.faces.template import template_landmarks

    seen = []

    def find(images, z):
        seen.append(images.shape)
        return [np.asarray(template_landmarks(SIZE), np.float32)] * len(images)

    batch = GeneratedPairs(generator, 4, SIZE, landmarks=find).batch([0, 1])
    assert batch["target"].shape == (2, 3, SIZE, SIZE) and seen == [(2, SIZE, SIZE, 3)]


def test_faces_without_landmarks_are_resampled_then_refused():
    generator = tiny()
    calls: list = []
    # Calls 0 and 1 are items 5 and 6 at attempt 0; item 6 fails, so call 2 is its attempt 1.
    source = GeneratedPairs(generator, 8, SIZE, landmarks=fixed_landmarks(calls, fail={1}))
    batch = source.batch([5, 6])
    assert calls == [0, 1, 2]
    z6_retry = sample_z(0, "train", [6], 32, attempts=[1])
    assert torch.allclose(batch["w_plus"][1, 0], generator.mapping(z6_retry)[0], atol=1e-6)
    first = source.batch([5])
    assert torch.equal(first["target"][0], batch["target"][0])  # the item that was found is unchanged

    never = GeneratedPairs(generator, 8, SIZE, landmarks=lambda images, z: [None] * len(images), max_tries=3)
    with pytest.raises(NoFaceError, match="no face found in 3 generator samples"):
        never.batch([0])


def test_a_teaching_generator_needs_its_world():
    generator = tiny(style_dim=TEACHING_DIM, z_names=FACTOR_NAMES)
    assert generated.is_teaching(generator) and not generated.is_teaching(tiny())
    with pytest.raises(ConfigError, match="world"):
        GeneratedPairs(generator, 4, SIZE)
    assert N_FACTORS <= TEACHING_DIM


def test_config_builds_sources_from_a_saved_generator(tmp_path, teaching):
    teaching.save_pretrained(tmp_path / "g")
    config = DataConfig(source="generated", generator=str(tmp_path / "g"), world=WorldConfig(size=SIZE),
                        length=20, val_length=3)
    train, val = build_sources(config, SIZE)
    assert len(train) == 20 and len(val) == 3
    batch = check_batch(val.batch(range(3)))
    assert batch["w_plus"].shape == (3, teaching.n_latent, TEACHING_DIM)

    tiny().save_pretrained(tmp_path / "ffhq_like")
    with pytest.raises(ConfigError, match="not a teaching generator"):
        build_sources(DataConfig(source="generated", generator=str(tmp_path / "ffhq_like"), landmarks="world"), SIZE)
    with pytest.raises(ConfigError, match="data.generator is not set"):
        DataConfig(source="generated")
    with pytest.raises(ConfigError, match="data.landmarks"):
        DataConfig(source="generated", generator="g", landmarks="mediapipe")
    with pytest.raises(ConfigError, match="truncation"):
        DataConfig(source="generated", generator="g", truncation=0.0)


def test_one_loader_of_a_frozen_generator_with_its_mean_latent(tmp_path):
    """The trainers, the generated pairs, the pipeline and the inversion share one loader and one fallback."""
    from unmask.models.generators import LATENT_AVG_FILE, load_frozen_generator, mean_latent, save_latent_avg
    from unmask.models.stylegan2 import Generator, GeneratorConfig

    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(size=16, style_dim=16, n_mlp=2, channel_max=16))
    generator.save_pretrained(tmp_path / "g")
    loaded, computed = load_frozen_generator(tmp_path / "g", n_samples=64)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    torch.testing.assert_close(computed, generator.mean_latent(64, seed=0).reshape(-1))
    save_latent_avg(tmp_path / "g", torch.ones(16))
    assert (tmp_path / "g" / LATENT_AVG_FILE).is_file()
    assert torch.equal(load_frozen_generator(tmp_path / "g")[1], torch.ones(16))  # the exported file wins

    class Encoder(torch.nn.Module):  # pSp / e4e: the average they were trained around
        latent_avg = torch.full((3, 16), 2.0)

    assert torch.equal(mean_latent(generator, 64, encoder=Encoder()), torch.full((1, 16), 2.0))
    Encoder.latent_avg = torch.zeros(3, 16)  # an encoder without one: the generator's
    torch.testing.assert_close(mean_latent(generator, 64, encoder=Encoder()), generator.mean_latent(64, seed=0))


def test_dlib_landmarks_on_a_real_photo(astronaut):
    pytest.importorskip("dlib")
    find = generated.dlib_landmarks()
    found = find(astronaut[None], torch.zeros(1, 1))
    assert found[0].shape == (68, 2)
    assert find(np.full((1, 64, 64, 3), 128, np.uint8), torch.zeros(1, 1)) == [None]
    # The face is in the upper middle of the photo; the landmarks lie inside the frame.
    assert (found[0] > 0).all() and (found[0] < 512).all()


def test_world_images_are_the_exact_renders_of_the_true_z(teaching):
    """images='world': the target is render_z(world, z) of the item's z, the latent still G's mapping of z."""
    world = WorldConfig(size=SIZE)
    source = GeneratedPairs(teaching, 10, SIZE, world=world, images="world")
    batch = check_batch(source.batch([2, 7], seed=3))
    z = sample_z(0, "train", [2, 7], TEACHING_DIM)
    painted = render_z(FaceWorld(world), z).images.float().clamp(-1, 1)
    assert (batch["target"] - painted).abs().max() <= 1 / 127.5 + 1e-6  # up to uint8 quantisation
    with torch.no_grad():
        w = teaching.mapping(z)
    assert torch.allclose(batch["w_plus"], w[:, None].expand_as(batch["w_plus"]), atol=1e-5)
    drawn = GeneratedPairs(teaching, 10, SIZE, world=world).batch([2, 7], seed=3)
    assert torch.equal(drawn["w_plus"], batch["w_plus"]) and not torch.equal(drawn["target"], batch["target"])
    # the masks sit on the same exact landmarks, so masked differs from target only where the mask is
    outside = batch["mask"].expand_as(batch["target"]) == 0
    assert torch.equal(batch["masked"][outside], batch["target"][outside])


def test_world_images_need_a_teaching_generator_and_no_truncation(teaching):
    world = WorldConfig(size=SIZE)
    with pytest.raises(ConfigError, match="teaching generator"):
        GeneratedPairs(tiny(), 4, SIZE, world=world, landmarks=fixed_landmarks(), images="world")
    with pytest.raises(ConfigError, match="truncation 1"):
        GeneratedPairs(teaching, 4, SIZE, world=world, truncation=0.7, images="world")
    with pytest.raises(ConfigError, match="data.images"):
        DataConfig(source="generated", generator="g", images="photo")
