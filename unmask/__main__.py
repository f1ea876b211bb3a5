"""``python -m unmask INPUT... --output DIR``: recover masked faces in files and folders.

Every readable image under the inputs is processed with one :class:`~unmask.pipeline.UnmaskPipeline`;
results are written as ``DIR/<name>.png`` (or ``--format jpg``/``webp``; with ``--save-crops``, also the
aligned input, recovered crop and mask). Every file says in its XMP metadata that its face region is
synthesised, and the photo and the recovered crops also in a signed C2PA manifest
(:mod:`unmask.faces.provenance`); ``--label`` also adds a visible band saying so. Files
already done are skipped unless ``--overwrite``. A summary of failures (not an image, no face, …) is
printed at the end; the exit code is 1 if any file failed.

``python -m unmask provenance FILE...`` prints what images say about themselves: their Content Credentials and
their XMP (:mod:`unmask.faces.provenance.cli`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unmask.faces.io import is_image_file


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files given directly, plus image files found recursively in given folders, sorted."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if is_image_file(p) and p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise SystemExit(f"error: input {item} does not exist")
    return files


def build_parser() -> argparse.ArgumentParser:
    from unmask.pipeline import MODES
    from unmask.precision import PRECISIONS

    p = argparse.ArgumentParser(prog="python -m unmask", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--model", default="teaching",
                   help="'teaching' (shipped teaching models), 'digiface' (the DigiFace-1M DCGAN, offline; "
                        "non-commercial), 'ffhq' (public Hub weights, non-commercial), or a bundle folder / Hub "
                        "repo id")
    p.add_argument("--revision", default=None, help="Hub revision for a repo id")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="default: the bundle's default_mode (teaching: encoder; ffhq: encoder+refine)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (refine / optimize modes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aligned", action="store_true", help="inputs are already FFHQ-aligned face crops")
    p.add_argument("--all-faces", action="store_true", help="process every face, not only the largest")
    p.add_argument("--save-crops", action="store_true", help="also write aligned input, recovered crop and mask")
    p.add_argument("--format", choices=("png", "jpg", "webp"), default="png", help="output file format")
    p.add_argument("--label", action="store_true",
                   help="add a visible 'face region synthesised' band below each photo (the XMP metadata says so "
                        "in every file regardless)")
    p.add_argument("--overwrite", action="store_true", help="redo files whose output exists")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: bf16 where the CPU has bf16 matrix units (AMX / AVX512-BF16) or the GPU supports it, "
                        "else float32")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["provenance"]:
        from unmask.faces.provenance.cli import main as provenance_main

        return provenance_main(argv[1:])
    args = build_parser().parse_args(argv)
    import numpy as np
    from tqdm.auto import tqdm

    from unmask.errors import UnmaskError
    from unmask.faces.provenance import save_image
    from unmask.pipeline import UnmaskPipeline

    files = collect_inputs(args.inputs)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    try:
        pipe = UnmaskPipeline.from_pretrained(args.model, revision=args.revision, device=args.device,
                                              precision=args.precision)
    except UnmaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"precision: {pipe.precision.precision} ({pipe.precision.reason})")
    failures: list[tuple[Path, str]] = []
    done = skipped = 0
    for path in tqdm(files, desc="unmasking", unit="img"):
        target = out / f"{path.stem}.{args.format}"
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            result = pipe(path, mode=args.mode, steps=args.steps, seed=args.seed, aligned=args.aligned,
                          which="all" if args.all_faces else "largest")
        except UnmaskError as exc:
            failures.append((path, str(exc)))
            continue
        result.save(target, label=args.label)
        if args.save_crops:
            made = result.provenance
            for i, face in enumerate(result.faces):
                crops = {"input": face.aligned_input, "recovered": face.recovered,
                         "mask": (face.mask * 255).round().astype(np.uint8)}
                for role, image in crops.items():
                    save_image(out / f"{path.stem}.face{i}.{role}.{args.format}", image, made.for_role(role))
        done += 1
    print(f"\n{done} recovered, {skipped} skipped (already done), {len(failures)} failed, of {len(files)} files")
    for path, why in failures:
        print(f"  FAILED {path}: {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
