"""UnmaskPipeline end to end: real photos with tiny random models, bundles, modes, CLI, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from unmask.errors import ConfigError, ImageError, InputShapeError, NoFaceError, WeightsError
from unmask.models.encoder import EncoderConfig, build_encoder
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.pipeline import PipelineConfig, UnmaskPipeline

SIZE = 32


@pytest.fixture(scope="module")
def tiny_pipeline() -> UnmaskPipeline:
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=64, n_mlp=2, channel_max=32))
    encoder = build_encoder(EncoderConfig(kind="psp", input_size=SIZE, n_styles=generator.n_latent, style_dim=64,
                                          input_nc=4, **_small_encoder_kwargs()))
    return UnmaskPipeline(generator, encoder, None, config=PipelineConfig(world="teaching", align_size=SIZE,
                                                                          refine_steps=3, optimize_steps=3))


def _small_encoder_kwargs() -> dict:
    """A tiny trunk: one unit per stage, narrow stages and style heads (not the IR-SE-50 default)."""
    return {"stage_channels": (16, 16, 32, 32), "stage_blocks": (1, 1, 1, 1), "head_channels": 32}


def test_the_test_encoder_is_really_small(tiny_pipeline):
    config = tiny_pipeline.encoder.config
    assert config.blocks == (1, 1, 1, 1) and config.stage_channels == (16, 16, 32, 32)
    assert sum(p.numel() for p in tiny_pipeline.encoder.parameters()) < 500_000
    with pytest.raises(TypeError, match="blocks_per_stage"):  # a misspelt field is refused, not ignored
        EncoderConfig(blocks_per_stage=(1, 1, 1, 1))


@pytest.mark.slow
def test_real_photo_changes_only_the_face_region(tiny_pipeline, astronaut):
    result = tiny_pipeline(astronaut, mode="encoder")
    assert result.output.shape == astronaut.shape and result.output.dtype == np.uint8
    face = result.faces[0]
    assert face.recovered.shape == (SIZE, SIZE, 3) and face.mask.shape == (SIZE, SIZE)
    changed = np.abs(result.output.astype(int) - astronaut.astype(int)).max(axis=2) > 0
    assert changed.any(), "the masked region was not replaced"
    x0, y0, x1, y1 = face.box
    pad = 0.5 * (x1 - x0)  # dlib boxes are tight on the inner face; the jaw and mask reach beyond them
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x0 - pad and xs.max() <= x1 + pad, "pixels changed outside the face"
    assert ys.min() >= y0 - pad and ys.max() <= y1 + pad, "pixels changed outside the face"
    # The eyes stay as they were: only the lower face (the mask region) is replaced; above the eye line
    # at most the feathered edge of the blend (a few grey levels) reaches.
    strong = np.abs(result.output.astype(int) - astronaut.astype(int)).max(axis=2) > 12
    assert np.nonzero(strong)[0].min() > y0 + 0.2 * (y1 - y0)
    assert set(result.timings) >= {"load", "detect", "encode", "render", "paste", "total"}


@pytest.mark.slow
def test_modes_and_determinism(tiny_pipeline, astronaut):
    a = tiny_pipeline(astronaut, mode="encoder+refine", steps=2, seed=3)
    b = tiny_pipeline(astronaut, mode="encoder+refine", steps=2, seed=3)
    assert np.array_equal(a.output, b.output)
    assert "refine" in a.timings
    c = tiny_pipeline(astronaut, mode="optimize", steps=2)
    assert c.recovered.shape == (SIZE, SIZE, 3)
    with pytest.raises(ConfigError, match="mode must be one of"):
        tiny_pipeline(astronaut, mode="magic")


def test_user_mask_and_aligned_input(tiny_pipeline):
    crop = np.random.default_rng(0).integers(0, 255, (SIZE * 2, SIZE * 2, 3), dtype=np.uint8)
    mask = np.zeros(crop.shape[:2], np.float32)
    mask[SIZE:, :] = 1.0
    result = tiny_pipeline(crop, aligned=True, mask=mask)
    assert np.array_equal(result.output[: SIZE // 2], crop[: SIZE // 2]), "the unmasked top must not change"
    assert not np.array_equal(result.output[SIZE + 8:], crop[SIZE + 8:])
    with pytest.raises(InputShapeError, match="mask has shape"):
        tiny_pipeline(crop, aligned=True, mask=np.zeros((3, 3), np.float32))


def test_bad_inputs_raise_clear_errors(tiny_pipeline, tmp_path):
    with pytest.raises(NoFaceError, match="no face found"):
        tiny_pipeline(np.full((120, 120, 3), 128, np.uint8))
    with pytest.raises(ImageError):
        tiny_pipeline(b"this is not an image")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, format="PNG")
    with pytest.raises(ImageError):
        tiny_pipeline(buf.getvalue()[:60])  # truncated PNG


def test_bundle_round_trip(tiny_pipeline, tmp_path, astronaut):
    tiny_pipeline.save_pretrained(tmp_path / "bundle")
    loaded = UnmaskPipeline.from_pretrained(tmp_path / "bundle")
    assert loaded.config == tiny_pipeline.config
    crop = astronaut[100:300, 150:350]
    assert np.array_equal(loaded(crop, aligned=True).output, tiny_pipeline(crop, aligned=True).output)
    (tmp_path / "bundle" / "pipeline.json").write_text('{"world": "teaching", "components": {"encoder": "e"}}')
    with pytest.raises(WeightsError, match="names no 'generator'"):
        UnmaskPipeline.from_pretrained(tmp_path / "bundle")


def test_mask_channel_mismatch_is_refused():
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=64, n_mlp=2, channel_max=32))
    encoder = build_encoder(EncoderConfig(kind="psp", input_size=SIZE, n_styles=generator.n_latent, style_dim=64,
                                          input_nc=3, **_small_encoder_kwargs()))
    with pytest.raises(ConfigError, match="input_nc=4"):
        UnmaskPipeline(generator, encoder, config=PipelineConfig(align_size=SIZE, mask_channel=True))


def test_cli_processes_a_folder_and_summarises_failures(tiny_pipeline, tmp_path, astronaut, monkeypatch):
    from unmask import __main__ as cli

    monkeypatch.setattr(UnmaskPipeline, "from_pretrained", classmethod(lambda cls, *a, **k: tiny_pipeline))
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(astronaut).save(inputs / "astronaut.jpg")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    code = cli.main([str(inputs), "--output", str(out), "--save-crops"])
    assert code == 1  # one file failed
    assert (out / "astronaut.png").is_file() and (out / "astronaut.face0.recovered.png").is_file()
    before = (out / "astronaut.png").stat().st_mtime_ns
    code = cli.main([str(inputs / "astronaut.jpg"), "--output", str(out)])
    assert code == 0 and (out / "astronaut.png").stat().st_mtime_ns == before  # resumable: skipped


def test_cli_passes_the_precision_and_says_what_ran(tiny_pipeline, tmp_path, astronaut, monkeypatch, capsys):
    from unmask import __main__ as cli

    asked = {}

    def load(cls, *args, **kwargs):
        asked.update(kwargs)
        return tiny_pipeline

    monkeypatch.setattr(UnmaskPipeline, "from_pretrained", classmethod(load))
    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpg")
    assert cli.main([str(tmp_path / "astronaut.jpg"), "--output", str(tmp_path / "out"), "--precision", "fp32"]) == 0
    assert asked["precision"] == "fp32"
    assert f"precision: {tiny_pipeline.precision.precision} (" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse names the choices
        cli.main([str(tmp_path / "astronaut.jpg"), "--output", str(tmp_path / "out"), "--precision", "fp16"])


def _head_pipeline(tmp_path) -> UnmaskPipeline:
    """A bundle whose encoder has a mask head that calls a pixel occluded where its red channel is bright."""
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=64, n_mlp=2, channel_max=32))
    encoder = build_encoder(EncoderConfig(kind="psp", input_size=SIZE, n_styles=generator.n_latent, style_dim=64,
                                          input_nc=3, mask_head=True, mask_head_channels=8,
                                          **_small_encoder_kwargs()))
    with torch.no_grad():
        out = encoder.mask_head.out
        out.weight.zero_()
        out.bias.zero_()
        out.weight[0, out.in_channels - 3, 1, 1] = 20.0  # logit = 20 * red of the image
    pipe = UnmaskPipeline(generator, encoder, None, config=PipelineConfig(world="teaching", align_size=SIZE,
                                                                          mask_channel=False, refine_steps=2,
                                                                          blend_dilation=0.03))
    pipe.save_pretrained(tmp_path / "bundle")
    return UnmaskPipeline.from_pretrained(tmp_path / "bundle", device="cpu")


@pytest.mark.slow
def test_predicted_mask_drives_refinement_and_paste_back(tmp_path, monkeypatch):
    pipe = _head_pipeline(tmp_path)
    assert pipe.has_mask_head and not pipe.config.mask_channel
    crop = np.zeros((SIZE, SIZE, 3), np.uint8)
    crop[..., 2] = 90
    crop[SIZE // 2:, :, 0] = 255  # the "mask": the bright red lower half
    seen = []
    recover_batch = pipe.recover_batch
    monkeypatch.setattr(pipe, "recover_batch", lambda x, m, **kw: seen.append(m.clone()) or recover_batch(x, m, **kw))
    result = pipe(crop, aligned=True, mode="encoder+refine", steps=1)
    face = result.faces[0]
    expected = np.zeros((SIZE, SIZE), np.float32)
    expected[SIZE // 2:] = 1.0
    assert face.mask_source == "predicted"
    np.testing.assert_array_equal(face.mask, expected)  # paste-back region
    np.testing.assert_array_equal(seen[0][0, 0].numpy(), expected)  # the refinement's occluded pixels
    grown = SIZE // 2 - 2  # the blend grows the mask by blend_dilation * SIZE ~ 1 px, feathered
    assert np.array_equal(result.output[:grown - 2], crop[:grown - 2]), "rows above the predicted mask changed"
    assert not np.array_equal(result.output[SIZE // 2 + 2:], crop[SIZE // 2 + 2:])
    # A mask the user gives still wins over the head.
    given = np.zeros((SIZE, SIZE), np.float32)
    given[:4] = 1.0
    assert pipe(crop, aligned=True, mask=given).faces[0].mask_source == "painted"


def test_a_mask_head_encoder_runs_once_per_face(tmp_path):
    """predict_mask's pass also yields W+, and the encoding of the same crop reuses it (not a second pass)."""
    pipe = _head_pipeline(tmp_path)
    crop = np.zeros((SIZE, SIZE, 3), np.uint8)
    crop[SIZE // 2:, :, 0] = 255
    calls = []
    handle = pipe.encoder.register_forward_hook(lambda module, args, out: calls.append(1))
    result = pipe(crop, aligned=True, mode="encoder")
    assert len(calls) == 1 and result.faces[0].mask_source == "predicted" and result.timings["mask"] > 0
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = pipe.encoder(x)
    assert torch.allclose(result.faces[0].w_plus, expected[0], atol=1e-6)  # the reused W+ is this crop's
    other = crop.copy()
    other[:4] = 200  # another crop: encoded afresh
    calls.clear()
    pipe.recover_batch(torch.from_numpy(other).permute(2, 0, 1)[None].float() / 127.5 - 1,
                       torch.zeros(1, 1, SIZE, SIZE))
    assert len(calls) == 1
    handle.remove()


def test_concurrent_calls_give_what_each_call_gives_alone(tmp_path):
    """The app runs up to 4 requests on one pipeline at once: a call leaves no state that another reads, and the
    values computed on first use (the mean latent, the detector) are the same whoever computes them."""
    from concurrent.futures import ThreadPoolExecutor

    pipe = _head_pipeline(tmp_path)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(8)]
    with ThreadPoolExecutor(4) as pool:  # on a fresh pipeline: the first calls race to fill the lazy values
        together = list(pool.map(lambda crop: pipe(crop, aligned=True, mode="encoder"), crops))
    alone = [pipe(crop, aligned=True, mode="encoder") for crop in crops]
    for a, b in zip(alone, together):
        assert a.faces[0].mask_source == b.faces[0].mask_source == "predicted"
        np.testing.assert_array_equal(a.faces[0].mask, b.faces[0].mask)
        assert torch.equal(a.faces[0].w_plus, b.faces[0].w_plus)
        np.testing.assert_array_equal(a.output, b.output)
    assert len({r.faces[0].w_plus.sum().item() for r in alone}) == len(crops)  # each its own crop's


def test_encoders_without_a_head_fall_back_to_the_landmark_estimate(tiny_pipeline):
    crop = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    assert not tiny_pipeline.has_mask_head
    assert tiny_pipeline(crop, aligned=True).faces[0].mask_source == "estimated"
    with pytest.raises(ConfigError, match="no mask head"):
        tiny_pipeline.predict_mask(torch.zeros(1, 3, SIZE, SIZE))
