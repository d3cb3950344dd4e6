"""Bad data as users meet it: image-folder datasets with stray folders and files, mismatched
splits, damaged mirrors, the one-line "dataset missing" error, in-memory datasets built by hand,
and a data root ($TDLIB_DATA, the root argument) that is a file or an empty string."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tdlib.config import DataConfig
from tdlib.data import ArrayDataset, data_root, load_dataset
from tdlib.data import datasets as ds_mod
from tdlib.data.datasets import IMAGENETTE_NAMES
from tdlib.data.root import cache_dir
from tdlib.errors import ConfigError, DataCorruptError, DataError, InputShapeError

WNIDS = sorted(IMAGENETTE_NAMES)


def _jpeg(path: Path, value: int, size: int = 12) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path, quality=95)


def class_value(c: int) -> int:
    """The grey level of every image of class ``c`` in the fake tree (labels are readable back)."""
    return 10 + 24 * c


def fake_imagenette(root: Path, per_class: int = 2, val_per_class: int = 1) -> Path:
    """``root/imagenette2-160/{train,val}/<wnid>/*.JPEG``, class ``c`` a flat grey image."""
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c, wnid in enumerate(WNIDS):
            for i in range(n):
                _jpeg(root / "imagenette2-160" / split / wnid / f"{wnid}_{i}.JPEG", class_value(c))
    return root


def _load(root: Path) -> object:
    return load_dataset(DataConfig("imagenette", root=str(root), image_size=8, resize_size=8,
                                   val_fraction=0.0))


def _labels_match_pixels(x: torch.Tensor, y: torch.Tensor) -> bool:
    grey = x.float().mean((1, 2, 3))
    expected = torch.tensor([class_value(int(c)) for c in y], dtype=torch.float32)
    return bool(torch.allclose(grey, expected, atol=3.0))


def test_fake_tree_loads_with_the_right_labels(tmp_path: Path) -> None:
    b = _load(fake_imagenette(tmp_path))
    assert b.classes[0] == "tench" and len(b.classes) == 10  # type: ignore[attr-defined]
    assert _labels_match_pixels(b.train.x, b.train.y)  # type: ignore[attr-defined]
    assert _labels_match_pixels(b.test.x, b.test.y)  # type: ignore[attr-defined]


def test_ipynb_checkpoints_folder_does_not_shift_labels(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    for split in ("train", "val"):  # Jupyter leaves these when a folder is opened in the browser
        (root / "imagenette2-160" / split / ".ipynb_checkpoints").mkdir()
    _jpeg(root / "imagenette2-160" / "train" / ".ipynb_checkpoints" / "x-checkpoint.JPEG", 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # hidden folders are skipped silently
        b = _load(root)
    assert sorted(torch.unique(b.train.y).tolist()) == list(range(10))  # type: ignore[attr-defined]
    assert _labels_match_pixels(b.train.x, b.train.y)  # type: ignore[attr-defined]
    assert _labels_match_pixels(b.test.x, b.test.y)  # type: ignore[attr-defined]


def test_extra_class_folder_is_ignored_with_a_warning_not_a_label(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    _jpeg(root / "imagenette2-160" / "train" / "n00000001" / "stray.JPEG", 200)
    _jpeg(root / "imagenette2-160" / "train" / "aaa_my_extra_class" / "a.JPEG", 250)
    with pytest.warns(UserWarning, match="ignoring 2 folder.*aaa_my_extra_class, n00000001"):
        b = _load(root)
    assert int(b.train.y.max()) == 9 and len(b.train) == 20  # type: ignore[attr-defined]
    assert _labels_match_pixels(b.train.x, b.train.y)  # type: ignore[attr-defined]


def test_hidden_and_non_image_files_are_skipped(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    folder = root / "imagenette2-160" / "train" / WNIDS[3]
    (folder / "._n0.JPEG").write_bytes(b"\x00\x05\x16\x07 macOS AppleDouble")  # not decodable
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub.JPEG").mkdir()  # a folder named like an image
    b = _load(root)
    assert len(b.train) == 20  # type: ignore[attr-defined]


def test_val_lacking_a_class_is_a_clear_error(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    shutil.rmtree(root / "imagenette2-160" / "val" / WNIDS[4])
    with pytest.raises(DataCorruptError, match=rf"val' lacks the class folder\(s\) {WNIDS[4]}: train "
                                               r"and val must both hold all 10 classes"):
        _load(root)


def test_empty_class_folder_is_a_clear_error(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    for f in (root / "imagenette2-160" / "train" / WNIDS[7]).iterdir():
        f.unlink()
    with pytest.raises(DataCorruptError, match=rf"class folder .*{WNIDS[7]}' holds no images"):
        _load(root)


def test_missing_val_split_offline_is_the_one_line_missing_error(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    shutil.rmtree(root / "imagenette2-160" / "val")
    with pytest.raises(DataError) as info:
        _load(root)
    msg = str(info.value)
    assert "dataset 'imagenette' not found under data root" in msg and "/val" in msg
    assert "TDLIB_DATA" in msg and "\n" not in msg


def test_corrupt_jpeg_names_the_file(tmp_path: Path) -> None:
    root = fake_imagenette(tmp_path)
    bad = root / "imagenette2-160" / "val" / WNIDS[2] / f"{WNIDS[2]}_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataCorruptError, match=r"cannot decode image .*_0.JPEG.*corrupted"):
        _load(root)


def test_incomplete_cifar_pickles_are_one_clear_error(tmp_path: Path) -> None:
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    (batches / "data_batch_1").write_bytes(b"half a pickle")  # the rest of the archive missing
    with pytest.raises(DataCorruptError) as info:
        load_dataset(DataConfig("cifar10", root=str(tmp_path)))
    msg = str(info.value)
    assert "cifar-10-batches-py" in msg and "incomplete or corrupted" in msg and "\n" not in msg


def test_failed_download_is_still_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TDLIB_OFFLINE")

    def no_network(name: str, train: bool) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://...\n"
                           "<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(ds_mod, "_torchvision_download", no_network)
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig("mnist", root=str(tmp_path)))
    msg = str(info.value)
    assert "\n" not in msg and "name resolution" in msg and "'mnist' not found" in msg


@pytest.mark.parametrize(
    ("x", "y", "fragment"),
    [
        (torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), r"uint8 .*got torch.float32.*\* 255"),
        (torch.zeros(4, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), r"\(N, C, H, W\)"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4), "integer class indices"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), "4 images but 3 labels"),
    ],
)
def test_array_dataset_refuses_what_would_be_read_wrong(x: torch.Tensor, y: torch.Tensor,
                                                        fragment: str) -> None:
    # float images would be divided by 255 a second time (silently near-black); float labels
    # would be read as soft targets by cross_entropy
    with pytest.raises(InputShapeError, match=fragment):
        ArrayDataset(x, y)


def test_load_dataset_bad_arguments_are_config_errors() -> None:
    from tdlib.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown option\(s\) train_per_clas; accepted .*train_per_class"):
        load_dataset("mnist", train_per_clas=5)
    with pytest.raises(ConfigError, match="takes a dataset name or a DataConfig, got dict"):
        load_dataset({"dataset": "mnist"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not both"):
        load_dataset(DataConfig("mnist"), train_per_class=5)  # the keyword would be ignored


# --------------------------------------------------------------------------- the data root from the environment
def test_tdlib_data_pointing_at_a_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "data.tar"
    f.write_bytes(b"an archive, not a folder")
    monkeypatch.setenv("TDLIB_DATA", str(f))
    with pytest.raises(DataError) as info:
        data_root()
    msg = str(info.value)
    assert "is a file, not a folder" in msg and "$TDLIB_DATA" in msg
    assert "does not exist" not in msg
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_dataset(DataConfig("mnist", root=str(f)))


def test_empty_data_root_argument_is_not_the_current_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"data root \(from the root argument\) is an empty path"):
        data_root("")
    with pytest.raises(ConfigError, match="empty string would mean the current directory"):
        load_dataset(DataConfig("mnist", root=""))
    assert list(tmp_path.iterdir()) == []


def test_empty_env_paths_count_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TDLIB_DATA", "")
    monkeypatch.setenv("TDLIB_CACHE", "")
    assert cache_dir() == Path("~/.cache/tdlib").expanduser()  # not "." (the cwd)
    assert data_root() == cache_dir() / "data"
