"""The XMP packet: what every written image says in its metadata, unsigned.

A PNG holds it in an ``iTXt`` chunk with the keyword ``XML:com.adobe.xmp``, a JPEG in an ``APP1`` segment, a WebP
in an ``XMP`` chunk. It holds

* the IPTC ``Iptc4xmpExt:DigitalSourceType``: :data:`~.record.COMPOSITE_SYNTHETIC` (a photo with a synthesised
  region) for the output photo, :data:`~.record.TRAINED_ALGORITHMIC_MEDIA` for a recovered crop (the generator's
  whole rendering), none for the input crop and the mask (they show no synthesised pixels);
* the synthesised region of each face as an IPTC ``Iptc4xmpExt:ImageRegion`` rectangle in pixels: the
  bounding box of every pixel that pasting the recovered face changed (the mask region and its feathered edge);
* in unmask's own namespace (:data:`UNMASK_NS`): the bundle, the mode, the image's role and the text of the
  visible label when one was drawn.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from unmask.errors import ImageError
from unmask.faces.provenance.record import DESCRIPTION, LABEL, Provenance

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


def to_xmp(provenance: Provenance) -> str:
    """``provenance`` as an XMP packet (RDF/XML; the IPTC Photo Metadata properties plus unmask's)."""
    root = ET.Element(f"{{{X_NS}}}xmpmeta")
    description = ET.SubElement(ET.SubElement(root, f"{{{RDF_NS}}}RDF"), f"{{{RDF_NS}}}Description",
                                {f"{{{RDF_NS}}}about": ""})
    if provenance.digital_source_type is not None:
        ET.SubElement(description, f"{{{IPTC_EXT_NS}}}DigitalSourceType").text = provenance.digital_source_type
    ET.SubElement(description, f"{{{XMP_NS}}}CreatorTool").text = provenance.software
    _lang_alt(ET.SubElement(description, f"{{{DC_NS}}}description"), DESCRIPTION)
    for name, value in (("Bundle", provenance.bundle), ("Mode", provenance.mode), ("Role", provenance.role),
                        ("VisibleLabel", provenance.label)):
        if value:
            ET.SubElement(description, f"{{{UNMASK_NS}}}{name}").text = value
    if provenance.regions:
        bag = ET.SubElement(ET.SubElement(description, f"{{{IPTC_EXT_NS}}}ImageRegion"), f"{{{RDF_NS}}}Bag")
        for i, (x0, y0, x1, y1) in enumerate(provenance.regions):
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


def from_xmp(xmp: str | bytes) -> Provenance | None:
    """Read a packet written by :func:`to_xmp`; ``None`` when it holds no unmask provenance.

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
        return Provenance(bundle=_field(description, UNMASK_NS, "Bundle") or "",
                          mode=_field(description, UNMASK_NS, "Mode") or "", role=role, regions=tuple(regions),
                          label=_field(description, UNMASK_NS, "VisibleLabel") or "",
                          software=_field(description, XMP_NS, "CreatorTool") or "unmask")
    return None


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


def _lang_alt(parent: ET.Element, text: str) -> None:
    alt = ET.SubElement(parent, f"{{{RDF_NS}}}Alt")
    ET.SubElement(alt, f"{{{RDF_NS}}}li", {f"{{{XML_NS}}}lang": "x-default"}).text = text


def _field(node: ET.Element, ns: str, name: str) -> str | None:
    """A simple property written as an element or as an attribute (both are valid XMP)."""
    child = node.find(f"{{{ns}}}{name}")
    if child is not None:
        return (child.text or "").strip()
    return node.get(f"{{{ns}}}{name}")
