"""The DigiFace-1M DCGAN behind the one generator interface: tiny random generators of both families, the strict
load and digest check of the packaged file, the landmark-template alignment, generated pairs, the digiface bundle."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

from unmask import hub
from unmask.data.batch import check_batch
from unmask.data.generated import GeneratedPairs, sample_z
from unmask.errors import ConfigError, InputShapeError, WeightsError
from unmask.models.dcgan import DCGANConfig, DCGANGenerator, convert_dcgan_checkpoint
from unmask.models.generators import FrozenGenerator, mean_latent, truncate
from unmask.models.stylegan2 import Generator, GeneratorConfig

SIZE = 16
Z_DIM = 8
TINY_DCGAN = DCGANConfig(z_dim=Z_DIM, base_channels=4, size=SIZE)
PACKAGED = importlib.util.find_spec("gan_face_generate") is not None
needs_package = pytest.mark.skipif(not PACKAGED, reason="gan-face-generate is not installed "
                                   "(pip install --no-deps -r requirements-nodeps.txt)")


def tiny_dcgan() -> DCGANGenerator:
    torch.manual_seed(0)
    model = DCGANGenerator(TINY_DCGAN)
    with torch.no_grad():  # non-trivial batch-norm statistics, so a test can tell them from batch statistics
        for module in model.modules():
            if hasattr(module, "running_var"):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.requires_grad_(False).eval()


def tiny_stylegan2() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(size=SIZE, style_dim=Z_DIM, n_mlp=2, channel_max=8,
                                     channel_multiplier=1)).requires_grad_(False).eval()


def public_state(model: DCGANGenerator) -> dict[str, torch.Tensor]:
    """``model``'s weights under the public ``nn.Sequential`` names (``main.<index>.*``) of the wheel's file."""
    from unmask.models.dcgan import _public_key_map

    ours = model.state_dict()
    return {public: ours[name].clone() for public, name in _public_key_map(model.config).items()}


def reference_sequential(config: DCGANConfig) -> nn.Module:
    """The public architecture written out plainly (transposed conv, batch norm, ReLU…, tanh) as ``main``."""
    layers: list[nn.Module] = []
    channels = [config.z_dim] + [config.channels(i) for i in range(config.n_stages)]
    for i in range(config.n_stages):
        stride, pad = (1, 0) if i == 0 else (2, 1)
        layers += [nn.ConvTranspose2d(channels[i], channels[i + 1], 4, stride, pad, bias=False),
                   nn.BatchNorm2d(channels[i + 1]), nn.ReLU()]
    layers += [nn.ConvTranspose2d(channels[-1], config.image_channels, 4, 2, 1, bias=False), nn.Tanh()]
    reference = nn.Module()
    reference.main = nn.Sequential(*layers)
    return reference


# ------------------------------------------------------------------------------------------ the interface
@pytest.mark.parametrize("family", ["stylegan2", "dcgan"])
def test_both_families_serve_the_generator_interface(family):
    generator = tiny_stylegan2() if family == "stylegan2" else tiny_dcgan()
    assert isinstance(generator, FrozenGenerator)
    z = torch.randn(3, generator.style_dim)
    w = generator.mapping(z)
    w_plus = w[:, None].expand(-1, generator.n_latent, -1)
    image = generator.synthesis(w_plus, randomize_noise=False)
    assert image.shape == (3, 3, generator.size, generator.size) and generator.size == SIZE
    average = mean_latent(generator, 64, seed=0)
    assert average.shape == (1, generator.style_dim)
    assert torch.allclose(truncate(w, average, 0.0), average.expand_as(w))
    assert torch.equal(truncate(w, average, 1.0), w)
    with pytest.raises(InputShapeError):
        generator.synthesis(torch.zeros(1, generator.n_latent + 1, generator.style_dim))


def test_dcgan_latent_is_z_with_mean_zero_and_one_layer():
    generator = tiny_dcgan()
    z = torch.randn(4, Z_DIM)
    assert generator.n_latent == 1 and torch.equal(generator.mapping(z), z)
    assert torch.equal(generator.mean_latent(10, seed=3), torch.zeros(1, Z_DIM))
    assert generator.make_noise() == []
    image = generator(z=z)
    assert torch.equal(image, generator.synthesis(z[:, None]))
    assert image.abs().max() <= 1.0
    assert torch.allclose(generator(z=z, truncation=0.5), generator.synthesis(0.5 * z[:, None]))
    # Frozen batch norm: the output of a face does not depend on train() or on the other faces of the batch.
    generator.train()
    assert torch.equal(generator(z=z[:1]), image[:1])


def test_invert_and_the_pipeline_run_on_a_dcgan():
    from unmask.invert import InversionConfig, invert
    from unmask.models.encoder import EncoderConfig, build_encoder
    from unmask.pipeline import PipelineConfig, UnmaskPipeline

    generator = tiny_dcgan()
    target = generator(z=torch.randn(2, Z_DIM))
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[:, :, SIZE // 2:] = 1
    result = invert(generator, target, mask, config=InversionConfig(steps=3, lr=0.1, w_norm_weight=0.0))
    assert result.w_plus.shape == (2, 1, Z_DIM) and result.image.shape == target.shape
    encoder = build_encoder(EncoderConfig(input_size=32, n_styles=1, style_dim=Z_DIM, stage_channels=(8, 8, 8, 8),
                                          stage_blocks=(1, 1, 1, 1), head_channels=8, mask_head=True))
    pipe = UnmaskPipeline(generator, encoder, config=PipelineConfig(world="digiface", alignment="digiface",
                                                                    align_size=32, mask_channel=False))
    x = torch.nn.functional.interpolate(target, size=32)
    recovered, w_plus = pipe.recover_batch(x, torch.zeros(2, 1, 32, 32), mode="encoder+refine", steps=2)
    assert recovered.shape == (2, 3, 32, 32) and w_plus.shape == (2, 1, Z_DIM)


# ------------------------------------------------------------------------------------------ strict load + digest
def test_conversion_is_strict_and_matches_the_public_architecture():
    source = tiny_dcgan()
    state = public_state(source)
    model = convert_dcgan_checkpoint({"netG_state_dict": state})
    assert model.config == TINY_DCGAN
    reference = reference_sequential(TINY_DCGAN)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    z = torch.randn(3, Z_DIM)
    with torch.no_grad():
        torch.testing.assert_close(model(z=z), reference.main(z[:, :, None, None]), rtol=0, atol=1e-6)
    with pytest.raises(WeightsError, match="netG_state_dict"):
        convert_dcgan_checkpoint({"netD_state_dict": state})
    missing = {k: v for k, v in state.items() if not k.endswith("running_var")}
    with pytest.raises(WeightsError, match="running_var"):
        convert_dcgan_checkpoint({"netG_state_dict": missing})
    with pytest.raises(WeightsError, match="does not know"):
        convert_dcgan_checkpoint({"netG_state_dict": {**state, "main.99.weight": torch.zeros(1)}})


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package ``fake_dcgan_pkg`` holding a tiny DCGAN file, registered as ``fake-dcgan`` (no version pin)."""
    folder = tmp_path / "fake_dcgan_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    torch.save({"netG_state_dict": public_state(tiny_dcgan())}, folder / "weights.tar")
    digest = hashlib.sha256((folder / "weights.tar").read_bytes()).hexdigest()
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = hub.PublicWeights("fake-dcgan", "dcgan", "", "weights.tar", "", "test only", "a test", digest,
                              package="fake_dcgan_pkg", distribution="fake-dcgan-pkg")
    monkeypatch.setitem(hub.REGISTRY, "fake-dcgan", entry)
    yield folder
    sys.modules.pop("fake_dcgan_pkg", None)


def test_packaged_weights_load_strictly_with_their_digest_checked(fake_package, monkeypatch):
    from unmask.models.generators import load_frozen_generator
    from unmask.models.public import load_registered

    model = load_registered("fake-dcgan")
    assert isinstance(model, DCGANGenerator) and model.config == TINY_DCGAN
    assert hub.registered_available("fake-dcgan", ask_hub=False)
    generator, latent_avg = load_frozen_generator("fake-dcgan")
    assert not any(p.requires_grad for p in generator.parameters()) and torch.equal(latent_avg, torch.zeros(Z_DIM))
    entry = hub.REGISTRY["fake-dcgan"]
    monkeypatch.setitem(hub.REGISTRY, "fake-dcgan", hub.PublicWeights(**{**entry.__dict__, "sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="sha256.*--force-reinstall"):
        load_registered("fake-dcgan")


def test_a_missing_or_other_version_package_is_refused_with_the_install_line(monkeypatch):
    entry = hub.PublicWeights("absent", "dcgan", "", "weights.tar", "", "test only", "a test",
                              package="no_such_package_here", package_version="1.1.1", distribution="no-such-package")
    monkeypatch.setitem(hub.REGISTRY, "absent", entry)
    with pytest.raises(WeightsError, match=r"not installed.*pip install --no-deps no-such-package==1\.1\.1"):
        hub.download_registered("absent")
    assert not hub.registered_available("absent")
    pinned = hub.PublicWeights(**{**entry.__dict__, "package": "numpy", "distribution": "numpy"})
    monkeypatch.setitem(hub.REGISTRY, "absent", pinned)
    with pytest.raises(WeightsError, match=r"pinned to numpy 1\.1\.1"):
        hub.download_registered("absent")


@needs_package
def test_the_wheels_generator_loads_strictly_and_draws_what_its_own_code_draws():
    from gan_face_generate.models import Generator as PackageGenerator  # its module imports torch only

    from unmask.models.public import load_registered

    entry = hub.REGISTRY["digiface-dcgan"]
    path = hub.packaged_file(entry)
    assert hub.sha256_file(path) == entry.sha256 and "non-commercial" in entry.licence
    model = load_registered("digiface-dcgan")
    assert (model.size, model.style_dim, model.n_latent) == (64, 100, 1)
    reference = PackageGenerator(0, 3, 100, 64)
    reference.load_state_dict(hub.load_legacy_checkpoint(path)["netG_state_dict"], strict=True)
    reference.eval()
    z = torch.randn(2, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(z=z), reference(z[:, :, None, None]), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ alignment template
def test_template_alignment_puts_a_faces_landmarks_on_the_template():
    from unmask.faces.align import align_face, paste_back
    from unmask.faces.template import DIGIFACE_TEMPLATE_68, alignment_template, template_landmarks

    size = 64
    # A face drawn in a photo by a known similarity of the template (rotated 10 degrees, 3.1x, shifted).
    angle, scale, shift = np.deg2rad(10.0), 3.1 * size, np.array([140.0, 95.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    photo_points = (DIGIFACE_TEMPLATE_68 - 0.5) @ rotation.T * scale + shift
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (400, 420, 3), dtype=np.uint8)
    aligned = align_face(photo, photo_points, size=size, template=alignment_template("digiface"))
    np.testing.assert_allclose(aligned.landmarks68, template_landmarks(size, "digiface"), atol=1e-3)
    assert alignment_template("ffhq") is None
    with pytest.raises(ConfigError, match="alignment"):
        alignment_template("celeba")
    # Paste-back goes through the same transform: a crop pasted over the whole square lands where the face was.
    white = np.full((size, size, 3), 255, np.uint8)
    pasted = paste_back(photo, white, aligned.transform, region=np.ones((size, size), np.float32), feather=0.0)
    nose = np.round(photo_points[30]).astype(int)
    assert (pasted[nose[1], nose[0]] == 255).all()


def test_the_digiface_template_is_the_dcgans_tight_crop():
    from unmask.faces.template import DIGIFACE_TEMPLATE_68, TEMPLATE_68

    eyes = DIGIFACE_TEMPLATE_68[36:48].mean(0)
    mouth = DIGIFACE_TEMPLATE_68[48:68].mean(0)
    assert abs(eyes[0] - 0.5) < 0.01 and abs(mouth[0] - 0.5) < 0.01  # centred
    assert mouth[1] > eyes[1] + 0.3 and DIGIFACE_TEMPLATE_68[8, 1] > 1.0  # tighter than FFHQ: the chin leaves it
    ffhq_gap = TEMPLATE_68[48:68, 1].mean() - TEMPLATE_68[36:48, 1].mean()
    assert mouth[1] - eyes[1] > 1.3 * ffhq_gap


def test_a_pipeline_config_names_a_known_alignment():
    from unmask.pipeline import PipelineConfig

    assert PipelineConfig(alignment="digiface").alignment == "digiface"
    with pytest.raises(ConfigError, match="alignment"):
        PipelineConfig(alignment="celeba")


# ------------------------------------------------------------------------------------------ generated pairs
def test_generated_pairs_on_a_dcgan_skip_faceless_samples_and_keep_the_true_z():
    from unmask.faces.masks import MASK_TYPES
    from unmask.faces.template import template_landmarks

    generator = tiny_dcgan()
    points = np.asarray(template_landmarks(SIZE, "digiface"), dtype=np.float32)
    calls = []

    def find(images, z):  # every first draw of an item is "faceless": the source must redraw it
        out = []
        for _ in images:
            calls.append(len(calls))
            out.append(None if len(calls) <= len(images) else points)
        return out

    source = GeneratedPairs(generator, 20, SIZE, landmarks=find, mask_type=list(MASK_TYPES))
    batch = check_batch(source.batch([0, 5, 9], seed=2))
    assert len(calls) == 6  # three faceless draws, three redraws
    z = sample_z(0, "train", [0, 5, 9], Z_DIM, attempts=[1, 1, 1])
    torch.testing.assert_close(batch["w_plus"], z[:, None])
    torch.testing.assert_close(batch["target"], generator(z=z), atol=1 / 127.5, rtol=0)  # uint8 round trip
    assert (batch["mask"].flatten(1).sum(1) > 0).all()
    outside = (batch["mask"] == 0).expand_as(batch["target"])
    assert torch.equal(batch["masked"][outside], batch["target"][outside])


def test_generated_pairs_draw_every_mask_type_on_a_dcgan():
    from unmask.faces.masks import available_mask_types
    from unmask.faces.template import template_landmarks

    size = 64
    generator = DCGANGenerator(DCGANConfig(z_dim=Z_DIM, base_channels=4, size=size)).eval()
    points = np.asarray(template_landmarks(size, "digiface"), dtype=np.float32)
    for mask_type in available_mask_types():
        source = GeneratedPairs(generator, 4, size, landmarks=lambda images, z: [points] * len(images),
                                mask_type=mask_type)
        batch = source.batch([0, 1], seed=0)
        covered = batch["mask"].mean()
        assert 0.05 < covered < 0.6, (mask_type, float(covered))


# ------------------------------------------------------------------------------------------ the digiface bundle
@needs_package
def test_the_digiface_bundle_loads_offline_and_recovers_a_photo(astronaut):
    from unmask.bundle import available_bundles, read_manifest
    from unmask.bundle.resolve import WEIGHTS_DIR
    from unmask.pipeline import UnmaskPipeline

    manifest = read_manifest(WEIGHTS_DIR / "digiface")
    assert manifest.components["generator"].registry == "digiface-dcgan"  # referenced, never copied
    assert not (WEIGHTS_DIR / "digiface" / "generator").exists()
    assert "digiface" in available_bundles(ask_hub=False)
    pipe = UnmaskPipeline.from_pretrained("digiface", device="cpu")
    assert pipe.bundle == "digiface" and pipe.config.alignment == "digiface" and pipe.size == 64
    result = pipe(astronaut)
    assert result.output.shape == astronaut.shape and result.faces[0].recovered.shape == (64, 64, 3)
    assert result.faces[0].mask_source == "predicted"
    changed = np.any(result.output != astronaut, axis=2)
    assert 0 < changed.mean() < 0.1  # only the face's lower half is redrawn


def test_the_digiface_bundle_is_refused_clearly_without_its_package(monkeypatch):
    from unmask.bundle import available_bundles
    from unmask.bundle.resolve import WEIGHTS_DIR
    from unmask.pipeline import UnmaskPipeline

    if not (WEIGHTS_DIR / "digiface" / "pipeline.json").is_file():
        pytest.fail("weights/digiface/pipeline.json is missing from the checkout")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "gan_face_generate" else real(name, *a, **k))
    assert "digiface" not in available_bundles(ask_hub=False)
    with pytest.raises(WeightsError, match=r"pip install --no-deps gan-face-generate==1\.1\.1"):
        UnmaskPipeline.from_pretrained("digiface", device="cpu")
