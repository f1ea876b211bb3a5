"""The unmasking evaluation (quality + verification before/after recovery) on tiny random models."""

from __future__ import annotations

import math

import pytest
import torch

from unmask.evaluate.unmasking import UnmaskingEvalConfig, composite, evaluate_quality, evaluate_verification
from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder
from unmask.models.encoder import EncoderConfig, build_encoder
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.pipeline import PipelineConfig, UnmaskPipeline

SIZE = 64


@pytest.fixture(scope="module")
def pipe() -> UnmaskPipeline:
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=32, n_mlp=2, channel_max=16))
    encoder = build_encoder(EncoderConfig(kind="psp", input_nc=4, input_size=SIZE, n_styles=generator.n_latent,
                                          style_dim=32, stage_channels=(8, 16, 24, 32), stage_blocks=(1, 1, 1, 1),
                                          head_channels=16))
    identity = IdentityEmbedder(EmbeddingConfig(input_size=SIZE, layers=(1, 1, 1, 1), widths=(8, 8, 16, 16),
                                                embedding_dim=16))
    return UnmaskPipeline(generator, encoder, identity.eval(),
                          config=PipelineConfig(align_size=SIZE, optimize_steps=2))


def test_composite_keeps_visible_pixels():
    recovered, masked = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 4:, :] = 1
    out = composite(recovered, masked, mask)
    assert torch.equal(out[..., :4, :], masked[..., :4, :]) and torch.equal(out[..., 4:, :], recovered[..., 4:, :])


@pytest.mark.slow
def test_quality_table(pipe):
    config = UnmaskingEvalConfig(n_faces=6, modes=("encoder", "optimize"), steps=2, optimize_faces=2, batch_size=4)
    table = evaluate_quality(pipe, config, progress=False)
    assert set(table) == {"masked input", "encoder", "optimize"}
    # The masked input equals the target outside the mask (only the anti-aliased mask edge, counted as
    # outside below 0.5, differs), so its outside quality is high.
    assert table["masked input"]["psnr_outside"] > 30 and table["masked input"]["ssim_outside"] > 0.9
    for row in table.values():
        assert set(row) >= {"psnr_inside", "ssim_inside", "psnr_outside", "ssim_outside", "identity"}
        assert -1.0 <= row["identity"] <= 1.0 and not math.isnan(row["psnr_inside"])
    # Composited outputs keep the visible pixels, so their outside quality stays near the ceiling.
    assert table["encoder"]["ssim_outside"] > 0.85


@pytest.mark.slow
def test_verification_table_and_roc(pipe, tmp_path):
    config = UnmaskingEvalConfig(pairs_per_fold=2, modes=("encoder",), batch_size=16)
    results = evaluate_verification(pipe, config, progress=False, roc_path=tmp_path / "roc.png")
    assert set(results) == {"unmasked probe (ceiling)", "masked probe", "recovered (encoder)"}
    for metrics in results.values():
        assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0
    assert (tmp_path / "roc.png").stat().st_size > 1000
