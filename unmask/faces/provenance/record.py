"""What an image written by unmask is: :class:`Provenance`, the one record that both the XMP packet
(:meth:`Provenance.to_xmp`) and the signed C2PA manifest (:mod:`.credentials`) are written from.

The XMP packet (PNG: an ``iTXt`` chunk with the keyword ``XML:com.adobe.xmp``; JPEG: an ``APP1`` segment; WebP: an
``XMP`` chunk) holds

* the IPTC ``Iptc4xmpExt:DigitalSourceType``: :data:`COMPOSITE_SYNTHETIC` (a photo with a synthesised
  region) for the output photo, :data:`TRAINED_ALGORITHMIC_MEDIA` for a recovered crop (the generator's
  whole rendering), none for the input crop and the mask (they show no synthesised pixels);
* the synthesised region of each face as an IPTC ``Iptc4xmpExt:ImageRegion`` rectangle in pixels: the
  bounding box of every pixel that pasting the recovered face changed (the mask region and its feathered edge);
* in unmask's own namespace (:data:`UNMASK_NS`): the bundle, the mode, the image's role and the text of the
  visible label when one was drawn.
"""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

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
#: One sentence that travels with every written image (``dc:description``, the manifest's edit description).
DESCRIPTION = ("The face region of this image was synthesised by unmask's generator from the visible part of the "
               "face: a guess, not the person's face. Not evidence of identity; not for identifying or searching "
               "for people.")
#: Formats that carry the provenance (Pillow format names).
FORMATS = ("PNG", "JPEG", "WEBP")
#: How a manifest names the input photo (its parent ingredient).
PARENT_TITLE = "input photo"
#: The largest input file kept whole as the manifest's parent ingredient (the app accepts 25 MB uploads).
PARENT_MAX_BYTES = 64 * 2**20

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

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Parent:
    """The photo an output was made from: the parent ingredient of its C2PA manifest.

    Attributes:
        title: how the manifest names it. Always :data:`PARENT_TITLE` unless a caller says otherwise: an upload's
            file name often names the person in it, and the output is made to be shared.
        data: the file's bytes as given, so that Content Credentials it already carries travel into the output's
            manifest as the ingredient's own (no thumbnail or pixels of it are embedded); ``None`` when the photo
            came as decoded pixels, and the manifest then names the parent without them.
    """

    title: str = PARENT_TITLE
    data: bytes | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def of(cls, source: Any) -> Parent:
        """The parent for what a pipeline was given: a path or encoded bytes (kept whole up to
        :data:`PARENT_MAX_BYTES`), a PIL image or an array (pixels: no file)."""
        if isinstance(source, Parent):
            return source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_file() and path.stat().st_size <= PARENT_MAX_BYTES:
                return cls(data=path.read_bytes())
        elif isinstance(source, (bytes, bytearray, memoryview)) and len(source) <= PARENT_MAX_BYTES:
            return cls(data=bytes(source))
        return cls()


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
        parent: the input photo (:class:`Parent`), the parent ingredient of an output's C2PA manifest; not part
            of the XMP packet, nor of equality.
    """

    bundle: str
    mode: str
    role: str = "output"
    regions: tuple[Box, ...] = ()
    label: str = ""
    software: str = ""
    parent: Parent | None = dataclasses.field(default=None, compare=False, repr=False)

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

    def with_parent(self, source: Any) -> Provenance:
        """The same provenance made from ``source`` (a path, bytes, …: see :meth:`Parent.of`); ``None`` keeps
        the parent it has."""
        return self if source is None else dataclasses.replace(self, parent=Parent.of(source))

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


