"""The app's plain-file API through gradio_client: every endpoint, every bad file's message, identical
requests at once."""

from __future__ import annotations

import io
import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from app_server import serve_demo
from PIL import Image

from demo.handlers import EXAMPLES_DIR
from unmask.bundle.worlds import WORLDS
from unmask.pipeline import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                reason="teaching weights not present")
EXAMPLE = EXAMPLES_DIR / "teaching_kn95.png"
TARGET = EXAMPLES_DIR / "targets" / "teaching_kn95.png"
PHOTO = EXAMPLES_DIR / "photo_astronaut.jpg"


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    with serve_demo() as url:
        yield Client(url, verbose=False)


def unmask(client, image, mask=None, mode="auto", steps=0, seed=0, model="teaching", aligned=True):
    from gradio_client import handle_file

    return client.predict(handle_file(str(image)), handle_file(str(mask)) if mask else None, mode, steps, seed, model,
                          aligned, False, api_name="/unmask")


def test_unmask_a_teaching_face(client):
    output, mask, details = unmask(client, EXAMPLE)
    before = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    after = np.asarray(Image.open(output).convert("RGB"))
    assert after.shape == before.shape
    used = np.asarray(Image.open(mask).convert("L"))
    info = json.loads(details)
    assert info["mode"] == "encoder"  # "auto": the teaching bundle's default_mode
    assert info["mask_source"] == ["predicted"]  # the v2 encoder's mask head
    assert used.max() == 255 and used.min() == 0
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 1.0  # the masked region changed
    assert info["zoom_box"] == [0, 0, before.shape[1], before.shape[0]]  # aligned input: the whole crop
    assert {"encode", "render", "total"} <= set(info["timings_ms"])
    from unmask.precision import resolve_precision

    assert info["precision"] == resolve_precision("auto", "cpu").precision  # the app runs in auto


def test_every_image_the_api_returns_says_its_face_is_synthesised(client, tmp_path):
    # PNG below 2 megapixels, JPEG above: both carry the XMP provenance, read back with Pillow's XMP reader, and
    # a signed C2PA manifest that says the same, with the uploaded photo as its parent ingredient.
    from unmask.faces.provenance import COMPOSITE_SYNTHETIC, read_credentials, read_provenance

    big = tmp_path / "big.png"
    Image.open(EXAMPLE).convert("RGB").resize((1500, 1500), Image.Resampling.NEAREST).save(big)
    for source, suffix in ((EXAMPLE, ".png"), (big, ".jpg")):
        output, mask, _ = unmask(client, source)
        assert Path(output).suffix == suffix
        with Image.open(output) as im:
            description = im.getxmp()["xmpmeta"]["RDF"]["Description"]
            assert im.size == Image.open(source).size  # the API adds no visible label: the pixels are the photo's
        assert description["DigitalSourceType"] == COMPOSITE_SYNTHETIC
        assert description["Bundle"] == "teaching" and description["Mode"] == "encoder"
        (x0, y0, x1, y1), = read_provenance(output).regions
        assert 0 <= x0 < x1 <= 1500 and 0 <= y0 < y1 <= 1500
        assert read_provenance(mask).role == "mask"
        credentials = read_credentials(output)
        assert credentials.intact and credentials.source_types == (COMPOSITE_SYNTHETIC,)
        assert credentials.regions == ((x0, y0, x1, y1),) and credentials.ingredients[0].title == "input photo"


def test_model_auto_picks_the_best_bundle_that_loads_here(client):
    # The gradio_client example of docs/api.md passes model="auto"; offline that is the teaching bundle.
    _, _, details = unmask(client, EXAMPLE, model="auto")
    info = json.loads(details)
    assert info["model"] == "teaching" and info["mode"] == "encoder"


def test_unmask_with_a_mask_image_only_changes_that_region(client, tmp_path):
    size = Image.open(EXAMPLE).size
    region = np.zeros((size[1], size[0]), np.uint8)
    region[size[1] // 2:, :] = 255
    mask_path = tmp_path / "region.png"
    Image.fromarray(region).save(mask_path)
    output, _, details = unmask(client, EXAMPLE, mask=mask_path, mode="encoder")
    assert json.loads(details)["mask_source"] == ["painted"]
    diff = np.abs(np.asarray(Image.open(output).convert("RGB")).astype(int)
                  - np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(int)).sum(axis=2)
    top = size[1] // 2 - round(0.1 * size[1])  # above the region and its feathered seam nothing changes
    assert diff[:top].max() == 0 and diff[size[1] // 2 + 4:].mean() > 1.0


def test_unmask_a_real_photo(client):
    output, _, details = unmask(client, PHOTO, aligned=False)
    info = json.loads(details)
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert np.asarray(Image.open(output).convert("RGB")).shape == photo.shape
    x0, y0, x1, y1 = info["zoom_box"]
    assert 0 <= x0 < x1 <= photo.shape[1] and 0 <= y0 < y1 <= photo.shape[0]
    assert (x1 - x0) * (y1 - y0) < photo.shape[0] * photo.shape[1]  # zoomed on the face


def test_verify_teaching_face_against_its_unmasked_target(client):
    from gradio_client import handle_file

    info = json.loads(client.predict(handle_file(str(EXAMPLE)), handle_file(str(TARGET)), "teaching", True,
                                     api_name="/verify"))
    assert "teaching embedder" in info["network"] and info["metric"] == "cosine"
    assert info["threshold"] == WORLDS["teaching"].identity_threshold
    assert -1 <= info["masked_vs_reference"] <= 1 and -1 <= info["recovered_vs_reference"] <= 1
    assert info["same_person_recovered"] == (info["recovered_vs_reference"] > info["threshold"])
    assert "reference you gave" in info["meaning"] and "not proof of identity" in info["meaning"]


def test_verify_real_photo_uses_dlib_offline(client, tmp_path):
    from gradio_client import handle_file
    from skimage import data

    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    info = json.loads(client.predict(handle_file(str(photo)), handle_file(str(photo)), "teaching", False,
                                     api_name="/verify"))
    assert info["network"].startswith("dlib") and info["metric"] == "distance" and info["threshold"] == 0.6
    # The reference is the same photo: the unrecovered pair is the same person by a wide margin.
    assert info["masked_vs_reference"] < 0.3 and info["same_person_masked"]
    assert info["recovered_vs_reference"] > info["masked_vs_reference"]  # a teaching face was pasted in


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, content: bytes, expected: str) -> None:
        (folder / name).write_bytes(content)
        files[name] = (folder / name, expected)

    add("text.png", b"hello, this is not a photo\n" * 4, "is a text file, not an image")
    add("empty.png", b"", r"is empty \(0 bytes\)")
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(png, "PNG")
    add("truncated.png", png.getvalue()[: len(png.getvalue()) // 2], "is damaged or truncated")
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    add("bomb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b""), "megapixels, over the limit")
    add("face.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><circle r="80"/></svg>',
        r"is an SVG \(vector\) file")
    gif = io.BytesIO()
    frames = [Image.new("RGB", (64, 64), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    add("anim.gif", gif.getvalue(), r"is an animation \(3 frames\)")
    huge = io.BytesIO()
    Image.new("L", (8000, 6000), 128).save(huge, "JPEG", quality=30)
    add("huge.jpg", huge.getvalue(), "8000×6000 = 48 megapixels, over the limit of 40")
    return files


@pytest.mark.slow
def test_every_bad_file_gets_the_projects_message_and_the_app_still_answers(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError, ValidationError

    for name, (path, expected) in _bad_files(tmp_path).items():
        with pytest.raises(ValidationError, match=expected) as info:
            client.predict(handle_file(str(path)), None, "auto", 0, 0, "teaching", False, False, api_name="/unmask")
        assert "failed validation" in str(info.value), name  # refused by the validator, before any model ran
        assert "upstream Gradio app has raised an exception" not in str(info.value), name
    # CMYK and 16-bit files are photos: they decode (and this one then has no face in it).
    cmyk, deep = tmp_path / "cmyk.jpg", tmp_path / "gray16.png"
    Image.new("RGB", (200, 200), (120, 90, 60)).convert("CMYK").save(cmyk)
    Image.fromarray(np.full((200, 200), 30000, np.uint16)).save(deep)
    for path in (cmyk, deep):
        with pytest.raises(AppError, match="no face found"):
            client.predict(handle_file(str(path)), None, "auto", 0, 0, "teaching", False, False, api_name="/unmask")
    output, _, _ = unmask(client, EXAMPLE)  # still answering
    assert Path(output).is_file()


def test_steps_beyond_the_maximum_are_refused_with_the_projects_message(client):
    # One API or MCP call may not hold the models for as long as it asks (docs/serving.md "Bounded work").
    from demo.models import MAX_STEPS

    message = rf"steps must be a whole number from 0 \(the bundle's default\) to {MAX_STEPS}"
    with pytest.raises(Exception, match=message):
        unmask(client, EXAMPLE, mode="encoder+refine", steps=MAX_STEPS + 1)


@pytest.mark.slow
def test_identical_requests_at_once_all_succeed(client):
    from gradio_client import Client

    url = client.src

    def call(_):
        return unmask(Client(url, verbose=False), EXAMPLE)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(12)))
    reference = np.asarray(Image.open(results[0][0]))
    for output, _, _ in results:
        assert np.array_equal(np.asarray(Image.open(output)), reference)


def test_plain_http_rest_protocol_the_docs_document(client, tmp_path):
    # The curl example of docs/api.md (upload, /gradio_api/call/unmask, the result stream, the downloads), as
    # ``python -m unmask.bench app`` times it: it returns what gradio_client returns, and refuses a bad file
    # with the validator's message.
    import httpx

    from unmask.bench.server import rest_unmask

    with httpx.Client(base_url=client.src, timeout=120.0) as http:
        phases, (photo, mask, details) = rest_unmask(http, EXAMPLE)
        recovered = Image.open(io.BytesIO(http.get(photo["url"]).content))
        assert recovered.size == Image.open(EXAMPLE).size
        assert mask["url"].endswith(".png")
        assert json.loads(details)["mode"] == "encoder"
        assert set(phases) == {"upload", "call", "result", "download", "total"}
        assert phases["total"] >= phases["result"] > 0
        bad = tmp_path / "bad.png"
        bad.write_text("not a photo")
        with pytest.raises(RuntimeError, match=r"the photo \(bad.png\) is a text file, not an image"):
            rest_unmask(http, bad)


@pytest.mark.slow
def test_the_app_deletes_old_cached_uploads_and_results(monkeypatch):
    # A busy Space must not fill its disk: Gradio's cached uploads and results older than CACHE_CLEANUP's age
    # are deleted on its schedule (here every second, at 3 s old, instead of 30 min and 1 h), and the app keeps
    # answering. 3 s leaves a stalled CI machine time to download a result before it goes.
    import time

    import httpx

    import demo.app
    from demo.handlers import CACHE_CLEANUP
    from unmask.bench.server import rest_unmask

    assert CACHE_CLEANUP[1] >= 600  # a result stays downloadable for minutes
    monkeypatch.setattr(demo.app, "CACHE_CLEANUP", (1, 3))
    with serve_demo() as url, httpx.Client(base_url=url, timeout=120.0) as http:
        _, (photo, mask, _) = rest_unmask(http, EXAMPLE)
        cached = [Path(photo["path"]), Path(mask["path"])]
        assert all(p.is_file() for p in cached)
        deadline = time.monotonic() + 30
        while any(p.exists() for p in cached) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(p.exists() for p in cached)
        _, (again, _, _) = rest_unmask(http, EXAMPLE)
        assert http.get(again["url"]).status_code == 200
