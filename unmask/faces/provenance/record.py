"""Say in every written image that its face region is synthesised: XMP provenance and a visible label.

A recovered lower face is drawn by a generator from what the rest of the face suggests: a guess, not the
person's face. Every image that the app, the CLI and :meth:`unmask.pipeline.UnmaskResult.save` write
carries that in machine-readable form, as an XMP packet (PNG: an ``iTXt`` chunk with the keyword
``XML:com.adobe.xmp``; JPEG: an ``APP1`` segment; WebP: an ``XMP`` chunk) holding

* the IPTC ``Iptc4xmpExt:DigitalSourceType``: :data:`COMPOSITE_SYNTHETIC` (a photo with a synthesised
  region) for the output photo, :data:`TRAINED_ALGORITHMIC_MEDIA` for a recovered crop (the generator's
  whole rendering), none for the input crop and the mask (they show no synthesised pixels);
* the synthesised region of each face as an IPTC ``Iptc4xmpExt:ImageRegion`` rectangle in pixels: the
  bounding box of every pixel that pasting the recovered face changed (the mask region and its feathered edge);
* in unmask's own namespace (:data:`UNMASK_NS`): the bundle, the mode, the image's role and the text of the
  visible label when one was drawn.

The visible label (:func:`label_image`) is a band added *below* the photo, so it hides no pixel of it and
stays legible on a 64-px teaching face; the region boxes keep their coordinates.

This module builds, writes and reads these packets; nothing else in unmask touches XMP.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unmask.errors import ImageError, InputShapeError

#: IPTC NewsCodes Digital Source Type: a capture composited with content from a trained algorithm.
COMPOSITE_SYNTHETIC = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
#: IPTC NewsCodes Digital Source Type: wholly created by a trained algorithm (a recovered crop).
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#: What each role of a written image is, as a Digital Source Type (``None``: no synthesised pixels).
ROLE_SOURCE_TYPES: dict[str, str | None] = {
    "output": COMPOSITE_SYNTHETIC,  # the photo, or a crop of it, with the recovered face pasted in
    "recovered": TRAINED_ALGORITHMIC_MEDIA,  # the generator's rendering of the aligned face
    "input": None,  # the aligned (or zoomed) masked input
    "mask": None,  # the region that was recovered, white = recovered
}
#: The visible label's text.
LABEL = "face region synthesised"
#: One sentence that travels with every written image (``dc:description``).
DESCRIPTION = ("The face region of this image was synthesised by unmask's generator from the visible part of the "
               "face: a guess, not the person's face. Not evidence of identity; not for identifying or searching "
               "for people.")
#: Formats that carry the XMP packet (Pillow format names).
FORMATS = ("PNG", "JPEG", "WEBP")

X_NS = "adobe:ns:meta/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
DC_NS = "http://purl.org/dc/elements/1.1/"
XMP_NS = "http://ns.adobe.com/xap/1.0/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
#: unmask's own XMP namespace (a name, not a web address).
UNMASK_NS = "urn:unmask:xmp:provenance:1.0/"
_PREFIXES = {"x": X_NS, "rdf": RDF_NS, "dc": DC_NS, "xmp": XMP_NS, "Iptc4xmpExt": IPTC_EXT_NS, "unmask": UNMASK_NS}
#: The keyword of the PNG text chunk that holds XMP (XMP Specification Part 3).
PNG_XMP_KEYWORD = "XML:com.adobe.xmp"

#: The label band: font size as a fraction of the image's width, clamped to these pixel sizes.
LABEL_FONT_FRACTION = 1 / 45
LABEL_FONT_PX = (8, 28)
LABEL_BACKGROUND = (24, 24, 24)
LABEL_TEXT_COLOUR = (255, 255, 255)

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What an image written by unmask is.

    Attributes:
        bundle: the bundle that recovered it (``"teaching"``, ``"ffhq"``, a folder's name or a Hub repo id).
        mode: the inversion mode (``"encoder"``, ``"encoder+refine"``, ``"optimize"``).
        role: ``"output"``, ``"recovered"``, ``"input"`` or ``"mask"`` (see :data:`ROLE_SOURCE_TYPES`).
        regions: synthesised regions ``(x0, y0, x1, y1)`` in this image's pixels (``x1``, ``y1`` exclusive),
            one per recovered face.
        label: the visible label's text when one was drawn, else ``""``.
        software: the writer, ``"unmask <version>"``.
    """

    bundle: str
    mode: str
    role: str = "output"
    regions: tuple[Box, ...] = ()
    label: str = ""
    software: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLE_SOURCE_TYPES:
            raise InputShapeError(f"role must be one of {sorted(ROLE_SOURCE_TYPES)}, got {self.role!r}.")
        if not self.software:
            from unmask import __version__

            object.__setattr__(self, "software", f"unmask {__version__}")
        object.__setattr__(self, "regions", tuple(tuple(int(v) for v in box) for box in self.regions))

    @property
    def digital_source_type(self) -> str | None:
        """The IPTC Digital Source Type URI of this role (``None``: no synthesised pixels)."""
        return ROLE_SOURCE_TYPES[self.role]

    def for_role(self, role: str, regions: tuple[Box, ...] = ()) -> Provenance:
        """The same recovery, for another image written beside the output (a crop, the mask)."""
        return dataclasses.replace(self, role=role, regions=regions, label="")

    def cropped(self, x0: int, y0: int, x1: int, y1: int) -> Provenance:
        """The provenance of ``image[y0:y1, x0:x1]``: the regions moved into the crop and clipped to it."""
        boxes = []
        for bx0, by0, bx1, by1 in self.regions:
            box = (max(bx0, x0) - x0, max(by0, y0) - y0, min(bx1, x1) - x0, min(by1, y1) - y0)
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
        return dataclasses.replace(self, regions=tuple(boxes))

    # ------------------------------------------------------------------ XMP
    def to_xmp(self) -> str:
        """This provenance as an XMP packet (RDF/XML; the IPTC Photo Metadata properties plus unmask's)."""
        root = ET.Element(f"{{{X_NS}}}xmpmeta")
        description = ET.SubElement(ET.SubElement(root, f"{{{RDF_NS}}}RDF"), f"{{{RDF_NS}}}Description",
                                    {f"{{{RDF_NS}}}about": ""})
        if self.digital_source_type is not None:
            ET.SubElement(description, f"{{{IPTC_EXT_NS}}}DigitalSourceType").text = self.digital_source_type
        ET.SubElement(description, f"{{{XMP_NS}}}CreatorTool").text = self.software
        _lang_alt(ET.SubElement(description, f"{{{DC_NS}}}description"), DESCRIPTION)
        for name, value in (("Bundle", self.bundle), ("Mode", self.mode), ("Role", self.role),
                            ("VisibleLabel", self.label)):
            if value:
                ET.SubElement(description, f"{{{UNMASK_NS}}}{name}").text = value
        if self.regions:
            bag = ET.SubElement(ET.SubElement(description, f"{{{IPTC_EXT_NS}}}ImageRegion"), f"{{{RDF_NS}}}Bag")
            for i, (x0, y0, x1, y1) in enumerate(self.regions):
                region = ET.SubElement(bag, f"{{{RDF_NS}}}li", {f"{{{RDF_NS}}}parseType": "Resource"})
                boundary = ET.SubElement(region, f"{{{IPTC_EXT_NS}}}RegionBoundary",
                                         {f"{{{RDF_NS}}}parseType": "Resource"})
                for key, value in (("rbShape", "rectangle"), ("rbUnit", "pixel"), ("rbX", x0), ("rbY", y0),
                                   ("rbW", x1 - x0), ("rbH", y1 - y0)):
                    ET.SubElement(boundary, f"{{{IPTC_EXT_NS}}}{key}").text = str(value)
                ET.SubElement(region, f"{{{IPTC_EXT_NS}}}rId").text = f"face{i + 1}"
                _lang_alt(ET.SubElement(region, f"{{{IPTC_EXT_NS}}}Name"), LABEL)
        for prefix, uri in _PREFIXES.items():
            ET.register_namespace(prefix, uri)
        body = ET.tostring(root, encoding="unicode")
        return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{body}<?xpacket end="r"?>'

    @classmethod
    def from_xmp(cls, xmp: str | bytes) -> Provenance | None:
        """Read a packet written by :meth:`to_xmp`; ``None`` when it holds no unmask provenance.

        Raises:
            ImageError: the packet is not well-formed XML.
        """
        text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
        text = re.sub(r"<\?xpacket[^>]*\?>", "", text).strip().lstrip("\ufeff")
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise ImageError(f"the image's XMP metadata is not well-formed XML ({exc}); it was not written by "
                             "unmask, or was damaged after.") from exc
        for description in root.iter(f"{{{RDF_NS}}}Description"):
            role = _field(description, UNMASK_NS, "Role")
            if role is None:
                continue
            regions = []
            for boundary in description.iter(f"{{{IPTC_EXT_NS}}}RegionBoundary"):
                x, y, w, h = (int(_field(boundary, IPTC_EXT_NS, k) or 0) for k in ("rbX", "rbY", "rbW", "rbH"))
                regions.append((x, y, x + w, y + h))
            return cls(bundle=_field(description, UNMASK_NS, "Bundle") or "",
                       mode=_field(description, UNMASK_NS, "Mode") or "", role=role, regions=tuple(regions),
                       label=_field(description, UNMASK_NS, "VisibleLabel") or "",
                       software=_field(description, XMP_NS, "CreatorTool") or "unmask")
        return None


def _lang_alt(parent: ET.Element, text: str) -> None:
    alt = ET.SubElement(parent, f"{{{RDF_NS}}}Alt")
    ET.SubElement(alt, f"{{{RDF_NS}}}li", {f"{{{XML_NS}}}lang": "x-default"}).text = text


def _field(node: ET.Element, ns: str, name: str) -> str | None:
    """A simple property written as an element or as an attribute (both are valid XMP)."""
    child = node.find(f"{{{ns}}}{name}")
    if child is not None:
        return (child.text or "").strip()
    return node.get(f"{{{ns}}}{name}")


# ---------------------------------------------------------------------- regions and names
def changed_box(before: np.ndarray, after: np.ndarray) -> Box | None:
    """Bounding box of the pixels that differ between two images of the same shape: the synthesised region.

    Args:
        before, after: ``(H, W, C)`` or ``(H, W)`` arrays, e.g. the photo before and after one face was pasted.

    Returns:
        ``(x0, y0, x1, y1)`` in pixels (``x1``, ``y1`` exclusive); ``None`` when nothing changed.
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise InputShapeError(f"changed_box compares images of one shape, got {before.shape} and {after.shape}.")
    changed = before != after
    if changed.ndim == 3:
        changed = changed.any(axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def bundle_name(source: str | os.PathLike, revision: str | None = None) -> str:
    """How the metadata names a bundle: a built-in name or Hub repo id (``@revision``), or a local folder's own
    name, never its full path (written files must not carry where a user keeps their files)."""
    text = str(source)
    if Path(text).exists():
        return Path(text).resolve().name
    return f"{text}@{revision}" if revision else text


# ---------------------------------------------------------------------- the visible label
def label_image(image: np.ndarray, text: str = LABEL) -> np.ndarray:
    """Add a dark band with ``text`` below ``image`` (uint8 ``(H, W, 3)`` or ``(H, W)``).

    The font is a fraction of the width (:data:`LABEL_FONT_FRACTION`, clamped to :data:`LABEL_FONT_PX`);
    words wrap onto more lines where the image is narrow. Returns a new uint8 array ``(H + band, W, 3)``.
    """
    from PIL import ImageDraw, ImageFont

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputShapeError(f"label_image needs a uint8 (H, W, 3) or (H, W) array, got {image.dtype} {image.shape}.")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    width = image.shape[1]
    size = int(np.clip(round(width * LABEL_FONT_FRACTION), *LABEL_FONT_PX))
    font = ImageFont.load_default(size=size)
    pad = max(2, size // 3)
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width - 2 * pad:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    line_height = size + max(1, size // 4)
    band = Image.new("RGB", (width, 2 * pad + line_height * len(lines)), LABEL_BACKGROUND)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * line_height), line, font=font, fill=LABEL_TEXT_COLOUR)
    return np.concatenate([image[..., :3], np.asarray(band)], axis=0)


# ---------------------------------------------------------------------- writing and reading
def pil_save_kwargs(fmt: str, provenance: Provenance) -> dict[str, Any]:
    """The ``Image.save`` arguments that embed ``provenance`` in a file of Pillow format ``fmt``.

    Raises:
        ImageError: the format cannot carry XMP (use PNG, JPEG or WebP).
    """
    fmt = fmt.upper()
    xmp = provenance.to_xmp()
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt(PNG_XMP_KEYWORD, xmp, zip=False)  # XMP Part 3: uncompressed iTXt, empty language
        return {"pnginfo": info}
    if fmt in ("JPEG", "WEBP"):
        return {"xmp": xmp.encode("utf-8")}
    raise ImageError(f"{fmt} files cannot carry unmask's provenance metadata; save as .png, .jpg or .webp.")


def encode_image(image: np.ndarray, fmt: str, provenance: Provenance, *, label: bool = False,
                 **save_kwargs: Any) -> bytes:
    """Encode uint8 ``image`` as ``fmt`` (``"PNG"``, ``"JPEG"``, ``"WEBP"``) with ``provenance`` in XMP.

    ``label`` first adds the visible band (:func:`label_image`) and records its text; ``save_kwargs`` go to
    Pillow (``quality=92``, ``compress_level=1``…).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputShapeError(f"images are written from uint8 (H, W, 3) or (H, W) arrays, got {image.dtype} "
                              f"{image.shape}.")
    if label:
        image = label_image(image)
        provenance = dataclasses.replace(provenance, label=LABEL)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt.upper(), **save_kwargs, **pil_save_kwargs(fmt, provenance))
    return buffer.getvalue()


def save_image(path: str | os.PathLike, image: np.ndarray, provenance: Provenance, *, label: bool = False,
               **save_kwargs: Any) -> Path:
    """Write ``image`` to ``path`` (``.png``, ``.jpg``/``.jpeg`` or ``.webp``) atomically, ``provenance`` in XMP.

    Raises:
        ImageError: the suffix names no format that carries XMP.
    """
    from unmask.faces.io import atomic_write

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ImageError(f"cannot write {path.name!r} with provenance metadata: use a .png, .jpg or .webp name.")
    return atomic_write(path, encode_image(image, fmt, provenance, label=label, **save_kwargs))


def read_provenance(source: str | os.PathLike | bytes) -> Provenance | None:
    """The provenance in an image file (path or encoded bytes); ``None`` when it holds none of unmask's.

    Raises:
        ImageError: the file is not an image, or its XMP is not well-formed.
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            xmp = im.info.get("xmp")
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read the metadata of {source if not isinstance(source, bytes) else 'the bytes'}: "
                         f"{exc}") from exc
    return Provenance.from_xmp(xmp) if xmp else None


__all__ = ["COMPOSITE_SYNTHETIC", "TRAINED_ALGORITHMIC_MEDIA", "LABEL", "Provenance", "changed_box", "bundle_name",
           "label_image", "pil_save_kwargs", "encode_image", "save_image", "read_provenance"]
