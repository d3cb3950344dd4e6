"""Typed, frozen result records of the experiments, and the claim rows they support.

Every experiment function returns one of these records. A record carries its measurements down to
the image (so that BU and TD can be compared on the same images, with intervals), the models it
used (:class:`ModelRef`, with their clean accuracy for the guard) and its identity
(:class:`ResultMeta`). ``claim_rows()`` turns the measurements into verdicts with
:mod:`tdlib.experiments.claims`. Records round-trip through JSON (:func:`record_from_json`);
per-image booleans are stored as ``"0101…"`` strings, distances as floats (``Infinity`` allowed).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tdlib.bitstring import unbits
from tdlib.errors import ConfigError
from tdlib.experiments import stats
from tdlib.experiments.claims import ClaimRow, ModelGrade, decide_row

__all__ = [
    "FAMILIES",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "VARIANT_CLAIM",
    "AccuracyEval",
    "AttackEval",
    "Exp1Result",
    "Exp2Result",
    "ImagenetteEval",
    "ImagenetteResult",
    "LocalisationEval",
    "LocalisationResult",
    "ModelRef",
    "ResultMeta",
    "ScaleEval",
    "ScaleResult",
    "record_from_json",
    "record_to_json",
]

SCHEMA_VERSION = 2

#: Attack families of the paper's robustness claims.
FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("pointwise", "salt_and_pepper", "additive_gaussian", "additive_uniform",
              "blended_uniform", "single_pixel"),
    "blur": ("gaussian_blur",),
    "spatial": ("spatial", "shifts"),
    "whitebox": ("l2_pgd",),  # without a bound: DDN, a minimal-L2 gradient attack
}

#: The pair of inputs the supplement (Fig 3) finds most damaging, per dataset.
PREDICTED_PAIR: dict[str, str] = {"mnist": "medium-low"}
DEFAULT_PREDICTED_PAIR = "high-medium"
PAIRS = ("high-medium", "high-low", "medium-low")


@dataclass(frozen=True)
class ResultMeta:
    """Identity of a saved result: experiment, profile and the hash of its parameters."""

    experiment: str
    profile: str
    params: dict[str, Any]
    params_hash: str
    created: str = ""
    source_hash: str = ""

    @property
    def id(self) -> str:
        return f"{self.experiment}-{self.profile}-{self.params_hash}"


@dataclass(frozen=True)
class ModelRef:
    """One trained model: what it is, where it came from, how accurate it is."""

    dataset: str
    backbone: str
    variant: str
    seed: int
    source: str  # "zoo" or "trained"
    name: str  # zoo entry name, or the run folder
    test_accuracy: float  # % on test_images images
    test_images: int

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.backbone}/{self.variant} s{self.seed} ({self.source})"

    def grade(self) -> ModelGrade:
        return ModelGrade(self.label, self.dataset, self.backbone, self.test_accuracy,
                          self.test_images, self.variant)


def _scope(*parts: str) -> str:
    return " · ".join(parts)


# --------------------------------------------------------------------------------- Exp 1
@dataclass(frozen=True)
class AccuracyEval:
    """Per-image correctness of one model on a test set (same order for every model of a set)."""

    model: ModelRef
    test_set: str
    correct: str
    val_accuracy: float = math.nan
    epochs: int = 0
    train_seconds: float = math.nan
    params: int = 0
    macs: int = 0

    @property
    def accuracy(self) -> float:
        c = unbits(self.correct)
        return 100.0 * float(c.mean()) if c.size else math.nan


def _accuracy_rows(evals: Sequence[AccuracyEval], meta: ResultMeta, claim: str, base: str,
                   *, scope_suffix: str = "") -> list[ClaimRow]:
    """Rows comparing each non-``base`` variant with ``base`` on the same test set."""
    groups: dict[tuple[str, str, str], dict[str, list[AccuracyEval]]] = {}
    for e in evals:
        key = (e.model.dataset, e.model.backbone, e.test_set)
        groups.setdefault(key, {}).setdefault(e.model.variant, []).append(e)
    rows = []
    for (d, b, test_set), by_variant in groups.items():
        if base not in by_variant:
            continue
        for v, es in by_variant.items():
            if v == base:
                continue
            ref = by_variant[base]
            a = np.stack([unbits(e.correct) for e in es])
            r = np.stack([unbits(e.correct) for e in ref])
            if claim == "imagenette":  # BU − TD
                a, r = r, a
            est = stats.paired_accuracy_gap(a, r)
            models = [e.model for e in (*es, *ref)]
            rows.append(decide_row(
                claim, _scope(d, b, v) + scope_suffix, effect=est.value, low=est.low,
                high=est.high, n=est.n, runs=[meta.id, *sorted({m.name for m in models})],
                models=[m.grade() for m in models], created=meta.created,
                detail={"test_set": test_set, "repetitions": [len(es), len(ref)],
                        "accuracy": {v: float(np.mean([x.accuracy for x in es])),
                                     base: float(np.mean([x.accuracy for x in ref]))}}))
    return rows


@dataclass(frozen=True)
class Exp1Result:
    """Exp 1: accuracy of BU and TD models (trained here, and the zoo's)."""

    EXPERIMENT: ClassVar[str] = "exp1"
    meta: ResultMeta
    evals: tuple[AccuracyEval, ...]
    zoo: tuple[AccuracyEval, ...] = ()

    def claim_rows(self) -> list[ClaimRow]:
        return (_accuracy_rows(self.evals, self.meta, "accuracy", "bu")
                + _accuracy_rows(self.zoo, self.meta, "accuracy", "bu"))

    def models(self) -> list[ModelRef]:
        return [e.model for e in (*self.evals, *self.zoo)]


# --------------------------------------------------------------------------------- Exp 2
@dataclass(frozen=True)
class AttackEval:
    """Per-image minimal L2 of one attack on one model (0: misclassified, inf: not found)."""

    model: ModelRef
    attack: str
    protocol: str
    images: str
    l2: tuple[float, ...]
    summary: dict[str, Any] = field(default_factory=dict)


def _pct(v: float) -> float:
    """A log-ratio as a % change (infinite stays infinite)."""
    return 100.0 * (math.exp(v) - 1.0) if math.isfinite(v) else v


#: The claim each attack family decides for the width variants TD_uni / TD_rev (supplement Fig 2:
#: more robust than BU to spatial attacks, like BU otherwise; ``None``: no claim, no row).
VARIANT_CLAIM: dict[str, str | None] = {"spatial": "variant_spatial", "noise": "variant_like_bu",
                                        "blur": "variant_like_bu", "whitebox": None}


def _family_claim(family: str, variant: str) -> str | None:
    return family if variant == "td" else VARIANT_CLAIM[family]


def _family_rows(evals: Sequence[AttackEval], meta: ResultMeta, *,
                 per_attack: bool = False) -> list[ClaimRow]:
    """TD (and TD_uni / TD_rev) against BU per attack family, or per attack (``per_attack``).

    TD's rows decide the family's own claim; TD_uni's and TD_rev's decide :data:`VARIANT_CLAIM`
    (their scope names the family where one claim covers several)."""
    by: dict[tuple[str, str, str, str], dict[str, AttackEval]] = {}
    for e in evals:
        key = (e.model.dataset, e.model.backbone, e.images, e.protocol)
        by.setdefault(key, {})[f"{e.model.variant}/{e.attack}"] = e
    rows = []
    for (d, b, images, protocol), got in by.items():
        for family, members in FAMILIES.items():
            groups = [(a,) for a in members] if per_attack else [members]
            for group, variant in itertools.product(groups, ("td", "td_uni", "td_rev")):
                attacks = [a for a in group if f"bu/{a}" in got and f"{variant}/{a}" in got]
                claim = _family_claim(family, variant)
                if not attacks or claim is None:
                    continue
                bu = np.stack([np.asarray(got[f"bu/{a}"].l2) for a in attacks], axis=1)
                td = np.stack([np.asarray(got[f"{variant}/{a}"].l2) for a in attacks], axis=1)
                # images both models classify correctly (a 0 marks a clean misclassification)
                ok = (bu > 0).all(axis=1) & (td > 0).all(axis=1)
                est = stats.pooled_median(stats.log_ratio(td[ok], bu[ok]))
                models = [got[f"{vv}/{a}"].model for a in attacks for vv in ("bu", variant)]
                scope = _scope(d, b) if variant == "td" else _scope(d, b, variant)
                if claim == "variant_like_bu" and not per_attack:
                    scope = _scope(scope, family)
                if per_attack:
                    scope = f"{scope} · {attacks[0]}"
                rows.append(decide_row(
                    claim, scope, effect=_pct(est.value), low=_pct(est.low), high=_pct(est.high),
                    n=est.n, runs=[meta.id, *sorted({m.name for m in models})],
                    models=[m.grade() for m in models], created=meta.created,
                    detail={"attacks": attacks, "protocol": protocol, "images": images,
                            "median_l2": {"bu": float(np.median(bu[ok])) if ok.any() else math.nan,
                                          variant: float(np.median(td[ok])) if ok.any() else math.nan}}))
    return rows


@dataclass(frozen=True)
class Exp2Result:
    """Exp 2: attacks on BU and TD models."""

    EXPERIMENT: ClassVar[str] = "exp2"
    meta: ResultMeta
    evals: tuple[AttackEval, ...]

    def claim_rows(self) -> list[ClaimRow]:
        return _family_rows(self.evals, self.meta)

    def attack_rows(self) -> list[ClaimRow]:
        """The family rows split up, one per attack (for the Exp 2 page and the forest plot)."""
        return _family_rows(self.evals, self.meta, per_attack=True)

    def models(self) -> list[ModelRef]:
        return list({e.model.name: e.model for e in self.evals}.values())


# --------------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class ScaleEval:
    """Per-image correctness of a multi-input TD model when only some inputs see the adversarial."""

    model: ModelRef
    attack: str
    images: str
    subsets: dict[str, str]  # subset name -> bits over the attacked images
    removal: dict[str, float] = field(default_factory=dict)  # silenced scale -> accuracy %


@dataclass(frozen=True)
class ScaleResult:
    """Exp 2 (supplement Fig 3): which inputs carry a TD network's vulnerability."""

    EXPERIMENT: ClassVar[str] = "exp2_scales"
    meta: ResultMeta
    evals: tuple[ScaleEval, ...]

    def claim_rows(self) -> list[ClaimRow]:
        rows = []
        by: dict[tuple[str, str, str], list[ScaleEval]] = {}
        for e in self.evals:
            by.setdefault((e.model.dataset, e.model.backbone, e.images), []).append(e)
        for (d, b, _images), es in by.items():
            predicted = PREDICTED_PAIR.get(d, DEFAULT_PREDICTED_PAIR)
            if not all(all(p in e.subsets for p in PAIRS) for e in es):
                continue
            cube = {p: np.stack([unbits(e.subsets[p]) for e in es], axis=1).astype(np.float64)
                    for p in PAIRS}  # (n images, k attacks)
            others = [p for p in PAIRS if p != predicted]

            def gap(idx: np.ndarray, _o: list[str] = others, _p: str = predicted,
                    _c: dict[str, np.ndarray] = cube) -> np.ndarray:
                base = _c[_p][idx].mean(axis=(1, 2))
                return 100.0 * np.min([_c[o][idx].mean(axis=(1, 2)) - base for o in _o], axis=0)

            n = cube[predicted].shape[0]
            value = float(gap(np.arange(n)[None, :])[0]) if n else math.nan
            low, high = stats.bootstrap(gap, n, width=cube[predicted].shape[1] * len(PAIRS))
            models = {e.model.name: e.model for e in es}
            rows.append(decide_row(
                "scale", _scope(d, b), effect=value, low=low, high=high, n=n,
                runs=[self.meta.id, *sorted(models)], models=[m.grade() for m in models.values()],
                created=self.meta.created,
                detail={"predicted": predicted, "attacks": [e.attack for e in es],
                        "accuracy": {p: 100.0 * float(cube[p].mean()) for p in PAIRS}}))
        return rows

    def models(self) -> list[ModelRef]:
        return list({e.model.name: e.model for e in self.evals}.values())


# --------------------------------------------------------------------------------- Exp 3
@dataclass(frozen=True)
class LocalisationEval:
    """Per-image localisation of one model's Grad-CAM maps at one stage."""

    model: ModelRef
    stage: str
    final: bool  # the final feature map (the stage that decides)
    normalisation: str
    target: str
    images: str
    energy: tuple[float, ...]
    pointing: str


@dataclass(frozen=True)
class LocalisationResult:
    """Exp 3(b): Grad-CAM localisation on MNIST / Fashion-MNIST."""

    EXPERIMENT: ClassVar[str] = "exp3_localisation"
    #: the protocol that decides (the reference's normalisation, a softmax-output target)
    DECIDING: ClassVar[tuple[str, str]] = ("paper", "softmax")
    meta: ResultMeta
    evals: tuple[LocalisationEval, ...]

    def claim_rows(self) -> list[ClaimRow]:
        rows = []
        keep = [e for e in self.evals if e.final and (e.normalisation, e.target) == self.DECIDING]
        by: dict[tuple[str, str, str], dict[str, list[LocalisationEval]]] = {}
        for e in keep:
            by.setdefault((e.model.dataset, e.model.backbone, e.images), {}) \
                .setdefault(e.model.variant, []).append(e)
        for (d, b, images), vs in by.items():
            if "bu" not in vs or "td" not in vs:
                continue
            td = np.mean([np.asarray(e.energy) for e in vs["td"]], axis=0)
            bu = np.mean([np.asarray(e.energy) for e in vs["bu"]], axis=0)
            est = stats.paired_mean(td - bu)
            models = [e.model for e in (*vs["td"], *vs["bu"])]
            rows.append(decide_row(
                "localisation", _scope(d, b), effect=est.value, low=est.low, high=est.high,
                n=est.n, runs=[self.meta.id, *sorted({m.name for m in models})],
                models=[m.grade() for m in models], created=self.meta.created,
                detail={"stage": {v: vs[v][0].stage for v in ("bu", "td")}, "images": images,
                        "energy": {"bu": float(bu.mean()), "td": float(td.mean())},
                        "pointing": {v: float(np.mean([unbits(e.pointing).mean() for e in vs[v]]))
                                     for v in ("bu", "td")}}))
        return rows

    def models(self) -> list[ModelRef]:
        return list({e.model.name: e.model for e in self.evals}.values())


@dataclass(frozen=True)
class ImagenetteEval:
    """One Imagenette model: per-image correctness on the validation images, ROAD scores and the
    localisation of its Grad-CAM maps on the images with object boxes.

    ``box_energy`` / ``box_pointing`` are per boxed image (order of ``box_images``, labels in
    ``box_labels``) at the final feature map ``cam_stage``, which decides;
    ``stage_scores`` holds the other stages' means (shown, no vote).
    """

    model: ModelRef
    test_set: str
    correct: str
    road: tuple[float, ...]
    cam_stage: str
    box_images: str = ""
    box_labels: tuple[int, ...] = ()
    box_energy: tuple[float, ...] = ()
    box_pointing: str = ""
    stage_scores: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class ImagenetteResult:
    """Exp 3(a): ResNet18-half BU vs TD on Imagenette."""

    EXPERIMENT: ClassVar[str] = "exp3_imagenette"
    meta: ResultMeta
    evals: tuple[ImagenetteEval, ...]

    def claim_rows(self) -> list[ClaimRow]:
        acc = [AccuracyEval(e.model, e.test_set, e.correct) for e in self.evals]
        return _accuracy_rows(acc, self.meta, "imagenette", "bu") + self._box_rows()

    def _box_rows(self) -> list[ClaimRow]:
        """TD − BU energy inside the boxes, paired over the boxed images; class-balanced (each
        class weighs the same: tench and English springer hold 713 of the 1,113 boxed images), with
        the image-weighted mean, the pointing game and every class's own effect in ``detail``."""
        by = {e.model.variant: e for e in self.evals if e.box_energy}
        if "bu" not in by or "td" not in by or by["bu"].box_images != by["td"].box_images:
            return []
        bu, td = by["bu"], by["td"]
        labels = np.asarray(td.box_labels)
        d = np.asarray(td.box_energy) - np.asarray(bu.box_energy)
        est = stats.stratified_paired_mean(d, labels)
        pooled = stats.paired_mean(d)
        hits = {v: unbits(by[v].box_pointing).astype(np.float64) for v in ("bu", "td")}
        point = stats.stratified_paired_mean(hits["td"] - hits["bu"], labels)
        per_class = {}
        for k in np.unique(labels):
            e = stats.paired_mean(d[labels == k])
            per_class[int(k)] = {"n": e.n, "effect": e.value, "ci": [e.low, e.high],
                                 "bu": float(np.asarray(bu.box_energy)[labels == k].mean()),
                                 "td": float(np.asarray(td.box_energy)[labels == k].mean())}
        models = [bu.model, td.model]
        return [decide_row(
            "imagenette_localisation", _scope("imagenette", td.model.backbone, "td"),
            effect=est.value, low=est.low, high=est.high, n=est.n,
            runs=[self.meta.id, *sorted({m.name for m in models})],
            models=[m.grade() for m in models], created=self.meta.created,
            detail={"stage": {"bu": bu.cam_stage, "td": td.cam_stage}, "images": td.box_images,
                    "pooling": "class-balanced: mean over the 10 classes of each class's mean",
                    "energy": {"bu": float(np.mean(bu.box_energy)), "td": float(np.mean(td.box_energy))},
                    "image_weighted": {"effect": pooled.value, "ci": [pooled.low, pooled.high]},
                    "pointing": {"bu": float(hits["bu"].mean()), "td": float(hits["td"].mean()),
                                 "td_minus_bu_balanced": point.value,
                                 "ci": [point.low, point.high]},
                    "per_class": per_class})]

    def models(self) -> list[ModelRef]:
        return [e.model for e in self.evals]


# --------------------------------------------------------------------------------- JSON
ResultRecord = Exp1Result | Exp2Result | ScaleResult | LocalisationResult | ImagenetteResult

RECORD_TYPES: dict[str, type[Any]] = {
    t.EXPERIMENT: t for t in (Exp1Result, Exp2Result, ScaleResult, LocalisationResult,
                              ImagenetteResult)
}

_NESTED: dict[type[Any], dict[str, type[Any]]] = {
    Exp1Result: {"evals": AccuracyEval, "zoo": AccuracyEval},
    Exp2Result: {"evals": AttackEval},
    ScaleResult: {"evals": ScaleEval},
    LocalisationResult: {"evals": LocalisationEval},
    ImagenetteResult: {"evals": ImagenetteEval},
}


def record_to_json(record: Any) -> dict[str, Any]:
    """A record as plain JSON data (with ``schema`` and ``experiment`` keys)."""
    data = dataclasses.asdict(record)
    return {"schema": SCHEMA_VERSION, "experiment": record.EXPERIMENT, **data}


def _build(cls: type[Any], data: Mapping[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        if f.name == "model":
            v = ModelRef(**v)
        elif f.name == "meta":
            v = ResultMeta(**v)
        elif isinstance(v, list) and f.name in ("l2", "energy", "road", "box_energy"):
            v = tuple(float(x) for x in v)
        elif isinstance(v, list) and f.name == "box_labels":
            v = tuple(int(x) for x in v)
        kwargs[f.name] = v
    return cls(**kwargs)


def record_from_json(data: Mapping[str, Any]) -> Any:
    """Rebuild a record written by :func:`record_to_json`.

    Raises:
        ConfigError: unknown experiment, another schema version or missing fields.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a result record must be a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA_VERSION:
        raise ConfigError(f"result schema {data.get('schema')!r}, this tdlib reads {SCHEMA_VERSION}")
    cls = RECORD_TYPES.get(str(data.get("experiment")))
    if cls is None:
        raise ConfigError(f"unknown experiment {data.get('experiment')!r} in a result record")
    try:
        nested = {k: tuple(_build(t, x) for x in data.get(k, ())) for k, t in _NESTED[cls].items()}
        return cls(meta=ResultMeta(**data["meta"]), **nested)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"malformed {cls.EXPERIMENT} result record: {exc}") from exc


def all_claim_rows(records: Iterable[Any]) -> list[ClaimRow]:
    """Every claim row of every record (not merged)."""
    return list(itertools.chain.from_iterable(r.claim_rows() for r in records))
