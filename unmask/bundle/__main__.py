"""``python -m unmask.bundle --generator G --encoder E --out DIR``: see :mod:`unmask.bundle.build`."""

from __future__ import annotations

from unmask.bundle.build import main

if __name__ == "__main__":
    raise SystemExit(main())
