"""Object boxes for Imagenette images (real ImageNet / Stanford Dogs annotations).

The repository ships ``imagenette_boxes.csv`` (a copy of the offline mirror's
``imagenette2-160/boxes.csv``; provenance in ``imagenette_boxes.md``), so users of the official
download have the boxes too. One row per box::

    filename,split,wnid,orig_w,orig_h,xmin,ymin,xmax,ymax,source

in original-image pixels (0-based, inclusive) with the original image size. Imagenette's images are
squash-resizes of the originals, so a box maps onto an ``S x S`` image as ``x * S / orig_w``,
``y * S / orig_h`` (:meth:`Box.scaled`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdlib.errors import DataCorruptError, DataError

__all__ = ["BOXES_FILE", "BOXES_SHA256", "Box", "box_mask", "read_boxes"]

#: The boxes file shipped with tdlib.
BOXES_FILE = Path(__file__).with_name("imagenette_boxes.csv")
#: sha256 of the shipped file (the mirror's ``imagenette2-160/boxes.csv``, byte for byte).
BOXES_SHA256 = "b1cd0f66b20713ebbb14b899f900b2188c2f3dc69ab58e571e078efcda1f6769"

_COLUMNS = ("filename", "split", "wnid", "orig_w", "orig_h", "xmin", "ymin", "xmax", "ymax", "source")


@dataclass(frozen=True)
class Box:
    """One object box in original-image pixels (inclusive corners) with the original size."""

    wnid: str
    orig_w: int
    orig_h: int
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    source: str

    def scaled(self, size: int) -> tuple[float, float, float, float]:
        """The box on the ``size x size`` squash-resized image: ``(x0, y0, x1, y1)``, continuous
        pixel coordinates (``x1``/``y1`` exclusive)."""
        sx, sy = size / self.orig_w, size / self.orig_h
        return (self.xmin * sx, self.ymin * sy, (self.xmax + 1) * sx, (self.ymax + 1) * sy)


def read_boxes(path: str | os.PathLike[str] | None = None) -> dict[tuple[str, str], list[Box]]:
    """The boxes by ``(split, filename)`` (``split`` is ``"train"`` or ``"val"``).

    Raises:
        DataError: the file is missing.
        DataCorruptError: a malformed file (header, a field that is not a number, an unknown
            split), or a box outside its image or with its corners swapped.
    """
    p = Path(path) if path is not None else BOXES_FILE
    if not p.is_file():
        raise DataError(f"missing Imagenette boxes file {str(p)!r}; restore it from the repository "
                        "(tdlib/data/imagenette_boxes.csv) or the mirror (imagenette2-160/boxes.csv)")
    out: dict[tuple[str, str], list[Box]] = {}
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != _COLUMNS:
            raise DataCorruptError(f"{str(p)!r} is not an Imagenette boxes file: its header is "
                                   f"{header!r}, expected {','.join(_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{str(p)!r} line {line}"
            if len(row) != len(_COLUMNS):
                raise DataCorruptError(f"{where}: {len(row)} fields, expected {len(_COLUMNS)}")
            name, split, wnid = row[0], row[1], row[2]
            if split not in ("train", "val"):
                raise DataCorruptError(f"{where}: split {split!r} is neither 'train' nor 'val'")
            try:
                w, h, x0, y0, x1, y1 = (int(v) for v in row[3:9])
            except ValueError as exc:
                raise DataCorruptError(f"{where}: a size or coordinate is not an integer "
                                       f"({exc})") from exc
            if w <= 0 or h <= 0:
                raise DataCorruptError(f"{where}: image size {w}x{h} is not positive")
            if not (0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h):
                raise DataCorruptError(
                    f"{where}: box ({x0},{y0})-({x1},{y1}) lies outside its {w}x{h} image or has "
                    "its corners swapped; fix or remove the row")
            out.setdefault((split, name), []).append(Box(wnid, w, h, x0, y0, x1, y1, row[9]))
    if not out:
        raise DataCorruptError(f"{str(p)!r} holds no boxes")
    return out


def box_mask(boxes: list[Box], size: int) -> np.ndarray:
    """A ``size x size`` bool mask: True on pixels whose centre lies inside any of ``boxes``, and
    on the pixel holding each box's centre (so a box smaller than a pixel is never empty)."""
    centres = np.arange(size) + 0.5
    mask = np.zeros((size, size), dtype=bool)
    for b in boxes:
        x0, y0, x1, y1 = b.scaled(size)
        cols = (centres >= x0) & (centres < x1)
        rows = (centres >= y0) & (centres < y1)
        mask |= rows[:, None] & cols[None, :]
        mask[min(int((y0 + y1) / 2), size - 1), min(int((x0 + x1) / 2), size - 1)] = True
    return mask
