"""``python -m unmask provenance FILE...`` (or ``python -m unmask.faces.provenance``): what images say about
themselves.

For each file: its Content Credentials (C2PA manifest: signer, validation, actions, source types, regions,
ingredients with their own credentials) and unmask's XMP packet, and whether the two agree. ``--json`` prints the
same as JSON. Exit code 1 when some file's provenance could not be read (a damaged manifest, not an image).
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m unmask provenance", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="image files (PNG, JPEG, WebP, ...)")
    p.add_argument("--json", action="store_true", help="print JSON, one object per file")
    return p


def main(argv: list[str] | None = None) -> int:
    from unmask.faces.provenance.report import inspect, report_lines

    args = build_parser().parse_args(argv)
    failed = False
    for i, path in enumerate(args.files):
        report = inspect(path, name=path)
        failed |= bool(report.problems)
        if args.json:
            creds = report.credentials and dataclasses.asdict(report.credentials)
            xmp = report.xmp and {k: v for k, v in dataclasses.asdict(report.xmp).items() if k != "parent"}
            print(json.dumps({"file": path, "credentials": creds, "xmp": xmp,
                              "disagreements": list(report.disagreements), "problems": list(report.problems)}))
        else:
            print(("\n" if i else "") + "\n".join(report_lines(report)))
    return 1 if failed else 0

