"""Content Credentials: a signed C2PA manifest in every image unmask writes with synthesised pixels.

The manifest says, in a form that standard readers verify, what the XMP packet says unsigned; both are written
from the same :class:`~unmask.faces.provenance.record.Provenance`:

* the output photo (or a crop of it): ``c2pa.opened`` with the input photo as the parent ingredient (its own
  Content Credentials, when it carries some, travel inside as the ingredient's), then ``c2pa.edited`` with the
  digital source type ``compositeWithTrainedAlgorithmicMedia``, unmask as the software agent, the bundle and
  the mode as parameters, and the synthesised region of each face as a pixel rectangle (``changes``);
* a recovered crop on its own: ``c2pa.created`` with ``trainedAlgorithmicMedia``;
* the aligned input crop and the mask show no synthesised pixels and carry the XMP packet only.

The manifest is embedded in the file (PNG: a ``caBX`` chunk; JPEG: ``APP11`` segments; WebP: a ``C2PA`` chunk)
and bound to its bytes by a hash: a file whose pixels change after signing no longer validates. No thumbnail is
embedded (the image is its own picture; a thumbnail would add tens of KB to every output).

Who signs: :mod:`.signing`. Reading back: :func:`read_credentials`.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from pathlib import Path
from typing import Any

from unmask.errors import ConfigError, ImageError
from unmask.faces.provenance.record import DESCRIPTION, PARENT_TITLE, Box, Provenance

#: The formats unmask signs (Pillow format name -> MIME type), all three supported by c2pa.
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
#: c2pa's settings: no thumbnails; reading never goes to the network (remote manifests, OCSP); a new manifest is
#: not read back and verified after each signature (5 of the 7 ms a signature took: ``python -m unmask.bench
#: provenance``; the tests read every format back instead).
SETTINGS = {"builder": {"thumbnail": {"enabled": False}},
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_after_sign": False}}
#: The label that ties the ``c2pa.opened`` action to the parent ingredient.
PARENT_LABEL = "parent"
#: IPTC digital source types (their last path segment) that say an image was made or changed by a generative model.
SYNTHETIC_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
                                    "algorithmicMedia", "compositeSynthetic"})
#: The validation code of a signature whose certificate is on no trust list the reader knows.
UNTRUSTED = "signingCredential.untrusted"
#: What common validation codes mean, for people.
CODE_MEANINGS = {
    UNTRUSTED: "the signer's certificate is on no trust list this reader knows (a test certificate, or a CA the "
               "reader was not told to trust): the record is intact, but nobody known vouches for the signer",
    "assertion.dataHash.mismatch": "the image's bytes changed after it was signed: the record no longer describes "
                                   "these pixels",
    "claimSignature.mismatch": "the manifest or the file changed after it was signed",
    "signingCredential.expired": "the signing certificate had expired when the manifest was signed",
}


def signs(provenance: Provenance) -> bool:
    """Whether images of this role get a manifest: those with synthesised pixels (a digital source type)."""
    return provenance.digital_source_type is not None


def manifest_definition(provenance: Provenance) -> dict[str, Any]:
    """The c2pa manifest definition (JSON-ready) of an image with ``provenance``.

    Raises:
        ConfigError: the role has no synthesised pixels (see :func:`signs`).
    """
    if not signs(provenance):
        raise ConfigError(f"{provenance.role!r} images carry no C2PA manifest: they show no synthesised pixels.")
    name, _, version = provenance.software.partition(" ")
    agent = {"name": name, "version": version} if version else {"name": name}
    parameters = {"bundle": provenance.bundle, "mode": provenance.mode}
    if provenance.label:
        parameters["visibleLabel"] = provenance.label
    if provenance.role == "recovered":
        actions = [{"action": "c2pa.created", "digitalSourceType": provenance.digital_source_type,
                    "softwareAgent": agent, "description": DESCRIPTION, "parameters": parameters}]
    else:
        changes = [{"region": [{"type": "spatial", "shape": {"type": "rectangle", "unit": "pixel",
                                                              "origin": {"x": x0, "y": y0},
                                                              "width": x1 - x0, "height": y1 - y0}}],
                    "description": f"face{i + 1}: face region synthesised"}
                   for i, (x0, y0, x1, y1) in enumerate(provenance.regions)]
        actions = [{"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_LABEL]}},
                   {"action": "c2pa.edited", "digitalSourceType": provenance.digital_source_type,
                    "softwareAgent": agent, "description": DESCRIPTION, "parameters": parameters,
                    **({"changes": changes} if changes else {})}]
    return {"claim_generator_info": [agent],
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]}


def sign_image(data: bytes, fmt: str, provenance: Provenance) -> bytes:
    """``data`` (an encoded ``fmt`` image) with a signed manifest of ``provenance`` embedded.

    Raises:
        ImageError: ``fmt`` is not PNG, JPEG or WebP.
        ConfigError: the operator's signing key is unusable (see :mod:`.signing`).
        DependencyError: c2pa-python is not installed.
    """
    from unmask.faces.provenance.signing import c2pa_module, c2pa_signer, signing_identity

    fmt = fmt.upper()
    if fmt not in MIME_TYPES:
        raise ImageError(f"{fmt} files cannot carry Content Credentials here; save as .png, .jpg or .webp.")
    c2pa = c2pa_module()
    identity = signing_identity()
    signer = c2pa_signer(identity)
    definition = manifest_definition(provenance)
    parent = provenance.parent
    builder = None
    if provenance.role == "output" and parent is not None and parent.data is not None:
        builder = _with_parent_file(c2pa, definition, parent.title, parent.data)
    if builder is None:
        if provenance.role == "output":  # the parent named without its file (pixels in memory, or unreadable)
            title = parent.title if parent is not None else PARENT_TITLE
            definition["ingredients"] = [{"title": title, "relationship": "parentOf", "label": PARENT_LABEL}]
        builder = c2pa.Builder(definition, context=_context())
    dest = io.BytesIO()
    try:
        builder.sign(signer, MIME_TYPES[fmt], io.BytesIO(data), dest)
    except c2pa.C2paError as exc:
        who = "this machine's test chain" if identity.is_test else "the operator's key (UNMASK_C2PA_KEY / _CERTS)"
        raise ConfigError(f"signing the Content Credentials with {who} failed: {exc}. C2PA needs a signing "
                          "certificate with the digitalSignature key usage, an extended key usage such as "
                          "emailProtection, and subject and authority key identifiers.") from exc
    return dest.getvalue()


def _with_parent_file(c2pa: Any, definition: dict[str, Any], title: str, data: bytes):
    """A builder with ``data`` as the parent ingredient, or ``None`` when c2pa cannot read that file (a format it
    does not know, or Content Credentials too damaged to parse: the parent is then named without them)."""
    mime = _sniff_mime(data)
    if mime is None or mime not in c2pa.Builder.get_supported_mime_types():
        return None
    builder = c2pa.Builder(definition, context=_context())
    try:
        builder.add_ingredient({"title": title, "relationship": "parentOf", "label": PARENT_LABEL}, mime,
                               io.BytesIO(data))
    except c2pa.C2paError:
        builder.close()
        return None
    return builder


def _sniff_mime(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return Image.MIME.get(im.format or "")
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def _context():
    """One c2pa Context with :data:`SETTINGS` for the process (made on first use; readers and builders share it)."""
    from unmask.faces.provenance.signing import c2pa_module

    c2pa = c2pa_module()
    return c2pa.Context(settings=c2pa.Settings.from_dict(SETTINGS))


# ---------------------------------------------------------------------- reading
@dataclasses.dataclass(frozen=True)
class Action:
    """One action of a manifest: ``action`` (``"c2pa.edited"``…), its digital source type, the software that did
    it, its other parameters (``(name, value)`` text pairs) and the pixel regions it changed."""

    action: str
    source_type: str | None = None
    software: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    regions: tuple[Box, ...] = ()


@dataclasses.dataclass(frozen=True)
class Ingredient:
    """An ingredient of a manifest: its title, relationship (``"parentOf"``…) and its own credentials, if any."""

    title: str
    relationship: str
    credentials: Credentials | None = None


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What a C2PA manifest says, and whether it holds (from ``c2pa.Reader``).

    Attributes:
        generator: the claim generator (``"unmask 0.4.0"``…).
        signer: the signing certificate's common name and organisation, as readers show them.
        alg: the signature algorithm (``"Es256"``…).
        actions: the manifest's actions, in order.
        ingredients: its ingredients (the parent photo of an unmasked output).
        state: the reader's verdict: ``"Trusted"``, ``"Valid"`` (intact, signer not on a trust list) or
            ``"Invalid"``.
        failures: ``(code, explanation)`` of every failed check (``signingCredential.untrusted``…).
    """

    generator: str
    signer: str
    alg: str
    actions: tuple[Action, ...]
    ingredients: tuple[Ingredient, ...]
    state: str
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def source_types(self) -> tuple[str, ...]:
        return tuple(a.source_type for a in self.actions if a.source_type)

    @property
    def regions(self) -> tuple[Box, ...]:
        return tuple(box for a in self.actions for box in a.regions)

    @property
    def untrusted(self) -> bool:
        return any(code == UNTRUSTED for code, _ in self.failures)

    @property
    def intact(self) -> bool:
        """Every check passed except, possibly, the signer's trust."""
        return self.state != "Invalid" and all(code == UNTRUSTED for code, _ in self.failures)

    @property
    def synthetic(self) -> bool:
        """Some action says a generative model made or changed the image."""
        return any(t.rsplit("/", 1)[-1] in SYNTHETIC_SOURCE_TYPES for t in self.source_types)


def read_credentials(source: str | os.PathLike | bytes) -> Credentials | None:
    """The Content Credentials of an image file (path or bytes): ``None`` when it carries none.

    Raises:
        ImageError: the file cannot be read, is of a type the C2PA reader does not know, carries credentials too
            damaged to parse, or refers to credentials stored elsewhere (unmask never fetches them).
    """
    from unmask.faces.provenance.signing import c2pa_module

    c2pa = c2pa_module()
    name = "the file" if isinstance(source, bytes) else Path(source).name
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {name}: {exc.strerror or exc}.") from exc
    mime = _sniff_mime(data)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, _context())
        if reader is None:
            return None
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state() or "Invalid"
    except c2pa.C2paError.NotSupported as exc:
        if mime is not None:  # an image of a type that cannot carry C2PA (BMP…): it carries none
            return None
        raise ImageError(f"{name} is not an image file (PNG, JPEG, WebP, …): its Content Credentials cannot be "
                         f"read ({exc}).") from exc
    except c2pa.C2paError as exc:
        raise _read_error(name, exc) from exc
    results = store.get("validation_results", {}).get("activeManifest", {})
    failures = results.get("failure", store.get("validation_status", []))
    return _credentials(store, store["active_manifest"], state, failures)


def _read_error(name: str, exc: Exception) -> ImageError:
    text = str(exc)
    if text.startswith("Remote") or "remote manifest" in text.lower():
        return ImageError(f"{name} refers to Content Credentials stored elsewhere ({text}); unmask reads only "
                          "credentials embedded in the file and never fetches them.")
    return ImageError(f"{name} carries Content Credentials that cannot be read: damaged, cut short or not C2PA "
                      f"({text}). Nothing in them can be relied on.")


def _credentials(store: dict, label: str, state: str, failures: list[dict]) -> Credentials:
    manifest = store["manifests"][label]
    claim_generator = (manifest.get("claim_generator_info") or [{}])[0]
    generator = " ".join(str(claim_generator[k]) for k in ("name", "version") if k in claim_generator)
    info = manifest.get("signature_info") or {}
    signer = ", ".join(v for v in (info.get("common_name"), info.get("issuer")) if v)
    actions = tuple(_action(a) for assertion in manifest.get("assertions", [])
                    if assertion.get("label", "").startswith("c2pa.actions")
                    for a in assertion.get("data", {}).get("actions", []))
    ingredients = []
    for ingredient in manifest.get("ingredients", []):
        inner = None
        if ingredient.get("active_manifest") in store["manifests"]:
            checks = ingredient.get("validation_results", {}).get("activeManifest", {}).get("failure", [])
            inner_state = "Invalid" if any(c.get("code") != UNTRUSTED for c in checks) else "Valid"
            inner = _credentials(store, ingredient["active_manifest"], inner_state, checks)
        ingredients.append(Ingredient(ingredient.get("title", ""), ingredient.get("relationship", ""), inner))
    return Credentials(generator=generator, signer=signer, alg=str(info.get("alg", "")), actions=actions,
                       ingredients=tuple(ingredients), state=state,
                       failures=tuple((f.get("code", ""), f.get("explanation", "")) for f in failures))


def _action(action: dict) -> Action:
    agent = action.get("softwareAgent") or {}
    software = agent if isinstance(agent, str) else " ".join(str(agent[k]) for k in ("name", "version") if k in agent)
    parameters = tuple((str(k), str(v)) for k, v in (action.get("parameters") or {}).items()
                       if k not in ("ingredients", "ingredientIds", "ingredient"))
    regions = []
    for change in action.get("changes") or []:
        for part in change.get("region") or []:
            shape = part.get("shape") or {}
            origin = shape.get("origin") or {}
            if shape.get("type") == "rectangle" and shape.get("unit", "pixel") == "pixel":
                x, y = int(round(origin.get("x", 0))), int(round(origin.get("y", 0)))
                regions.append((x, y, x + int(round(shape.get("width", 0))), y + int(round(shape.get("height", 0)))))
    return Action(action=str(action.get("action", "")), source_type=action.get("digitalSourceType"),
                  software=software, parameters=parameters, regions=tuple(regions))


__all__ = ["MIME_TYPES", "SYNTHETIC_SOURCE_TYPES", "signs", "manifest_definition", "sign_image", "Action",
           "Ingredient", "Credentials", "read_credentials"]
