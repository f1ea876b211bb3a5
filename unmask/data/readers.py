"""Readers for real identity data a user already has on disk. Nothing is downloaded.

* **Market-1501** (Zheng et al. 2015): ``bounding_box_train/``, ``bounding_box_test/`` (gallery) and
  ``query/``; identity and camera come from file names such as ``0002_c1s1_000451_03.jpg``
  (identity ``-1`` = junk, ``0`` = distractor).
* **CelebA** (Liu et al. 2015): ``identity_CelebA.txt`` (``file identity``) and
  ``list_attr_celeba.txt`` (count, attribute names, then ``file ±1 …``; we map -1 to 0).
* **LFW** (Huang et al. 2007): ``pairs.txt`` with an image folder ``{Name}/{Name}_{i:04d}.jpg``.
* **insightface verification sets** (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``): a pickle of
  ``(list of encoded images, list of bools)``, read with an unpickler that builds nothing but bytes,
  lists, tuples and booleans, so a hostile file cannot run code.

Images load as float tensors ``(3, H, W)`` in ``[-1, 1]`` through :class:`ImageFileDataset`.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unmask.data.folds import default_folds
from unmask.errors import ConfigError
from unmask.faces.io import IMAGE_SUFFIXES, from_uint8, resize_image
from unmask.faces.io import load_image as decode

#: Market-1501 split folders: train, gallery, query.
MARKET_FOLDERS = {"train": "bounding_box_train", "gallery": "bounding_box_test", "query": "query"}
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
#: Folds of the insightface ``.bin`` sets (pairs are in fold order, like LFW's ``pairs.txt``).
BIN_FOLDS = 10


# ------------------------------------------------------------------------------------ images
def image_tensor(image: np.ndarray, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """A decoded uint8 ``(H, W, 3)`` image as a ``(3, H, W)`` float tensor in ``[-1, 1]``, resized to ``size``.

    The one place where the readers turn pixels into tensors (resizing with
    :func:`unmask.faces.io.resize_image`: area when shrinking, bilinear when growing).
    """
    if size is not None:
        image = resize_image(image, size)
    return from_uint8(image)[0]


def load_image_tensor(path: str | os.PathLike, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` float tensor in ``[-1, 1]``.

    Decoding is :func:`unmask.faces.io.load_image` (EXIF orientation, alpha on white, size checks);
    a bad file raises its :class:`~unmask.errors.ImageError`.

    Args:
        path: image file.
        size: resize to ``size`` (square) or ``(height, width)``; ``None`` keeps the file's size.
    """
    return image_tensor(decode(path), size)


def decode_image(data: bytes, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Decode image bytes (JPEG/PNG) to a ``(3, H, W)`` tensor in ``[-1, 1]`` (see :func:`load_image_tensor`)."""
    return image_tensor(decode(data), size)


@dataclass(frozen=True)
class ImageRecord:
    """One image file with its identity, camera and attribute labels (``-1`` where unknown)."""

    path: Path
    identity: int
    camera: int = -1
    attributes: tuple[int, ...] = ()


class ImageFileDataset(Dataset):
    """A dataset over :class:`ImageRecord`s, yielding the same dict as the teaching world's datasets.

    Items: ``{"image": (3, H, W) in [-1, 1], "identity": label, "camera": int, "attributes": (A,) float}``
    where ``label`` is the record's identity mapped through ``label_map`` (contiguous training
    labels) when given. ``labels`` holds every item's label for :class:`unmask.data.sampler.PKSampler`.

    Args:
        records: the images.
        size: resize to this (square int or ``(height, width)``).
        relabel: map identities to ``0..N-1`` in sorted order (for a softmax over train identities).
    """

    def __init__(self, records: Sequence[ImageRecord], size: int | tuple[int, int] | None = None, *,
                 relabel: bool = False) -> None:
        self.records = list(records)
        self.size = size
        ids = sorted({r.identity for r in self.records})
        self.label_map = {pid: i for i, pid in enumerate(ids)} if relabel else None
        self.labels = np.array([self._label(r) for r in self.records], dtype=np.int64)
        self.cameras = np.array([r.camera for r in self.records], dtype=np.int64)

    def _label(self, record: ImageRecord) -> int:
        return record.identity if self.label_map is None else self.label_map[record.identity]

    @property
    def num_classes(self) -> int:
        return len(set(self.labels.tolist()))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        r = self.records[index]
        return {"image": load_image_tensor(r.path, self.size), "identity": int(self.labels[index]),
                "camera": r.camera, "attributes": torch.tensor(r.attributes, dtype=torch.float32)}


# ------------------------------------------------------------------------------ Market-1501
@dataclass(frozen=True)
class Market1501:
    """The three Market-1501 splits as tuples of :class:`ImageRecord`."""

    root: Path
    train: tuple[ImageRecord, ...]
    query: tuple[ImageRecord, ...]
    gallery: tuple[ImageRecord, ...]


def parse_market_name(name: str) -> tuple[int, int]:
    """``(identity, camera)`` from a Market-1501 file name such as ``0002_c1s1_000451_03.jpg``."""
    match = _MARKET_NAME.match(Path(name).name)
    if match is None:
        raise ConfigError(f"{name!r} is not a Market-1501 file name (expected like '0002_c1s1_000451_03.jpg').")
    return int(match.group(1)), int(match.group(2))


def read_market1501(root: str | os.PathLike) -> Market1501:
    """Read a Market-1501 folder (``bounding_box_train``, ``bounding_box_test``, ``query``).

    Files whose names do not parse are skipped (e.g. ``Thumbs.db``). Identities and cameras are
    kept as in the names; use :class:`ImageFileDataset` with ``relabel=True`` for training labels.

    Raises:
        ConfigError: a split folder is missing or empty.
    """
    root = Path(root)
    splits = {}
    for split, folder in MARKET_FOLDERS.items():
        directory = root / folder
        if not directory.is_dir():
            raise ConfigError(f"{directory} not found: a Market-1501 root holds {sorted(MARKET_FOLDERS.values())}.")
        records = []
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or _MARKET_NAME.match(path.name) is None:
                continue
            pid, cam = parse_market_name(path.name)
            records.append(ImageRecord(path, pid, cam))
        if not records:
            raise ConfigError(f"{directory} holds no Market-1501 images.")
        splits[split] = tuple(records)
    return Market1501(root, **splits)


# ---------------------------------------------------------------------------------- CelebA
@dataclass(frozen=True)
class CelebAAttributes:
    """CelebA attribute table: ``values`` is ``(N, A)`` int8 in ``{0, 1}``, rows in ``files`` order."""

    names: tuple[str, ...]
    files: tuple[str, ...]
    values: np.ndarray


def read_celeba_identities(path: str | os.PathLike) -> dict[str, int]:
    """``{file name: identity}`` from ``identity_CelebA.txt`` (one ``000001.jpg 2880`` per line)."""
    out = {}
    for line_no, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ConfigError(f"{path}:{line_no}: expected 'file identity', got {line!r}.")
        out[parts[0]] = int(parts[1])
    return out


def read_celeba_attributes(path: str | os.PathLike) -> CelebAAttributes:
    """Read ``list_attr_celeba.txt``: a count line, a line of attribute names, then ``file ±1 …``."""
    lines = [ln for ln in _read_lines(path) if ln.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ConfigError(f"{path}: expected a count line and an attribute-name line (CelebA list_attr format).")
    names = tuple(lines[1].split())
    files, rows = [], []
    for line_no, line in enumerate(lines[2:], 3):
        parts = line.split()
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1", "0") for v in parts[1:]):
            raise ConfigError(f"{path}:{line_no}: expected a file name and {len(names)} values of 1/-1.")
        files.append(parts[0])
        rows.append([1 if v == "1" else 0 for v in parts[1:]])
    if int(lines[0]) != len(files):
        raise ConfigError(f"{path}: header says {int(lines[0])} images but {len(files)} rows follow; "
                          "the file is truncated.")
    return CelebAAttributes(names, tuple(files), np.array(rows, dtype=np.int8).reshape(len(files), len(names)))


def read_celeba(image_dir: str | os.PathLike, identity_file: str | os.PathLike,
                attribute_file: str | os.PathLike | None = None) -> tuple[list[ImageRecord], tuple[str, ...]]:
    """CelebA images with identities and (optionally) attributes.

    Images listed in the identity file but missing from ``image_dir`` are skipped; images without
    an attribute row get ``-1`` (unknown) for every attribute.

    Returns:
        ``(records, attribute_names)``.
    """
    image_dir = Path(image_dir)
    identities = read_celeba_identities(identity_file)
    names: tuple[str, ...] = ()
    table: dict[str, tuple[int, ...]] = {}
    if attribute_file is not None:
        attrs = read_celeba_attributes(attribute_file)
        names = attrs.names
        table = {f: tuple(int(v) for v in row) for f, row in zip(attrs.files, attrs.values)}
    unknown = tuple([-1] * len(names))
    records = [ImageRecord(image_dir / f, pid, -1, table.get(f, unknown))
               for f, pid in sorted(identities.items()) if (image_dir / f).is_file()]
    if not records:
        raise ConfigError(f"none of the {len(identities)} images named in {identity_file} is in {image_dir}.")
    return records, names


# ------------------------------------------------------------------------------------- LFW
@dataclass(frozen=True)
class VerificationPair:
    """Two image files, whether they show the same person, and the protocol fold."""

    first: Path
    second: Path
    same: bool
    fold: int


def read_lfw_pairs(pairs_file: str | os.PathLike, image_root: str | os.PathLike) -> list[VerificationPair]:
    """Read LFW's ``pairs.txt`` and resolve image paths under ``image_root``.

    The header is ``folds pairs_per_class`` (``10 300``) or a single count (``pairsDevTest.txt``);
    each fold lists its matched pairs (``name i j``) then its mismatched pairs (``name1 i name2 j``).
    Images are ``{root}/{Name}/{Name}_{i:04d}.{jpg|png}``.

    Raises:
        ConfigError: malformed file or missing image.
    """
    lines = [ln.split() for ln in _read_lines(pairs_file) if ln.strip()]
    header = lines[0] if lines else []
    if not header or len(header) > 2 or not all(h.isdigit() for h in header):
        raise ConfigError(f"{pairs_file}: first line must be 'folds pairs' or 'pairs' (LFW pairs.txt format).")
    n_folds, per_class = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    body = lines[1:]
    if len(body) != n_folds * 2 * per_class:
        raise ConfigError(f"{pairs_file}: header announces {n_folds}×2×{per_class} pairs, found {len(body)} lines.")
    root = Path(image_root)
    ext_cache: dict[str, str] = {}
    pairs = []
    for i, parts in enumerate(body):
        fold, same = i // (2 * per_class), (i % (2 * per_class)) < per_class
        if same and len(parts) == 3:
            a, b = (parts[0], int(parts[1])), (parts[0], int(parts[2]))
        elif not same and len(parts) == 4:
            a, b = (parts[0], int(parts[1])), (parts[2], int(parts[3]))
        else:
            raise ConfigError(f"{pairs_file}: line {i + 2} {' '.join(parts)!r} should be a "
                              f"{'matched (name i j)' if same else 'mismatched (name1 i name2 j)'} pair.")
        pairs.append(VerificationPair(_lfw_path(root, *a, ext_cache), _lfw_path(root, *b, ext_cache), same, fold))
    return pairs


def _lfw_path(root: Path, name: str, index: int, ext_cache: dict[str, str]) -> Path:
    stem = root / name / f"{name}_{index:04d}"
    if "ext" in ext_cache and stem.with_suffix(ext_cache["ext"]).is_file():
        return stem.with_suffix(ext_cache["ext"])
    for ext in IMAGE_SUFFIXES:
        if stem.with_suffix(ext).is_file():
            ext_cache["ext"] = ext
            return stem.with_suffix(ext)
    raise ConfigError(f"LFW image {stem}.jpg not found under {root}; pass the folder holding one "
                      "sub-folder per person.")


# ------------------------------------------------------------------ insightface .bin sets
@dataclass(frozen=True)
class VerificationBin:
    """An insightface verification set: ``images[2i]`` and ``images[2i+1]`` form pair ``i``."""

    images: tuple[bytes, ...]
    issame: np.ndarray

    @property
    def folds(self) -> np.ndarray:
        """Fold of each pair: :data:`BIN_FOLDS` consecutive chunks."""
        return default_folds(len(self.issame), BIN_FOLDS)

    def pair_images(self, index: int, size: int | tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The two decoded images of pair ``index`` as ``(3, H, W)`` tensors in ``[-1, 1]``."""
        return decode_image(self.images[2 * index], size), decode_image(self.images[2 * index + 1], size)


def _latin1_bytes(text, encoding):
    """What protocol-2 pickles of Python-3 ``bytes`` call (``_codecs.encode(str, 'latin1')``), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin1-encoded bytes are allowed in a verification .bin")
    return text.encode("latin1")


class _BinUnpickler(pickle.Unpickler):
    """Refuses every global: only the opcodes for bytes, str, lists, tuples, ints and bools work."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refusing to build {module}.{name}: a verification .bin holds only "
                                     "bytes, lists and booleans")


def read_verification_bin(path: str | os.PathLike) -> VerificationBin:
    """Read an insightface ``.bin`` verification set (LFW, CFP-FP, AgeDB-30) without running pickled code.

    Raises:
        ConfigError: the file cannot be read, asks for any object beyond bytes/lists/booleans, or
            its lists do not fit (two images per pair).
    """
    try:
        with open(path, "rb") as f:
            obj = _BinUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot read verification set {path}: {exc}. Use the insightface .bin files "
                          "(a pickle of encoded images and same/different flags).") from exc
    if not (isinstance(obj, tuple | list) and len(obj) == 2 and isinstance(obj[0], list | tuple)
            and isinstance(obj[1], list | tuple)):
        raise ConfigError(f"{path} is not a (images, issame) pair of lists.")
    images, issame = obj
    if not all(isinstance(b, bytes | bytearray) for b in images):
        raise ConfigError(f"{path}: the image list holds something other than encoded image bytes.")
    if not all(isinstance(s, bool) for s in issame):
        raise ConfigError(f"{path}: the same/different list holds something other than booleans.")
    if len(images) != 2 * len(issame):
        raise ConfigError(f"{path}: {len(images)} images for {len(issame)} pairs (expected two per pair).")
    return VerificationBin(tuple(bytes(b) for b in images), np.array(issame, dtype=bool))


def _read_lines(path: str | os.PathLike) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}.") from exc
