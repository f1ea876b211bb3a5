"""Imports stay light and free of side effects (STYLE.md principle 7)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("gradio", "matplotlib", "accelerate", "unmask.train", "lpips", "dlib", "insightface", "tensorboard")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    return set(out.stdout.split())


def test_import_unmask_loads_nothing_heavy():
    loaded = _modules_after("import unmask")
    assert "torch" not in loaded
    assert not {m for m in loaded for h in HEAVY if m == h or m.startswith(h + ".")}


def test_inference_path_does_not_import_training_or_ui():
    loaded = _modules_after("import unmask.pipeline, unmask.models.stylegan2, unmask.models.encoder, unmask.faces")
    assert not {m for m in loaded for h in HEAVY if m == h or m.startswith(h + ".")}
