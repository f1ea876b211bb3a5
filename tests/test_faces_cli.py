"""``python -m unmask.faces align|mask``: outputs, landmarks.json, resuming, failures, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from unmask.faces import cli

pytest.importorskip("dlib")


@pytest.fixture
def photos(tmp_path, astronaut):
    """An input folder in dataset layout: a photo, a grayscale copy in a sub-folder, a non-image, a blank."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(astronaut).save(root / "astronaut.png")
    Image.fromarray(astronaut).convert("L").save(root / "sub" / "gray.jpg", quality=95)
    (root / "notes.jpg").write_bytes(b"definitely not a JPEG")
    Image.fromarray(np.full((48, 48, 3), 128, dtype=np.uint8)).save(root / "blank.png")
    return root


def test_align_writes_crops_landmarks_and_failures(photos, tmp_path, capsys):
    out = tmp_path / "aligned"
    assert cli.main(["align", "--input", str(photos), "--output", str(out), "--size", "64", "--workers", "1"]) == 0
    landmarks = json.loads((out / "landmarks.json").read_text())
    assert sorted(landmarks) == ["astronaut.png", "sub/gray.png"]
    for name, points in landmarks.items():
        crop = np.asarray(Image.open(out / name))
        assert crop.shape == (64, 64, 3)
        points = np.asarray(points)
        assert points.shape == (68, 2)
        eye_left, eye_right = points[36:42].mean(0), points[42:48].mean(0)
        np.testing.assert_allclose([eye_left[0], eye_right[0]], [0.375 * 64 - 0.5, 0.625 * 64 - 0.5], atol=1.5)
    failures = json.loads((out / "failures.json").read_text())
    assert sorted(failures) == ["blank.png", "notes.jpg"]
    assert "NoFaceError" in failures["blank.png"] and "ImageError" in failures["notes.jpg"]
    printed = capsys.readouterr().out
    assert "2 failed" in printed and "blank.png" in printed


def test_align_resumes_and_all_faces(photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "aligned"
    cli.run_align(photos, out, size=64, which="all", backend="dlib", workers=1)
    assert (out / "astronaut_00.png").is_file() and (out / "sub" / "gray_00.png").is_file()
    calls = []
    original = cli._align_one
    monkeypatch.setattr(cli, "_align_one", lambda task: calls.append(task[1]) or original(task))
    summary = cli.run_align(photos, out, size=64, which="all", backend="dlib", workers=1)
    assert summary["skipped"] == 2 and summary["processed"] == 2  # only the two failures are retried
    assert sorted(calls) == ["blank.png", "notes.jpg"]
    (out / "astronaut_00.png").unlink()  # a lost output is redone
    calls.clear()
    cli.run_align(photos, out, size=64, which="all", backend="dlib", workers=1)
    assert "astronaut.png" in calls and (out / "astronaut_00.png").is_file()


def test_mask_uses_landmarks_json_and_writes_occlusion(photos, tmp_path, monkeypatch):
    aligned = tmp_path / "aligned"
    cli.run_align(photos, aligned, size=64, which="largest", backend="dlib", workers=1)

    def no_detection(*args, **kwargs):
        raise AssertionError("landmarks.json should have been used")

    monkeypatch.setattr("unmask.faces.detect.get_detector", no_detection)
    out = tmp_path / "masked"
    assert cli.main(["mask", "--input", str(aligned), "--output", str(out), "--workers", "0", "--seed", "3"]) == 0
    types = json.loads((out / "mask_types.json").read_text())
    assert sorted(types) == ["astronaut.png", "sub/gray.png"]
    landmarks = json.loads((out / "landmarks.json").read_text())
    for name in types:
        masked = np.asarray(Image.open(out / name))
        occlusion = np.asarray(Image.open(out / "masks" / name))
        assert masked.shape == (64, 64, 3) and occlusion.shape == (64, 64) and occlusion.max() == 255
        nose = np.round(np.asarray(landmarks[name])[30]).astype(int)
        assert occlusion[nose[1], nose[0]] == 255
    first = (out / "astronaut.png").read_bytes()
    # Same seed, fresh folder: the same masks (a file's seed comes from its name, not the run order).
    again = tmp_path / "again"
    cli.run_mask(aligned, again, mask_type="random", seed=3, backend="dlib", workers=1)
    assert (again / "astronaut.png").read_bytes() == first
    summary = cli.run_mask(aligned, out, mask_type="random", seed=3, backend="dlib", workers=1)
    assert summary["skipped"] == 2 and summary["processed"] == 0


def test_mask_detects_when_there_are_no_landmarks(photos, tmp_path):
    out = tmp_path / "masked"
    summary = cli.run_mask(photos, out, mask_type="n95", seed=0, backend="dlib", workers=1)
    assert summary["failed"] == 2 and summary["faces"] == 2
    occlusion = np.asarray(Image.open(out / "masks" / "astronaut.png"))
    assert occlusion.shape == (512, 512) and 0.01 < (occlusion > 127).mean() < 0.1


def test_mask_with_a_real_mask_photo(photos, tmp_path):
    pytest.importorskip("insightface")
    out = tmp_path / "masked"
    assert cli.main(["mask", "--input", str(photos), "--output", str(out), "--type", "photo_blue",
                     "--workers", "0"]) == 0
    masked = np.asarray(Image.open(out / "astronaut.png").convert("RGB")).astype(int)
    covered = np.asarray(Image.open(out / "masks" / "astronaut.png")) > 250
    r, g, b = masked[covered].mean(0)
    assert b > r + 50 and covered.mean() > 0.01  # the blue surgical mask of insightface's photo


@pytest.mark.slow
def test_worker_processes(photos, tmp_path):
    out = tmp_path / "masked"
    summary = cli.run_mask(photos, out, mask_type="kn95", seed=0, backend="dlib", workers=2)
    assert summary["faces"] == 2 and summary["failed"] == 2
    assert (out / "masks" / "sub" / "gray.png").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["align"],
        ["align", "--input", "/nonexistent/folder", "--output", "OUT"],
        ["mask", "--input", "IN", "--output", "OUT", "--type", "bandana"],
        ["align", "--input", "IN", "--output", "OUT", "--size", "4"],
        ["align", "--input", "IN", "--output", "OUT", "--workers", "-1"],
    ],
)
def test_usage_errors_exit_2(argv, tmp_path, monkeypatch):
    (tmp_path / "IN").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_module_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "unmask.faces", "mask", "--input", str(tmp_path / "missing"), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "is not a folder" in result.stderr
