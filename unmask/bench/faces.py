"""Face pipeline timings: ``python -m unmask.bench faces [--repeat N] [--backend dlib]``.

* detect + align (256 px) per photo on the two real photos packages ship: skimage's astronaut (one
  face, 512×512) and insightface's ``t1.jpg`` (six people, 1280×886);
* mask rendering per face, for every mask type (the photo-textured ones where insightface is installed), on
  aligned crops of 64, 128, 256 and 1024 px;
* paste-back per face at 256 and 1024 px;
* small photos (``--small``): the masked photos below scaled so that the largest face is 37 px wide and padded
  to at least 548×342 (≤ 0.5 megapixels): faces found, wall and CPU milliseconds per photo;
* masked faces (``--masked``, or ``--masked-only``): every mask type of :mod:`unmask.faces.masks` drawn
  on the dlib landmarks of the unmasked astronaut, ``t1.jpg`` and ``Tom_Hanks_54745.png``, detected
  with the plain HOG detector and with the masked-face candidates at a few thresholds: detection rate
  (IoU ≥ 0.5 with the unmasked detection), whether the first face is a true one, false positives, time,
  and how far the landmarks drift under the mask (eye centres, FFHQ crop corners).
"""

from __future__ import annotations

import argparse

import numpy as np

from unmask.measure import peak_rss_mib, print_table, time_call

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


def masked_photos(detector) -> list[tuple[str, str, np.ndarray, list]]:
    """``(photo, mask_type, image, true_faces)`` for every photo of :func:`_photos` plus Tom Hanks and
    every mask type (and ``"none"``): the masks are drawn (seed = face index) on every face that
    ``detector`` finds in the unmasked photo, and those detections are the truth."""
    import importlib.util
    from pathlib import Path

    from unmask.faces.io import load_image
    from unmask.faces.masks import available_mask_types, draw_mask

    photos = [(name.split()[0], photo) for name, photo in _photos()]
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "images" / "Tom_Hanks_54745.png"
        if path.is_file():
            photos.append(("hanks", load_image(path)))
    out = []
    for name, photo in photos:
        truth = detector.detect(photo)
        for mask_type in ("none", *available_mask_types()):
            image = photo
            for i, face in enumerate(truth if mask_type != "none" else []):
                image, _ = draw_mask(image, face.landmarks68, mask_type, seed=i)
            out.append((name, mask_type, image, truth))
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _eyes_only_quad(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFHQ's square with the mouth replaced by where FFHQ's reference puts it relative to the eyes
    (eye-to-mouth = 0.88 eye distances, perpendicular to the eye line): a mask-robust variant, measured
    here only."""
    from unmask.faces.align import FFHQ_EYE_LEFT, FFHQ_EYE_RIGHT, FFHQ_MOUTH

    lm = np.asarray(landmarks68, dtype=np.float64)
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_to_eye = eye_right - eye_left
    ratio = (FFHQ_MOUTH[1] - FFHQ_EYE_LEFT[1]) / (FFHQ_EYE_RIGHT[0] - FFHQ_EYE_LEFT[0])
    eye_to_mouth = ratio * np.array([-eye_to_eye[1], eye_to_eye[0]])
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    return (eye_left + eye_right) * 0.5 + eye_to_mouth * 0.1, x, np.array([-x[1], x[0]])


def _corner_error(lm_true: np.ndarray, lm_found: np.ndarray, size: int = 256, quad=None) -> float:
    """Largest displacement of the crop's corners, in pixels of a ``size`` crop, between the FFHQ
    alignment from ``lm_true`` and the alignment (``quad``, default FFHQ's) from ``lm_found``."""
    from unmask.faces.align import ffhq_quad

    def corners(lm, fn):
        c, x, y = fn(lm)
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y]), 2.0 * float(np.hypot(*x))

    true, side = corners(lm_true, ffhq_quad)
    found, _ = corners(lm_found, quad or ffhq_quad)
    return float(np.abs(found - true).max() / side * size)


def masked_rows(repeat: int = 1) -> tuple[list[dict], list[dict], list[dict]]:
    """The masked-face tables: per (detector setting, mask type), per (setting, photo), and landmark drift."""
    import time

    from unmask.faces.detect import get_detector

    settings = {"plain HOG": None, "masked -0.6": -0.6, "masked -0.7": -0.7, "masked -0.8": -0.8}
    cases = masked_photos(get_detector("dlib", masked_threshold=None))
    per_type, per_photo, drift = [], [], []
    for label, masked_threshold in settings.items():
        detector = get_detector("dlib", masked_threshold=masked_threshold)
        stats: dict[tuple[str, str], dict[str, float]] = {}
        for name, mask_type, image, truth in cases:
            samples = []
            for _ in range(max(repeat, 1)):
                start = time.perf_counter()
                found = detector.detect(image)
                samples.append(time.perf_counter() - start)
            hits = [max((box_iou(f.box, t.box) for f in found), default=0.0) >= 0.5 for t in truth]
            false_pos = sum(max(box_iou(f.box, t.box) for t in truth) < 0.5 for f in found)
            first_ok = bool(found) and max(box_iou(found[0].box, t.box) for t in truth) >= 0.5
            for key in ((label, mask_type), (label, name)):
                s = stats.setdefault(key, {"faces": 0, "found": 0, "fp": 0, "first": 0, "images": 0, "s": 0.0})
                s["faces"] += len(truth)
                s["found"] += sum(hits)
                s["fp"] += false_pos
                s["first"] += first_ok
                s["images"] += 1
                s["s"] += float(np.median(samples))
            if label == "masked -0.7" and mask_type != "none":
                for t in truth:
                    match = max(found, key=lambda f, t=t: box_iou(f.box, t.box), default=None)
                    if match is None or box_iou(match.box, t.box) < 0.5:
                        continue
                    eye_d = float(np.hypot(*(t.landmarks5[1] - t.landmarks5[0])))
                    err = np.linalg.norm(match.landmarks5[:2] - t.landmarks5[:2], axis=1).max() / eye_d
                    mouth = np.linalg.norm(match.landmarks68[48:68] - t.landmarks68[48:68], axis=1).mean() / eye_d
                    drift.append({"photo": name, "mask": mask_type, "eye_err/eye_dist": float(err),
                                  "mouth_err/eye_dist": float(mouth),
                                  "crop256_corner_px": _corner_error(t.landmarks68, match.landmarks68),
                                  "eyes_only_corner_px": _corner_error(t.landmarks68, match.landmarks68,
                                                                       quad=_eyes_only_quad),
                                  "eyes_only_unmasked_px": _corner_error(t.landmarks68, t.landmarks68,
                                                                         quad=_eyes_only_quad)})
        for (setting, key), s in stats.items():
            row = {"setting": setting}
            is_photo = key in {c[0] for c in cases}
            row["photo" if is_photo else "mask"] = key
            row.update({"found": f"{int(s['found'])}/{int(s['faces'])}", "first_is_face": f"{int(s['first'])}/"
                        f"{int(s['images'])}", "false_pos": int(s["fp"]), "ms/image": 1000 * s["s"] / s["images"]})
            (per_photo if is_photo else per_type).append(row)
    return per_type, per_photo, drift


#: Small photos (``--small``): every masked photo scaled so that its largest face is this wide (the issue's
#: 548×342 photo had one masked face 37 px wide)…
SMALL_FACE_PX = 37
#: …and reflect-padded to at least this size (width, height).
SMALL_CANVAS = (548, 342)


def small_photos(detector) -> list[tuple[str, str, np.ndarray, list[np.ndarray]]]:
    """``(photo, mask_type, image, true boxes)``: :func:`masked_photos` scaled so that the largest face is
    :data:`SMALL_FACE_PX` wide and padded (edge pixels repeated: a mirrored border would mirror faces) to at least
    :data:`SMALL_CANVAS`: photos of 0.19–0.5 megapixels whose faces only a 2× upsampled HOG pass can reach."""
    import cv2

    out = []
    for name, mask_type, image, truth in masked_photos(detector):
        if not truth:
            continue
        scale = min(1.0, SMALL_FACE_PX / max(float(t.box[2] - t.box[0]) for t in truth))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        pad_x = max(0, SMALL_CANVAS[0] - small.shape[1])
        pad_y = max(0, SMALL_CANVAS[1] - small.shape[0])
        left, top = pad_x // 2, pad_y // 2
        small = cv2.copyMakeBorder(small, top, pad_y - top, left, pad_x - left, cv2.BORDER_REPLICATE)
        boxes = [t.box * scale + np.array([left, top, left, top], dtype=np.float32) for t in truth]
        out.append((name, mask_type, np.ascontiguousarray(small), boxes))
    return out


def small_rows(repeat: int = 3) -> list[dict]:
    """Detection on :func:`small_photos` with the default dlib detector: faces found, false positives, wall and
    CPU milliseconds per photo (CPU time does not depend on what else runs on the machine)."""
    import time

    from unmask.faces.detect import get_detector

    cases = small_photos(get_detector("dlib", masked_threshold=None))
    detector = get_detector("dlib")
    rows = []
    for photo in sorted({c[0] for c in cases}):
        found = faces = false_pos = 0
        wall, cpu = [], []
        for _, _, image, boxes in (c for c in cases if c[0] == photo):
            for _ in range(max(1, repeat)):
                t0, c0 = time.perf_counter(), time.process_time()
                detected = detector.detect(image)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            faces += len(boxes)
            found += sum(max((box_iou(f.box, b) for f in detected), default=0.0) >= 0.5 for b in boxes)
            false_pos += sum(max(box_iou(f.box, b) for b in boxes) < 0.5 for f in detected)
        rows.append({"photo": photo, "size": "x".join(map(str, image.shape[1::-1])),
                     "megapixels": image.shape[0] * image.shape[1] / 1e6, "found": f"{found}/{faces}",
                     "false_pos": false_pos, "wall_ms p50": 1000 * float(np.median(wall)),
                     "cpu_ms p50": 1000 * float(np.median(cpu)), "cpu_ms max": 1000 * max(cpu)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench faces")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--backend", default="dlib", choices=("dlib", "insightface"))
    parser.add_argument("--masked", action="store_true", help="also the masked-face detection tables")
    parser.add_argument("--masked-only", action="store_true", help="only the masked-face detection tables")
    parser.add_argument("--small", action="store_true",
                        help=f"only detection on small photos (faces {SMALL_FACE_PX} px, at least "
                             f"{SMALL_CANVAS[0]}x{SMALL_CANVAS[1]}, every mask type)")
    args = parser.parse_args(argv)
    if args.small:
        import os

        rows = small_rows(repeat=min(args.repeat, 3))
        print_table(f"detection (dlib, default) on small photos: faces {SMALL_FACE_PX} px, every mask type "
                    f"and none; load average {os.getloadavg()[0]:.2f}", rows)
        return
    if args.masked or args.masked_only:
        per_type, per_photo, drift = masked_rows(repeat=1)
        print_table("masked-face detection (dlib) per mask type: all 3 photos, 8 faces", per_type)
        print_table("masked-face detection (dlib) per photo: all 9 mask types and none", per_photo)
        print_table("landmark drift under the mask (masked -0.7, matched faces)", drift)
        summary = [{key: ("median" if key == "photo" else "" if key == "mask" else
                          float(np.median([d[key] for d in drift]))) for key in drift[0]}] if drift else []
        summary += [{key: ("max" if key == "photo" else "" if key == "mask" else
                           float(np.max([d[key] for d in drift]))) for key in drift[0]}] if drift else []
        print_table("landmark drift summary", summary)
        if args.masked_only:
            return

    from unmask.faces.align import align_face, paste_back
    from unmask.faces.detect import get_detector
    from unmask.faces.masks import available_mask_types, draw_mask

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
    for mask_type in available_mask_types():
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
