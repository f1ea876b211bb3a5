"""Write the teaching world to disk in the layouts the real-data readers accept, and draw contact sheets.

Layouts (``unmask.data.readers`` reads them like the real thing):

* ``OUT/faces/{train,test}/NNNNNN.png`` aligned unmasked faces + ``landmarks.json`` per folder (file ->
  68 x 2, crop pixels; the layout of ``python -m unmask.faces align``), ``OUT/faces/identity_CelebA.txt``
  and ``OUT/faces/list_attr_celeba.txt`` (CelebA formats, paths relative to ``OUT/faces``).
* ``OUT/market/{bounding_box_train,bounding_box_test,query}/{pid:04d}_c{cam}s1_{frame:06d}_00.png``.
* ``OUT/lfw/{Name}/{Name}_{i:04d}.png`` + ``OUT/lfw/pairs.txt`` (LFW 10-fold format).

Every file is written atomically (temporary name, then rename) and existing files are skipped, so an
interrupted export resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from unmask.data.identity import ReIDSet
from unmask.data.readers import MARKET_FOLDERS
from unmask.data.world import UnmaskingDataset, VerificationPairs, WorldViews, pair_views
from unmask.faces.io import atomic_write, save_image, to_uint8
from unmask.synthetic.config import WorldConfig
from unmask.synthetic.world import ATTRIBUTE_NAMES, FaceWorld

RENDER_CHUNK = 64


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img")


def _render_missing(paths: Sequence[Path], render: Callable[[np.ndarray], np.ndarray], desc: str) -> None:
    """Render and save the items whose file does not exist yet, in chunks (``render(idx) -> uint8``)."""
    todo = np.asarray([i for i, p in enumerate(paths) if not p.exists()], dtype=np.int64)
    with _progress(len(paths), desc) as bar:
        bar.update(len(paths) - len(todo))
        for start in range(0, len(todo), RENDER_CHUNK):
            chunk = todo[start : start + RENDER_CHUNK]
            images = render(chunk)
            for i, image in zip(chunk.tolist(), images):
                save_image(paths[i], image)
            bar.update(len(chunk))


def export_faces(out: Path, config: WorldConfig, n: int) -> None:
    """``n`` aligned unmasked faces split by identity into ``train`` and ``test``, with metadata."""
    root = out / "faces"
    n_test = int(round(n * config.test_fraction))
    lines_id, lines_attr = [], []
    for split, count, offset in (("train", n - n_test, 0), ("test", n_test, n - n_test)):
        data = UnmaskingDataset(config, split=split, length=max(count, 1))
        ids, image_ids, cams = data.locate(range(count))
        names = [f"{offset + i:06d}.png" for i in range(count)]
        paths = [root / split / name for name in names]

        def render(idx: np.ndarray, ids=ids, image_ids=image_ids, cams=cams, data=data) -> np.ndarray:
            out_ = data.world.render(torch.from_numpy(ids[idx]), torch.from_numpy(image_ids[idx]),
                                     torch.from_numpy(cams[idx]))
            return to_uint8(out_.images)

        _render_missing(paths, render, f"faces/{split}")
        landmarks, attributes = _metadata(data.world, ids, image_ids, cams)
        if count:
            atomic_write(root / split / "landmarks.json",
                               json.dumps({nm: np.round(lm, 3).tolist() for nm, lm in zip(names, landmarks)}))
        for k, name in enumerate(names):
            lines_id.append(f"{split}/{name} {ids[k]}")
            lines_attr.append(f"{split}/{name} " + " ".join("1" if a > 0.5 else "-1" for a in attributes[k]))
    atomic_write(root / "identity_CelebA.txt", "\n".join(lines_id) + "\n")
    header = f"{len(lines_attr)}\n{' '.join(ATTRIBUTE_NAMES)}\n"
    atomic_write(root / "list_attr_celeba.txt", header + "\n".join(lines_attr) + "\n")


def _metadata(world: FaceWorld, ids, image_ids, cams) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and attributes without rendering pixels (cheap, so a resumed export rewrites them)."""
    lms, attrs = [], []
    for start in range(0, len(ids), 4096):
        sl = slice(start, start + 4096)
        p = world.params(ids[sl], image_ids[sl], cams[sl])
        lms.append(world.landmarks(ids[sl], image_ids[sl], cams[sl]).cpu().numpy())
        attrs.append(world.attributes(p).cpu().numpy())
    if not lms:
        return np.zeros((0, 68, 2)), np.zeros((0, len(ATTRIBUTE_NAMES)))
    return np.concatenate(lms), np.concatenate(attrs)


def market_name(pid: int, camera: int, frame: int) -> str:
    """Market-1501 file name: ``0002_c1s1_000451_00.png``; junk is ``-1_c…``; cameras are 1-based."""
    person = "-1" if pid < 0 else f"{pid:04d}"
    return f"{person}_c{camera + 1}s1_{frame:06d}_00.png"


def export_market(out: Path, split: ReIDSet) -> None:
    """A re-identification set of :class:`~unmask.data.world.WorldViews` (train, query, gallery) in the
    Market-1501 layout (file names carry the person ids and cameras)."""
    frame = 0
    for part, folder in MARKET_FOLDERS.items():
        data: WorldViews = getattr(split, part)
        names = []
        for k in range(len(data)):
            names.append(market_name(int(data.pids[k]), int(data.cameras[k]), frame))
            frame += 1
        paths = [out / "market" / folder / name for name in names]
        _render_missing(paths, lambda idx, data=data: to_uint8(data.batch(idx)["image"]), f"market/{folder}")


def lfw_name(identity: int) -> str:
    return f"Person_{identity:05d}"


def export_lfw(out: Path, pairs: VerificationPairs) -> None:
    """Verification pairs in the LFW layout: image folders per person and a 10-fold ``pairs.txt``."""
    root = out / "lfw"
    views = np.unique(np.concatenate([pairs.pairs[:, 0:2], pairs.pairs[:, 2:4]]), axis=0)
    paths = [root / lfw_name(i) / f"{lfw_name(i)}_{v + 1:04d}.png" for i, v in views.tolist()]
    images = pair_views(pairs.world, views[:, 0], views[:, 1])  # unmasked, as LFW's photos are
    _render_missing(paths, lambda idx: to_uint8(images.batch(idx)["image"]), "lfw")
    per_fold = int((pairs.folds == 0).sum() // 2)
    lines = [f"{pairs.n_folds}\t{per_fold}"]
    for (a, ia, b, ib), same in zip(pairs.pairs.tolist(), pairs.issame.tolist()):
        if same:
            lines.append(f"{lfw_name(a)}\t{ia + 1}\t{ib + 1}")
        else:
            lines.append(f"{lfw_name(a)}\t{ia + 1}\t{lfw_name(b)}\t{ib + 1}")
    atomic_write(root / "pairs.txt", "\n".join(lines) + "\n")


def contact_sheet(config: WorldConfig, out: Path, n_identities: int = 6, n_views: int = 6) -> Path:
    """A PNG showing identities x nuisance, masked vs unmasked pairs, and every camera.

    Three panels, top to bottom: each row one identity in ``n_views`` nuisance draws; rows of
    unmasked targets over their masked inputs; one identity seen by each camera.
    """
    from PIL import Image, ImageDraw

    world = FaceWorld(config)
    size, pad = config.size, 4
    train = world.identity_split("train").numpy()
    ids = train[:: max(1, len(train) // n_identities)][:n_identities]
    grid_ids = np.repeat(ids, n_views)
    grid_views = np.tile(np.arange(n_views), n_identities)
    panel1 = to_uint8(world.render(torch.from_numpy(grid_ids), torch.from_numpy(grid_views),
                                   torch.from_numpy((grid_ids + grid_views) % config.n_cameras)).images)
    pairs = UnmaskingDataset(config, split="test", length=n_views * 2).batch(range(n_views))
    panel2 = np.concatenate([to_uint8(pairs["target"]), to_uint8(pairs["masked"])])
    cams = np.arange(config.n_cameras)
    cam_ids = np.repeat(ids[:2], len(cams))
    panel3 = to_uint8(world.render(torch.from_numpy(cam_ids), torch.zeros(len(cam_ids), dtype=torch.long) + 7,
                                   torch.from_numpy(np.tile(cams, 2))).images)
    cols = max(n_views, len(cams))
    panels = [("identities x nuisance", panel1, n_identities, n_views),
              ("unmasked target / masked input", panel2, 2, n_views),
              (f"cameras 1..{len(cams)}", panel3, 2, len(cams))]
    title_h = 14
    height = sum(title_h + rows * (size + pad) for _, _, rows, _ in panels) + pad
    sheet = Image.new("RGB", (cols * (size + pad) + pad, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for title, images, rows, ncol in panels:
        draw.text((pad, y + 1), title, fill=(0, 0, 0))
        y += title_h
        for k in range(rows * ncol):
            r, c = divmod(k, ncol)
            sheet.paste(Image.fromarray(images[k]), (pad + c * (size + pad), y + r * (size + pad)))
        y += rows * (size + pad)
    return save_image(out, np.asarray(sheet))
