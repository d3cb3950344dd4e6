"""The data layer on the offline mirror: shapes, ranges, counts, splits, errors, read-only root."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tdlib.config import DataConfig
from tdlib.data import load_dataset
from tdlib.data.transforms import ImagenetteTrain, ShiftFlip, pca_colour
from tdlib.errors import DataError, UnknownNameError


@pytest.mark.parametrize(
    ("name", "shape", "n_train", "n_test"),
    [
        ("mnist", (1, 28, 28), 60_000, 10_000),
        ("fashion_mnist", (1, 28, 28), 60_000, 10_000),
        ("cifar10", (3, 32, 32), 50_000, 10_000),  # cifar10-jpeg/: the full splits
    ],
)
def test_full_splits(name: str, shape: tuple[int, ...], n_train: int, n_test: int) -> None:
    b = load_dataset(name)
    assert b.input_shape == shape
    assert tuple(b.train.x.shape[1:]) == shape and b.train.x.dtype == torch.uint8
    assert len(b.train) + len(b.val) == n_train
    assert len(b.val) == round(0.1 * n_train)
    assert len(b.test) == n_test
    x = b.test.images(slice(0, 64))
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert sorted(torch.unique(b.train.y).tolist()) == list(range(10))
    assert len(b.classes) == 10
    assert b.pixel_mean.shape == shape


def test_mnist_statistics_are_the_real_dataset() -> None:
    b = load_dataset("mnist", val_fraction=0.0)
    assert len(b.train) == 60_000
    assert float(b.train.images().mean()) == pytest.approx(0.1306604762738429, abs=1e-6)
    assert torch.bincount(b.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_is_seeded_deterministic_and_disjoint() -> None:
    a = load_dataset("fashion_mnist", train_per_class=50, test_per_class=5, split_seed=3)
    b = load_dataset("fashion_mnist", train_per_class=50, test_per_class=5, split_seed=3)
    c = load_dataset("fashion_mnist", train_per_class=50, test_per_class=5, split_seed=4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.train.x, c.train.x)
    assert len(a.train) == 450 and len(a.val) == 50 and len(a.test) == 50
    assert torch.bincount(a.test.y).tolist() == [5] * 10  # stratified
    # validation images are not in the training split
    tr = {bytes(x.numpy()) for x in a.train.x}
    assert not any(bytes(x.numpy()) in tr for x in a.val.x)


def test_cifar_aug_and_pixel_mean_normalisation() -> None:
    b = load_dataset("cifar10_aug", train_per_class=10, test_per_class=2)
    assert isinstance(b.train_transform, ShiftFlip)
    assert b.model_mean() is not None and b.model_mean().shape == (3, 32, 32)
    assert load_dataset("mnist", train_per_class=5).model_mean() is None  # reference: none
    x = b.train.images()
    g = torch.Generator().manual_seed(0)
    y = b.train_transform(x, g)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert not torch.equal(x, y)


def test_imagenette_subset_and_recipe() -> None:
    b = load_dataset("imagenette", image_size=32, resize_size=40, train_per_class=5,
                     test_per_class=2)
    assert b.input_shape == (3, 32, 32)
    assert tuple(b.train.x.shape[1:]) == (3, 40, 40)  # stored at the resize, cropped per batch
    assert tuple(b.test.x.shape[1:]) == (3, 32, 32) and tuple(b.val.x.shape[1:]) == (3, 32, 32)
    assert len(b.train) + len(b.val) == 50 and len(b.test) == 20
    assert b.classes[0] == "tench"
    assert isinstance(b.train_transform, ImagenetteTrain)
    out = b.train_transform(b.train.images(), torch.Generator().manual_seed(0))
    assert out.shape == (len(b.train), 3, 32, 32)


def test_pca_colour_zero_std_is_identity() -> None:
    x = torch.rand(4, 3, 8, 8)
    assert torch.allclose(pca_colour(x, std=0.0), x)


def test_unknown_dataset() -> None:
    with pytest.raises(UnknownNameError, match="unknown dataset 'svhn'.*accepted: cifar10"):
        load_dataset("svhn")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*TDLIB_DATA"):
        load_dataset(DataConfig("mnist", root=str(tmp_path / "nope")))


def test_missing_files_offline(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig("fashion_mnist", root=str(tmp_path)))
    msg = str(info.value)
    assert "'fashion_mnist' not found under data root" in msg
    assert str(tmp_path) in msg and "FashionMNIST/raw" in msg and "TDLIB_DATA" in msg


def _copy_mnist(data_root: Path, dest: Path) -> Path:
    shutil.copytree(data_root / "MNIST", dest / "MNIST")
    return dest


def test_truncated_file_fails_checksum(data_root: Path, tmp_path: Path) -> None:
    root = _copy_mnist(data_root, tmp_path)
    f = root / "MNIST/raw/t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="checksum mismatch.*truncated or corrupted"):
        load_dataset(DataConfig("mnist", root=str(root)))


def test_read_only_root_works_and_stays_untouched(data_root: Path, tmp_path: Path) -> None:
    root = _copy_mnist(data_root, tmp_path / "ro")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        b = load_dataset(DataConfig("mnist", root=str(root), train_per_class=3))
        assert len(b.train) + len(b.val) == 30
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_imagenette_cache_goes_to_cache_dir_not_root(data_root: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDLIB_CACHE", str(tmp_path / "c"))
    load_dataset("imagenette", image_size=16, resize_size=20, train_per_class=1, test_per_class=1)
    assert list((tmp_path / "c" / "decoded").glob("*.npy"))
    again = load_dataset("imagenette", image_size=16, resize_size=20, train_per_class=1,
                         test_per_class=1)
    assert len(again.test) == 10
    assert np.isfinite(again.pixel_mean.numpy()).all()
