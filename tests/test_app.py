"""The Gradio app through its API (gradio_client) and in a real browser (playwright + chromium)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.app import EXAMPLES_DIR, build_demo, editor_to_inputs
from unmask.errors import ImageError
from unmask.pipeline import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                reason="teaching weights not present")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Set UNMASK_SCREENSHOTS=DIR to keep the browser test's screenshot for a look.
SCREENSHOT_DIR = Path(os.environ["UNMASK_SCREENSHOTS"]) if os.environ.get("UNMASK_SCREENSHOTS") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    demo = build_demo()
    port = _free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def example() -> Path:
    paths = sorted(EXAMPLES_DIR.glob("teaching_*.png"))
    assert paths, "demo/examples has no teaching examples"
    return paths[0]


def test_editor_value_split():
    photo = np.zeros((32, 32, 4), np.uint8)
    photo[..., 3] = 255
    layer = np.zeros((32, 32, 4), np.uint8)
    layer[16:, :, 3] = 255  # the user painted the lower half
    got_photo, painted = editor_to_inputs({"background": photo, "layers": [layer], "composite": photo})
    assert got_photo.shape == (32, 32, 3)
    assert painted is not None and painted[20, 3] == 1.0 and painted[10, 3] == 0.0
    _, nothing = editor_to_inputs({"background": photo, "layers": [np.zeros((32, 32, 4), np.uint8)]})
    assert nothing is None
    with pytest.raises(ImageError, match="no image given"):
        editor_to_inputs(None)


def test_api_unmasks_a_teaching_example(server, example):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    editor = {"background": handle_file(str(example)), "layers": [], "composite": None}
    pair, crops, score, details = client.predict(editor, "teaching", "encoder", 10, 0, True, False,
                                                 api_name="/unmask")
    before, after = (np.asarray(Image.open(p).convert("RGB")) for p in pair)
    assert before.shape == after.shape
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 1.0  # the masked region changed
    assert len(crops) == 3
    assert -1.0 <= float(score) <= 1.0
    assert '"mode": "encoder"' in details


def test_api_reports_bad_input_clearly(server, tmp_path):
    from gradio_client import Client, handle_file

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 127, np.uint8)).save(blank)
    client = Client(server, verbose=False)
    editor = {"background": handle_file(str(blank)), "layers": [], "composite": None}
    with pytest.raises(Exception, match="no face found"):
        client.predict(editor, "teaching", "encoder", 10, 0, False, False, api_name="/unmask")


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_browser_upload_and_unmask(server, example, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.wait_for_selector("#unmask-button", timeout=60_000)
        page.locator("#input-editor input[type=file]").first.set_input_files(str(example))
        page.locator("#aligned input[type=checkbox]").check()
        # The editor shows the photo once it has it (its "Upload an image" prompt goes away); the upload
        # to the server can still lag under load, and a click that beats it gets the app's own
        # "no image given" error: then wait and click again.
        page.locator("#input-editor").get_by_text("Upload an image").wait_for(state="hidden", timeout=60_000)
        result = page.locator("#before-after img")
        for _ in range(10):
            page.locator("#unmask-button").click()
            try:
                result.wait_for(timeout=20_000)
                break
            except Exception:  # playwright's TimeoutError: no result yet, e.g. the "no image given" toast
                page.wait_for_timeout(2000)
        page.wait_for_selector("#before-after img", timeout=120_000)
        page.wait_for_function(
            "() => { const e = document.querySelector('#identity-score textarea');"
            " return e && e.value.length > 0; }", timeout=120_000)
        score = page.locator("#identity-score textarea").input_value()
        page.screenshot(path=str(SCREENSHOT_DIR / "app.png") if SCREENSHOT_DIR else str(tmp_path / "app.png"),
                        full_page=True)
        browser.close()
    assert -1.0 <= float(score) <= 1.0
