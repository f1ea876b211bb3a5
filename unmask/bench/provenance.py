"""``python -m unmask.bench provenance [--repeat N]``: what signing Content Credentials adds to writing an image.

For the sizes and formats unmask writes (the app: PNG at ``compress_level=1``, JPEG at ``quality=92`` above 2
megapixels; the CLI: PNG, JPEG, WebP at Pillow's defaults), milliseconds per image to encode with the XMP packet
only (:func:`~unmask.faces.provenance.encode_with_xmp`) and with the XMP and a signed C2PA manifest
(:func:`~unmask.faces.provenance.encode_image`, what every writer calls), and the bytes the manifest adds. The
output photo's manifest has the input photo (a JPEG of the same size) as its parent ingredient, as in the app;
the recovered crop's has none. Then what one teaching request of the app signs, and what reading an upload's
credentials for the page costs. The photo is skimage's astronaut resized; nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import io
import os

import numpy as np

from unmask.measure import print_table, time_call

#: ``(what, role, width, height, Pillow format, save options)``: the images the app and the CLI write.
CASES = (
    ("teaching crop", "recovered", 64, 64, "PNG", {"compress_level": 1}),
    ("ffhq crop", "recovered", 256, 256, "PNG", {"compress_level": 1}),
    ("teaching photo", "output", 128, 128, "PNG", {"compress_level": 1}),
    ("photo 512", "output", 512, 512, "PNG", {"compress_level": 1}),
    ("photo 1280x886", "output", 1280, 886, "PNG", {"compress_level": 1}),
    ("photo 3000x2000", "output", 3000, 2000, "JPEG", {"quality": 92}),
    ("CLI photo 512", "output", 512, 512, "PNG", {}),
    ("CLI photo 512", "output", 512, 512, "JPEG", {}),
    ("CLI photo 512", "output", 512, 512, "WEBP", {}),
)


def _photo(width: int, height: int) -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)


def _jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def rows(repeat: int) -> list[dict[str, object]]:
    from unmask.faces.provenance import Parent, Provenance, encode_image, encode_with_xmp

    out = []
    for what, role, width, height, fmt, options in CASES:
        image = _photo(width, height)
        box = (width // 4, height // 2, 3 * width // 4, 7 * height // 8)
        made = Provenance("teaching", "encoder", role=role, regions=(box,) if role == "output" else (),
                          parent=Parent(data=_jpeg(image)))
        def write(encode, image=image, fmt=fmt, made=made, options=options) -> bytes:
            return encode(image, fmt, made, **options)

        xmp = time_call(lambda: write(encode_with_xmp), repeat=repeat)
        signed = time_call(lambda: write(encode_image), repeat=repeat)
        added_bytes = len(write(encode_image)) - len(write(encode_with_xmp))
        out.append({"image": what, "role": role, "size": f"{width}x{height}", "format": fmt,
                    "xmp_ms": xmp["median_ms"], "xmp+c2pa_ms": signed["median_ms"],
                    "added_ms": signed["median_ms"] - xmp["median_ms"], "added_KB": added_bytes / 1024})
    return out


def request_rows(repeat: int) -> list[dict[str, object]]:
    """What one app request on the teaching example writes (128-px photo, one face): the labelled full photo, the
    zoomed after crop and the recovered crop are signed; the before crop, the aligned input and the mask are not."""
    from unmask.faces.provenance import Provenance, encode_image, encode_with_xmp, read_credentials

    photo, crop = _photo(128, 128), _photo(64, 64)
    made = Provenance("teaching", "encoder", regions=((29, 55, 96, 116),)).with_parent(_jpeg(photo))
    writes = [(photo, made, True), (photo[20:128, 10:118], made.cropped(10, 20, 118, 128), False),
              (crop, made.for_role("recovered"), False), (crop, made.for_role("input"), False),
              (photo, made.for_role("input"), False), (crop[..., 0], made.for_role("mask"), False)]

    def write(encode) -> None:
        for image, provenance, label in writes:
            encode(image, "PNG", provenance, label=label, compress_level=1)

    xmp = time_call(lambda: write(encode_with_xmp), repeat=repeat)
    signed = time_call(lambda: write(encode_image), repeat=repeat)
    upload = encode_image(_photo(1280, 886), "JPEG", made, quality=92)
    read = time_call(lambda: read_credentials(upload), repeat=repeat)
    return [{"what": "app request, teaching example (6 files, 3 signed)", "xmp_ms": xmp["median_ms"],
             "xmp+c2pa_ms": signed["median_ms"], "added_ms": signed["median_ms"] - xmp["median_ms"]},
            {"what": "page: read an upload's credentials (1280x886 JPEG)", "xmp_ms": float("nan"),
             "xmp+c2pa_ms": read["median_ms"], "added_ms": read["median_ms"]}]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unmask.bench provenance")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions (median reported)")
    args = parser.parse_args(argv)
    from unmask.faces.provenance.signing import signing_identity

    identity = signing_identity()  # made before timing: the test chain is generated once per install
    load = os.getloadavg()[0]
    print_table(f"writing one image: XMP only vs XMP + signed C2PA manifest (median ms; signer: {identity.origin}, "
                f"{identity.alg}; load average {load:.2f})", rows(args.repeat))
    print_table("per request", request_rows(args.repeat))


if __name__ == "__main__":
    main()
