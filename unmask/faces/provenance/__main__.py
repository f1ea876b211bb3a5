"""``python -m unmask.faces.provenance FILE...``: the same as ``python -m unmask provenance FILE...``
(:mod:`unmask.faces.provenance.cli`)."""

import sys

from unmask.faces.provenance.cli import main

if __name__ == "__main__":
    sys.exit(main())
