"""The real-photo judgement (``python -m unmask.evaluate photos``): its summary and its picture."""

from __future__ import annotations

import numpy as np
from PIL import Image

from unmask.evaluate.photos import figure, summarise


def test_summary_compares_recovered_with_masked_per_group():
    rows = [{"bundle": "a", "photo": "p", "masked": 0.5, "recovered": 0.4},
            {"bundle": "a", "photo": "q", "masked": 0.5, "recovered": 0.6},
            {"bundle": "a", "photo": "q", "masked": 0.4, "recovered": 0.4},  # a face left as it was: not nearer
            {"bundle": "b", "photo": "p", "masked": 0.5, "recovered": 0.3}]
    overall = {row["bundle"]: row for row in summarise(rows)}
    assert overall["a"]["faces"] == 3 and overall["a"]["masked"] == "0.4667" and overall["a"]["recovered"] == "0.4667"
    assert overall["a"]["recovered_nearer"] == "33 %" and overall["a"]["change"] == "+0.0 %"
    assert overall["b"]["recovered_nearer"] == "100 %" and overall["b"]["change"] == "-40.0 %"
    per_photo = {(row["bundle"], row["photo"]): row for row in summarise(rows, ("bundle", "photo"))}
    assert per_photo[("a", "q")]["faces"] == 2 and per_photo[("a", "q")]["recovered_nearer"] == "0 %"


def test_picture_has_a_row_per_kept_case_and_a_column_per_image(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
    landmarks = rng.uniform(30, 70, (68, 2))
    cases = [{"original": photo, "masked": photo, "landmarks": [landmarks], "outputs": {"x": photo, "y": photo}},
             {"original": photo, "masked": photo, "landmarks": [landmarks]}]  # not kept: no outputs
    path = figure(cases, ["x", "y"], tmp_path / "sheet.jpg", side=40)
    width, height = Image.open(path).size
    assert (width, height) == (4 * 40, 22 + 40)
