"""The Gradio app's helpers, and the page in a real browser (playwright + chromium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from app_server import serve_demo
from PIL import Image

from demo.handlers import EXAMPLES_DIR, zoom_box
from demo.models import plan_steps
from demo.outputs import OutputFiles
from demo.uploads import painted_mask, read_image, read_mask
from unmask.errors import ImageError, InputShapeError
from unmask.pipeline import WEIGHTS_DIR

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Set UNMASK_SCREENSHOTS=DIR to keep the browser test's screenshots for a look.
SCREENSHOT_DIR = Path(os.environ["UNMASK_SCREENSHOTS"]) if os.environ.get("UNMASK_SCREENSHOTS") else None
needs_teaching = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                    reason="teaching weights not present")


@pytest.fixture(scope="module")
def server():
    with serve_demo() as url:
        yield url


@pytest.fixture(scope="module")
def example() -> Path:
    paths = sorted(EXAMPLES_DIR.glob("teaching_*.png"))
    assert paths, "demo/examples has no teaching examples"
    return paths[0]


def test_painted_layers_become_the_mask():
    layer = np.zeros((32, 32, 4), np.uint8)
    layer[16:, :, 3] = 255  # the user painted the lower half
    painted = painted_mask({"background": None, "layers": [layer], "composite": None}, (32, 32))
    assert painted is not None and painted[20, 3] == 1.0 and painted[10, 3] == 0.0
    # A layer of another size (the editor may scale) is resized to the photo.
    assert painted_mask({"layers": [layer]}, (64, 48)).shape == (64, 48)
    assert painted_mask({"layers": [np.zeros((32, 32, 4), np.uint8)]}, (32, 32)) is None
    assert painted_mask(None, (32, 32)) is None


def test_uploads_are_read_with_the_projects_checks(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageError, match=r"the photo \(notes.png\) is a text file"):
        read_image(str(bad), "photo")
    with pytest.raises(ImageError, match="no photo given"):
        read_image(None, "photo")
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(mask)
    assert read_mask({"path": str(mask)}, (20, 30)).min() == 1.0
    with pytest.raises(InputShapeError, match="mask image is 30×20 but the photo is 40×40"):
        read_mask(str(mask), (40, 40))


def test_output_files_are_unique_and_swept(tmp_path):
    store = OutputFiles(tmp_path, max_age_s=60.0)
    image = np.zeros((16, 16, 3), np.uint8)
    first, second = store.save(image, "out"), store.save(image, "out")
    assert first != second  # identical results never share a file
    assert np.array_equal(np.asarray(Image.open(first)), image)
    os.utime(first, (0, 0))  # an hour-old file…
    store._last_sweep = float("-inf")  # …and a sweep due
    store.save(image, "out")
    assert not Path(first).exists() and Path(second).exists()


@needs_teaching
def test_every_image_the_page_shows_says_what_it_is(example):
    # The page's outputs: the zoomed before / after, the labelled full photo, the per-face crops; each with its
    # provenance in XMP. And the verification panel says what a score means.
    from demo.handlers import ui_run
    from unmask.faces.provenance import COMPOSITE_SYNTHETIC, LABEL, TRAINED_ALGORITHMIC_MEDIA, read_provenance

    target = EXAMPLES_DIR / "targets" / example.name
    (before, after), full, crops, panel, _ = ui_run(str(example), None, None, str(target), "teaching", "auto", 0, 0,
                                                    True, False, progress=lambda *a, **k: None)
    assert read_provenance(before).role == "input" and read_provenance(after).regions
    made = read_provenance(full)
    assert made.label == LABEL and made.bundle == "teaching" and made.digital_source_type == COMPOSITE_SYNTHETIC
    photo = np.asarray(Image.open(example).convert("RGB"))
    labelled = np.asarray(Image.open(full).convert("RGB"))
    assert labelled.shape[0] > photo.shape[0] and labelled.shape[1] == photo.shape[1]
    roles = {read_provenance(path).role: read_provenance(path) for path, _ in crops}
    assert set(roles) == {"input", "mask", "recovered"}
    assert roles["recovered"].digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert "reference you gave" in panel and "synthesised face" in panel and "not proof of identity" in panel


@needs_teaching
def test_every_request_is_bounded_on_every_device(monkeypatch):
    # One API or MCP call may not hold the models for as long as it asks: steps above MAX_STEPS are refused with
    # the project's message, and a refinement is capped to the time budget from the measured seconds per step on
    # a CPU and on a GPU alike.
    from demo import models
    from demo.models import MAX_STEPS, REFINE_BUDGET_S, load_pipeline
    from unmask.errors import ConfigError

    pipe = load_pipeline("teaching").pipe
    assert plan_steps(pipe, "encoder", 0) == (None, "")
    monkeypatch.setattr(models, "seconds_per_refine_step", lambda pipe: 0.1)  # a teaching-sized step: no cap
    assert plan_steps(pipe, "encoder+refine", 0) == (pipe.config.refine_steps, "")
    monkeypatch.setattr(models, "seconds_per_refine_step", lambda pipe: 2.0)  # an ffhq-sized refinement step
    steps, note = plan_steps(pipe, "encoder+refine", 100)
    assert steps == int(REFINE_BUDGET_S / 2.0) and "capped" in note and "budget per request" in note
    monkeypatch.setattr(pipe, "device", torch.device("cuda"))  # a GPU is held to the same budget
    assert plan_steps(pipe, "optimize", 100)[0] == int(REFINE_BUDGET_S / 2.0)
    for bad in (MAX_STEPS + 1, -1, 2.5, "many"):
        with pytest.raises(ConfigError, match=f"steps must be a whole number from 0 .* to {MAX_STEPS}"):
            plan_steps(pipe, "encoder", bad)


@needs_teaching
@pytest.mark.slow
def test_seconds_per_refine_step_is_measured_once_per_pipeline():
    from concurrent.futures import ThreadPoolExecutor

    from demo.models import load_pipeline, seconds_per_refine_step

    pipe = load_pipeline("teaching").pipe
    with ThreadPoolExecutor(4) as pool:  # concurrent requests: one measurement, the same number for all
        first = set(pool.map(lambda _: seconds_per_refine_step(pipe), range(4)))
    assert len(first) == 1 and 0 < next(iter(first)) < 60 and seconds_per_refine_step(pipe) in first


def test_zoom_box_surrounds_the_faces():
    class Face:
        box = np.array([100.0, 120.0, 150.0, 180.0])

    class Result:
        faces = [Face()]

    x0, y0, x1, y1 = zoom_box(Result(), (400, 300))
    assert x0 < 100 and y0 < 120 and 150 < x1 <= 300 and 180 < y1 <= 400
    Face.box = None
    assert zoom_box(Result(), (400, 300)) == (0, 0, 300, 400)


@needs_teaching
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_browser_plain_upload_with_reference(server, example, tmp_path):
    # The same steps that make the screenshots in docs/results.md (demo/make_screenshots.py).
    from demo.make_screenshots import shoot
    from unmask.faces.provenance import COMPOSITE_SYNTHETIC, LABEL, read_provenance

    target = EXAMPLES_DIR / "targets" / example.name
    shots = SCREENSHOT_DIR or tmp_path
    shot = shoot(server, example, target, shots / "app_teaching.jpg", aligned=True, chromium=CHROMIUM,
                 download=tmp_path / "downloaded.png")
    assert "masked vs reference" in shot.verification and "teaching embedder" in shot.verification
    assert "same person" in shot.verification
    assert "reference you gave" in shot.verification and "not proof of identity" in shot.verification
    # The responsible-use notice is on the page, and the downloaded photo is labelled, visibly and in its XMP.
    assert "guess, not the person's face" in shot.notice and "never to identify an unknown person" in shot.notice
    assert "arXiv 2603.27747" in shot.notice
    with Image.open(shot.download) as im:
        assert im.getxmp()["xmpmeta"]["RDF"]["Description"]["DigitalSourceType"] == COMPOSITE_SYNTHETIC
        assert im.width == Image.open(example).width and im.height > Image.open(example).height  # the band
        band = np.asarray(im.convert("L"))[Image.open(example).height:]
    assert read_provenance(shot.download).label == LABEL and band.max() > 200 and np.median(band) < 40
    # ...and in its signed Content Credentials; without an operator key the page says they read as untrusted.
    from unmask.faces.provenance import read_credentials

    assert read_credentials(shot.download).intact and "untrusted" in shot.notice


@needs_teaching
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_browser_bad_upload_shows_the_projects_message(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from demo.make_screenshots import launch_chromium

    bad = tmp_path / "notes.png"
    bad.write_text("this is not a photo\n" * 5)
    with sync_playwright() as p:
        browser = launch_chromium(p, CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.wait_for_selector("#unmask-button", timeout=60_000)
        page.locator("#input-image input[type=file]").first.set_input_files(str(bad))
        page.wait_for_timeout(1500)
        page.locator("#unmask-button").click()
        page.get_by_text("is a text file, not an image").first.wait_for(timeout=60_000)
        browser.close()


def test_space_front_matter_matches_the_registry_and_the_pins():
    import re

    import yaml

    from unmask import bundle, hub

    ffhq = [part.registry for part in bundle.builtin_manifest("ffhq").components.values()]

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[\w,]+\])?==(\S+)", (root / "requirements.txt").read_text(), re.M))
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == pins["gradio"]
    assert (root / meta["app_file"]).is_file() and len(meta["short_description"]) <= 60
    expected = []
    for name in ffhq:
        entry = hub.REGISTRY[name]
        expected.append(" ".join(x for x in (entry.repo_id, entry.filename, entry.revision) if x))
    assert meta["preload_from_hub"] == expected
    assert meta["models"] == [hub.REGISTRY[n].repo_id for n in ffhq]


def test_malloc_arenas_are_capped_unless_the_environment_says(monkeypatch):
    # app.py caps glibc's malloc arenas before the server's threads start (docs/api.md, "Serving under load"); an
    # operator's MALLOC_ARENA_MAX wins, since glibc read it at start.
    import ctypes.util
    import platform

    from demo.app import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c"):
        assert limit_malloc_arenas() is True
