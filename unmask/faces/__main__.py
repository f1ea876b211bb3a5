"""``python -m unmask.faces align|mask --input DIR --output DIR``: see :mod:`unmask.faces.cli`."""

from __future__ import annotations

import sys

from unmask.faces.cli import main

if __name__ == "__main__":
    sys.exit(main())
