"""Entry point: ``python -m unmask.bench SUITE [options]``."""

from __future__ import annotations

import importlib
import sys

from unmask.bench import SUITES


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in SUITES:
        print(f"usage: python -m unmask.bench {{{','.join(SUITES)}}} [options]")
        raise SystemExit(0 if argv and argv[0] in {"-h", "--help"} else 2)
    for module in SUITES[argv[0]]:
        importlib.import_module(module).main(argv[1:])


if __name__ == "__main__":
    main()
