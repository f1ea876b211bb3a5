"""``python -m unmask.evaluate photos``: does recovery bring a real masked face nearer its unmasked original?

The photos are the real ones that packages ship (none is made or trained on here): skimage's astronaut,
insightface's ``t1.jpg`` group photo and ``Tom_Hanks_54745.png``. dlib finds each face and its 68 landmarks
on the *unmasked* photo; every mask type (:func:`unmask.faces.masks.available_mask_types`: the procedural
ones, and insightface's mask photos where installed) is drawn on every face at those landmarks (seed = face
index). Each bundle then runs as the app runs it (:class:`unmask.pipeline.UnmaskPipeline` on the masked photo,
its default mode, every face it finds, the mask region its own: predicted by a mask head or estimated from the
landmarks).

**The judge** is dlib's 128-D face ResNet (trained on real faces, independent of this project): the distance
of a face's descriptor to the descriptor of the same face in the unmasked photo, each computed from the photo
itself at the landmarks found on the unmasked photo (:meth:`unmask.faces.embed.DlibFaceEmbedder.embed_photo`),
so no detection runs on a masked face and the masked and recovered photos are judged at the same place. A face
the pipeline did not find keeps its mask, so its recovered distance is its masked one. Reported per bundle:
the mean distance, masked against recovered; the share of faces where the recovered one is nearer (ties,
i.e. faces left as they were, count as not nearer); and the same per photo and per mask type.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The real photos packages ship, in a fixed order.
PHOTO_NAMES = ("astronaut", "t1", "hanks")
#: The cases shown in the picture (photo, mask type).
FIGURE_CASES = (("astronaut", "surgical_blue"), ("t1", "kn95"), ("hanks", "photo_blue"), ("astronaut", "cloth"))


def shipped_photos() -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 (H, W, 3))`` of every shipped real photo that is installed here."""
    from skimage import data

    from unmask.faces.io import load_image

    photos = [("astronaut", data.astronaut())]
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "data" / "images"
        for name, file in (("t1", "t1.jpg"), ("hanks", "Tom_Hanks_54745.png")):
            if (folder / file).is_file():
                photos.append((name, load_image(folder / file)))
    return photos


def masked_cases(photos: Sequence[tuple[str, np.ndarray]], mask_types: Sequence[str], detector) -> list[dict]:
    """One case per photo and mask type: the unmasked photo's faces (their landmarks) and the masked photo."""
    from unmask.faces.masks import draw_mask

    cases = []
    for name, photo in photos:
        faces = [f.landmarks68 for f in detector.detect(photo)]
        for mask_type in mask_types:
            image = photo
            for i, landmarks in enumerate(faces):
                image, _ = draw_mask(image, landmarks, mask_type, seed=i)
            cases.append({"photo": name, "mask_type": mask_type, "original": photo, "masked": image,
                          "landmarks": faces})
    return cases


def judge_cases(cases: Sequence[dict], bundles: Sequence[str], *, progress: bool = True,
                keep: Sequence[tuple[str, str]] = ()) -> list[dict]:
    """Run each bundle on each case; one row per face: ``photo, mask_type, face, bundle, masked, recovered``
    (dlib distances to the unmasked original) and ``found`` (whether the pipeline recovered that face).

    The output photos of the cases ``(photo, mask_type)`` in ``keep`` are stored in their case dict under
    ``"outputs"`` (``{bundle: uint8 photo}``), for :func:`figure`."""
    from tqdm.auto import tqdm

    from unmask.errors import NoFaceError
    from unmask.pipeline import UnmaskPipeline
    from unmask.verify import dlib_embedder

    embedder = dlib_embedder()
    rows = []
    for bundle in bundles:
        pipe = UnmaskPipeline.from_pretrained(bundle, device="cpu")
        for case in tqdm(cases, desc=bundle, disable=not progress):
            try:
                output = pipe(case["masked"], which="all").output
            except NoFaceError:
                output = case["masked"]
            if (case["photo"], case["mask_type"]) in keep:
                case.setdefault("outputs", {})[bundle] = output
            for i, landmarks in enumerate(case["landmarks"]):
                original = embedder.embed_photo(case["original"], landmarks)
                masked = embedder.embed_photo(case["masked"], landmarks)
                recovered = embedder.embed_photo(output, landmarks)
                rows.append({"photo": case["photo"], "mask_type": case["mask_type"], "face": i, "bundle": bundle,
                             "masked": float(np.linalg.norm(masked - original)),
                             "recovered": float(np.linalg.norm(recovered - original)),
                             "found": bool(np.any(output != case["masked"]))})
    return rows


def figure(cases: Sequence[dict], bundles: Sequence[str], path: str | Path, side: int = 160) -> Path:
    """One row per kept case and face (its first face): unmasked original | masked | each bundle's output, cropped
    around the face (the unmasked photo's landmarks), ``side`` px each, with a header strip naming the columns."""
    import cv2
    from PIL import Image, ImageDraw

    columns = ["original", "masked", *bundles]
    rows = []
    for case in cases:
        if "outputs" not in case or not case["landmarks"]:
            continue
        points = np.asarray(case["landmarks"][0], dtype=np.float64)
        centre = (points.min(0) + points.max(0)) / 2
        half = 0.75 * float((points.max(0) - points.min(0)).max())
        x0, y0 = (centre - half).astype(int)
        x1, y1 = (centre + half).astype(int)
        images = [case["original"], case["masked"], *(case["outputs"][b] for b in bundles)]
        crops = []
        for image in images:
            padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_REPLICATE)
            crop = padded[y0 + side:y1 + side, x0 + side:x1 + side]
            crops.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA))
        rows.append(np.concatenate(crops, axis=1))
    header = Image.new("RGB", (side * len(columns), 22), "white")
    draw = ImageDraw.Draw(header)
    for i, name in enumerate(columns):
        draw.text((i * side + 6, 5), name, fill="black")
    sheet = np.concatenate([np.asarray(header), *rows], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, quality=90)
    return path


def summarise(rows: Sequence[dict], by: Sequence[str] = ("bundle",)) -> list[dict]:
    """Mean masked and recovered distances, the share where recovered is nearer, per group of ``by``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, group in groups.items():
        masked = np.array([r["masked"] for r in group])
        recovered = np.array([r["recovered"] for r in group])
        out.append({**dict(zip(by, key)), "faces": len(group), "masked": f"{masked.mean():.4f}",
                    "recovered": f"{recovered.mean():.4f}",
                    "change": f"{100 * (recovered.mean() - masked.mean()) / masked.mean():+.1f} %",
                    "recovered_nearer": f"{100 * float((recovered < masked).mean()):.0f} %"})
    return out


def main(argv: Sequence[str]) -> int:
    import json

    from unmask.faces.detect import get_detector
    from unmask.faces.masks import available_mask_types
    from unmask.measure import print_table

    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate photos", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", action="append", default=None,
                        help="bundle to judge (repeatable; default: digiface and teaching)")
    parser.add_argument("--mask-type", action="append", default=None, help="mask types (default: every one)")
    parser.add_argument("--out", default="runs/photos.json", help="per-face rows as JSON ('' to skip)")
    parser.add_argument("--figure", default="docs/digiface_real_photos.jpg", help="picture to write ('' to skip)")
    args = parser.parse_args(list(argv))
    bundles = args.bundle or ["digiface", "teaching"]
    mask_types = args.mask_type or list(available_mask_types())
    photos = shipped_photos()
    cases = masked_cases(photos, mask_types, get_detector("dlib"))
    rows = judge_cases(cases, bundles, keep=FIGURE_CASES if args.figure else ())
    faces = len(rows) // max(len(bundles), 1)
    title = (f"dlib distance to the unmasked original, {faces} faces x masks ({', '.join(n for n, _ in photos)}; "
             f"{len(mask_types)} mask types)")
    print_table(title, summarise(rows))
    print_table("per photo", summarise(rows, ("bundle", "photo")))
    print_table("per mask type", summarise(rows, ("bundle", "mask_type")))
    if args.figure:
        print(f"wrote {figure(cases, bundles, args.figure)}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1), "utf-8")
        print(f"wrote {args.out}")
    return 0
