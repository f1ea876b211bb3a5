"""Execute the tutorial notebooks in place, in one profile, and record what they ran on.

    UNMASK_NB_PROFILE=ci HF_HUB_OFFLINE=1 python tutorials/run_notebooks.py            # all of them
    UNMASK_NB_PROFILE=ci HF_HUB_OFFLINE=1 python tutorials/run_notebooks.py 03_inversion.ipynb

The committed notebooks carry the outputs of such a ci run. Each one's metadata records the profile
(``UNMASK_NB_PROFILE``, or what ``auto`` chooses on this machine),
the wall time and the SHA-256 of the teaching weights it ran on (``metadata.unmask``), so
``tests/test_notebooks.py`` fails when the shipped weights change and the outputs go stale.
Needs ``nbclient`` (requirements-dev.txt). For the full profile on a GPU, papermill is simpler:
``papermill 04_training_the_unmasking_encoder.ipynb out.ipynb -p PROFILE full -p DATA /path``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE.parent / "weights" / "teaching"


def weights_digest(root: Path = WEIGHTS) -> str:
    """SHA-256 over the teaching bundle's files (names and bytes, sorted): what the outputs came from."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(path: Path, timeout: int = 900) -> float:
    """Execute ``path`` in place with the current environment's kernel; returns the wall time (s)."""
    import nbformat
    from nbclient import NotebookClient

    from unmask.tutorials import choose_profile  # the profile the notebooks' own first cell chooses

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nb.metadata["unmask"] = {"profile": choose_profile().profile,
                             "teaching_weights_sha256": weights_digest(), "seconds": round(seconds, 1)}
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    names = argv or sorted(p.name for p in HERE.glob("[0-9][0-9]_*.ipynb"))
    total = 0.0
    for name in names:
        seconds = run(HERE / Path(name).name)
        total += seconds
        size = (HERE / Path(name).name).stat().st_size / 1e6
        print(f"{name}: {seconds:.0f} s, {size:.2f} MB", flush=True)
    print(f"all: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
