"""The visible label: a band below the photo saying that its face region is synthesised.

The band is added *below* the photo, so it hides no pixel of it and stays legible on a 64-px teaching face; the
region boxes keep their coordinates.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from unmask.errors import InputShapeError
from unmask.faces.provenance.record import LABEL

#: The label band: font size as a fraction of the image's width, clamped to these pixel sizes.
LABEL_FONT_FRACTION = 1 / 45
LABEL_FONT_PX = (8, 28)
LABEL_BACKGROUND = (24, 24, 24)
LABEL_TEXT_COLOUR = (255, 255, 255)


def label_image(image: np.ndarray, text: str = LABEL) -> np.ndarray:
    """Add a dark band with ``text`` below ``image`` (uint8 ``(H, W, 3)`` or ``(H, W)``).

    The font is a fraction of the width (:data:`LABEL_FONT_FRACTION`, clamped to :data:`LABEL_FONT_PX`);
    words wrap onto more lines where the image is narrow. Returns a new uint8 array ``(H + band, W, 3)``.
    """
    from PIL import ImageDraw, ImageFont

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputShapeError(f"label_image needs a uint8 (H, W, 3) or (H, W) array, got {image.dtype} {image.shape}.")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    width = image.shape[1]
    size = int(np.clip(round(width * LABEL_FONT_FRACTION), *LABEL_FONT_PX))
    font = ImageFont.load_default(size=size)
    pad = max(2, size // 3)
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width - 2 * pad:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    line_height = size + max(1, size // 4)
    band = Image.new("RGB", (width, 2 * pad + line_height * len(lines)), LABEL_BACKGROUND)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * line_height), line, font=font, fill=LABEL_TEXT_COLOUR)
    return np.concatenate([image[..., :3], np.asarray(band)], axis=0)
