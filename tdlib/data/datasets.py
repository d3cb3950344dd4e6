"""The dataset registry and :func:`load_dataset`.

All datasets are held in memory as uint8 tensors (the largest, Imagenette at 156 px, is ~0.7 GB
for the full train split), so the training loop can move them to the GPU once and never wait for
a loader. Images reach models as float tensors in [0, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdlib.config import DataConfig
from tdlib.data import sources
from tdlib.data.boxes import box_mask, read_boxes
from tdlib.data.root import cache_dir, data_root, offline
from tdlib.data.transforms import BatchTransform, ImagenetteTrain, ShiftFlip
from tdlib.errors import ConfigError, DataCorruptError, DataError, InputShapeError, check_name, one_line
from tdlib.io import atomic_write_bytes

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGENETTE_NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    normalization: str  # "none" or "pixel_mean" (what the reference subtracts in the model)
    layout: str  # what the offline mirror must hold, for error messages


SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", (1, 28, 28), 10, "none", "MNIST/raw/*-ubyte"),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", (1, 28, 28), 10, "none", "FashionMNIST/raw/*-ubyte"
    ),
    "cifar10": DatasetSpec(
        "cifar10", (3, 32, 32), 10, "pixel_mean",
        "cifar-10-batches-py/ (torchvision) or cifar10-jpeg/{train,test}/<class>/*.jpg",
    ),
    "cifar10_aug": DatasetSpec(
        "cifar10_aug", (3, 32, 32), 10, "pixel_mean",
        "cifar-10-batches-py/ (torchvision) or cifar10-jpeg/{train,test}/<class>/*.jpg",
    ),
    "imagenette": DatasetSpec(
        "imagenette", (3, 128, 128), 10, "pixel_mean", "imagenette2-160/{train,val}/<wnid>/*.JPEG"
    ),
}


@dataclass(frozen=True)
class ArrayDataset:
    """Images (uint8, N×C×H×W) and labels (integer, N) as tensors.

    Raises:
        InputShapeError: ``x`` is not a uint8 N×C×H×W tensor (float images would be divided by 255
            a second time), or ``y`` is not a 1-D integer tensor of the same length.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(
                f"ArrayDataset.x must be a uint8 tensor (N, C, H, W) of 0-255 pixels; got {got}"
                + ("; store float images in [0, 1] as (x * 255).round().to(torch.uint8)"
                   if isinstance(x, torch.Tensor) and x.is_floating_point() else "")
            )
        if (not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point()
                or y.dtype in (torch.bool, torch.complex64, torch.complex128)):
            got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise InputShapeError(f"ArrayDataset.y must be a 1-D tensor of integer class indices; got {got}")
        if y.shape[0] != x.shape[0]:
            raise InputShapeError(f"ArrayDataset has {x.shape[0]} images but {y.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def images(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float images in [0, 1] (all, or ``index``)."""
        x = self.x if index is None else self.x[index]
        return x.float().div_(255.0)


@dataclass(frozen=True)
class DatasetBundle:
    """Train / validation / test splits of one dataset, with what a model needs to know.

    Attributes:
        spec: static facts (input shape, classes, normalisation of the reference).
        classes: class names.
        train, val, test: the splits (Imagenette's ``val`` folder is our ``test``).
        pixel_mean: per-pixel mean (C×H×W, in [0, 1]) of the training split at model input size.
        train_transform: the random augmentation applied to training batches (or ``None``).
        input_shape: what the model receives (C, H, W).
    """

    spec: DatasetSpec
    classes: tuple[str, ...]
    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    pixel_mean: torch.Tensor
    train_transform: BatchTransform | None
    input_shape: tuple[int, int, int]
    held_out_boxed: int = 0  # Imagenette training images with boxes kept out of every split

    @property
    def name(self) -> str:
        return self.spec.name

    def model_mean(self) -> torch.Tensor | None:
        """The mean the model's first layer subtracts (``None`` where the reference uses none)."""
        return self.pixel_mean if self.spec.normalization == "pixel_mean" else None


# --------------------------------------------------------------------------- splitting
def stratified_subset(y: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Indices of ``per_class`` seeded random samples of each class (all if ``None``), sorted."""
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(keep))


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random (non-stratified, as the reference) train / validation index split."""
    perm = np.random.default_rng(seed + 1).permutation(n)
    n_val = round(fraction * n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _tensors(x: np.ndarray, y: np.ndarray) -> ArrayDataset:
    return ArrayDataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))


# --------------------------------------------------------------------------- sources
def _missing(cfg: DataConfig, root: Path, why: Exception) -> DataError:
    """The one-line "dataset missing" error (whatever the cause's message looks like)."""
    spec = SPECS[cfg.dataset]
    return DataError(
        f"dataset {cfg.dataset!r} not found under data root {str(root)!r} ({one_line(why)}). Expected "
        f"{spec.layout} there. Fix: set TDLIB_DATA (or DATA_DIR / --data-root) to a folder in "
        "that layout, or run once with internet access so torchvision can download it into "
        f"{str(cache_dir() / 'data')!r}."
    )


def _download_allowed(cfg: DataConfig) -> bool:
    return cfg.download and not offline()


def _torchvision_download(name: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision.datasets as tvd  # lazy: takes seconds; only downloads and CIFAR pickles use it

    target = cache_dir() / "data"
    target.mkdir(parents=True, exist_ok=True)
    if name in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        ds = cls(str(target), train=train, download=True)
        return ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64)
    ds10 = tvd.CIFAR10(str(target), train=train, download=True)
    return ds10.data.transpose(0, 3, 1, 2).copy(), np.asarray(ds10.targets, dtype=np.int64)


def _read_cifar_pickles(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision.datasets as tvd  # lazy: takes seconds; only downloads and CIFAR pickles use it

    try:
        ds = tvd.CIFAR10(str(root), train=train, download=False)
    except (RuntimeError, OSError, ValueError, EOFError, KeyError) as exc:  # torchvision's check
        raise DataCorruptError(
            f"the CIFAR-10 batches in {str(root / 'cifar-10-batches-py')!r} are incomplete or "
            f"corrupted ({one_line(exc)}); restore the folder from the original archive, or remove "
            "it so that cifar10-jpeg/{train,test}/<class>/*.jpg is used"
        ) from exc
    return ds.data.transpose(0, 3, 1, 2).copy(), np.asarray(ds.targets, dtype=np.int64)


def _read_split(cfg: DataConfig, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    name = cfg.dataset
    try:
        if name in ("mnist", "fashion_mnist"):
            arr = sources.read_idx_dataset(root, "MNIST" if name == "mnist" else "FashionMNIST",
                                           train)
            return arr.x, arr.y
        if sources.cifar_pickles_present(root):
            return _read_cifar_pickles(root, train)
        return _read_cifar_jpeg(root, train)
    except DataCorruptError:
        raise  # present but damaged: a download would not fix it
    except DataError as exc:
        if not _download_allowed(cfg):
            raise _missing(cfg, root, exc) from exc
        try:
            return _torchvision_download(name, train)
        except Exception as dl_exc:  # no network, server error, ...
            raise _missing(cfg, root, dl_exc) from dl_exc


def _read_cifar_jpeg(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """``root/cifar10-jpeg/<split>/<class>/NNNN.jpg``: verified against the shipped manifest and
    decoded once, then cached (uint8 N×3×32×32) under ``$TDLIB_CACHE/decoded``, keyed by the files'
    paths, sizes and mtimes (a cache hit skips the verification: the files are unchanged)."""
    split = "train" if train else "test"
    files, labels, stats = sources.cifar_jpeg_files(root, split)
    key = sources.cifar_jpeg_cache_key(root, split, files, stats)
    path = cache_dir() / "decoded" / f"cifar10-jpeg-{split}-{key}.npy"
    x = _load_cache(path, (len(files), 3, 32, 32))
    if x is None:
        x = sources.decode_cifar_jpeg(root, split, files, labels)
        _save_cache(path, x)
    return x, labels


def _imagenette_root(cfg: DataConfig, root: Path) -> Path:
    if (root / "imagenette2-160").is_dir():
        return root
    if _download_allowed(cfg):
        try:
            import torchvision.datasets as tvd  # lazy: takes seconds; only downloads and CIFAR pickles use it

            target = cache_dir() / "data"
            target.mkdir(parents=True, exist_ok=True)
            tvd.Imagenette(str(target), split="train", size="160px", download=True)
            return target
        except Exception as exc:
            raise _missing(cfg, root, exc) from exc
    raise _missing(cfg, root, DataError("no imagenette2-160 folder"))


def _decode_cached(files: list[Path], size: int) -> np.ndarray:
    """Decode (and cache outside the data root) a list of images at ``size``²."""
    key = hashlib.sha256(
        ("\n".join(f"{f}:{f.stat().st_size}" for f in files) + f"|{size}").encode()
    ).hexdigest()[:16]
    path = cache_dir() / "decoded" / f"imagenette-{size}-{key}.npy"
    arr = _load_cache(path, (len(files), 3, size, size))
    if arr is None:
        arr = sources.decode_images(files, size)
        _save_cache(path, arr)
    return arr


def _load_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached uint8 array of ``shape`` (``None`` when absent, damaged or of another shape)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # a corrupt cache entry is rebuilt by the caller
    if arr.shape != shape or arr.dtype != np.uint8:
        return None
    return np.asarray(arr)


def _save_cache(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` atomically; a failure is ignored (the cache is an optimisation)."""
    try:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass


# --------------------------------------------------------------------------- entry point
def load_dataset(cfg: DataConfig | str, **overrides: object) -> DatasetBundle:
    """Load a dataset's train / validation / test splits.

    Args:
        cfg: a :class:`DataConfig` or a dataset name (then ``overrides`` are DataConfig fields).

    Raises:
        UnknownNameError: unknown dataset name.
        ConfigError: ``cfg`` neither a name nor a DataConfig, or an unknown option.
        DataError: data root missing, files missing offline (one line, whatever the cause).
        DataCorruptError: files present but damaged (checksum mismatch, undecodable image,
            train/val class folders that differ).
    """
    if isinstance(cfg, str):
        fields = [f.name for f in dataclasses.fields(DataConfig) if f.name != "dataset"]
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(f"load_dataset got unknown option(s) {', '.join(unknown)}; accepted "
                              f"(DataConfig fields): {', '.join(fields)}")
        cfg = DataConfig(dataset=cfg, **overrides)  # type: ignore[arg-type]
    elif not isinstance(cfg, DataConfig):
        raise ConfigError(f"load_dataset takes a dataset name or a DataConfig, got {type(cfg).__name__}")
    elif overrides:
        raise ConfigError("load_dataset: pass options either in the DataConfig or as keywords with "
                          f"a dataset name, not both (got {', '.join(sorted(overrides))})")
    check_name("dataset", cfg.dataset, SPECS)
    spec = SPECS[cfg.dataset]
    root = data_root(cfg.root)
    if cfg.dataset == "imagenette":
        return _load_imagenette(cfg, spec, root)

    x_tr, y_tr = _read_split(cfg, root, train=True)
    x_te, y_te = _read_split(cfg, root, train=False)
    sub = stratified_subset(y_tr, cfg.train_per_class, cfg.split_seed)
    x_tr, y_tr = x_tr[sub], y_tr[sub]
    tr_idx, va_idx = holdout_split(len(y_tr), cfg.val_fraction, cfg.split_seed)
    te_idx = stratified_subset(y_te, cfg.test_per_class, cfg.split_seed)
    train = _tensors(x_tr[tr_idx], y_tr[tr_idx])
    if cfg.dataset in ("mnist", "fashion_mnist"):
        classes = MNIST_CLASSES if cfg.dataset == "mnist" else FASHION_CLASSES
        transform: BatchTransform | None = None
    else:
        classes = sources.CIFAR10_CLASSES
        transform = ShiftFlip(0.1) if cfg.dataset == "cifar10_aug" else None
    return DatasetBundle(
        spec=spec,
        classes=classes,
        train=train,
        val=_tensors(x_tr[va_idx], y_tr[va_idx]),
        test=_tensors(x_te[te_idx], y_te[te_idx]),
        pixel_mean=train.images().mean(0),
        train_transform=transform,
        input_shape=spec.input_shape,
    )


#: Imagenette's class folders in label order (sorted wnids, as torchvision's ImageFolder)
IMAGENETTE_WNIDS = tuple(sorted(IMAGENETTE_NAMES))


def _load_imagenette(cfg: DataConfig, spec: DatasetSpec, root: Path) -> DatasetBundle:
    base = _imagenette_root(cfg, root)
    size = cfg.image_size or 128
    resize = cfg.resize_size or round(size * 156 / 128)
    try:
        tr_files, tr_y, wnids = sources.imagenette_files(base, "train", IMAGENETTE_WNIDS)
        te_files, te_y, _ = sources.imagenette_files(base, "val", IMAGENETTE_WNIDS)
    except DataCorruptError:
        raise
    except DataError as exc:  # a split folder missing: the dataset is not (fully) there
        raise _missing(cfg, base, exc) from exc
    held_out = 0
    if cfg.hold_out_boxed:  # boxed training images are kept for the localisation scores
        boxed = {name for (split, name) in read_boxes() if split == "train"}
        keep = np.array([f.name not in boxed for f in tr_files])
        held_out = int((~keep).sum())
        tr_files = [f for f, k in zip(tr_files, keep, strict=True) if k]
        tr_y = tr_y[keep]
    sub = stratified_subset(tr_y, cfg.train_per_class, cfg.split_seed)
    tr_idx, va_idx = holdout_split(len(sub), cfg.val_fraction, cfg.split_seed)
    train_sel, val_sel = sub[tr_idx], sub[va_idx]
    te_sel = stratified_subset(te_y, cfg.test_per_class, cfg.split_seed)
    train_x = _decode_cached([tr_files[i] for i in train_sel], resize)
    val_x = _decode_cached([tr_files[i] for i in val_sel], size)
    test_x = _decode_cached([te_files[i] for i in te_sel], size)
    train = _tensors(train_x, tr_y[train_sel])
    # mean of the training images at model input size (centre region of the stored resize)
    off = (resize - size) // 2
    mean = train.images()[:, :, off : off + size, off : off + size].mean(0)
    return DatasetBundle(
        spec=spec,
        classes=tuple(IMAGENETTE_NAMES.get(w, w) for w in wnids),
        train=train,
        val=_tensors(val_x, tr_y[val_sel]),
        test=_tensors(test_x, te_y[te_sel]),
        pixel_mean=mean,
        train_transform=ImagenetteTrain(size),
        input_shape=(3, size, size),
        held_out_boxed=held_out,
    )




@dataclass(frozen=True)
class BoxedImages:
    """Imagenette images that have object boxes, at the model's input size.

    Attributes:
        x: (N, 3, S, S) uint8 images, squash-resized as the validation images are.
        y: (N,) labels (indices into ``classes``).
        masks: (N, S, S) bool, True inside any of the image's boxes (:func:`tdlib.data.boxes.box_mask`).
        split: per image, ``"val"`` (a validation image) or ``"train"`` (a training image held out
            of training, ``DataConfig.hold_out_boxed``).
        names: file names.
        classes: class names in label order.
    """

    x: torch.Tensor
    y: torch.Tensor
    masks: torch.Tensor
    split: tuple[str, ...]
    names: tuple[str, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def images(self) -> torch.Tensor:
        """Float images in [0, 1]."""
        return self.x.float().div_(255.0)


def load_boxed_imagenette(size: int, root: str | None = None, *,
                          boxes_file: str | Path | None = None) -> BoxedImages:
    """Every Imagenette image with an object box (validation images, then the boxed training
    images that ``hold_out_boxed`` keeps out of training), at ``size``² with its box mask.

    Raises:
        DataError: the dataset or the boxes file is missing.
        DataCorruptError: a malformed boxes file, a box outside its image, a box whose class is not
            its image's class, or a boxed file the dataset does not hold.
    """
    cfg = DataConfig(dataset="imagenette", root=root, image_size=size, resize_size=size)
    base = _imagenette_root(cfg, data_root(root))
    boxes = read_boxes(boxes_file)
    files: list[Path] = []
    ys: list[int] = []
    masks: list[np.ndarray] = []
    splits: list[str] = []
    for split in ("val", "train"):
        paths, labels, wnids = sources.imagenette_files(base, split, IMAGENETTE_WNIDS)
        by_name = {p.name: (p, int(lab)) for p, lab in zip(paths, labels, strict=True)}
        for (s, name), bs in sorted(boxes.items()):
            if s != split:
                continue
            if name not in by_name:
                raise DataCorruptError(
                    f"the boxes file names {split}/{name}, which {str(base / 'imagenette2-160')!r} "
                    "does not hold: the boxes belong to another copy of Imagenette; restore the "
                    "dataset or use the boxes file that came with it")
            path, label = by_name[name]
            if any(b.wnid != wnids[label] for b in bs):
                raise DataCorruptError(f"a box of {split}/{name} names class "
                                       f"{bs[0].wnid}, but the image is in {wnids[label]}")
            files.append(path)
            ys.append(label)
            masks.append(box_mask(bs, size))
            splits.append(split)
    x = _decode_cached(files, size)
    return BoxedImages(
        x=torch.from_numpy(np.ascontiguousarray(x)), y=torch.tensor(ys, dtype=torch.int64),
        masks=torch.from_numpy(np.stack(masks)), split=tuple(splits),
        names=tuple(f.name for f in files),
        classes=tuple(IMAGENETTE_NAMES.get(w, w) for w in IMAGENETTE_WNIDS))
