"""What the app needs from ``UnmaskPipeline``: default modes, overrides, devices, mask sources, verification."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unmask import bundle
from unmask.bundle.worlds import WORLDS
from unmask.errors import ConfigError
from unmask.pipeline import (
    MASK_SOURCES,
    WEIGHTS_DIR,
    PipelineConfig,
    UnmaskPipeline,
    resolve_device,
)
from unmask.verify import Verification, identity_embedding

ROOT = WEIGHTS_DIR.parent
EXAMPLE = ROOT / "demo" / "examples" / "teaching_kn95.png"
TARGET = ROOT / "demo" / "examples" / "targets" / "teaching_kn95.png"
needs_teaching = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                    reason="teaching weights not present")


@pytest.fixture(scope="module")
def pipe():
    return UnmaskPipeline.from_pretrained("teaching", refine_steps=3)


def test_default_mode_is_checked_and_ffhq_refines():
    assert PipelineConfig().default_mode == "encoder"
    assert PipelineConfig(**bundle.builtin_manifest("ffhq").settings).default_mode == "encoder+refine"
    with pytest.raises(ConfigError, match="default_mode must be one of"):
        PipelineConfig(default_mode="fast")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@needs_teaching
def test_overrides_apply_once_and_unknown_ones_are_named(pipe):
    assert pipe.config.refine_steps == 3 and pipe.config.default_mode == "encoder"
    with pytest.raises(ConfigError, match=r"unknown PipelineConfig fields \['refine_stepz'\]"):
        UnmaskPipeline.from_pretrained("teaching", refine_stepz=3)


@needs_teaching
@pytest.mark.slow
def test_mode_defaults_to_the_bundles_and_the_mask_source_is_reported(pipe):
    face = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    result = pipe(face, aligned=True)
    assert result.mode == "encoder" and result.faces[0].mask_source == "predicted"  # the v2 head
    painted = np.zeros(face.shape[:2], np.float32)
    painted[face.shape[0] // 2:] = 1.0
    result = pipe(face, aligned=True, mask=painted, mode="encoder+refine")
    assert result.mode == "encoder+refine" and result.timings["refine"] > 0
    assert result.faces[0].mask_source == "painted" and set(MASK_SOURCES) >= {"painted", "predicted", "estimated"}


@needs_teaching
@pytest.mark.slow
def test_verify_teaching_face_with_the_teaching_embedder(pipe):
    verification, result = pipe.verify(EXAMPLE, TARGET, aligned=True)
    assert isinstance(verification, Verification) and "teaching embedder" in verification.network
    assert verification.metric == "cosine" and verification.threshold == WORLDS["teaching"].identity_threshold
    # The embedding helper gives the same scores from the same crops.
    masked, reference = identity_embedding(pipe, [result.faces[0].aligned_input,
                                                  np.asarray(Image.open(TARGET).convert("RGB"))])
    assert float(masked @ reference) == pytest.approx(verification.masked, abs=1e-5)
    assert verification.same_masked == (verification.masked > verification.threshold)


@needs_teaching
@pytest.mark.slow
def test_verify_real_photo_with_dlib(pipe, astronaut):
    verification, _ = pipe.verify(astronaut, astronaut)
    assert verification.network.startswith("dlib") and verification.metric == "distance"
    assert verification.same_masked and verification.masked < 0.3


def test_verification_decision_rules():
    cosine = Verification("net", "cosine", 0.5, masked=0.4, recovered=0.6)
    assert not cosine.same_masked and cosine.same_recovered
    distance = Verification("dlib", "distance", 0.6, masked=0.7, recovered=0.5)
    assert not distance.same_masked and distance.same_recovered
