"""The committed tutorial notebooks are fresh outputs of a real ci run, and they choose their profile.

nbval (in ``.ci/run``) re-executes them; these checks catch what it cannot: a notebook committed
without outputs, run out of order, run on other teaching weights than the shipped ones, or too big.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 1_100_000  # "at most about 1 MB each"


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", TUTORIALS / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _shipped_digest() -> str:
    """The SHA-256 of weights/teaching, read once for all notebooks."""
    return _runner().weights_digest()


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_the_six_notebooks_exist():
    stems = {p.stem[:2] for p in NOTEBOOKS}
    assert {"01", "02", "03", "04", "05", "06"} <= stems, sorted(p.name for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_a_fresh_in_order_run(path: Path):
    nb = json.loads(path.read_text())
    cells = _code_cells(nb)
    counts = [c.get("execution_count") for c in cells]
    assert None not in counts, f"{path.name}: cells without outputs; run tutorials/run_notebooks.py {path.name}"
    assert counts == list(range(1, len(cells) + 1)), \
        f"{path.name}: execution counts {counts} are not 1..{len(cells)}: re-run it top to bottom"
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed with an error output: {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_come_from_the_shipped_weights_in_ci(path: Path):
    meta = json.loads(path.read_text())["metadata"].get("unmask", {})
    assert meta.get("profile") == "ci", f"{path.name}: not executed by tutorials/run_notebooks.py in ci"
    assert meta.get("teaching_weights_sha256") == _shipped_digest(), \
        f"{path.name}: outputs come from other teaching weights; re-run tutorials/run_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_and_size(path: Path):
    nb = json.loads(path.read_text())
    first = _code_cells(nb)[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{path.name}: tag the first cell parameters"
    assert 'PROFILE = os.environ.get("UNMASK_NB_PROFILE", "auto")' in "".join(first["source"])
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes; downscale its figures"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_machine_without_a_gpu_runs_ci(path: Path, monkeypatch, capsys):
    """The notebook's own first two code cells, run as a learner's kernel runs them with nothing set."""
    import torch

    monkeypatch.delenv("UNMASK_NB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    parameters, choice = ("".join(c["source"]) for c in _code_cells(json.loads(path.read_text()))[:2])
    assert "choose_profile(PROFILE)" in choice, f"{path.name}: the cell after the parameters picks the profile"
    namespace: dict = {}
    exec(parameters, namespace)  # noqa: S102 - the committed notebook's own cells
    exec(choice, namespace)  # noqa: S102
    assert namespace["PROFILE"] == "ci" and namespace["sizes"].profile == "ci"
    assert "profile ci: auto: no CUDA GPU" in capsys.readouterr().out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_says_what_it_teaches_and_how_long(path: Path):
    intro = "".join(json.loads(path.read_text())["cells"][0]["source"])
    for words in ("**You will learn", "**Time:**", "docs/method.md"):
        assert words in intro, f"{path.name}: its first cell lacks {words!r}"
    text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    assert "## Try this" in text, f"{path.name}: end with a 'Try this' exercise"


def test_weights_digest_changes_with_the_bytes(tmp_path: Path):
    runner = _runner()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "w.safetensors").write_bytes(b"1")
    before = runner.weights_digest(tmp_path)
    (tmp_path / "a" / "w.safetensors").write_bytes(b"2")
    assert runner.weights_digest(tmp_path) != before
