"""Shared test setup: offline Hub, deterministic torch, real photos that packages ship."""

from __future__ import annotations

import os

# Must be set before huggingface_hub is imported anywhere: a missing file then fails fast.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - legacy global seed for code that still uses it


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photo of one person (scikit-image), uint8 (512, 512, 3)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def t1_path() -> Path:
    """insightface's group photo of six people."""
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    if spec is None or spec.origin is None:
        pytest.skip("insightface is not installed (requirements-dev.txt)")
    path = Path(spec.origin).parent / "data" / "images" / "t1.jpg"
    assert path.is_file(), f"insightface ships no {path}"
    return path


@pytest.fixture(scope="session")
def t1(t1_path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(t1_path).convert("RGB"))
