"""Read back what an image says about itself: its Content Credentials (C2PA) and its XMP, side by side.

``python -m unmask provenance FILE...`` prints :func:`report_lines`; the app shows :func:`report_markdown` for an
uploaded photo, so that a photo that was itself generated or edited says so before it is unmasked.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from unmask.errors import ImageError
from unmask.faces.provenance.credentials import CODE_MEANINGS, Credentials, read_credentials
from unmask.faces.provenance.record import Provenance


@dataclasses.dataclass(frozen=True)
class Report:
    """An image's provenance as read: ``credentials`` (C2PA) and ``xmp`` (unmask's XMP packet), each ``None`` when
    absent, and ``problems``: why either could not be read."""

    name: str
    credentials: Credentials | None
    xmp: Provenance | None
    problems: tuple[str, ...] = ()

    @property
    def disagreements(self) -> tuple[str, ...]:
        """Where a manifest written by unmask and the XMP beside it say different things (empty: they agree, or
        one of them is missing)."""
        creds, xmp = self.credentials, self.xmp
        if creds is None or xmp is None or not creds.actions:
            return ()
        out = []
        source_type = creds.source_types[-1] if creds.source_types else None
        if source_type != xmp.digital_source_type:
            out.append(f"source type: manifest {_short(source_type)}, XMP {_short(xmp.digital_source_type)}")
        if creds.regions != xmp.regions:
            out.append(f"regions: manifest {list(creds.regions)}, XMP {list(xmp.regions)}")
        parameters = dict(creds.actions[-1].parameters)
        for key in ("bundle", "mode"):
            if key in parameters and parameters[key] != getattr(xmp, key):
                out.append(f"{key}: manifest {parameters[key]!r}, XMP {getattr(xmp, key)!r}")
        return tuple(out)

    @property
    def synthetic(self) -> bool:
        """The image says (signed or not) that a generative model made or changed it."""
        return bool((self.credentials and self.credentials.synthetic)
                    or (self.xmp and self.xmp.digital_source_type))


def inspect(source: str | os.PathLike | bytes, name: str | None = None) -> Report:
    """Read both records of an image file (path or bytes); never raises for what the file holds."""
    from unmask.faces.provenance.files import read_provenance

    name = name or ("the image" if isinstance(source, bytes) else Path(source).name)
    try:
        credentials, problems = read_credentials(source), []
    except ImageError as exc:
        credentials, problems = None, [str(exc)]
    try:
        xmp = read_provenance(source)
    except ImageError as exc:
        xmp = None
        if not problems:  # not an image at all is said once
            problems.append(f"XMP: {exc}")
    return Report(name, credentials, xmp, tuple(problems))


def _short(source_type: str | None) -> str:
    return source_type.rsplit("/", 1)[-1] if source_type else "none"


def _verdict(creds: Credentials) -> str:
    if creds.intact:
        trust = "signer untrusted" if creds.untrusted else "signer trusted"
        return f"{creds.state}: intact, {trust}"
    return f"{creds.state}: the record does not hold"


def _credential_lines(creds: Credentials, indent: str = "  ") -> list[str]:
    lines = [f"{indent}signed by: {creds.signer or 'unknown'} ({creds.alg}); written by {creds.generator or '?'}",
             f"{indent}validation: {_verdict(creds)}"]
    for code, explanation in creds.failures:
        lines.append(f"{indent}  {code}: {CODE_MEANINGS.get(code, explanation)}")
    parents = [ingredient for ingredient in creds.ingredients if ingredient.relationship == "parentOf"]
    for i, action in enumerate(creds.actions, 1):
        text = f"{indent}{i}. {action.action}"
        if action.action == "c2pa.opened" and parents:
            text += f": {parents[0].title!r} (the parent ingredient)"
        if action.source_type:
            text += f": {_short(action.source_type)}"
        if action.software:
            text += f", by {action.software}"
        if action.parameters:
            text += " (" + ", ".join(f"{k} {v}" for k, v in action.parameters if k != "description") + ")"
        lines.append(text)
        for j, (x0, y0, x1, y1) in enumerate(action.regions, 1):
            lines.append(f"{indent}   region {j}: x {x0}, y {y0}, {x1 - x0} x {y1 - y0} px")
    for ingredient in creds.ingredients:
        own = "its own Content Credentials:" if ingredient.credentials else "no Content Credentials of its own"
        lines.append(f"{indent}ingredient {ingredient.title!r} ({ingredient.relationship}): {own}")
        if ingredient.credentials:
            lines += _credential_lines(ingredient.credentials, indent + "    ")
    return lines


def report_lines(report: Report) -> list[str]:
    """The report as plain text lines (the ``provenance`` command's output)."""
    lines = [report.name]
    if report.credentials:
        lines.append("Content Credentials (C2PA manifest, signed):")
        lines += _credential_lines(report.credentials)
    else:
        lines.append("Content Credentials (C2PA): none")
    if report.xmp:
        xmp = report.xmp
        regions = ", ".join(f"x {x0}, y {y0}, {x1 - x0} x {y1 - y0} px" for x0, y0, x1, y1 in xmp.regions)
        kind = _short(xmp.digital_source_type) if xmp.digital_source_type else "no synthesised pixels"
        lines.append(f"XMP (unsigned): {kind}, by {xmp.software}; bundle {xmp.bundle}, "
                     f"mode {xmp.mode}, role {xmp.role}" + (f"; regions: {regions}" if regions else "")
                     + (f"; visible label {xmp.label!r}" if xmp.label else ""))
    else:
        lines.append("XMP (unmask's): none")
    if report.credentials and report.xmp:
        lines.append(("The manifest and the XMP disagree: " + "; ".join(report.disagreements))
                     if report.disagreements else "The manifest and the XMP agree.")
    lines += [f"problem: {problem}" for problem in report.problems]
    return lines


def report_markdown(report: Report) -> str:
    """What the page says about an uploaded photo's provenance: ``""`` when it carries none and nothing failed."""
    parts = []
    creds = report.credentials
    if creds:
        said = ("**It says a generative model made or changed it** (" + ", ".join(
            _short(t) for t in creds.source_types) + "): what you unmask here is already synthetic, in part or "
                "whole." if creds.synthetic else "It does not say that a generative model made it.")
        actions = ", ".join(a.action.removeprefix("c2pa.") for a in creds.actions) or "none"
        trust = ("the signer is on no trust list this reader knows, so it says what was done, not who vouches "
                 "for it" if creds.untrusted else "the signer is trusted")
        state = f"intact; {trust}" if creds.intact else "**it does not hold**: " + "; ".join(
            CODE_MEANINGS.get(code, text) for code, text in creds.failures)
        parts.append(f"**This photo carries Content Credentials** (C2PA), signed by {creds.signer or 'unknown'} "
                     f"with {creds.generator or 'unknown software'}: {said} Actions: {actions}. Validation: {state}.")
        for ingredient in creds.ingredients:
            if ingredient.credentials and ingredient.credentials.synthetic:
                parts.append(f"Its ingredient {ingredient.title!r} says it was made or changed by a generative "
                             "model too.")
    if report.xmp:
        parts.append(f"**unmask wrote this photo** (its XMP says so): its face region is already synthesised "
                     f"({report.xmp.bundle}, {report.xmp.mode}).")
    parts += [f"**Could not read its provenance.** {problem}" for problem in report.problems]
    return "\n\n".join(parts)


__all__ = ["Report", "inspect", "report_lines", "report_markdown"]
