"""``python -m unmask.data {export,sheet}``: write the teaching world to disk, or a contact sheet.

The world is ground (:mod:`unmask.synthetic`); its datasets and writers live in the data layer, and so does
this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unmask.synthetic.config import PRESETS, SIZES, WorldConfig

PARTS = ("faces", "market", "lfw")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unmask.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("export", "sheet"):
        p = sub.add_parser(name)
        p.add_argument("--preset", default="standard", choices=sorted(PRESETS))
        p.add_argument("--size", type=int, default=128 if name == "sheet" else 64, choices=SIZES)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--identities", type=int, default=10000, help="identities in the world")
        p.add_argument("--cameras", type=int, default=6)
    exp = sub.choices["export"]
    exp.add_argument("--out", type=Path, required=True)
    exp.add_argument("--n", type=int, default=20000, help="aligned faces to write (train + test)")
    exp.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    exp.add_argument("--reid-identities", type=int, default=200, help="people per side of the re-id split")
    exp.add_argument("--pairs-per-fold", type=int, default=30, help="matched (and mismatched) pairs per fold")
    sheet = sub.choices["sheet"]
    sheet.add_argument("--out", type=Path, default=Path("synthetic_sheet.png"))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    config = WorldConfig(size=args.size, preset=args.preset, seed=args.seed, n_identities=args.identities,
                         n_cameras=args.cameras)
    from unmask.data import export


    if args.command == "sheet":
        print(export.contact_sheet(config, args.out))
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose from {PARTS}")
    if "faces" in parts:
        export.export_faces(args.out, config, args.n)
    if "market" in parts:
        from unmask.data.world import ReIDSplit

        split = ReIDSplit(config, n_train_identities=args.reid_identities, n_test_identities=args.reid_identities)
        export.export_market(args.out, split)
    if "lfw" in parts:
        from unmask.data.world import VerificationPairs

        export.export_lfw(args.out, VerificationPairs(config, pairs_per_fold=args.pairs_per_fold))
    print(args.out)


if __name__ == "__main__":
    main()
