"""Write the README's before/after picture from the app's examples: ``python -m demo.make_figures``.

``docs/app_before_after.jpg``: for each teaching example of ``demo/examples`` the masked input, what
the default bundle returns (``UnmaskPipeline`` in its default mode, exactly what the app calls), the
mask region it used, and the true unmasked face. Regenerate it whenever ``weights/teaching`` changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

EXAMPLES = Path(__file__).resolve().parent / "examples"
DOCS = Path(__file__).resolve().parent.parent / "docs"
COLUMNS = ("masked input", "recovered", "mask used", "true face")


def before_after(bundle: str = "teaching", size: int = 128) -> Image.Image:
    """The figure: one row per teaching example, :data:`COLUMNS` as columns, a header strip on top."""
    from unmask import UnmaskPipeline

    pipe = UnmaskPipeline.from_pretrained(bundle)
    rows = []
    for path in sorted(EXAMPLES.glob("teaching_*.png")):
        masked = np.asarray(Image.open(path).convert("RGB"))
        target = np.asarray(Image.open(EXAMPLES / "targets" / path.name).convert("RGB"))
        result = pipe(masked, aligned=True)
        mask = (np.clip(result.faces[0].mask, 0, 1) * 255).astype(np.uint8)
        tiles = [masked, result.output, np.repeat(mask[..., None], 3, axis=2), target]
        rows.append(np.concatenate([np.asarray(Image.fromarray(t).resize((size, size), Image.BICUBIC))
                                    for t in tiles], axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    header = Image.new("RGB", (grid.width, 18), "white")
    draw = ImageDraw.Draw(header)
    for i, name in enumerate(COLUMNS):
        draw.text((i * size + 4, 3), name, fill="black")
    figure = Image.new("RGB", (grid.width, grid.height + header.height), "white")
    figure.paste(header, (0, 0))
    figure.paste(grid, (0, header.height))
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.make_figures", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="teaching")
    parser.add_argument("--out", default=str(DOCS / "app_before_after.jpg"))
    args = parser.parse_args(argv)
    before_after(args.bundle).save(args.out, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
