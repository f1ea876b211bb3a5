"""Prepare a face dataset: ``python -m unmask.faces align|mask --input DIR --output DIR``.

``align`` writes FFHQ-aligned PNGs (FFHQ / CelebA-HQ layout: the input's sub-folders are kept) and
``landmarks.json`` mapping each output file (relative path) to its 68 landmarks in crop pixels.
``mask`` draws a synthetic mask on each image and writes the masked PNG, the occlusion mask as
``masks/NAME.png`` (8-bit, 255 = covered), ``mask_types.json`` and a ``landmarks.json`` for the
outputs; it reads ``landmarks.json`` from the input folder when there is one, otherwise it detects.

Both run on several worker processes with a progress bar, skip files finished by an earlier run, keep
going past bad files, and end with a summary of the images without a usable face (also written to
``failures.json``). The exit status is nonzero only for usage errors.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from unmask.faces.io import atomic_write, is_image_file, save_image

LANDMARKS_FILE = "landmarks.json"
FAILURES_FILE = "failures.json"
MASK_TYPES_FILE = "mask_types.json"
PROGRESS_FILE = "align_progress.json"
MASKS_DIR = "masks"
_SAVE_EVERY = 50  # results between incremental saves of the JSON files (so an interrupted run resumes)
_SHOW_FAILURES = 20


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    source = Path(args.input)
    if not source.is_dir():
        parser.error(f"--input {source} is not a folder")
    if args.workers < 0:
        parser.error("--workers must be ≥ 0")
    if getattr(args, "size", 256) < 8:
        parser.error("--size must be ≥ 8")
    if args.command == "mask":
        from unmask.errors import ConfigError
        from unmask.faces.masks import PHOTO_MASK_TYPES, check_mask_type, mask_texture

        try:  # the messages name the choices, or what to install for a photo-textured type
            check_mask_type(args.type)
            if args.type in PHOTO_MASK_TYPES:
                mask_texture(args.type)
        except ConfigError as err:
            parser.error(f"--type: {err}")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if args.command == "align":
        run_align(source, output, size=args.size, which=args.which, backend=args.backend, workers=args.workers)
    else:
        run_mask(source, output, mask_type=args.type, seed=args.seed, backend=args.backend, workers=args.workers)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unmask.faces", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("align", "FFHQ-align every face"), ("mask", "draw synthetic masks")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--input", required=True, help="folder of images (searched recursively)")
        p.add_argument("--output", required=True, help="folder to write to (created)")
        p.add_argument("--workers", type=int, default=2, help="worker processes; 0 or 1 = run here (default 2)")
        p.add_argument("--backend", default="dlib", choices=("dlib", "insightface"), help="face detector")
        if name == "align":
            p.add_argument("--size", type=int, default=256, help="aligned crop side in pixels (default 256)")
            p.add_argument("--which", default="largest", choices=("largest", "all"), help="faces per photo")
        else:
            p.add_argument("--type", default="random",
                           help="mask type, or 'random' (one of unmask.faces.masks.MASK_TYPES); the photo-textured "
                                "PHOTO_MASK_TYPES need insightface")
            p.add_argument("--seed", type=int, default=0, help="base seed; each file's seed also uses its name")
    return parser


# ----------------------------------------------------------------------------------------------- align


def run_align(source: Path, output: Path, size: int, which: str, backend: str, workers: int) -> dict:
    """Align every image under ``source`` into ``output``; returns the summary dict that is printed."""
    landmarks = _read_json(output / LANDMARKS_FILE)
    progress = _read_json(output / PROGRESS_FILE)
    failures: dict[str, str] = {}
    succeeded: set[str] = set()
    inputs = _list_images(source, exclude=output)
    todo = []
    for rel in inputs:
        outs = progress.get(rel)
        if outs is not None and all(name in landmarks and (output / name).is_file() for name in outs):
            continue
        todo.append((str(source / rel), rel, str(output), size, which, backend))

    def record(result: dict) -> None:
        if result["error"]:
            failures[result["input"]] = result["error"]
            return
        landmarks.update(result["outputs"])
        progress[result["input"]] = sorted(result["outputs"])
        succeeded.add(result["input"])

    def save() -> None:
        _write_json(output / LANDMARKS_FILE, landmarks)
        _write_json(output / PROGRESS_FILE, progress)

    _run(_align_one, todo, workers, record, save, desc="align")
    return _summarise(output, len(inputs), len(todo), failures, succeeded, faces=len(landmarks))


def _align_one(task: tuple) -> dict:
    path, rel, out_dir, size, which, backend = task
    from unmask.errors import UnmaskError
    from unmask.faces.align import align_faces
    from unmask.faces.detect import get_detector

    try:
        aligned = align_faces(path, detector=get_detector(backend), size=size, which=which)
    except UnmaskError as err:
        return {"input": rel, "outputs": {}, "error": f"{type(err).__name__}: {err}"}
    stem = str(Path(rel).with_suffix(""))
    outputs = {}
    for k, face in enumerate(aligned):
        name = f"{stem}.png" if which == "largest" else f"{stem}_{k:02d}.png"
        save_image(Path(out_dir) / name, face.crop)
        outputs[name] = [[round(float(x), 3), round(float(y), 3)] for x, y in face.landmarks68]
    return {"input": rel, "outputs": outputs, "error": None}


# ------------------------------------------------------------------------------------------------ mask


def run_mask(source: Path, output: Path, mask_type: str, seed: int, backend: str, workers: int) -> dict:
    """Draw masks on every image under ``source`` into ``output``; returns the printed summary dict."""
    given = _read_json(source / LANDMARKS_FILE)
    landmarks = _read_json(output / LANDMARKS_FILE)
    types = _read_json(output / MASK_TYPES_FILE)
    failures: dict[str, str] = {}
    succeeded: set[str] = set()
    inputs = _list_images(source, exclude=output)
    todo = []
    for rel in inputs:
        name = str(Path(rel).with_suffix(".png"))
        if name in types and (output / name).is_file() and (output / MASKS_DIR / name).is_file():
            continue
        todo.append((str(source / rel), rel, str(output), given.get(rel), mask_type, seed, backend))

    def record(result: dict) -> None:
        if result["error"]:
            failures[result["input"]] = result["error"]
            return
        landmarks[result["name"]] = result["landmarks"]
        types[result["name"]] = result["type"]
        succeeded.add(result["input"])

    def save() -> None:
        _write_json(output / LANDMARKS_FILE, landmarks)
        _write_json(output / MASK_TYPES_FILE, types)

    _run(_mask_one, todo, workers, record, save, desc="mask")
    return _summarise(output, len(inputs), len(todo), failures, succeeded, faces=len(types))


def _mask_one(task: tuple) -> dict:
    path, rel, out_dir, given, mask_type, seed, backend = task
    import numpy as np

    from unmask.errors import NoFaceError, UnmaskError
    from unmask.faces.detect import get_detector
    from unmask.faces.io import load_image
    from unmask.faces.masks import MASK_TYPES, draw_mask

    try:
        image = load_image(path)
        if given is not None:
            lm = np.asarray(given, dtype=np.float32)
        else:
            faces = get_detector(backend).detect(image)
            if not faces:
                raise NoFaceError("No face was found in the image.")
            lm = faces[0].landmarks68
        # A seed per file from its name: the same file gets the same mask whatever the order or workers.
        rng = np.random.default_rng([seed, zlib.crc32(rel.encode("utf-8"))])
        chosen = MASK_TYPES[int(rng.integers(len(MASK_TYPES)))] if mask_type == "random" else mask_type
        masked, occlusion = draw_mask(image, lm, chosen, seed=rng)
    except UnmaskError as err:
        return {"input": rel, "error": f"{type(err).__name__}: {err}"}
    name = str(Path(rel).with_suffix(".png"))
    save_image(Path(out_dir) / name, masked)
    save_image(Path(out_dir) / MASKS_DIR / name, np.rint(occlusion * 255.0).astype(np.uint8))
    return {
        "input": rel,
        "name": name,
        "type": chosen,
        "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in lm],
        "error": None,
    }


# --------------------------------------------------------------------------------------------- helpers


def _run(fn: Callable[[tuple], dict], tasks: list, workers: int, record, save, desc: str) -> None:
    """Run ``fn`` over ``tasks`` (here or in ``workers`` processes) with a progress bar; ``record`` each
    result in this process and ``save`` every few results and at the end (also on Ctrl-C)."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="img", disable=not tasks)
    done = 0
    try:
        for result in _results(fn, tasks, workers):
            record(result)
            bar.update(1)
            done += 1
            if done % _SAVE_EVERY == 0:
                save()
    finally:
        bar.close()
        save()


def _results(fn, tasks: list, workers: int) -> Iterable[dict]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _guarded(fn, task)
        return
    # "spawn" is safe with OpenCV's and dlib's threads on every OS; each worker builds its own detector.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context, initializer=_init_worker)
    with pool:
        futures = {pool.submit(_guarded, fn, task): task for task in tasks}
        for future in as_completed(futures):
            yield future.result()


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool is the parallelism


def _guarded(fn, task: tuple) -> dict:
    """Any unexpected exception becomes a failure of this one file, never the end of the run."""
    try:
        return fn(task)
    except Exception as err:  # noqa: BLE001 - a dataset run must survive one bad file
        return {"input": task[1], "error": f"{type(err).__name__}: {err}"}


def _summarise(output: Path, total: int, todo: int, failures: dict[str, str], succeeded: set[str], faces: int) -> dict:
    # Earlier failures are retried on every run; those that succeeded this time are dropped from the file.
    merged = {k: v for k, v in _read_json(output / FAILURES_FILE).items() if k not in succeeded}
    merged.update(failures)
    _write_json(output / FAILURES_FILE, merged)
    summary = {"images": total, "skipped": total - todo, "processed": todo, "failed": len(failures), "faces": faces}
    print(
        f"{total} images: {total - todo} already done, {todo - len(failures)} done now, {len(failures)} failed; "
        f"{faces} faces in {output}"
    )
    if failures:
        print(f"No usable face in {len(failures)} image(s) (all listed in {output / FAILURES_FILE}):")
        for rel, reason in sorted(failures.items())[:_SHOW_FAILURES]:
            print(f"  {rel}: {reason}")
        if len(failures) > _SHOW_FAILURES:
            print(f"  ... and {len(failures) - _SHOW_FAILURES} more")
    return summary


def _list_images(root: Path, exclude: Path) -> list[str]:
    exclude = exclude.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() != exclude and not d.startswith("."))
        for name in sorted(filenames):
            if is_image_file(name):
                found.append((here / name).relative_to(root).as_posix())
    return found


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    sys.exit(main())
