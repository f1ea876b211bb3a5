"""Face pipeline timings: ``python -m unmask.bench faces [--repeat N] [--backend dlib]``.

* detect + align (256 px) per photo on the two real photos packages ship: skimage's astronaut (one
  face, 512×512) and insightface's ``t1.jpg`` (six people, 1280×886);
* mask rendering per face, for every mask type, on aligned crops of 64, 128, 256 and 1024 px;
* paste-back per face at 256 and 1024 px.
"""

from __future__ import annotations

import argparse

import numpy as np

from unmask.bench import peak_rss_mib, print_table, time_call

MASK_SIZES = (64, 128, 256, 1024)


def _photos() -> list[tuple[str, np.ndarray]]:
    import importlib.util
    from pathlib import Path

    from skimage import data

    from unmask.faces.io import load_image

    photos = [("astronaut 512x512", data.astronaut())]
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "images" / "t1.jpg"
        if path.is_file():
            photos.append(("t1 1280x886", load_image(path)))
    return photos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench faces")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--backend", default="dlib", choices=("dlib", "insightface"))
    args = parser.parse_args(argv)

    from unmask.faces.align import align_face, paste_back
    from unmask.faces.detect import get_detector
    from unmask.faces.masks import MASK_TYPES, draw_mask

    detector = get_detector(args.backend)
    photos = _photos()
    rows = []
    for name, photo in photos:
        faces = detector.detect(photo)
        detect = time_call(lambda photo=photo: detector.detect(photo), repeat=args.repeat)
        both = time_call(
            lambda photo=photo: [align_face(photo, f.landmarks68, 256, face=f) for f in detector.detect(photo)],
            repeat=args.repeat,
        )
        align = time_call(lambda photo=photo, faces=faces: [align_face(photo, f.landmarks68, 256) for f in faces],
                          repeat=args.repeat)
        rows.append(
            {
                "photo": name,
                "faces": len(faces),
                "detect_ms": detect["median_ms"],
                "align256_ms/face": align["median_ms"] / max(len(faces), 1),
                "detect+align_ms/photo": both["median_ms"],
            }
        )
    print_table(f"detect ({args.backend}) + FFHQ align to 256 px", rows)

    astronaut = photos[0][1]
    landmarks = detector.detect(astronaut)[0].landmarks68
    crops = {size: align_face(astronaut, landmarks, size) for size in MASK_SIZES}
    rows = []
    rng = np.random.default_rng(0)
    for mask_type in MASK_TYPES:
        row: dict[str, object] = {"type": mask_type}
        for size in MASK_SIZES:
            face = crops[size]
            repeat = args.repeat * (40 if size <= 128 else 4 if size <= 256 else 1)
            timing = time_call(lambda face=face, t=mask_type: draw_mask(face.crop, face.landmarks68, t, seed=rng),
                               warmup=2, repeat=repeat)
            row[f"{size}px_ms"] = timing["median_ms"]
        rows.append(row)
    print_table("mask rendering per face (median ms)", rows)

    rows = []
    for size in (256, 1024):
        face = crops[size]
        timing = time_call(lambda face=face: paste_back(astronaut, face.crop, face.transform), repeat=args.repeat)
        rows.append({"crop": f"{size}px", "paste_back_ms": timing["median_ms"]})
    print_table("paste back into the 512x512 astronaut", rows)
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
