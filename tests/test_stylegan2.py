"""StyleGAN2 generator/discriminator: shapes, reference layout, hub round trip, latents, noise."""

from __future__ import annotations

import json
import math

import pytest
import torch

from unmask.errors import ConfigError, InputShapeError
from unmask.models.ops import upfirdn2d
from unmask.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, ModulatedConv2d

STYLE_DIM = 32


def tiny_generator(size: int = 32, seed: int = 0, **kwargs) -> Generator:
    torch.manual_seed(seed)
    cfg = dict(size=size, style_dim=STYLE_DIM, n_mlp=2, channel_max=16)
    cfg.update(kwargs)
    g = Generator(GeneratorConfig(**cfg)).eval()
    with torch.no_grad():  # non-zero noise strengths and biases so every term matters
        for name, p in g.named_parameters():
            if name.endswith(("noise.weight", "bias")):
                p.normal_(0.0, 0.3)
    return g


# ------------------------------------------------------------------ reference layout (written out here)
CONFIG_F_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def config_f_channels(res: int, cm: int = 2) -> int:
    return CONFIG_F_CHANNELS[res] * (cm if res >= 64 else 1)


def expected_generator_layout(size: int, style_dim: int = 512, n_mlp: int = 8) -> dict[str, tuple[int, ...]]:
    """rosinality Generator state dict from the published architecture description."""
    layout: dict[str, tuple[int, ...]] = {}
    for i in range(1, n_mlp + 1):  # style.0 is PixelNorm (no parameters)
        layout[f"style.{i}.weight"] = (style_dim, style_dim)
        layout[f"style.{i}.bias"] = (style_dim,)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        layout[f"{prefix}.conv.weight"] = (1, cout, cin, 3, 3)
        layout[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        layout[f"{prefix}.conv.modulation.bias"] = (cin,)
        if up:
            layout[f"{prefix}.conv.blur.kernel"] = (4, 4)
        layout[f"{prefix}.noise.weight"] = (1,)
        layout[f"{prefix}.activate.bias"] = (cout,)

    def to_rgb(prefix: str, cin: int, up: bool) -> None:
        layout[f"{prefix}.conv.weight"] = (1, 3, cin, 1, 1)
        layout[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        layout[f"{prefix}.conv.modulation.bias"] = (cin,)
        layout[f"{prefix}.bias"] = (1, 3, 1, 1)
        if up:
            layout[f"{prefix}.upsample.kernel"] = (4, 4)

    layout["input.input"] = (1, 512, 4, 4)
    styled("conv1", 512, 512, up=False)
    to_rgb("to_rgb1", 512, up=False)
    cin = 512
    log_size = int(math.log2(size))
    for k, log_res in enumerate(range(3, log_size + 1)):
        cout = config_f_channels(2**log_res)
        styled(f"convs.{2 * k}", cin, cout, up=True)
        styled(f"convs.{2 * k + 1}", cout, cout, up=False)
        to_rgb(f"to_rgbs.{k}", cout, up=True)
        cin = cout
    resolutions = [4] + [2**r for r in range(3, log_size + 1) for _ in range(2)]
    for i, res in enumerate(resolutions):
        layout[f"noises.noise_{i}"] = (1, 1, res, res)
    return layout


def expected_discriminator_layout(size: int) -> dict[str, tuple[int, ...]]:
    layout: dict[str, tuple[int, ...]] = {}
    cin = config_f_channels(size)
    layout["convs.0.0.weight"] = (cin, 3, 1, 1)
    layout["convs.0.1.bias"] = (cin,)
    log_size = int(math.log2(size))
    for k, log_res in enumerate(range(log_size, 2, -1), start=1):
        cout = config_f_channels(2 ** (log_res - 1))
        layout[f"convs.{k}.conv1.0.weight"] = (cin, cin, 3, 3)
        layout[f"convs.{k}.conv1.1.bias"] = (cin,)
        layout[f"convs.{k}.conv2.0.kernel"] = (4, 4)
        layout[f"convs.{k}.conv2.1.weight"] = (cout, cin, 3, 3)
        layout[f"convs.{k}.conv2.2.bias"] = (cout,)
        layout[f"convs.{k}.skip.0.kernel"] = (4, 4)
        layout[f"convs.{k}.skip.1.weight"] = (cout, cin, 1, 1)
        cin = cout
    layout["final_conv.0.weight"] = (512, 513, 3, 3)
    layout["final_conv.1.bias"] = (512,)
    layout["final_linear.0.weight"] = (512, 512 * 16)
    layout["final_linear.0.bias"] = (512,)
    layout["final_linear.1.weight"] = (1, 512)
    layout["final_linear.1.bias"] = (1,)
    return layout


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_ffhq_config_f_generator_layout_matches_reference():
    with torch.device("meta"):
        g = Generator(GeneratorConfig())
    expected = expected_generator_layout(1024)
    assert shapes(g) == expected
    # mapping, input, conv1, to_rgb1, 8 upsampling blocks (8..1024 px), 17 noise buffers
    assert len(expected) == 8 * 2 + 1 + 5 + 4 + 8 * 16 + 17
    assert (g.n_latent, g.num_layers) == (18, 17)


@pytest.mark.parametrize("size", [1024, 256])
def test_discriminator_layout_matches_reference(size):
    with torch.device("meta"):
        d = Discriminator(DiscriminatorConfig(size=size))
    assert shapes(d) == expected_discriminator_layout(size)


# ------------------------------------------------------------------ shapes and config
@pytest.mark.parametrize("size,channel_max", [(32, 16), (64, 16), (256, 8)])
def test_generator_output_shapes(size, channel_max):
    g = tiny_generator(size, channel_max=channel_max)
    n_latent = 2 * int(math.log2(size)) - 2
    assert g.n_latent == n_latent
    with torch.no_grad():
        img, latents = g(torch.randn(2, STYLE_DIM), return_latents=True)
    assert img.shape == (2, 3, size, size)
    assert latents.shape == (2, n_latent, STYLE_DIM)
    assert torch.isfinite(img).all()


def test_discriminator_output_shape_and_batch_rule():
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(size=32, channel_max=16)).eval()
    with torch.no_grad():
        assert d(torch.randn(8, 3, 32, 32)).shape == (8, 1)
        assert d(torch.randn(3, 3, 32, 32)).shape == (3, 1)  # group = min(batch, 4)
    with pytest.raises(InputShapeError, match="divisible"):
        d(torch.randn(6, 3, 32, 32))
    with pytest.raises(InputShapeError, match=r"\(B, 3, 32, 32\)"):
        d(torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("bad", [{"size": 48}, {"size": 8}, {"channel_multiplier": 0}, {"blur_kernel": ()},
                                 {"lr_mlp": 0.0}, {"style_dim": 2, "z_names": ("a", "b", "c")},
                                 {"z_names": ("a", "a")}])
def test_bad_config_raises(bad):
    with pytest.raises(ConfigError):
        GeneratorConfig(**bad)


def test_channel_max_caps_the_reference_table():
    cfg = GeneratorConfig(size=256, channel_max=64)
    assert [cfg.channels(r) for r in (4, 64, 128, 256)] == [64, 64, 64, 64]
    default = GeneratorConfig()
    assert [default.channels(r) for r in CONFIG_F_CHANNELS] == [config_f_channels(r) for r in CONFIG_F_CHANNELS]


# ------------------------------------------------------------------ hub round trip
def test_save_pretrained_round_trip_is_exact(tmp_path):
    g = tiny_generator(32)
    g.save_pretrained(tmp_path / "g")
    loaded = Generator.from_pretrained(tmp_path / "g")
    assert loaded.config == g.config
    z = torch.randn(2, STYLE_DIM)
    with torch.no_grad():
        assert torch.equal(g(z), loaded(z))
    torch.manual_seed(1)
    d = Discriminator(DiscriminatorConfig(size=32, channel_max=16)).eval()
    d.save_pretrained(tmp_path / "d")
    d2 = Discriminator.from_pretrained(tmp_path / "d")
    img = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(d(img), d2(img))


def test_z_names_are_saved_with_the_config_and_old_configs_still_load(tmp_path):
    from unmask.synthetic.latent import FACTOR_NAMES

    g = tiny_generator(32, style_dim=128, z_names=FACTOR_NAMES)
    g.save_pretrained(tmp_path / "teaching")
    loaded = Generator.from_pretrained(tmp_path / "teaching")
    assert loaded.config.z_names == FACTOR_NAMES
    # A config.json written before z_names existed (the public conversions, the v1 teaching bundle).
    plain = tiny_generator(32)
    plain.save_pretrained(tmp_path / "old")
    config = tmp_path / "old" / "config.json"
    raw = json.loads(config.read_text())
    assert raw.pop("z_names") == []
    config.write_text(json.dumps(raw))
    assert Generator.from_pretrained(tmp_path / "old").config.z_names == ()


# ------------------------------------------------------------------ latents, truncation, noise
def test_truncation_and_mean_latent():
    g = tiny_generator(32)
    mean = g.mean_latent(256, seed=3)
    assert mean.shape == (1, STYLE_DIM)
    assert torch.equal(mean, g.mean_latent(256, seed=3))
    assert not torch.equal(mean, g.mean_latent(256, seed=4))
    z = torch.randn(2, STYLE_DIM)
    with torch.no_grad():
        at_zero = g(z, truncation=0.0, truncation_latent=mean)
        centre = g(w=mean.expand(2, -1))
        assert torch.allclose(at_zero, centre, atol=1e-5)
        assert torch.equal(g(z, truncation=1.0, truncation_latent=mean), g(z))
        half = g(z, truncation=0.5, truncation_latent=mean)
        assert not torch.allclose(half, g(z), atol=1e-3)
        # w and the equivalent w_plus render the same image
        w = g.mapping(z)
        assert torch.allclose(g(w=w), g(w_plus=w[:, None].expand(-1, g.n_latent, -1).contiguous()), atol=1e-6)


def test_gradients_reach_w_plus():
    g = tiny_generator(32)
    w_plus = torch.randn(1, g.n_latent, STYLE_DIM, requires_grad=True)
    g(w_plus=w_plus).square().mean().backward()
    assert w_plus.grad is not None
    assert (w_plus.grad.abs().sum(dim=2) > 0).all()  # every layer's style matters


def test_noise_control():
    g = tiny_generator(32)
    z = torch.randn(2, STYLE_DIM)
    noise = g.make_noise(torch.Generator().manual_seed(5))
    assert [tuple(n.shape) for n in noise] == [(1, 1, r, r) for r in (4, 8, 8, 16, 16, 32, 32)]
    same = g.make_noise(torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(noise, same))
    with torch.no_grad():
        assert torch.equal(g(z, noise=noise), g(z, noise=same))
        assert torch.equal(g(z), g(z))  # stored noise buffers: deterministic
        assert not torch.allclose(g(z, noise=noise), g(z), atol=1e-4)
        assert not torch.allclose(g(z, randomize_noise=True), g(z, randomize_noise=True), atol=1e-4)


@pytest.mark.parametrize("call", [
    lambda g: g(w_plus=torch.randn(1, g.n_latent - 1, STYLE_DIM)),
    lambda g: g(torch.randn(1, STYLE_DIM + 1)),
    lambda g: g(w=torch.randn(STYLE_DIM)),
    lambda g: g(),
    lambda g: g(torch.randn(1, STYLE_DIM), w=torch.randn(1, STYLE_DIM)),
    lambda g: g.synthesis(torch.randn(1, g.n_latent, STYLE_DIM), noise=g.make_noise()[:-1]),
    lambda g: g.synthesis(torch.randn(1, g.n_latent, STYLE_DIM), noise=[torch.randn(1, 1, 3, 3)] * g.num_layers),
])
def test_wrong_input_shape_raises(call):
    g = tiny_generator(32)
    with pytest.raises(InputShapeError):
        call(g)


def test_wrong_w_plus_message_names_expected_shape():
    g = tiny_generator(32)
    with pytest.raises(InputShapeError, match=rf"\(B, 8, {STYLE_DIM}\)"):
        g(w_plus=torch.randn(1, 7, STYLE_DIM))


# ------------------------------------------------------------------ fast paths equal the plain path
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("impl", ["grouped", "per_sample", "batched"])
def test_fast_paths_match_plain_path(channels_last, impl):
    g = tiny_generator(64)
    z = torch.randn(3, STYLE_DIM)
    with torch.no_grad():
        g.channels_last = False
        g.set_modconv_impl("grouped")
        plain = g(z)
        g.channels_last = channels_last
        g.set_modconv_impl(impl)
        assert torch.allclose(g(z), plain, atol=1e-5)


def test_inplace_inference_matches_autograd_path():
    g = tiny_generator(32)
    g.set_modconv_impl("per_sample")  # the same convolutions; only in-place vs out-of-place differs
    z = torch.randn(2, STYLE_DIM)
    with torch.no_grad():
        fast = g(z)
    assert torch.allclose(g(z), fast, atol=1e-6)  # grad-enabled path computes out of place


def test_upfirdn2d_matches_direct_definition():
    """Zero-insert, pad, true convolution, subsample — written out with numpy-style loops."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 5)
    kernel = torch.arange(1.0, 17.0).view(4, 4)  # asymmetric: checks the flip
    up, down, pad = 2, 1, (2, 1)
    out = upfirdn2d(x, kernel, up=up, down=down, pad=pad)
    u = torch.zeros(1, 2, 10, 10)
    u[:, :, ::2, ::2] = x
    u = torch.nn.functional.pad(u, (2, 1, 2, 1))
    ref = torch.zeros(1, 2, 10, 10)
    for i in range(10):
        for j in range(10):
            ref[:, :, i, j] = (u[:, :, i:i + 4, j:j + 4] * kernel.flip((0, 1))).sum((-2, -1))
    assert torch.allclose(out, ref, atol=1e-5)
    down_out = upfirdn2d(x, kernel, down=2, pad=(1, 2))
    assert down_out.shape == (1, 2, 3, 3)  # (5 + 1 + 2 - 4 + 2) // 2


# ------------------------------------------------------------------ the training path equals the per-sample weights
def _modconv_outputs_and_grads(conv, x, w):
    """Output and the gradients of a fixed non-uniform projection w.r.t. input, style and weights."""
    out = conv(x, w)
    probe = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out * probe).sum(), [x, w, conv.weight, conv.modulation.weight])
    return out, grads


@pytest.mark.parametrize("resample", ["plain", "upsample", "downsample"])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel_size", [3, 1])
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_batched_modconv_matches_per_sample_weights(resample, demodulate, kernel_size, batch):
    torch.manual_seed(batch * 10 + kernel_size)
    conv = ModulatedConv2d(6, 5, kernel_size, STYLE_DIM, demodulate=demodulate, upsample=resample == "upsample",
                           downsample=resample == "downsample")
    with torch.no_grad():
        conv.modulation.bias.normal_(1.0, 0.5)  # styles far from 1, some negative
    x = torch.randn(batch, 6, 8, 8, requires_grad=True)
    w = torch.randn(batch, STYLE_DIM, requires_grad=True)
    results = {}
    for impl in ("grouped", "per_sample", "batched"):
        conv.impl = impl
        results[impl] = _modconv_outputs_and_grads(conv, x, w)
    side = {"plain": 8, "upsample": 16, "downsample": 4}[resample]
    ref_out, ref_grads = results["grouped"]
    assert ref_out.shape == (batch, 5, side, side)
    for impl in ("per_sample", "batched"):
        out, grads = results[impl]
        assert torch.allclose(out, ref_out, atol=1e-5, rtol=1e-5), impl
        for got, want in zip(grads, ref_grads):
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), impl


def test_auto_trains_batched_and_infers_per_sample_on_cpu():
    conv = ModulatedConv2d(4, 4, 3, STYLE_DIM)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, STYLE_DIM)
    assert conv.resolved_impl(x, w) == "batched"  # the conv's weight requires grad
    with torch.no_grad():
        assert conv.resolved_impl(x, w) == "per_sample"
    conv.requires_grad_(False)
    assert conv.resolved_impl(x, w) == "per_sample"
    assert conv.resolved_impl(x, w.requires_grad_(True)) == "batched"  # inversion: gradients to the latent


def test_generator_training_path_matches_inference_path():
    g = tiny_generator(32)
    z = torch.randn(4, STYLE_DIM)
    with torch.no_grad():
        g.set_modconv_impl("per_sample")
        inference = g(z)
    g.set_modconv_impl("auto")
    w_plus = g.mapping(z)[:, None].expand(-1, g.n_latent, -1).detach().requires_grad_(True)
    trained = g(w_plus=w_plus)
    assert torch.allclose(trained, inference, atol=1e-5)
    grad_batched = torch.autograd.grad(trained.square().mean(), w_plus)[0]
    g.set_modconv_impl("per_sample")
    grad_per_sample = torch.autograd.grad(g(w_plus=w_plus).square().mean(), w_plus)[0]
    assert torch.allclose(grad_batched, grad_per_sample, atol=1e-5)


def test_modconv_rejects_two_resamplings_and_unknown_impl():
    with pytest.raises(ConfigError, match="upsample or downsample"):
        ModulatedConv2d(4, 4, 3, STYLE_DIM, upsample=True, downsample=True)
    g = tiny_generator(32)
    with pytest.raises(ConfigError, match="batched"):
        g.set_modconv_impl("fused")
