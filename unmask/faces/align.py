"""FFHQ face alignment as one affine warp, and pasting a recovered crop back into the photo.

Geometry (Karras et al., "A Style-Based Generator Architecture for GANs", CVPR 2019; the FFHQ
dataset's ``recreate_aligned_images``), from 68 iBUG landmarks:

* ``eye_avg`` is the midpoint of the two eye centres (means of points 36–41 and 42–47),
  ``eye_to_eye`` the vector between them, ``eye_to_mouth`` the vector from ``eye_avg`` to the
  midpoint of the mouth corners 48 and 54;
* the crop's x axis is ``eye_to_eye`` minus ``eye_to_mouth`` turned by 90°, normalised, then scaled
  to ``max(2·|eye_to_eye|, 1.8·|eye_to_mouth|)``; the y axis is x turned by 90°;
* the crop centre is ``eye_avg + 0.1·eye_to_mouth``; the crop is the square ``c ± x ± y``.

FFHQ sampled that square with ``PIL.Image.QUAD`` at 4096 px and then downscaled. A square is an
affine image of the output square, so here it is a single ``cv2.warpAffine`` to the output size
(bicubic), preceded — like FFHQ's "shrink" step — by an area-averaging downscale of the face region
whenever the crop is more than 2× smaller than the face in the photo, so nothing aliases.
Where the square leaves the photo, the photo is reflected (as FFHQ pads with ``reflect``), and the
reflected part is blurred (σ = 2 % of the quad size) and faded toward the median colour of the crop
with FFHQ's weights, computed directly in crop coordinates from each pixel's distance outside the photo
(FFHQ measures the distance per axis in a padded photo; the difference is invisible).

Another crop than FFHQ's (a generator trained on other crops, e.g. the DigiFace-1M DCGAN) is given as a landmark
template (:mod:`unmask.faces.template`): the square is then the least-squares similarity that carries the face's
inner landmarks (brows, nose, eyes, mouth) onto the template's (:func:`template_quad`), warped the same way.

Coordinates are pixel indices with the centre of the top-left pixel at (0, 0) in both the photo
and the crop (dlib's and OpenCV's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from unmask.errors import ImageError, InputShapeError, NoFaceError
from unmask.faces.detect import EYE_LEFT, EYE_RIGHT, MOUTH_LEFT, MOUTH_RIGHT, Face, FaceDetector, landmarks5_from_68
from unmask.faces.io import check_landmarks68, check_rgb_uint8

#: Side of the FFHQ frame in which the reference positions below are given.
FFHQ_SIZE = 1024
#: Where the image-left eye centre (mean of iBUG points 36–41) lands in a 1024-px FFHQ crop.
#: x is exact whenever ``2·|eye_to_eye| ≥ 1.8·|eye_to_mouth|`` (true of nearly every face): the eyes
#: sit at 3/8 and 5/8 of the width. y depends on the face's proportions,
#: ``y = 1024·(0.5 − 0.025·m/e) − 0.5`` with ``m/e = |eye_to_mouth| / |eye_to_eye|``; the value given
#: is for m/e = 0.88, typical of dlib landmarks (±0.1 in m/e moves y by ±2.6 px at 1024).
#: For another output size S the position scales about pixel corners: ``p_S = (p_1024 + 0.5)·S/1024 − 0.5``
#: (see :func:`reference_points`).
FFHQ_EYE_LEFT = np.array([383.5, 488.97])
#: The image-right eye centre (mean of points 42–47) in the 1024 frame; see :data:`FFHQ_EYE_LEFT`.
FFHQ_EYE_RIGHT = np.array([639.5, 488.97])
#: The mouth centre (midpoint of points 48 and 54) in the 1024 frame, for m/e = 0.88.
FFHQ_MOUTH = np.array([511.5, 714.25])

#: Typical ratio |eye_to_mouth| / |eye_to_eye| used for the reference y positions above.
TYPICAL_MOUTH_TO_EYE_RATIO = 0.88
#: FFHQ's shrink rule: downscale first when the quad is over 2× the output size.
_SHRINK_RATIO = 0.5
#: FFHQ crop border and padding, as fractions of the quad size.
_BORDER_FRACTION = 0.1
_PAD_FRACTION = 0.3
_PAD_BLUR_FRACTION = 0.02
#: Default face oval for paste_back, as fractions of the crop side: centre (x, y) and semi-axes.
_OVAL_CENTRE = (0.5, 0.54)
_OVAL_AXES = (0.30, 0.34)


def reference_points(size: int) -> dict[str, np.ndarray]:
    """FFHQ reference positions (eye centres, mouth centre) scaled to a ``size``-px crop, ``(2,)`` each."""
    scale = size / FFHQ_SIZE
    return {
        name: (point + 0.5) * scale - 0.5
        for name, point in (("eye_left", FFHQ_EYE_LEFT), ("eye_right", FFHQ_EYE_RIGHT), ("mouth", FFHQ_MOUTH))
    }


@dataclass(frozen=True)
class AlignedFace:
    """An FFHQ-aligned face crop and how it was cut from the photo.

    Attributes:
        crop: ``(size, size, 3)`` uint8 RGB.
        transform: ``(3, 3)`` float64 homogeneous affine mapping photo pixel coordinates to crop pixel
            coordinates (``[u, v, 1] = transform @ [x, y, 1]``); pass it to :func:`paste_back`.
        landmarks68: ``(68, 2)`` float32 landmarks in crop coordinates.
        face: the detection in photo coordinates.
    """

    crop: np.ndarray
    transform: np.ndarray
    landmarks68: np.ndarray
    face: Face


def ffhq_quad(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFHQ's oriented square from 68 landmarks: centre ``c`` and half-axes ``x``, ``y``, each ``(2,)``.

    The square's corners are ``c − x − y`` (top-left), ``c − x + y``, ``c + x + y``, ``c + x − y``.
    """
    lm = check_landmarks68(landmarks68, np.float32).astype(np.float64)
    eye_left, eye_right = lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) * 0.5 - eye_avg
    # eye_to_mouth turned a quarter turn, (x, y) -> (y, -x), so that on an upright face it points along
    # eye_to_eye; adding it averages the eye line with the perpendicular of the eye-mouth line, so
    # neither a tilted mouth nor a tilted eye line alone sets the rotation.
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    norm = math.hypot(*x)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ImageError("The landmarks are degenerate (eyes and mouth coincide); cannot align this face.")
    x = x / norm * max(math.hypot(*eye_to_eye) * 2.0, math.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return c, x, y


#: Landmarks a template fit uses: brows, nose, eyes and mouth (17-67). The jaw line (0-16) follows the head's
#: pose and the chin often leaves a tight crop, so it would pull the fit.
TEMPLATE_FIT_POINTS = slice(17, 68)


def template_quad(landmarks68: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The square whose crop puts the face's landmarks on ``template``: centre ``c`` and half-axes ``x``, ``y``.

    The least-squares similarity (rotation, uniform scale, shift; no reflection) from the photo's points
    :data:`TEMPLATE_FIT_POINTS` to the template's, inverted: the crop's unit square ``[0, 1]²`` in photo pixels.

    Args:
        landmarks68: ``(68, 2)`` photo landmarks.
        template: ``(68, 2)`` landmarks as fractions of the crop side (pixel centres at ``(i + 0.5) / size``).
    """
    lm = check_landmarks68(landmarks68, np.float32).astype(np.float64)[TEMPLATE_FIT_POINTS]
    ref = np.asarray(template, dtype=np.float64).reshape(68, 2)[TEMPLATE_FIT_POINTS]
    p = lm[:, 0] + 1j * lm[:, 1]
    u = ref[:, 0] + 1j * ref[:, 1]
    pc, uc = p - p.mean(), u - u.mean()
    energy = float(np.vdot(pc, pc).real)
    if not np.isfinite(energy) or energy < 1e-9:
        raise ImageError("The landmarks are degenerate (all at one point); cannot align this face.")
    a = np.vdot(pc, uc) / energy  # u = a p + b: scale and rotation as one complex number
    b = u.mean() - a * p.mean()
    centre = (0.5 + 0.5j - b) / a
    x, y = 0.5 / a, 0.5j / a
    return (np.array([centre.real, centre.imag]), np.array([x.real, x.imag]), np.array([y.real, y.imag]))


def quad_transform(c: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """The ``(3, 3)`` affine mapping photo pixels to the pixels of a ``size``² crop of the square ``c ± x ± y``.

    The square's outer corners map to the crop's outer pixel corners (−0.5 and size − 0.5), as PIL's
    ``QUAD`` transform with ``quad + 0.5`` does in FFHQ.
    """
    half = size / 2.0
    rows = np.stack([x / np.dot(x, x), y / np.dot(y, y)]) * half  # (2, 2)
    transform = np.eye(3)
    transform[:2, :2] = rows
    transform[:2, 2] = half - 0.5 - rows @ c
    return transform


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points with a ``(3, 3)`` affine; returns ``(N, 2)`` float32."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ transform[:2, :2].T + transform[:2, 2]).astype(np.float32)


def align_face(
    image: np.ndarray,
    landmarks68: np.ndarray,
    size: int = 256,
    *,
    face: Face | None = None,
    blur_padding: bool = True,
    template: np.ndarray | None = None,
) -> AlignedFace:
    """Cut the FFHQ-aligned (or template-aligned) ``size``² crop of the face with ``landmarks68`` out of ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo.
        landmarks68: ``(68, 2)`` iBUG landmarks in photo pixels.
        size: output side in pixels (e.g. 64, 256, 1024).
        face: the detection the landmarks came from (stored in the result; built from the landmarks if None).
        blur_padding: blur and fade the parts of the crop that lie outside the photo, as FFHQ does.
        template: ``None`` for FFHQ's crop, or ``(68, 2)`` landmark fractions of another crop
            (:func:`unmask.faces.template.alignment_template`), fitted by :func:`template_quad`.

    Returns:
        :class:`AlignedFace` with the crop, the photo→crop transform and the landmarks in crop pixels.
    """
    image = check_rgb_uint8(image, "align_face")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise InputShapeError(f"size must be an integer ≥ 8, got {size!r}.")
    size = int(size)
    lm = check_landmarks68(landmarks68, np.float32)
    c, x, y = ffhq_quad(lm) if template is None else template_quad(lm, template)
    transform = quad_transform(c, x, y, size)
    qsize = 2.0 * math.hypot(*x)  # side of the square in photo pixels
    height, width = image.shape[:2]

    # Cut the region of interest (the square plus a border for the interpolation kernel), and shrink it
    # by area averaging when the crop is much smaller than the face, as FFHQ does before its warp.
    corners = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    border = max(int(round(qsize * _BORDER_FRACTION)), 3)
    x0 = int(max(math.floor(corners[:, 0].min()) - border, 0))
    y0 = int(max(math.floor(corners[:, 1].min()) - border, 0))
    x1 = int(min(math.ceil(corners[:, 0].max()) + border + 1, width))
    y1 = int(min(math.ceil(corners[:, 1].max()) + border + 1, height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ImageError("The face lies outside the image; cannot align it.")
    source = image[y0:y1, x0:x1]
    to_source = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    shrink = int(math.floor(qsize / size * _SHRINK_RATIO))
    if shrink > 1:
        new_w = max(int(round(source.shape[1] / shrink)), 2)
        new_h = max(int(round(source.shape[0] / shrink)), 2)
        sx, sy = new_w / source.shape[1], new_h / source.shape[0]
        source = cv2.resize(source, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # cv2.resize aligns pixel corners: dst = (src + 0.5)·s − 0.5.
        to_source = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]]) @ to_source
    source_to_crop = transform @ np.linalg.inv(to_source)
    crop = cv2.warpAffine(
        np.ascontiguousarray(source),
        source_to_crop[:2],
        (size, size),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    if blur_padding and (corners.min() < 0 or corners[:, 0].max() > width - 1 or corners[:, 1].max() > height - 1):
        crop = _fade_padding(crop, transform, width, height, qsize)

    lm_crop = apply_transform(transform, lm)
    if face is None:
        face = Face(
            box=np.concatenate([lm.min(0), lm.max(0)]).astype(np.float32),
            score=float("nan"),
            landmarks5=landmarks5_from_68(lm),
            landmarks68=lm.astype(np.float32),
        )
    return AlignedFace(crop=crop, transform=transform, landmarks68=lm_crop, face=face)


def _fade_padding(crop: np.ndarray, transform: np.ndarray, width: int, height: int, qsize: float) -> np.ndarray:
    """FFHQ's treatment of reflected padding: blur it, then fade it toward the median colour."""
    size = crop.shape[0]
    inverse = np.linalg.inv(transform)
    grid = np.arange(size, dtype=np.float32)
    px = inverse[0, 0] * grid[None, :] + inverse[0, 1] * grid[:, None] + inverse[0, 2]
    py = inverse[1, 0] * grid[None, :] + inverse[1, 1] * grid[:, None] + inverse[1, 2]
    outside = np.maximum.reduce([-px, px - (width - 1), -py, py - (height - 1)])  # photo px beyond the edge
    pad = max(float(outside.max()), qsize * _PAD_FRACTION, 1.0)
    # FFHQ's weights: `mask` is 0 on the photo edge, 1 at the outer end of the padding, negative inside.
    mask = (outside / pad)[:, :, None].astype(np.float32)
    scale = size / qsize  # crop pixels per photo pixel
    sigma = max(qsize * _PAD_BLUR_FRACTION * scale, 0.5)
    img = crop.astype(np.float32)
    blurred = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    img += (blurred - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img.reshape(-1, 3), axis=0) - img) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def align_faces(
    image,
    detector: FaceDetector | None = None,
    size: int = 256,
    which: Literal["largest", "all"] = "largest",
) -> list[AlignedFace]:
    """Detect faces in ``image`` and return their FFHQ-aligned crops (largest face first).

    Args:
        image: anything :func:`unmask.faces.io.load_image` accepts (path, bytes, PIL, array).
        detector: a :class:`FaceDetector`; default ``get_detector("dlib")``.
        size: output side in pixels.
        which: ``"largest"`` for one face, ``"all"`` for every face found.

    Raises:
        NoFaceError: no face was found.
        ImageError: the image cannot be read.
    """
    from unmask.faces.detect import get_detector
    from unmask.faces.io import load_image

    if which not in ("largest", "all"):
        raise InputShapeError(f"which must be 'largest' or 'all', got {which!r}.")
    photo = load_image(image)
    detector = detector or get_detector("dlib")
    faces = detector.detect(photo)
    if not faces:
        raise NoFaceError(
            "No face was found in the image. Use a photo where the face is at least ~40 px wide, upright and "
            "not cut off, or give the landmarks yourself to align_face()."
        )
    if which == "largest":
        faces = faces[:1]
    return [align_face(photo, f.landmarks68, size, face=f) for f in faces]


def default_region(size: int) -> np.ndarray:
    """The face oval of an FFHQ crop, float32 ``(size, size)``, 1 inside: forehead to chin, cheek to cheek."""
    region = np.zeros((size, size), dtype=np.uint8)
    centre = (int(round(_OVAL_CENTRE[0] * size * 16)), int(round(_OVAL_CENTRE[1] * size * 16)))
    axes = (int(round(_OVAL_AXES[0] * size * 16)), int(round(_OVAL_AXES[1] * size * 16)))
    cv2.ellipse(region, centre, axes, 0, 0, 360, 255, thickness=-1, lineType=cv2.LINE_AA, shift=4)
    return region.astype(np.float32) / 255.0


def face_region(landmarks68: np.ndarray, size: int, forehead: float = 0.6) -> np.ndarray:
    """The face (jaw line up to a forehead line above the brows) from 68 crop landmarks, float32 ``(size, size)``.

    Args:
        landmarks68: ``(68, 2)`` landmarks in crop pixels.
        size: crop side.
        forehead: how far above the brows the region reaches, in units of the eye–mouth distance.
    """
    lm = check_landmarks68(landmarks68, np.float32).astype(np.float64)
    eye_avg = (lm[EYE_LEFT].mean(0) + lm[EYE_RIGHT].mean(0)) * 0.5
    up = eye_avg - (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) * 0.5
    brows = lm[17:27] + up * forehead
    hull = cv2.convexHull(np.round(np.concatenate([lm[:17], brows]) * 16).astype(np.int32))
    region = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(region, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return region.astype(np.float32) / 255.0


def paste_back(
    photo: np.ndarray,
    crop: np.ndarray,
    transform: np.ndarray,
    region: np.ndarray | None = None,
    feather: float = 0.02,
) -> np.ndarray:
    """Blend ``crop`` (e.g. the recovered face) back into ``photo`` where ``region`` says, feathered.

    Pixels of ``photo`` outside the (feathered) region are returned unchanged, bit for bit.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB, the photo the crop was cut from.
        crop: ``(S, S, 3)`` uint8 RGB in the aligned frame.
        transform: ``(3, 3)`` photo→crop affine from :class:`AlignedFace`.
        region: float ``(S, S)`` in crop coordinates, 1 = replace by the crop; ``None`` = the default face
            oval (:func:`default_region`). Use :func:`face_region` or a mask region to change less.
        feather: Gaussian σ of the blend edge as a fraction of ``S`` (0.02 → 5 px at 256). The band is
            about ±2σ around the region's edge; the crop's own border always fades out.

    Returns:
        ``(H, W, 3)`` uint8, a new array.
    """
    photo = check_rgb_uint8(photo, "paste_back")
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] or crop.dtype != np.uint8:
        raise InputShapeError(f"crop must be a square uint8 (S, S, 3) array, got {crop.shape} {crop.dtype}.")
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (3, 3) or not np.isfinite(transform).all() or abs(np.linalg.det(transform[:2, :2])) < 1e-12:
        raise InputShapeError(f"transform must be an invertible (3, 3) affine, got shape {transform.shape}.")
    size = crop.shape[0]
    if region is None:
        region = default_region(size)
    region = np.asarray(region, dtype=np.float32)
    if region.shape != (size, size):
        raise InputShapeError(f"region must be ({size}, {size}) like the crop, got {region.shape}.")

    alpha = np.clip(region, 0.0, 1.0)
    sigma = feather * size
    # Where the crop is much larger than the face in the photo, downscale it (and the region) first by
    # area averaging; the feathering is then done at the smaller size, which is also much cheaper.
    scale = math.sqrt(abs(np.linalg.det(transform[:2, :2])))  # crop px per photo px
    crop_img = crop
    if scale > 1.5:
        small = max(int(round(size / scale)), 8)
        s = small / size
        crop_img = cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (small, small), interpolation=cv2.INTER_AREA)
        transform = np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]]) @ transform
        size, sigma = small, sigma * s
    if sigma > 0.3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    # Fade to zero at the crop's own border so the square's edge never shows.
    ramp_width = max(2.0 * sigma, 1.0)
    ramp = np.clip((np.minimum(np.arange(size), size - 1 - np.arange(size)) + 0.5) / ramp_width, 0.0, 1.0)
    alpha = alpha * ramp[None, :].astype(np.float32) * ramp[:, None].astype(np.float32)

    # Only the photo's bounding box of the crop square is touched.
    inverse = np.linalg.inv(transform)
    square = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]])
    corners = apply_transform(inverse, square)
    height, width = photo.shape[:2]
    x0 = int(max(math.floor(corners[:, 0].min()) - 1, 0))
    y0 = int(max(math.floor(corners[:, 1].min()) - 1, 0))
    x1 = int(min(math.ceil(corners[:, 0].max()) + 2, width))
    y1 = int(min(math.ceil(corners[:, 1].max()) + 2, height))
    out = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    roi_to_crop = transform @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(crop_img, roi_to_crop[:2], (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(
        alpha, roi_to_crop[:2], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    weight = np.clip(weight, 0.0, 1.0)[:, :, None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    blended = roi + (warped.astype(np.float32) - roi) * weight
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
