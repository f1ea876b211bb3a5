"""Every image unmask writes says its face region is synthesised: XMP provenance (IPTC DigitalSourceType), the
bundle, the mode, the region's box; and the optional visible label. Read back with Pillow's own XMP reader
(``Image.getxmp``, which parses with defusedxml) and by walking the PNG chunks / JPEG segments."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unmask.errors import ImageError, InputShapeError
from unmask.faces.provenance import (
    COMPOSITE_SYNTHETIC,
    LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    Provenance,
    bundle_name,
    changed_box,
    encode_image,
    label_image,
    read_provenance,
    save_image,
)
from unmask.pipeline import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "demo" / "examples" / "teaching_kn95.png"
needs_teaching = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                    reason="teaching weights not present")


def pillow_xmp(source) -> dict:
    """The XMP ``rdf:Description`` as Pillow reads it (``getxmp``: an independent, maintained reader)."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        return im.getxmp()["xmpmeta"]["RDF"]["Description"]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    assert data[:2] == b"\xff\xd8"
    segments, pos = [], 2
    while data[pos + 1] != 0xDA:  # up to the start of scan
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segments.append((marker, data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return segments


def check_composite(description: dict, bundle: str, mode: str) -> None:
    assert description["DigitalSourceType"] == COMPOSITE_SYNTHETIC
    assert description["Bundle"] == bundle and description["Mode"] == mode and description["Role"] == "output"
    assert "not the person's face" in description["description"]["Alt"]["li"]["text"]


PHOTO = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
MADE = Provenance("teaching", "encoder", regions=((5, 20, 30, 44),))


# ---------------------------------------------------------------------------------------------- the file formats
def test_png_carries_the_xmp_in_an_itxt_chunk():
    data = encode_image(PHOTO, "PNG", MADE)
    itxt = [body for kind, body in png_chunks(data) if kind == b"iTXt"]
    assert len(itxt) == 1
    keyword, rest = itxt[0].split(b"\0", 1)
    assert keyword == b"XML:com.adobe.xmp"
    assert rest[:2] == b"\0\0"  # uncompressed, as XMP Part 3 asks
    assert COMPOSITE_SYNTHETIC.encode() in rest
    check_composite(pillow_xmp(data), "teaching", "encoder")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), PHOTO)  # the pixels are the photo's


def test_jpeg_carries_the_xmp_in_an_app1_segment():
    data = encode_image(PHOTO, "JPEG", MADE, quality=90)
    app1 = [body for marker, body in jpeg_segments(data) if marker == 0xE1]
    xmp = [body for body in app1 if body.startswith(b"http://ns.adobe.com/xap/1.0/\0")]
    assert len(xmp) == 1 and COMPOSITE_SYNTHETIC.encode() in xmp[0]
    check_composite(pillow_xmp(data), "teaching", "encoder")


def test_the_region_box_is_an_iptc_image_region_and_reads_back():
    two = Provenance("ffhq", "encoder+refine", regions=((5, 20, 30, 44), (1, 2, 3, 4)))
    for fmt in ("PNG", "JPEG", "WEBP"):
        data = encode_image(PHOTO, fmt, two)
        regions = pillow_xmp(data)["ImageRegion"]["Bag"]["li"]
        boundary = regions[0]["RegionBoundary"]
        assert boundary["rbShape"] == "rectangle" and boundary["rbUnit"] == "pixel"
        assert [int(boundary[k]) for k in ("rbX", "rbY", "rbW", "rbH")] == [5, 20, 25, 24]
        assert read_provenance(data) == two


def test_crops_masks_and_inputs_say_what_they_are():
    recovered = pillow_xmp(encode_image(PHOTO, "PNG", MADE.for_role("recovered")))
    assert recovered["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA and recovered["Role"] == "recovered"
    for role in ("input", "mask"):
        description = pillow_xmp(encode_image(PHOTO, "PNG", MADE.for_role(role)))
        assert "DigitalSourceType" not in description  # no synthesised pixels in it
        assert description["Role"] == role and description["Bundle"] == "teaching"
    with pytest.raises(InputShapeError, match="role must be one of"):
        MADE.for_role("thumbnail")


def test_formats_without_xmp_are_refused_by_name(tmp_path):
    with pytest.raises(ImageError, match=r"use a \.png, \.jpg or \.webp name"):
        save_image(tmp_path / "out.bmp", PHOTO, MADE)
    assert not (tmp_path / "out.bmp").exists()
    path = save_image(tmp_path / "out.webp", PHOTO, MADE)
    assert read_provenance(path) == MADE


def test_files_without_unmask_metadata_read_as_none(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(PHOTO).save(plain)
    assert read_provenance(plain) is None
    with pytest.raises(ImageError, match="not well-formed"):
        Provenance.from_xmp("<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed></x:xmpmeta>")


# ---------------------------------------------------------------------------------------------- regions and label
def test_changed_box_bounds_every_changed_pixel():
    after = PHOTO.copy()
    after[20:30, 5:7] ^= 1
    after[43, 11] ^= 255
    assert changed_box(PHOTO, after) == (5, 20, 12, 44)
    assert changed_box(PHOTO[..., 0], after[..., 0]) == (5, 20, 12, 44)
    assert changed_box(PHOTO, PHOTO.copy()) is None
    with pytest.raises(InputShapeError, match="one shape"):
        changed_box(PHOTO, PHOTO[1:])


def test_a_crop_of_the_photo_keeps_the_regions_inside_it():
    cropped = MADE.cropped(10, 10, 40, 40)
    assert cropped.regions == ((0, 10, 20, 30),)
    assert MADE.cropped(31, 0, 40, 10).regions == ()


def test_the_visible_label_is_a_band_below_the_photo():
    labelled = label_image(PHOTO)
    assert labelled.shape[0] > PHOTO.shape[0] and labelled.shape[1:] == PHOTO.shape[1:]
    assert np.array_equal(labelled[:PHOTO.shape[0]], PHOTO)  # no pixel of the photo is hidden
    band = labelled[PHOTO.shape[0]:]
    assert band.max() > 200 and np.median(band) < 40  # light text on a dark band
    # Narrow images wrap the words; wide ones keep them on one line with a larger font.
    narrow, wide = label_image(np.zeros((64, 64, 3), np.uint8)), label_image(np.zeros((600, 900, 3), np.uint8))
    assert narrow.shape[0] - 64 > 20 and wide.shape[0] - 600 < 45


def test_labelled_files_record_the_label(tmp_path):
    path = save_image(tmp_path / "labelled.png", PHOTO, MADE, label=True)
    assert read_provenance(path).label == LABEL
    assert pillow_xmp(path)["VisibleLabel"] == LABEL
    assert Image.open(path).height > PHOTO.shape[0]


def test_bundle_names_never_carry_a_local_path(tmp_path):
    folder = tmp_path / "private" / "my_bundle"
    folder.mkdir(parents=True)
    assert bundle_name(folder) == "my_bundle"
    assert bundle_name("someone/unmask-ffhq", "abc123") == "someone/unmask-ffhq@abc123"
    assert bundle_name("teaching") == "teaching"


# ---------------------------------------------------------------------------------------------- pipeline and CLI
@pytest.fixture(scope="module")
def teaching():
    from unmask.pipeline import UnmaskPipeline

    return UnmaskPipeline.from_pretrained("teaching", device="cpu")


@needs_teaching
def test_the_pipelines_save_writes_png_and_jpeg_with_provenance(teaching, tmp_path, astronaut):
    result = teaching(EXAMPLE, aligned=True)
    assert result.bundle == "teaching"
    for name in ("out.png", "out.jpg"):
        path = result.save(tmp_path / name)
        description = pillow_xmp(path)
        check_composite(description, "teaching", "encoder")
        assert read_provenance(path).regions == result.provenance.regions != ()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), result.output)
    labelled = result.save(tmp_path / "labelled.png", label=True)
    assert Image.open(labelled).height > result.output.shape[0] and read_provenance(labelled).label == LABEL

    # A real photo: the box bounds exactly the pixels that recovery changed, a small part of the photo.
    photo = teaching(astronaut)
    (region,) = photo.provenance.regions
    assert region == changed_box(astronaut, photo.output) == photo.faces[0].region
    x0, y0, x1, y1 = region
    assert (x1 - x0) * (y1 - y0) < 0.1 * astronaut.shape[0] * astronaut.shape[1]
    saved = read_provenance(photo.save(tmp_path / "astronaut.jpg"))
    assert saved.regions == (region,) and saved.bundle == "teaching"


@needs_teaching
def test_the_cli_writes_provenance_in_every_file(tmp_path):
    from unmask import __main__ as cli

    for fmt in ("png", "jpg"):
        out = tmp_path / fmt
        assert cli.main([str(EXAMPLE), "--output", str(out), "--aligned", "--save-crops", "--format", fmt]) == 0
        photo = out / f"{EXAMPLE.stem}.{fmt}"
        check_composite(pillow_xmp(photo), "teaching", "encoder")
        assert Image.open(photo).size == Image.open(EXAMPLE).size  # no visible label unless asked
        assert pillow_xmp(out / f"{EXAMPLE.stem}.face0.recovered.{fmt}")["DigitalSourceType"] == \
            TRAINED_ALGORITHMIC_MEDIA
        assert pillow_xmp(out / f"{EXAMPLE.stem}.face0.mask.{fmt}")["Role"] == "mask"
    labelled = tmp_path / "labelled"
    assert cli.main([str(EXAMPLE), "--output", str(labelled), "--aligned", "--label"]) == 0
    path = labelled / f"{EXAMPLE.stem}.png"
    assert pillow_xmp(path)["VisibleLabel"] == LABEL and Image.open(path).height > Image.open(EXAMPLE).height
