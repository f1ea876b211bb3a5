"""Screenshots of the page for the README: ``python -m demo.make_screenshots`` (needs playwright and chromium).

Serves the app on a free port (offline: the bundles that load here), drives it in headless chromium
as a user would, and writes

* ``docs/app_teaching.jpg``: a teaching example with its unmasked target as the reference photo: the
  before/after, the verification panel (teaching embedder) and the per-face crops;
* ``docs/app_real_photo.jpg``: the masked astronaut (a real photo) with the unmasked original as the
  reference: detection, the predicted mask, paste-back, and dlib's ResNet as the judge.

Regenerate them whenever ``weights/teaching`` or the page changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import socket
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = Path(__file__).resolve().parent / "examples"


#: Headless chromium flags: no sandbox (containers), no GPU, no background traffic.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run")


def launch_chromium(playwright, executable: str):
    """Headless chromium at ``executable`` (Debian's ``/usr/bin/chromium``) through playwright."""
    return playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))


def click_until(page, selector: str, button: str = "#unmask-button", tries: int = 10) -> None:
    """Click ``button`` until ``selector`` appears: a click that beats the upload gets the app's own
    "no photo given" message, so wait and click again."""
    for _ in range(tries):
        page.locator(button).click()
        try:
            page.locator(selector).first.wait_for(timeout=20_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: no result yet, press again
            page.wait_for_timeout(2000)
    page.locator(selector).first.wait_for(timeout=120_000)


@dataclasses.dataclass(frozen=True)
class Shot:
    """What :func:`shoot` read off the page."""

    verification: str  # the verification panel's text
    notice: str  # the responsible-use notice's text
    download: Path | None  # the full photo as the browser downloaded it (when asked for)


def shoot(url: str, photo: Path, reference: Path, out: Path, *, aligned: bool, chromium: str,
          download: Path | None = None) -> Shot:
    """Upload ``photo`` and ``reference``, press Unmask, wait for the verification, save a JPEG of the page
    to ``out``; with ``download``, also download the full recovered photo there through its link."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p, chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 1250})
        page.goto(url)
        page.wait_for_selector("#unmask-button", timeout=60_000)
        page.locator("#input-image input[type=file]").first.set_input_files(str(photo))
        page.locator("#input-reference input[type=file]").first.set_input_files(str(reference))
        if aligned:
            page.locator("#aligned input[type=checkbox]").check()
        page.locator("#input-image img").first.wait_for(timeout=60_000)
        page.locator("#input-reference img").first.wait_for(timeout=60_000)
        click_until(page, "#before-after img")
        page.locator("#verification").get_by_text("recovered vs reference").wait_for(timeout=120_000)
        text = page.locator("#verification").inner_text()
        notice = page.locator("#responsible-use").inner_text()
        page.locator("#crops img").first.wait_for(timeout=60_000)
        if download is not None:
            with page.expect_download(timeout=60_000) as event:
                page.locator("#full-output a[download]").first.click()
            event.value.save_as(download)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1000)  # let the images finish painting
        png = out.with_suffix(".png")
        page.screenshot(path=str(png))
        browser.close()
    Image.open(png).convert("RGB").save(out, quality=85)
    png.unlink()
    print(f"wrote {out}")
    return Shot(text, notice, download)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m demo.make_screenshots", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DOCS), help="folder for the two JPEGs")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args(argv)

    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    from demo.app import CONCURRENCY_LIMIT, build_demo, launch_kwargs

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        original = Path(tmp) / "astronaut_unmasked.png"
        Image.fromarray(np.asarray(skdata.astronaut())).save(original)
        demo = build_demo()
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT).launch(
            server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
        try:
            url = f"http://127.0.0.1:{port}/"
            shoot(url, EXAMPLES / "teaching_kn95.png", EXAMPLES / "targets" / "teaching_kn95.png",
                  out / "app_teaching.jpg", aligned=True, chromium=args.chromium)
            shoot(url, EXAMPLES / "photo_astronaut.jpg", original, out / "app_real_photo.jpg", aligned=False,
                  chromium=args.chromium)
        finally:
            demo.close()


if __name__ == "__main__":
    main()
