"""Say in every written image that its face region is synthesised: XMP, signed Content Credentials, a visible label.

A recovered lower face is drawn by a generator from what the rest of the face suggests: a guess, not the
person's face. Every image that the app, the CLI, :meth:`unmask.pipeline.UnmaskResult.save`, the API and the
MCP tools write carries that in machine-readable form, written from one record (:class:`Provenance`):

* an XMP packet (:meth:`Provenance.to_xmp`): the IPTC digital source type, the synthesised regions, the bundle,
  the mode;
* in images with synthesised pixels (the output photo and recovered crops), a signed C2PA manifest
  (:mod:`.credentials`) that says the same and that standard Content Credentials readers verify; who signs is
  :mod:`.signing` (the operator's key, or a test chain made on this machine, which readers report as untrusted);
* optionally a visible band below the photo (:mod:`.label`).

:mod:`.report` reads both back (``python -m unmask provenance FILE``); :mod:`.files` writes and reads files. Nothing
else in unmask touches XMP or C2PA.
"""

from __future__ import annotations

from unmask.faces.provenance.credentials import Credentials, read_credentials
from unmask.faces.provenance.files import (
    encode_image,
    encode_with_xmp,
    pil_save_kwargs,
    read_provenance,
    save_image,
)
from unmask.faces.provenance.label import label_image
from unmask.faces.provenance.record import (
    COMPOSITE_SYNTHETIC,
    DESCRIPTION,
    FORMATS,
    LABEL,
    ROLE_SOURCE_TYPES,
    TRAINED_ALGORITHMIC_MEDIA,
    UNMASK_NS,
    Parent,
    Provenance,
    bundle_name,
    changed_box,
)

__all__ = ["COMPOSITE_SYNTHETIC", "TRAINED_ALGORITHMIC_MEDIA", "LABEL", "DESCRIPTION", "FORMATS", "ROLE_SOURCE_TYPES",
           "UNMASK_NS", "Provenance", "Parent", "Credentials", "changed_box", "bundle_name", "label_image",
           "pil_save_kwargs", "encode_image", "encode_with_xmp", "save_image", "read_provenance",
           "read_credentials"]
