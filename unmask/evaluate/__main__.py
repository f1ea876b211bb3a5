"""``python -m unmask.evaluate COMMAND [options]``: evaluation commands.

* ``unmasking``: recovery quality and masked-face verification on held-out teaching identities
  (:mod:`unmask.evaluate.unmasking`);
* ``generator``: the dlib face rate of a generator's samples and, for a teaching generator, the
  PSNR of G(z) against the world's render of z (:mod:`unmask.evaluate.generator`);
* ``samples``: the comparison on held-out samples of a bundle's own generator (the DigiFace-1M DCGAN), judged
  inside the mask and by dlib's face ResNet (:mod:`unmask.evaluate.samples`);
* ``photos``: the real photos packages ship, masked with every mask type, run through each bundle as the app
  runs it and judged by dlib's distance to the unmasked original (:mod:`unmask.evaluate.photos`);
* ``world``: how much of the hidden face the visible face predicts at each face correlation ρ, and the oracle that
  bounds every unmasking method there (:mod:`unmask.evaluate.world`);
* ``ablation-identity``: the identity-loss ablation (:mod:`unmask.train.ablation`), which trains
  five embedders and so belongs to training.

Each command is a module with ``main(argv) -> int``, imported by name only when it runs: this
package imports nothing from ``unmask.train``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from unmask.errors import UnmaskError

#: command -> module whose ``main(argv) -> int`` runs it.
COMMANDS = {"ablation-identity": "unmask.train.ablation", "generator": "unmask.evaluate.generator",
            "unmasking": "unmask.evaluate.unmasking", "samples": "unmask.evaluate.samples",
            "photos": "unmask.evaluate.photos", "world": "unmask.evaluate.world"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m unmask.evaluate {{{','.join(COMMANDS)}}} [options]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    except UnmaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
