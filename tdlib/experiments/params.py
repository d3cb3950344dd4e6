"""One validated parameter record per experiment, shared by its notebook, the CLI and the sweep.

Each notebook's ``parameters`` cell holds literals with UPPER-CASE names; the first code cell calls
``P = SomeParams.from_notebook(globals())``, which

* refuses names it does not know (a typo such as ``PROFLE`` injected by papermill is an error, not
  a silent run at the defaults),
* checks every value's type and range, and combinations the experiment cannot serve,
* fills what is left at ``None`` from the profile (:func:`tdlib.config.get_profile`), so defaults
  live in one place,

and returns a frozen record. Its :meth:`~ExperimentParams.identity` (experiment, profile, hash of
the resolved values) names the saved result. ``DATA_DIR`` travels in the record: nothing is passed
through ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from tdlib.config import (
    BACKBONES,
    DATASET_BACKBONES,
    DATASETS,
    PROFILES,
    PROTOCOLS,
    VARIANTS,
    Profile,
    as_tuple,
    get_profile,
)
from tdlib.errors import ConfigError, check_name
from tdlib.experiments import store
from tdlib.experiments.records import ResultMeta
from tdlib.names import ATTACKS, PAPER_ATTACKS, WHITEBOX_ATTACKS

__all__ = [
    "ArchitectureParams",
    "Common",
    "Exp1Params",
    "Exp2Params",
    "ExperimentParams",
    "ImagenetteParams",
    "LocalisationParams",
    "ResultsParams",
    "ScaleParams",
    "params_for_notebook",
]

P = TypeVar("P", bound="ExperimentParams")
_UPPER = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: TD backbone of the per-scale study on each dataset (supplement Fig 3).
SCALE_BACKBONE = {"mnist": "nin_light", "fashion_mnist": "nin_light", "cifar10": "nin",
                  "cifar10_aug": "nin"}
#: Datasets with known object masks for the localisation scores (foreground = pixel > 0.2).
LOCALISATION_DATASETS = ("mnist", "fashion_mnist")


def _nb(name: str, default: Any = None, what: str = "") -> Any:
    return field(default=default, metadata={"nb": name, "what": what})


def _err(name: str, value: Any, what: str) -> ConfigError:
    return ConfigError(f"notebook parameter {name} must be {what}, got {value!r} "
                       f"({type(value).__name__})")


def _names(name: str, value: Any, accepted: tuple[str, ...], kind: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple | str):
        raise _err(name, value, f"a list of {kind} names ({', '.join(accepted)})")
    items = as_tuple(value)
    if not items:
        raise ConfigError(f"notebook parameter {name} is empty; accepted: {', '.join(accepted)}")
    for item in items:
        check_name(kind, item, accepted)
    dupes = sorted({i for i in items if items.count(i) > 1})
    if dupes:
        raise ConfigError(f"notebook parameter {name} names {', '.join(dupes)} more than once")
    return tuple(items)


def _opt_int(name: str, value: Any, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _err(name, value, f"an integer >= {minimum} or None")
    return int(value)


def _opt_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _err(name, value, "True, False or None")


def _path(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _err(name, value, "a folder path or None (an empty string would mean the current "
                                "directory)")
    return value


@dataclass(frozen=True)
class Common:
    """The parameters every notebook takes."""

    profile: str = _nb("PROFILE", "quick", "smoke | quick | paper")
    seed: int = _nb("SEED", 0, "an integer >= 0")
    data_dir: str | None = _nb("DATA_DIR", None, "None ($TDLIB_DATA) or a folder")
    run_dir: str | None = _nb("RUN_DIR", None, "None ($TDLIB_RUNS) or a folder")
    device: str = _nb("DEVICE", "auto", "auto | cpu | cuda | cuda:N | mps")

    def __post_init__(self) -> None:
        if not isinstance(self.profile, str):
            raise _err("PROFILE", self.profile, "one of " + ", ".join(PROFILES))
        check_name("profile", self.profile, PROFILES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise _err("SEED", self.seed, "an integer >= 0")
        _path("DATA_DIR", self.data_dir)
        _path("RUN_DIR", self.run_dir)
        if not isinstance(self.device, str) or not self.device:
            raise _err("DEVICE", self.device, "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")

    @property
    def prof(self) -> Profile:
        return get_profile(self.profile)

    def check_environment(self) -> None:
        """Check what must exist before anything runs: the device and the data root."""
        # lazy: tdlib.data and tdlib.utils import torch; validating parameters (tdlib.runner,
        # the sweep's grid, the CLI) does not need it
        from tdlib.data.root import data_root
        from tdlib.utils import select_device

        select_device(self.device)
        data_root(self.data_dir)


@dataclass(frozen=True)
class ExperimentParams:
    """Base of the per-experiment records (``common`` + the experiment's own fields)."""

    EXPERIMENT: ClassVar[str] = ""
    NOTEBOOK: ClassVar[str] = ""
    common: Common = field(default_factory=Common)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def notebook_names(cls) -> dict[str, str]:
        """Notebook name -> field name (common ones first)."""
        out = {f.metadata["nb"]: f.name for f in dataclasses.fields(Common)}
        out.update({f.metadata["nb"]: f.name for f in dataclasses.fields(cls) if "nb" in f.metadata})
        return out

    @classmethod
    def from_notebook(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """Build from a notebook's globals (or any mapping of UPPER-CASE names).

        Raises:
            ConfigError: an unknown UPPER-CASE name, a wrong type or value, or a combination the
                experiment cannot serve.
        """
        names = cls.notebook_names()
        unknown = sorted(k for k in namespace if _UPPER.match(k) and k not in names)
        if unknown:
            raise ConfigError(
                f"unknown notebook parameter(s) {', '.join(unknown)} for {cls.NOTEBOOK or cls.__name__}; "
                f"accepted: {', '.join(names)}"
            )
        common_fields = {f.name for f in dataclasses.fields(Common)}
        common = Common(**{names[k]: v for k, v in namespace.items()
                           if k in names and names[k] in common_fields})
        own = {names[k]: v for k, v in namespace.items()
               if k in names and names[k] not in common_fields}
        return cls(common=common, **own)

    @classmethod
    def from_values(cls: type[P], **values: Any) -> P:
        """Build from notebook names given as keywords (``PROFILE="smoke", DATASETS=[...]``)."""
        return cls.from_notebook(values)

    # -- identity ------------------------------------------------------------------------
    def notebook_values(self) -> dict[str, Any]:
        """The record as notebook parameters (what papermill would inject)."""
        names = {v: k for k, v in self.notebook_names().items()}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(Common):
            out[names[f.name]] = getattr(self.common, f.name)
        for f in dataclasses.fields(self):
            if "nb" in f.metadata:
                v = getattr(self, f.name)
                out[names[f.name]] = list(v) if isinstance(v, tuple) else v
        return out

    def resolved(self) -> dict[str, Any]:
        """The values that decide the result (profile defaults filled in; no paths/device)."""
        out = {"PROFILE": self.common.profile, "SEED": self.common.seed}
        for k, v in self.notebook_values().items():
            if k not in ("PROFILE", "SEED", "DATA_DIR", "RUN_DIR", "DEVICE"):
                out[k] = v
        return out

    def identity(self) -> tuple[str, str, str]:
        """(experiment, profile, params hash): where the result is stored."""
        return self.EXPERIMENT, self.common.profile, store.params_hash(
            self.EXPERIMENT, self.common.profile, self.resolved())

    def meta(self) -> Any:
        """A fresh :class:`~tdlib.experiments.records.ResultMeta` for this run."""
        exp, profile, phash = self.identity()
        return ResultMeta(exp, profile, self.notebook_values(), phash, store.now(), store.source_hash())

    def result_path(self) -> Any:
        exp, profile, phash = self.identity()
        return store.result_path(exp, profile, phash, self.common.run_dir)

    @property
    def prof(self) -> Profile:
        return self.common.prof

    def setup(self) -> None:
        """What a notebook does once its parameters are valid: check the device and the data
        root, seed every RNG with ``SEED``, and make plotly figures survive into the book's HTML."""
        from tdlib.utils import seed_everything  # lazy: imports torch (see check_environment)

        self.common.check_environment()
        seed_everything(self.common.seed)
        import plotly.io as pio

        pio.renderers.default = "plotly_mimetype+notebook"


class _AttackedSample:
    """What Exp 2 and the per-scale study share: a sample of attacked test images, attack
    repetitions and where the models come from (each ``None`` means the profile's)."""

    common: Common
    n_samples: int | None
    repetitions: int | None
    pretrained: bool | None

    def _check_sample(self) -> None:
        _opt_int("N_SAMPLES", self.n_samples)
        _opt_int("REPETITIONS", self.repetitions)
        _opt_bool("PRETRAINED", self.pretrained)

    def _profile_images(self) -> int | None:
        return self.common.prof.attack_samples

    @property
    def n_images(self) -> int | None:
        return self.n_samples if self.n_samples is not None else self._profile_images()

    @property
    def reps(self) -> int:
        return self.repetitions if self.repetitions is not None else self.common.prof.attack_repetitions

    @property
    def use_zoo(self) -> bool:
        return _pretrained(self)

    def _sample_resolved(self) -> dict[str, Any]:
        return {"N_SAMPLES": self.n_images, "REPETITIONS": self.reps, "PRETRAINED": self.use_zoo}


def _pretrained(p: Any) -> bool:
    return bool(p.pretrained) if p.pretrained is not None else p.common.prof.pretrained


@dataclass(frozen=True)
class ArchitectureParams(ExperimentParams):
    """Notebook 00 (the models)."""

    EXPERIMENT: ClassVar[str] = "architecture"
    NOTEBOOK: ClassVar[str] = "00_architecture"
    backbone: str = _nb("BACKBONE", "nin_light", "a backbone name")

    def __post_init__(self) -> None:
        check_name("backbone", self.backbone, BACKBONES)


def _check_pairs(datasets: tuple[str, ...], backbones: tuple[str, ...]) -> None:
    if not any(b in DATASET_BACKBONES[d] for d in datasets for b in backbones):
        raise ConfigError(
            f"no backbone of {list(backbones)} is trained on {list(datasets)} by the reference; "
            + "; ".join(f"{d}: {', '.join(DATASET_BACKBONES[d])}" for d in datasets)
        )


@dataclass(frozen=True)
class Exp1Params(ExperimentParams):
    """Notebook 01: BU vs TD accuracy."""

    EXPERIMENT: ClassVar[str] = "exp1"
    NOTEBOOK: ClassVar[str] = "01_classification"
    datasets: tuple[str, ...] = _nb("DATASETS", ("mnist", "fashion_mnist"))
    backbones: tuple[str, ...] | None = _nb("BACKBONES", None, "None (the profile's) or backbone names")
    variants: tuple[str, ...] = _nb("VARIANTS", ("bu", "td"))
    repetitions: int | None = _nb("REPETITIONS", None, "None (the profile's) or >= 1")
    zoo: bool | None = _nb("ZOO", None, "None (the profile's), True or False: show the zoo table")
    zoo_datasets: tuple[str, ...] = _nb("ZOO_DATASETS", ("mnist", "fashion_mnist", "cifar10_aug"),
                                        "dataset names")

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", _names("DATASETS", self.datasets, DATASETS, "dataset"))
        if self.backbones is not None:
            object.__setattr__(self, "backbones", _names("BACKBONES", self.backbones, BACKBONES, "backbone"))
        object.__setattr__(self, "variants", _names("VARIANTS", self.variants, VARIANTS, "variant"))
        _opt_int("REPETITIONS", self.repetitions)
        _opt_bool("ZOO", self.zoo)
        object.__setattr__(self, "zoo_datasets",
                           _names("ZOO_DATASETS", self.zoo_datasets, DATASETS, "dataset"))
        _check_pairs(self.datasets, self.backbone_list)

    @property
    def backbone_list(self) -> tuple[str, ...]:
        """The backbones trained here: ``BACKBONES``, else the profile's (quick trains only
        LeNetFC live: the zoo's NIN-light models are shown beside it), else all the reference's."""
        if self.backbones is not None:
            return tuple(self.backbones)
        if self.prof.exp1_backbones is not None:
            return self.prof.exp1_backbones
        return tuple(dict.fromkeys(b for d in self.datasets for b in DATASET_BACKBONES[d]))

    def resolved(self) -> dict[str, Any]:
        return {**super().resolved(), "BACKBONES": list(self.backbone_list)}

    @property
    def show_zoo(self) -> bool:
        return self.zoo if self.zoo is not None else self.prof.pretrained


@dataclass(frozen=True)
class Exp2Params(ExperimentParams, _AttackedSample):
    """Notebook 02: attacks on BU and TD models.

    Example:
        >>> p = Exp2Params.from_values(PROFILE="quick", DATASETS=["mnist"])
        >>> p.n_images, p.reps, p.use_zoo, p.attack_list[:2]
        (100, 1, True, ('salt_and_pepper', 'additive_gaussian'))
        >>> Exp2Params.from_values(PROFLE="quick")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tdlib.errors.ConfigError: unknown notebook parameter(s) PROFLE for 02_adversarial_robustness; ...
    """

    EXPERIMENT: ClassVar[str] = "exp2"
    NOTEBOOK: ClassVar[str] = "02_adversarial_robustness"
    datasets: tuple[str, ...] = _nb("DATASETS", ("mnist", "fashion_mnist"))
    backbones: tuple[str, ...] = _nb("BACKBONES", ("lenetfc",))
    variants: tuple[str, ...] = _nb("VARIANTS", ("bu", "td"))
    attacks: tuple[str, ...] | None = _nb("ATTACKS", None, "None (the profile's) or attack names")
    whitebox: tuple[str, ...] = _nb("WHITEBOX", ("l2_pgd",), "gradient attack names ([] for none)")
    protocol: str = _nb("PROTOCOL", "paper", "paper | minimal")
    n_samples: int | None = _nb("N_SAMPLES", None, "None (the profile's) or >= 1")
    repetitions: int | None = _nb("REPETITIONS", None, "None (the profile's) or >= 1")
    fourier: bool = _nb("FOURIER", True, "True or False")
    pretrained: bool | None = _nb("PRETRAINED", None, "None (the profile's), True (the zoo) or False")

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", _names("DATASETS", self.datasets, DATASETS, "dataset"))
        object.__setattr__(self, "backbones", _names("BACKBONES", self.backbones, BACKBONES, "backbone"))
        object.__setattr__(self, "variants", _names("VARIANTS", self.variants, VARIANTS, "variant"))
        if self.attacks is not None:
            object.__setattr__(self, "attacks", _names("ATTACKS", self.attacks, tuple(ATTACKS), "attack"))
        wb = () if self.whitebox in ([], (), None) else _names(
            "WHITEBOX", self.whitebox, WHITEBOX_ATTACKS, "white-box attack")
        object.__setattr__(self, "whitebox", wb)
        if not isinstance(self.protocol, str):
            raise _err("PROTOCOL", self.protocol, "paper or minimal")
        check_name("attack protocol", self.protocol, PROTOCOLS)
        self._check_sample()
        if not isinstance(self.fourier, bool):
            raise _err("FOURIER", self.fourier, "True or False")
        _check_pairs(self.datasets, self.backbones)

    @property
    def attack_list(self) -> tuple[str, ...]:
        main = self.attacks if self.attacks is not None else self.prof.exp2_attacks
        return tuple(main) + tuple(a for a in self.whitebox if a not in main)

    def resolved(self) -> dict[str, Any]:
        return {**super().resolved(), "ATTACKS": list(self.attack_list), **self._sample_resolved()}


@dataclass(frozen=True)
class ScaleParams(ExperimentParams, _AttackedSample):
    """Notebook 03: per-scale perturbation of TD models (supplement Fig 3)."""

    EXPERIMENT: ClassVar[str] = "exp2_scales"
    NOTEBOOK: ClassVar[str] = "03_scale_perturbation"
    datasets: tuple[str, ...] = _nb("DATASETS", ("mnist", "fashion_mnist"))
    attacks: tuple[str, ...] = _nb("ATTACKS", ("salt_and_pepper", "additive_gaussian", "gaussian_blur"))
    n_samples: int | None = _nb("N_SAMPLES", None, "None (the profile's) or >= 1")
    repetitions: int | None = _nb("REPETITIONS", None, "None (the profile's) or >= 1")
    pretrained: bool | None = _nb("PRETRAINED", None, "None (the profile's), True (the zoo) or False")

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", _names("DATASETS", self.datasets, DATASETS, "dataset"))
        missing = [d for d in self.datasets if d not in SCALE_BACKBONE]
        if missing:
            raise ConfigError(
                f"the per-scale study has no TD backbone for {', '.join(missing)} (it uses "
                + ", ".join(f"{d}: {b}" for d, b in SCALE_BACKBONE.items()) + ")")
        object.__setattr__(self, "attacks", _names("ATTACKS", self.attacks, PAPER_ATTACKS, "attack"))
        self._check_sample()

    def _profile_images(self) -> int | None:
        return self.prof.scale_attack_samples or self.prof.attack_samples

    def resolved(self) -> dict[str, Any]:
        return {**super().resolved(), **self._sample_resolved()}


@dataclass(frozen=True)
class ImagenetteParams(ExperimentParams):
    """Notebook 04: ResNet18-half BU vs TD on Imagenette."""

    EXPERIMENT: ClassVar[str] = "exp3_imagenette"
    NOTEBOOK: ClassVar[str] = "04_imagenette_explainability"
    n_images: int = _nb("N_IMAGES", 8, "an integer >= 1: images in the Figure 5 layout")
    n_score: int | None = _nb("N_SCORE", None, "None (the profile's, at most 100) or >= 1")
    n_boxes: int | None = _nb("N_BOXES", None, "None (every boxed image) or >= 1")
    pretrained: bool | None = _nb("PRETRAINED", None, "None (the profile's), True (the zoo) or False")

    def __post_init__(self) -> None:
        _opt_int("N_IMAGES", self.n_images)
        if self.n_images is None:
            raise _err("N_IMAGES", self.n_images, "an integer >= 1")
        _opt_int("N_SCORE", self.n_score)
        _opt_int("N_BOXES", self.n_boxes)
        _opt_bool("PRETRAINED", self.pretrained)

    @property
    def use_zoo(self) -> bool:
        return _pretrained(self)

    @property
    def box_images(self) -> int | None:
        """Boxed images scored for localisation (``None``: all)."""
        return self.n_boxes if self.n_boxes is not None else self.prof.imagenette_boxes

    @property
    def score_images(self) -> int:
        return self.n_score if self.n_score is not None else min(self.prof.explain_images, 100)

    def resolved(self) -> dict[str, Any]:
        out = super().resolved()
        out.update(N_SCORE=self.score_images, N_BOXES=self.box_images, PRETRAINED=self.use_zoo)
        return out


@dataclass(frozen=True)
class LocalisationParams(ExperimentParams):
    """Notebook 05: Grad-CAM localisation on MNIST / Fashion-MNIST."""

    EXPERIMENT: ClassVar[str] = "exp3_localisation"
    NOTEBOOK: ClassVar[str] = "05_localization"
    datasets: tuple[str, ...] = _nb("DATASETS", ("mnist", "fashion_mnist"))
    variants: tuple[str, ...] = _nb("VARIANTS", ("bu", "td"))
    n_images: int | None = _nb("N_IMAGES", None, "None (the profile's) or >= 1")
    pretrained: bool | None = _nb("PRETRAINED", None, "None (the profile's), True (the zoo) or False")

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", _names("DATASETS", self.datasets,
                                                    LOCALISATION_DATASETS, "dataset with object masks"))
        object.__setattr__(self, "variants", _names("VARIANTS", self.variants, VARIANTS, "variant"))
        _opt_int("N_IMAGES", self.n_images)
        _opt_bool("PRETRAINED", self.pretrained)

    @property
    def images(self) -> int:
        return self.n_images if self.n_images is not None else self.prof.explain_images

    @property
    def use_zoo(self) -> bool:
        return _pretrained(self)

    def resolved(self) -> dict[str, Any]:
        out = super().resolved()
        out.update(N_IMAGES=self.images, PRETRAINED=self.use_zoo)
        return out


@dataclass(frozen=True)
class ResultsParams(ExperimentParams):
    """Notebook 06: the claims table."""

    EXPERIMENT: ClassVar[str] = "results"
    NOTEBOOK: ClassVar[str] = "06_results"


_BY_NOTEBOOK: dict[str, type[ExperimentParams]] = {
    c.NOTEBOOK: c for c in (ArchitectureParams, Exp1Params, Exp2Params, ScaleParams,
                            ImagenetteParams, LocalisationParams, ResultsParams)
}


def params_for_notebook(stem: str) -> type[ExperimentParams] | None:
    """The parameter record of notebook ``stem`` (e.g. ``"02_adversarial_robustness"``), or
    ``None`` for a notebook without one."""
    return _BY_NOTEBOOK.get(stem)
