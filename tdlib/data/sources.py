"""Readers for the on-disk layouts (torchvision's own, plus a CIFAR-10 npz mirror).

Each reader returns uint8 images in NCHW and int64 labels; nothing is written to the data root.
Files with a known sha256 are verified before use.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdlib.errors import DataCorruptError, DataError

# sha256 of the files as published (uncompressed idx files are byte-identical to upstream).
SHA256: dict[str, str] = {
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "FashionMNIST/raw/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "FashionMNIST/raw/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "FashionMNIST/raw/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    # the offline CIFAR-10 mirror (a 15k-image train subset decoded from JPEG, the full test set)
    "cifar10/train.npz": "fb4f629996ebcf5086f750e47d8c06b493b598cb478575d7facafdc691a35e4c",
    "cifar10/test.npz": "2859e36828f85123307d8e14978879a2a0ad7a6fa3ff63ebfe27851ec15f3146",
}

_VERIFIED: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class Arrays:
    """Images (uint8, N x C x H x W) and labels (int64, N)."""

    x: np.ndarray
    y: np.ndarray


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(root: Path, rel: str) -> Path:
    """Check that ``root/rel`` exists and, if its sha256 is known, that it matches.

    Verified files are remembered for the process (keyed by path, size and mtime).

    Raises:
        DataError: the file is missing or its checksum does not match.
    """
    path = root / rel
    if not path.is_file():
        raise DataError(f"missing file {str(path)!r}")
    expected = SHA256.get(rel)
    if expected is None:
        return path
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) == expected:
        return path
    got = sha256_file(path)
    if got != expected:
        raise DataCorruptError(
            f"checksum mismatch for {str(path)!r}: sha256 {got[:16]}… != expected "
            f"{expected[:16]}…; the file is truncated or corrupted: delete it and restore it "
            "(or let tdlib download it again when online)"
        )
    _VERIFIED[key] = expected
    return path


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    data = path.read_bytes()
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x0800 + ndim:
        raise DataCorruptError(f"{str(path)!r} is not an idx{ndim} file (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise DataCorruptError(
            f"{str(path)!r} is truncated: {len(data) - offset} bytes of data, header says {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def read_idx_dataset(root: Path, folder: str, train: bool) -> Arrays:
    """MNIST / Fashion-MNIST from ``root/<folder>/raw/*-ubyte`` (torchvision's raw layout)."""
    prefix = "train" if train else "t10k"
    img = verify(root, f"{folder}/raw/{prefix}-images-idx3-ubyte")
    lab = verify(root, f"{folder}/raw/{prefix}-labels-idx1-ubyte")
    x = _read_idx(img, 3)[:, None, :, :]
    y = _read_idx(lab, 1).astype(np.int64)
    if len(x) != len(y):
        raise DataCorruptError(f"{folder}: {len(x)} images but {len(y)} labels")
    return Arrays(x=np.ascontiguousarray(x), y=y)


def read_cifar_npz(root: Path, train: bool) -> tuple[Arrays, tuple[str, ...]]:
    """CIFAR-10 from ``root/cifar10/{train,test}.npz`` (x uint8 NHWC, y, classes)."""
    path = verify(root, f"cifar10/{'train' if train else 'test'}.npz")
    with np.load(path, allow_pickle=False) as d:
        x = np.ascontiguousarray(d["x"].transpose(0, 3, 1, 2))
        y = d["y"].astype(np.int64)
        classes = tuple(str(c) for c in d["classes"])
    return Arrays(x=x, y=y), classes


def cifar_pickles_present(root: Path) -> bool:
    """True when torchvision's pickled CIFAR-10 batches are under ``root``."""
    return (root / "cifar-10-batches-py" / "data_batch_1").is_file()


IMAGE_SUFFIXES = (".jpeg", ".jpg")


def _visible(p: Path) -> bool:
    """Not a hidden entry (``.ipynb_checkpoints``, ``.DS_Store``, macOS ``._x.JPEG`` files)."""
    return not p.name.startswith(".")


def imagenette_files(
    root: Path, split: str, classes: Sequence[str] | None = None
) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Sorted image files, labels and class folder names of ``root/imagenette2-160/<split>``.

    Hidden entries (``.ipynb_checkpoints`` and other dot-folders/files) are skipped. With
    ``classes`` (the expected class folders, in label order) labels are indices into ``classes``
    whatever else the folder holds: a folder not in ``classes`` is skipped with a warning, so a
    stray folder never shifts the labels. Without it, the visible subfolders (sorted) are the
    classes.

    Raises:
        DataError: the split folder is missing.
        DataCorruptError: an expected class folder is missing or holds no image, or the split
            holds no image at all.
    """
    base = root / "imagenette2-160" / split
    if not base.is_dir():
        raise DataError(f"missing folder {str(base)!r}")
    present = sorted(p.name for p in base.iterdir() if p.is_dir() and _visible(p))
    if classes is None:
        classes = present
    else:
        classes = list(classes)
        stray = [n for n in present if n not in classes]
        if stray:
            warnings.warn(
                f"ignoring {len(stray)} folder(s) in {str(base)!r} that are not classes of this "
                f"dataset: {', '.join(stray)}",
                stacklevel=2,
            )
        lacking = [n for n in classes if n not in present]
        if lacking:
            raise DataCorruptError(
                f"{str(base)!r} lacks the class folder(s) {', '.join(lacking)}: train and val must "
                f"both hold all {len(classes)} classes ({', '.join(classes)}); restore them"
            )
    files: list[Path] = []
    labels: list[int] = []
    for c, name in enumerate(classes):
        imgs = sorted(p for p in (base / name).iterdir()
                      if _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not imgs:
            raise DataCorruptError(
                f"class folder {str(base / name)!r} holds no images "
                f"(*{', *'.join(IMAGE_SUFFIXES)}); restore it"
            )
        files.extend(imgs)
        labels.extend([c] * len(imgs))
    if not files:
        raise DataError(f"no images under {str(base)!r}")
    return files, np.asarray(labels, dtype=np.int64), tuple(classes)


def decode_images(files: list[Path], size: int) -> np.ndarray:
    """Decode JPEGs to RGB and resize (anti-aliased, aspect ratio not kept) to ``size``²; NCHW."""
    from PIL import Image

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
        except OSError as exc:
            raise DataCorruptError(
                f"cannot decode image {str(f)!r} ({exc}); the file is corrupted: restore it"
            ) from exc
        out[i] = arr.transpose(2, 0, 1)
    return out
