"""unmask: recover the face under a protective mask by specialised StyleGAN2 inversion.

Importing this package is cheap: heavy pieces (torch models, training, Gradio) load on
first attribute access, and nothing is downloaded at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "UnmaskPipeline": ("unmask.pipeline", "UnmaskPipeline"),
    "UnmaskResult": ("unmask.pipeline", "UnmaskResult"),
    "from_pretrained": ("unmask.hub", "from_pretrained"),
    "UnmaskError": ("unmask.errors", "UnmaskError"),
}

if TYPE_CHECKING:  # pragma: no cover
    from unmask.errors import UnmaskError
    from unmask.hub import from_pretrained
    from unmask.pipeline import UnmaskPipeline, UnmaskResult


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'unmask' has no attribute {name!r}")


__all__ = ["UnmaskPipeline", "UnmaskResult", "UnmaskError", "from_pretrained", "__version__"]
