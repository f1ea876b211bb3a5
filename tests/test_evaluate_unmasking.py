"""The paper's comparison (``python -m unmask.evaluate unmasking``) on tiny random models in tmp folders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unmask.evaluate.methods import METHOD_KEYS, METHOD_NAMES, composite, load_methods
from unmask.evaluate.metrics import region_perceptual, region_quality
from unmask.evaluate.unmasking import (
    MASKED_ROW,
    UNMASKED_ROW,
    UnmaskingEvalConfig,
    evaluate_unmasking,
    gap_closed,
    main,
)
from unmask.models.embedding import EmbeddingConfig, IdentityEmbedder
from unmask.models.encoder import EncoderConfig, build_encoder
from unmask.models.stylegan2 import Generator, GeneratorConfig
from unmask.pipeline import PipelineConfig, UnmaskPipeline

SIZE = 64
STYLE_DIM = 32


def _encoder(input_nc: int, mask_head: bool = False, n_styles: int = 10):
    return build_encoder(EncoderConfig(kind="psp", input_nc=input_nc, input_size=SIZE, n_styles=n_styles,
                                       style_dim=STYLE_DIM, stage_channels=(8, 16, 24, 32), stage_blocks=(1, 1, 1, 1),
                                       head_channels=16, mask_head=mask_head, mask_head_channels=8))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A tiny bundle (4-channel encoder = variant (b)) with a generic encoder inside, and a variant (a) folder."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("eval")
    generator = Generator(GeneratorConfig(size=SIZE, style_dim=STYLE_DIM, n_mlp=2, channel_max=16))
    identity = IdentityEmbedder(EmbeddingConfig(input_size=SIZE, layers=(1, 1, 1, 1), widths=(8, 8, 16, 16),
                                                embedding_dim=16))
    bundle = UnmaskPipeline(generator, _encoder(4), identity.eval(),
                            config=PipelineConfig(align_size=SIZE, refine_steps=2, optimize_steps=2))
    bundle.save_pretrained(root / "bundle")
    _encoder(3).save_pretrained(root / "bundle" / "encoder_generic")
    _encoder(3, mask_head=True).save_pretrained(root / "encoder_a")
    _encoder(3, n_styles=6).save_pretrained(root / "wrong_styles")
    bare = UnmaskPipeline(generator, _encoder(4), identity.eval(), config=PipelineConfig(align_size=SIZE))
    bare.save_pretrained(root / "bare")
    return {"bundle": root / "bundle", "a": root / "encoder_a", "wrong": root / "wrong_styles", "bare": root / "bare"}


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(1)


TINY = UnmaskingEvalConfig(n_faces=4, pairs_per_fold=1, n_folds=10, steps=1, optimize_faces=2, batch_size=20,
                           judges=("teaching",), grid_faces=2)


def test_region_metrics_on_a_hand_made_case():
    target = torch.zeros(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 8:, :] = 1.0
    pred = target.clone()
    pred[..., 8:, :] += 0.1  # wrong only inside the mask, by 0.05 in [0, 1] units
    quality = region_quality(pred, target, mask)
    assert quality["psnr_inside"].item() == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-3)
    assert quality["psnr_outside"].item() == pytest.approx(100.0)  # exact: the clamp of a zero error
    perceptual = region_perceptual(pred, target, mask, _distance)
    assert perceptual["perceptual_outside"].item() == 0.0
    assert perceptual["perceptual_inside"].item() == pytest.approx(0.05)  # half the image differs by 0.1
    swapped = region_perceptual(pred, target, 1 - mask, _distance)
    assert swapped["perceptual_inside"].item() == 0.0 and swapped["perceptual_outside"].item() > 0
    empty = region_perceptual(pred, target, torch.zeros_like(mask), _distance)
    assert math.isnan(empty["perceptual_inside"].item()) and empty["perceptual_outside"].item() > 0


def test_region_perceptual_with_the_offline_lpips():
    from unmask.evaluate.unmasking import perceptual_distance

    distance, name = perceptual_distance()
    assert "LPIPS" in name
    target = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[..., SIZE // 2:, :] = 1.0
    pred = torch.where(mask.bool(), torch.rand_like(target) * 2 - 1, target)
    out = region_perceptual(pred, target, mask, distance)
    assert torch.all(out["perceptual_outside"] == 0) and torch.all(out["perceptual_inside"] > 0)


def test_gap_closed_formula():
    assert gap_closed(0.9, 0.8, 1.0) == pytest.approx(0.5)
    assert gap_closed(0.8, 0.8, 1.0) == 0.0 and gap_closed(1.0, 0.8, 1.0) == 1.0
    assert gap_closed(0.7, 0.8, 1.0) == pytest.approx(-0.5)  # worse than the masked input
    assert math.isnan(gap_closed(0.9, 0.9, 0.9))


def test_composite_keeps_visible_pixels():
    recovered, masked = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 4:, :] = 1
    out = composite(recovered, masked, mask)
    assert torch.equal(out[..., :4, :], masked[..., :4, :]) and torch.equal(out[..., 4:, :], recovered[..., 4:, :])


def test_every_method_is_built_or_skipped_with_a_reason(folders):
    full = load_methods(folders["bundle"], encoder_a=folders["a"], steps=1)
    assert list(full.methods) == list(METHOD_KEYS) and not full.skipped
    assert full.methods["b"].pipe is full.bundle  # the bundle's own 4-channel encoder is variant (b)
    assert full.methods["a"].mask_source == "predicted" and full.methods["generic"].encoder_mask == "zeros"
    bare = load_methods(folders["bare"], steps=1)
    assert set(bare.methods) == {"masked", "optimize", "b", "oracle"}  # the oracle needs no weights
    assert set(bare.skipped) == {"generic", "generic+refine", "ceiling", "a"}
    assert "encoder_generic" in bare.skipped["generic"] and "configs/generic_teaching.yaml" in bare.skipped["generic"]
    assert "mask head" in bare.skipped["a"]
    wrong = load_methods(folders["bare"], generic=folders["wrong"], encoder_a=folders["bundle"] / "encoder",
                         encoder_b=folders["wrong"].parent / "absent", keys=("generic", "a", "b"))
    assert not wrong.methods
    assert "n_styles" in wrong.skipped["generic"] and "no occlusion-mask head" in wrong.skipped["a"]
    assert "no encoder at" in wrong.skipped["b"]


def test_generic_four_channel_encoder_is_given_a_zero_mask(folders):
    methods = load_methods(folders["bare"], generic=folders["bare"] / "encoder", keys=("generic", "b"))
    masked = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[..., 40:, :] = 1.0
    generic = methods.methods["generic"].recover(masked, mask)[1]
    told = methods.methods["b"].recover(masked, mask)[1]  # the same weights, given the mask
    blind, _ = methods.bundle.recover_batch(masked, torch.zeros_like(mask))
    assert torch.allclose(generic, blind) and not torch.allclose(generic, told)


@pytest.mark.slow
def test_report_has_every_row_and_writes_its_files(folders, tmp_path):
    methods = load_methods(folders["bundle"], encoder_a=folders["a"], steps=1)
    report = evaluate_unmasking(methods, TINY, progress=False, distance=_distance, perceptual="L1 (test)")
    assert list(report.quality) == [METHOD_NAMES[k] for k in METHOD_KEYS]
    assert report.quality[METHOD_NAMES["optimize"]]["faces"] == 2 and report.quality[MASKED_ROW]["faces"] == 4
    iou = report.quality[METHOD_NAMES["a"]]["mask_iou"]
    assert 0.0 <= iou <= 1.0 and math.isnan(report.quality[METHOD_NAMES["b"]]["mask_iou"])
    # the masked input is the target outside the mask (up to its anti-aliased edge)
    assert report.quality[MASKED_ROW]["psnr_outside"] > 30
    rows = report.verification["teaching embedder"]
    assert list(rows) == [UNMASKED_ROW, *(METHOD_NAMES[k] for k in METHOD_KEYS if k not in ("generic+refine",
                                                                                         "optimize"))]
    gaps = report.gap_closed["teaching embedder"]
    masked, unmasked = rows[MASKED_ROW]["accuracy"], rows[UNMASKED_ROW]["accuracy"]
    for name, metrics in rows.items():
        assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0
        expected = gap_closed(metrics["accuracy"], masked, unmasked)
        assert gaps[name] == pytest.approx(expected, nan_ok=True)
    assert list(report.grid) == ["masked", "generic", "unmasking (a)", "unmasking (b)", "oracle", "target"]
    # the oracle paints the world: outside the mask it is the input, inside it is far closer than the mask
    oracle = report.quality[METHOD_NAMES["oracle"]]
    assert oracle["psnr_inside"] > report.quality[MASKED_ROW]["psnr_inside"] + 8
    paths = report.write(tmp_path / "t.md", tmp_path / "roc.png", tmp_path / "grid.png", command="cmd")
    assert [p.name for p in paths] == ["t.md", "roc.png", "grid.png"]
    text = (tmp_path / "t.md").read_text()
    assert all(f"| {name} |" in text for name in report.quality) and "judged by the teaching embedder" in text
    assert "per-image optimisation (verification)" in text  # left out of verification, and said so
    assert (tmp_path / "roc.png").stat().st_size > 1000 and (tmp_path / "grid.png").stat().st_size > 1000


@pytest.mark.slow
def test_cli_reports_skipped_methods_and_both_judges(folders, tmp_path, capsys):
    pytest.importorskip("dlib")
    code = main(["--model", str(folders["bare"]), "--methods", "masked,generic,b", "--faces", "2",
                 "--pairs-per-fold", "1", "--table", str(tmp_path / "t.md"), "--roc", str(tmp_path / "roc.png"),
                 "--grid", str(tmp_path / "grid.png")])
    assert code == 0
    out, err = capsys.readouterr()
    assert "skipped generic encoder: no generic encoder" in err
    text = (tmp_path / "t.md").read_text()
    assert "judged by the teaching embedder" in text and "judged by the dlib ResNet" in text
    assert "- generic encoder: no generic encoder" in text and (tmp_path / "roc.png").is_file()


def test_dlib_judge_scores_teaching_faces():
    pytest.importorskip("dlib")
    from unmask.data.world import UnmaskingDataset
    from unmask.synthetic import WorldConfig
    from unmask.verify import DlibJudge

    faces = UnmaskingDataset(WorldConfig(size=SIZE), split="test", length=2).batch([0, 1])["target"]
    judge = DlibJudge()
    emb = judge.embed(faces)
    assert emb.shape == (2, 128)
    scores = judge.score(emb, emb[::-1])
    assert scores.shape == (2,) and np.all(scores < 0) and judge.score(emb, emb).max() == 0.0


@pytest.mark.slow
def test_shipped_bundle_beats_the_masked_input():
    """weights/teaching recovers 32 held-out faces better than leaving the mask on (loose bounds)."""
    from unmask.pipeline import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file():
        pytest.skip("the teaching weights are not in this checkout")
    methods = load_methods("teaching", keys=("masked", "a", "b"))
    assert set(methods.methods) - {"masked"}, f"the shipped bundle has no unmasking encoder: {methods.skipped}"
    config = UnmaskingEvalConfig(n_faces=32, pairs_per_fold=0, batch_size=32)
    report = evaluate_unmasking(methods, config, progress=False, distance=_distance, perceptual="L1 (test)")
    masked = report.quality[MASKED_ROW]
    for key in set(methods.methods) - {"masked"}:
        row = report.quality[METHOD_NAMES[key]]
        assert row["psnr_inside"] > masked["psnr_inside"] + 3.0, (key, row, masked)
        assert row["identity"] > masked["identity"] + 0.05, (key, row, masked)
