"""Declarative backbone descriptions and the one generic BU -> TD reversal rule.

A backbone is described once, bottom-up (BU), as a list of *stages*: one stage per resolution,
full resolution first, each a tuple of :class:`Unit` (kernel, width). For LeNetFC/NIN a unit is
a Conv-BN-ReLU; for the ResNets it is a pre-activation basic block (3x3). Between two BU
stages sits one down-sampling (a max-pool for the plain CNNs, a stride-2 first block for the
ResNets); ResNet18 also max-pools after its stem, which adds one more scale.

The TD networks are never written by hand: :func:`td_stages` derives them from the BU stages,
and the family builders (``plain.py``, ``resnet.py``) turn every BU down-sampling into an
up-sampling plus a resolution merge with the matching pyramid level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tdlib.errors import ConfigError, check_name
from tdlib.names import BACKBONES, VARIANTS

TD_VARIANTS = VARIANTS[1:]


@dataclass(frozen=True)
class Unit:
    """One layer (plain CNN: Conv-BN-ReLU) or one basic block (ResNet) of a stage."""

    kernel: int
    width: int


@dataclass(frozen=True)
class Stage:
    """The units that run at one resolution, in forward order."""

    units: tuple[Unit, ...]

    @property
    def in_width(self) -> int:
        """Width of the first unit (the image-facing width; also the TD merge width)."""
        return self.units[0].width

    @property
    def out_width(self) -> int:
        """Width of the stage output."""
        return self.units[-1].width


def _stage(*units: tuple[int, int]) -> Stage:
    return Stage(tuple(Unit(k, w) for k, w in units))


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that distinguishes one backbone from another.

    Attributes:
        name: registry name.
        family: ``plain`` (LeNetFC/NIN: CBR units, conv classifier) or ``resnet``
            (pre-activation blocks, stem conv, BN-ReLU-GAP-Dense head).
        in_channels: default image channels.
        input_size: default image height = width.
        stages: BU stages, full resolution first.
        variants: the variants the reference defines for this backbone.
        uniform_width: the single width of TD_uni (None where the reference has no TD_uni).
        pool_kernel: window of the stride-2 max-pools (plain: between stages; resnet: after
            the stem when ``stem_pool``).
        stem_pool: ResNet18 only: the stem conv is followed by a max-pool (one extra scale).
        dropout: dropout after each BU max-pool and each TD merge conv (NIN: 0.5).
        bn_momentum: PyTorch BN momentum (Keras 0.99 -> 0.01; ResNets 0.9 -> 0.1).
        bn_eps: BN epsilon.
        init: ``glorot`` (Keras default) or ``he`` (he_normal).
    """

    name: str
    family: Literal["plain", "resnet"]
    in_channels: int
    input_size: int
    stages: tuple[Stage, ...]
    variants: tuple[str, ...] = VARIANTS
    uniform_width: int | None = None
    pool_kernel: int = 2
    stem_pool: bool = False
    dropout: float = 0.0
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    init: Literal["glorot", "he"] = "glorot"

    @property
    def num_scales(self) -> int:
        """Number of resolutions = number of BU down-samplings + 1 (TD pyramid levels)."""
        return len(self.stages) + int(self.stem_pool)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Hook names: one per stage plus the last map before global pooling."""
        return tuple(f"act_{i + 1}" for i in range(len(self.stages) + 1))

    @property
    def default_cam_stage(self) -> str:
        """The Grad-CAM layer: the last spatial feature map that is not the classifier.

        Plain CNNs: the output of the last stage (``act_3``), the map the 1x1 class conv reads;
        ``act_4`` is the class-score map itself (for it Grad-CAM degenerates to plain CAM).
        ResNets: the final BN-ReLU (the last ``act``) right before global average pooling,
        as in the reference's Imagenette figures (8x8 BU, 128x128 TD).
        """
        names = self.stage_names
        return names[-2] if self.family == "plain" else names[-1]


_NIN_LIGHT = ((48, 40, 24), (48, 48, 48), (48, 48))
_NIN = ((192, 160, 96), (192, 192, 192), (192, 192))
_NIN_KERNELS = ((5, 1, 1), (5, 1, 1), (3, 1))


def _nin(widths: tuple[tuple[int, ...], ...]) -> tuple[Stage, ...]:
    return tuple(
        Stage(tuple(Unit(k, w) for k, w in zip(ks, ws, strict=True)))
        for ks, ws in zip(_NIN_KERNELS, widths, strict=True)
    )


def _resnet(widths: tuple[int, ...], blocks: int) -> tuple[Stage, ...]:
    return tuple(Stage((Unit(3, w),) * blocks) for w in widths)


SPECS: dict[str, BackboneSpec] = {
    "lenetfc": BackboneSpec(
        name="lenetfc",
        family="plain",
        in_channels=1,
        input_size=28,
        stages=(_stage((5, 6)), _stage((5, 16)), _stage((3, 32))),
        uniform_width=16,
    ),
    "nin_light": BackboneSpec(
        name="nin_light",
        family="plain",
        in_channels=1,
        input_size=28,
        stages=_nin(_NIN_LIGHT),
        uniform_width=48,
        pool_kernel=3,
        dropout=0.5,
    ),
    "nin": BackboneSpec(
        name="nin",
        family="plain",
        in_channels=3,
        input_size=32,
        stages=_nin(_NIN),
        uniform_width=192,
        pool_kernel=3,
        dropout=0.5,
    ),
    "resnet32": BackboneSpec(
        name="resnet32",
        family="resnet",
        in_channels=3,
        input_size=32,
        stages=_resnet((16, 32, 64), 5),
        uniform_width=32,
        bn_momentum=0.1,
        bn_eps=1e-5,
        init="he",
    ),
    # The reference (models_imagenette.py) defines only ResNet18 and ResNet18_TD.
    "resnet18_half": BackboneSpec(
        name="resnet18_half",
        family="resnet",
        in_channels=3,
        input_size=128,
        stages=_resnet((32, 64, 128, 256), 2),
        variants=("bu", "td"),
        pool_kernel=3,
        stem_pool=True,
        bn_momentum=0.1,
        bn_eps=1e-5,
        init="he",
    ),
}



def get_spec(backbone: str) -> BackboneSpec:
    """Return the spec of ``backbone``; raise UnknownNameError for an unknown name."""
    return SPECS[check_name("backbone", backbone, BACKBONES)]


def td_stages(spec: BackboneSpec, variant: str) -> tuple[Stage, ...]:
    """Derive the TD stages (lowest resolution first) from the BU stages: the reversal rule.

    The stage order is reversed, so the TD starts at the lowest resolution with the last BU
    stage and ends at full resolution with the first one; each BU down-sampling becomes an
    up-sampling + resolution merge (placed by the family builders between consecutive
    stages). The width variants:

    * ``td``: every unit keeps its BU kernel and width (wide -> narrow with depth).
    * ``td_uni``: as ``td`` with every width set to ``spec.uniform_width``.
    * ``td_rev``: widths in BU order (narrow -> wide with depth): TD position ``p`` takes the
      unit list (count and widths) of BU stage ``p``. The kernel of its first,
      image-facing unit (which the side branch copies) stays tied to the resolution, i.e.
      taken from the reversed stage. This reproduces the reference's NIN TD_rev (low block
      3x3 192, 1x1 160, 1x1 96; high block 5x5 192, 1x1 192) and LeNetFC TD_rev (stem 3x3 6,
      full-resolution 5x5 32); for the ResNets (all 3x3) it only moves widths.

    Widths that no longer match between two stages are bridged by the family builders
    with the reference's adapters (plain: a 1x1 CBR before up-sampling; ResNet: the 1x1
    projection shortcut of the up-block), so the "adapter after the 24-channel low block" of
    NIN TD_rev is a consequence of this rule, not a special case.

    Args:
        spec: the backbone description.
        variant: one of ``td``, ``td_uni``, ``td_rev``.

    Returns:
        The TD stages, lowest resolution first.
    """
    check_name(f"TD variant of {spec.name}", variant, [v for v in spec.variants if v != "bu"])
    rev = spec.stages[::-1]
    if variant == "td":
        return rev
    if variant == "td_uni":
        u = spec.uniform_width
        if u is None:  # pragma: no cover - guarded by spec.variants
            raise ConfigError(f"{spec.name} has no uniform width")
        return tuple(Stage(tuple(Unit(x.kernel, u) for x in st.units)) for st in rev)
    out = []
    for p, st in enumerate(rev):
        src = spec.stages[p].units
        out.append(Stage((Unit(st.units[0].kernel, src[0].width), *src[1:])))
    return tuple(out)
