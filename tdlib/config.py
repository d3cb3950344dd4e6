"""Configuration records, the paper's recipes and the named profiles.

Every setting is a frozen dataclass validated on construction: a bad value raises
:class:`~tdlib.errors.ConfigError` naming the field, the value and what is accepted. Notebook
parameters go through these records too, so a wrong type injected by papermill fails at the first
cell with the same message.

Profiles scale an experiment without changing its code:

* ``smoke``: CI; tiny stratified subsets, 1 epoch, a couple of minutes per notebook at most.
* ``quick``: the book's default; small but meaningful, the whole book in about 10 minutes on 2 cores.
* ``paper``: the exact recipe of the reference (full data, the paper's epochs and repetitions).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from tdlib.errors import ConfigError, check_name
from tdlib.names import (  # noqa: F401  (re-exported: the names of config records)
    BACKBONES,
    DATASET_BACKBONES,
    DATASETS,
    MERGES,
    PAPER_ATTACKS,
    PROFILES,
    PROTOCOLS,
    PYRAMIDS,
    VARIANTS,
)


# --------------------------------------------------------------------------- validation helpers
def _int(owner: str, name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{owner}.{name} must be an integer >= {minimum}"
            f"{' or None' if optional else ''}, got {value!r}"
        )


def _float(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(
            f"{owner}.{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}"
        )


def _bool(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name} must be True or False, got {value!r}")


def as_tuple(value: Any) -> tuple[Any, ...]:
    """Turn a notebook parameter (a list, a tuple or a comma-separated string) into a tuple."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple):
        return tuple(value)
    raise ConfigError(f"expected a list or a comma-separated string, got {value!r}")


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class DataConfig:
    """Which data, which subset, which split.

    Attributes:
        dataset: one of :data:`DATASETS`.
        root: data root; ``None`` means ``$TDLIB_DATA`` (see :mod:`tdlib.data`). Not hashed: where
            the files live does not change a result.
        val_fraction: share of the training split held out for validation (paper: 0.1).
        train_per_class: stratified subset of the training split (per class), ``None`` = all.
        test_per_class: stratified subset of the test split (per class), ``None`` = all.
        split_seed: seed of the subset and the validation hold-out.
        image_size: Imagenette crop / validation size (paper 128); ``None`` = dataset default.
        resize_size: Imagenette training resize before the random crop (paper 156).
        download: allow torchvision downloads when the files are not found (needs internet).
        hold_out_boxed: Imagenette: keep the training images that have object boxes
            (:mod:`tdlib.data.boxes`) out of every split, so the localisation scores are measured
            on images the model never saw (hashed only when set).
    """

    dataset: str
    root: str | None = field(default=None, metadata={"hash": False})
    val_fraction: float = 0.1
    train_per_class: int | None = None
    test_per_class: int | None = None
    split_seed: int = 0
    image_size: int | None = None
    resize_size: int | None = None
    download: bool = field(default=True, metadata={"hash": False})
    hold_out_boxed: bool = field(default=False, metadata={"hash": "if-set"})

    def __post_init__(self) -> None:
        check_name("dataset", self.dataset, DATASETS)
        if self.root is not None and (not isinstance(self.root, str) or not self.root.strip()):
            raise ConfigError(f"DataConfig.root must be a folder path or None (an empty string "
                              f"would mean the current directory), got {self.root!r}")
        _float("DataConfig", "val_fraction", self.val_fraction, low=0.0, high=0.9)
        _int("DataConfig", "train_per_class", self.train_per_class, optional=True)
        _int("DataConfig", "test_per_class", self.test_per_class, optional=True)
        _int("DataConfig", "split_seed", self.split_seed, minimum=0)
        _int("DataConfig", "image_size", self.image_size, minimum=8, optional=True)
        _int("DataConfig", "resize_size", self.resize_size, minimum=8, optional=True)
        _bool("DataConfig", "download", self.download)
        _bool("DataConfig", "hold_out_boxed", self.hold_out_boxed)
        if self.hold_out_boxed and self.dataset != "imagenette":
            raise ConfigError("DataConfig.hold_out_boxed applies to 'imagenette' only (the only "
                              f"dataset with object boxes), not {self.dataset!r}")
        if (self.image_size is not None and self.resize_size is not None
                and self.resize_size < self.image_size):
            raise ConfigError(
                f"DataConfig.resize_size ({self.resize_size}) must be >= image_size "
                f"({self.image_size}): the random crop is taken from the resized image"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Which network: backbone, variant and the TD construction options."""

    backbone: str
    variant: str
    pyramid: str = "gaussian"
    merge: str = "add_concat"

    def __post_init__(self) -> None:
        check_name("backbone", self.backbone, BACKBONES)
        check_name("variant", self.variant, VARIANTS)
        check_name("pyramid method", self.pyramid, PYRAMIDS)
        check_name("merge method", self.merge, MERGES)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe (reference notes 3.1).

    ``bn_recalibration`` (off in the paper's recipe, on in the CPU profiles) recomputes BatchNorm
    statistics over the training images after every epoch; see
    :func:`tdlib.training.engine.recalibrate_bn`.

    ``amp`` turns on bf16 autocast (CUDA or CPU); ``None`` / ``False`` train and evaluate in fp32,
    as the reference, on every device. It enters the hash only when set, so bf16 runs get their
    own folders while every fp32 run keeps its hash.

    ``weight_decay`` has Keras ``l2`` semantics (``wd * sum(w**2)`` added to the loss on conv and
    linear kernels only); :mod:`tdlib.training` turns it into PyTorch decay ``2 * wd`` on those.
    """

    epochs: int
    lr: float = 0.1
    weight_decay: float = 0.0
    batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    lr_drops: tuple[float, ...] = (0.5, 0.8)
    lr_factor: float = 0.1
    bn_recalibration: bool = False
    repetitions: int = field(default=4, metadata={"hash": False})
    seed: int = 0
    eval_batch_size: int = field(default=500, metadata={"hash": False})
    amp: bool | None = field(default=None, metadata={"hash": "if-set"})
    channels_last: bool | None = field(default=None, metadata={"hash": False})

    def __post_init__(self) -> None:
        _int("TrainConfig", "epochs", self.epochs)
        _float("TrainConfig", "lr", self.lr, low=0.0, low_open=True, high=10.0)
        _float("TrainConfig", "weight_decay", self.weight_decay, low=0.0, high=1.0)
        _int("TrainConfig", "batch_size", self.batch_size)
        _float("TrainConfig", "momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _bool("TrainConfig", "nesterov", self.nesterov)
        if not isinstance(self.lr_drops, tuple) or not all(
            isinstance(f, int | float) and 0 < f < 1 for f in self.lr_drops
        ):
            raise ConfigError(
                f"TrainConfig.lr_drops must be a tuple of fractions in (0, 1), got {self.lr_drops!r}"
            )
        _float("TrainConfig", "lr_factor", self.lr_factor, low=0.0, low_open=True, high=1.0)
        _bool("TrainConfig", "bn_recalibration", self.bn_recalibration)
        _int("TrainConfig", "repetitions", self.repetitions)
        _int("TrainConfig", "seed", self.seed, minimum=0)
        _int("TrainConfig", "eval_batch_size", self.eval_batch_size)
        _bool("TrainConfig", "amp", self.amp, optional=True)
        _bool("TrainConfig", "channels_last", self.channels_last, optional=True)

    def milestones(self) -> tuple[int, ...]:
        """Epochs (0-based count of finished epochs) after which the LR is multiplied by lr_factor.

        The reference drops the LR at epoch ``ceil(0.5 E)`` and ``ceil(0.8 E)``.
        """
        return tuple(sorted({math.ceil(f * self.epochs) for f in self.lr_drops}))

    def lr_at(self, epoch: int) -> float:
        """Learning rate used during (0-based) ``epoch``."""
        drops = sum(1 for m in self.milestones() if epoch >= m)
        return float(self.lr * self.lr_factor**drops)


@dataclass(frozen=True)
class RunConfig:
    """One training run: data + model + recipe. Its :func:`config_hash` names the run folder."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig


# --------------------------------------------------------------------------- hashing
def hashable_dict(cfg: Any) -> Any:
    """The dataclass as plain data, without fields marked ``metadata={"hash": False}`` (and
    without ``"if-set"`` fields at their default)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {
            f.name: hashable_dict(getattr(cfg, f.name))
            for f in dataclasses.fields(cfg)
            if f.metadata.get("hash", True) is True
            or (f.metadata.get("hash") == "if-set" and getattr(cfg, f.name))
        }
    if isinstance(cfg, tuple | list):
        return [hashable_dict(v) for v in cfg]
    return cfg


def config_hash(cfg: Any, length: int = 12) -> str:
    """Stable short hash of a config record (sorted-key JSON, sha256)."""
    text = json.dumps(hashable_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def to_dict(cfg: Any) -> dict[str, Any]:
    """All fields (hashed or not) as plain data, for saving next to results."""
    out = dataclasses.asdict(cfg)
    assert isinstance(out, dict)
    return out


# --------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """Sizes that move an experiment between a CI smoke run and the paper's scale.

    ``None`` means "as the paper" (all data, the recipe's epochs/repetitions).
    """

    name: str
    train_per_class: int | None
    test_per_class: int | None
    epochs: int | None
    repetitions: int | None
    attack_samples: int | None
    attack_repetitions: int
    explain_images: int
    imagenette_train_per_class: int | None
    imagenette_val_per_class: int | None
    imagenette_image_size: int
    imagenette_resize_size: int
    imagenette_epochs: int | None
    #: attacks of Exp 2 (the CPU profiles attack the main figure's columns, with salt-and-pepper
    #: in the "correlated" column; ``paper`` all ten attacks)
    exp2_attacks: tuple[str, ...] = ("pointwise", "additive_gaussian", "gaussian_blur", "spatial")
    #: images attacked in the per-scale study (notebook 03; its scans run on the 9x costlier
    #: NIN TD models); None = as ``attack_samples``
    scale_attack_samples: int | None = None
    #: take the MNIST / Fashion-MNIST models of Exp 2, the per-scale study and the localisation
    #: from the pretrained zoo (:mod:`tdlib.zoo`) instead of training them at this profile's size
    pretrained: bool = False
    #: backbones notebook 01 trains live when its BACKBONES is None (None: every backbone the
    #: reference trains on the chosen datasets)
    exp1_backbones: tuple[str, ...] | None = None
    #: Imagenette images with object boxes scored for localisation (None: all 1,113)
    imagenette_boxes: int | None = None


_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", train_per_class=20, test_per_class=10, epochs=1, repetitions=1,
        attack_samples=20, attack_repetitions=1, explain_images=10,
        imagenette_train_per_class=4, imagenette_val_per_class=2,
        imagenette_image_size=32, imagenette_resize_size=40, imagenette_epochs=1,
        exp2_attacks=("salt_and_pepper", "additive_gaussian", "gaussian_blur", "spatial"),
        imagenette_boxes=20,
    ),
    "quick": Profile(
        name="quick", train_per_class=400, test_per_class=100, epochs=4, repetitions=1,
        attack_samples=100, attack_repetitions=1, explain_images=100,
        imagenette_train_per_class=None, imagenette_val_per_class=20,
        imagenette_image_size=32, imagenette_resize_size=40, imagenette_epochs=4,
        exp2_attacks=("salt_and_pepper", "additive_gaussian", "gaussian_blur", "spatial"),
        scale_attack_samples=40, pretrained=True, exp1_backbones=("lenetfc",),
    ),
    "paper": Profile(
        name="paper", train_per_class=None, test_per_class=None, epochs=None, repetitions=None,
        attack_samples=None, attack_repetitions=3, explain_images=1000,
        imagenette_train_per_class=None, imagenette_val_per_class=None,
        imagenette_image_size=128, imagenette_resize_size=156, imagenette_epochs=None,
        # the complete figure of the supplement (Fig 1): all ten attacks
        exp2_attacks=PAPER_ATTACKS,
    ),
}


def get_profile(name: str) -> Profile:
    """The named profile (``smoke``, ``quick`` or ``paper``)."""
    return _PROFILES[check_name("profile", name, PROFILES)]


# (dataset, backbone, variant-group) -> (epochs, lr, wd, batch)
def _paper_recipe(dataset: str, backbone: str, variant: str) -> tuple[int, float, float, int]:
    td = variant != "bu"
    if dataset == "mnist":
        if backbone == "lenetfc":
            return (30 if td else 50), 0.1, 0.0, 128
        return 50, 0.1, 0.0, 128
    if dataset == "fashion_mnist":
        return (40 if backbone == "lenetfc" else 50), 0.1, 0.0, 128
    if dataset == "cifar10":
        return 100, 0.1, 5e-4, 128
    if dataset == "cifar10_aug":
        return 200, 0.1, 1e-4, 128
    # imagenette (supplement 2.1): TD needs batch 64, lr 0.05, 80 epochs
    return (80, 0.05, 1e-3, 64) if td else (50, 0.1, 1e-3, 128)


def run_config(
    dataset: str,
    backbone: str,
    variant: str,
    *,
    profile: str = "quick",
    epochs: int | None = None,
    seed: int = 0,
    repetitions: int | None = None,
    root: str | None = None,
    pyramid: str = "gaussian",
    merge: str = "add_concat",
    amp: bool = False,
    image_size: int | None = None,
) -> RunConfig:
    """The reference recipe for ``backbone``/``variant`` on ``dataset``, scaled by ``profile``.

    Example:
        >>> cfg = run_config("mnist", "lenetfc", "td", profile="paper")
        >>> cfg.train.epochs, cfg.train.milestones(), cfg.train.lr, cfg.train.batch_size
        (30, (15, 24), 0.1, 128)
        >>> run_config("mnist", "lenetfc", "td", profile="quick").data.train_per_class
        400

    Raises:
        ConfigError: an unknown name, a backbone the reference does not train on that dataset, or
            an invalid override.
    """
    check_name("dataset", dataset, DATASETS)
    check_name("backbone", backbone, BACKBONES)
    check_name("variant", variant, VARIANTS)
    prof = get_profile(profile)
    if backbone not in DATASET_BACKBONES[dataset]:
        raise ConfigError(
            f"the reference trains no {backbone!r} on {dataset!r}; backbones for {dataset}: "
            f"{', '.join(DATASET_BACKBONES[dataset])}"
        )
    p_epochs, lr, wd, batch = _paper_recipe(dataset, backbone, variant)
    if image_size is not None and dataset != "imagenette":
        raise ConfigError(f"image_size applies to 'imagenette' only; {dataset!r} has a fixed size")
    if dataset == "imagenette":
        size = image_size if image_size is not None else prof.imagenette_image_size
        resize = (prof.imagenette_resize_size if image_size is None
                  else round(image_size * 156 / 128))  # the paper's crop / resize ratio
        data = DataConfig(
            dataset=dataset, root=root,
            train_per_class=prof.imagenette_train_per_class,
            test_per_class=prof.imagenette_val_per_class,
            image_size=size, resize_size=resize, hold_out_boxed=True,
        )
        prof_epochs, reps_default = prof.imagenette_epochs, 1
    else:
        data = DataConfig(
            dataset=dataset, root=root,
            train_per_class=prof.train_per_class, test_per_class=prof.test_per_class,
        )
        prof_epochs, reps_default = prof.epochs, 4
    n_epochs = epochs if epochs is not None else (prof_epochs or p_epochs)
    if repetitions is None:
        repetitions = prof.repetitions if prof.repetitions is not None else reps_default
        if dataset == "imagenette":
            repetitions = 1
    train = TrainConfig(
        epochs=n_epochs, lr=lr, weight_decay=wd, batch_size=batch,
        repetitions=repetitions, seed=seed, bn_recalibration=prof.name != "paper",
        amp=True if amp else None,
    )
    return RunConfig(data=data, model=ModelConfig(backbone, variant, pyramid, merge), train=train)
