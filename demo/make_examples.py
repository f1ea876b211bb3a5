"""Write the app's example images: ``python -m demo.make_examples``.

* ``teaching_<type>.png``: masked faces of held-out teaching-world identities (test split, 128 px,
  already FFHQ-aligned), one per mask type, with their unmasked targets beside them in
  ``targets/`` for comparison;
* ``photo_astronaut.jpg``: a real photo (scikit-image's astronaut, public domain, NASA) with a
  synthetic surgical mask drawn on her landmarks — it shows the photo path (detect, align, paste
  back) even with the teaching models.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "examples"
TYPES = ("surgical_blue", "cloth_pattern", "n95", "kn95")


def main() -> None:

    from unmask.data.world import UnmaskingDataset
    from unmask.faces.detect import get_detector
    from unmask.faces.io import to_uint8
    from unmask.faces.masks import draw_mask
    from unmask.synthetic import WorldConfig

    (OUT / "targets").mkdir(parents=True, exist_ok=True)
    for k, mask_type in enumerate(TYPES):
        data = UnmaskingDataset(WorldConfig(size=128, preset="standard", seed=0), split="test", length=100,
                                mask_types=mask_type)
        item = data.batch([7 * k + 3])
        for key, folder in (("masked", OUT), ("target", OUT / "targets")):
            Image.fromarray(to_uint8(item[key])[0]).save(folder / f"teaching_{mask_type}.png")

    from skimage import data as skdata

    photo = skdata.astronaut()
    face = get_detector("dlib").detect(photo)[0]
    masked, _ = draw_mask(photo, face.landmarks68, "surgical_blue", seed=0)
    Image.fromarray(masked).save(OUT / "photo_astronaut.jpg", quality=90)
    print(f"wrote examples to {OUT}")


if __name__ == "__main__":
    main()
