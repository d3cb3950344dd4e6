"""The zoo's plan: which models it holds and the recipe each one is (re)trained with.

Every entry is the paper's recipe (:func:`tdlib.config.run_config` at the ``paper`` profile:
SGD with Nesterov momentum 0.9, batch 128, LR 0.1 divided by 10 at 50% and 80% of the epochs, the
full 90% training split, no weight decay on MNIST / Fashion-MNIST) with the number of epochs that
two CPU cores can afford where it is below the paper's. The schedule keeps its shape: the LR drops
at ``ceil(0.5 E)`` and ``ceil(0.8 E)`` of the epochs actually run. Entries with ``amp`` train under
bf16 autocast (fp32 weights and optimizer; convolutions and matmuls in bf16), which runs the
NIN-light TD training step 1.95x faster on this project's CPUs (AMX) (``benchmarks/RESULTS.md``); their manifests say
so, and every zoo accuracy is measured in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdlib.config import RunConfig, run_config
from tdlib.errors import check_name

__all__ = ["ZOO_PLAN", "PlanEntry", "plan_entry"]


@dataclass(frozen=True)
class PlanEntry:
    """One model of the zoo and its recipe."""

    dataset: str
    backbone: str
    variant: str
    seed: int
    epochs: int
    amp: bool = False  # bf16 autocast while training (``train --bf16``)
    image_size: int | None = None  # Imagenette crop size (the paper's is 128)

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.backbone}-{self.variant}-s{self.seed}"

    def config(self, root: str | None = None) -> RunConfig:
        """The run configuration (paper recipe, this entry's epochs and seed, one repetition)."""
        return run_config(self.dataset, self.backbone, self.variant, profile="paper",
                          epochs=self.epochs, seed=self.seed, repetitions=1, root=root, amp=self.amp,
                          image_size=self.image_size)

    @property
    def command(self) -> str:
        """The command that (re)trains this entry."""
        return f"python -m tdlib zoo train --only {self.name}"

    @property
    def train_command(self) -> str:
        """The equivalent ``train`` command (same configuration, same run folder)."""
        return (f"python -m tdlib train --dataset {self.dataset} --backbone {self.backbone} "
                f"--variant {self.variant} --profile paper --epochs {self.epochs} --seed {self.seed}"
                + (" --bf16" if self.amp else "")
                + (f" --image-size {self.image_size}" if self.image_size is not None else ""))

    @property
    def precision(self) -> str:
        """How the entry trains: ``"fp32"`` or ``"bf16 autocast"`` (weights stay fp32)."""
        return "bf16 autocast" if self.amp else "fp32"


def _entries() -> tuple[PlanEntry, ...]:
    out = []
    # LeNetFC: the paper's epochs (MNIST BU 50 / TD 30, Fashion-MNIST 40)
    out += [PlanEntry("mnist", "lenetfc", "bu", 0, 50), PlanEntry("mnist", "lenetfc", "td", 0, 30),
            PlanEntry("fashion_mnist", "lenetfc", "bu", 0, 40), PlanEntry("fashion_mnist", "lenetfc", "td", 0, 40)]
    # a second MNIST LeNetFC seed (the cheapest pair: ~20 min on 2 cores), for the seed-to-seed spread
    out += [PlanEntry("mnist", "lenetfc", "bu", 1, 50), PlanEntry("mnist", "lenetfc", "td", 1, 30)]
    # NIN-light: 15 (MNIST, fp32) / 25 (Fashion-MNIST, bf16 autocast) of the paper's 50 epochs, BU and TD
    # alike (equal budgets and precision, so the accuracy comparison is fair). 12 fp32 epochs left the
    # Fashion-MNIST pair at 91.1-91.3% (train accuracy 91.9%: under-fitted); a NIN-light TD epoch took
    # ~4 min in fp32 and 89-100 s in bf16 on 2 cores.
    out += [PlanEntry("mnist", "nin_light", v, 0, 15) for v in ("bu", "td")]
    out += [PlanEntry("fashion_mnist", "nin_light", v, 0, 25, amp=True) for v in ("bu", "td")]
    # Imagenette ResNet18-half (supplement 2.1: BU 50 epochs batch 128 lr 0.1, TD 80 epochs batch 64
    # lr 0.05) at 64 px crops of 78 px resizes (the paper's 128/156), 60% of the paper's epochs for
    # both (30 / 48), bf16 autocast: a TD step at batch 64 took 1.73 s in fp32 and 0.71 s in bf16 on
    # 2 AMD EPYC cores (avx512_bf16), 1.4 min per epoch of the 7,785 training images.
    out += [PlanEntry("imagenette", "resnet18_half", "bu", 0, 30, amp=True, image_size=64),
            PlanEntry("imagenette", "resnet18_half", "td", 0, 48, amp=True, image_size=64)]
    # CIFAR-10 augmented ResNet32 (supplement: 200 epochs, Nesterov SGD 0.9, lr 0.1, Keras-l2 1e-4,
    # batch 128): 100 epochs (half the paper's) for BU, TD and TD_uni alike, bf16 autocast. 40 epochs
    # left BU at 87.44% on the 10,000 test images (validation 87.2%, flat over the last 12 epochs;
    # the mirror's JPEG copies cost accuracy too), under the 90% bar. A training step at batch 128
    # took 0.15 / 0.19 / 0.29 s in bf16 against 0.31 / 0.37 / 0.53 s in fp32 (BU / TD / TD_uni,
    # channels_last) on 2 AMD EPYC cores (avx512_bf16): about 1 / 1.2 / 1.8 min per epoch of the
    # 45,000 training images. TD_rev (14 min per fp32 epoch) is left to the GPU.
    out += [PlanEntry("cifar10_aug", "resnet32", v, 0, 100, amp=True) for v in ("bu", "td", "td_uni")]
    return tuple(sorted(out, key=lambda e: e.name))


#: Every model the zoo holds (``weights/<name>.safetensors`` + ``weights/<name>.json``).
ZOO_PLAN: tuple[PlanEntry, ...] = _entries()


def plan_entry(name: str) -> PlanEntry:
    """The plan entry called ``name``.

    Raises:
        UnknownNameError: no such entry (the message lists them).
    """
    by_name = {e.name: e for e in ZOO_PLAN}
    return by_name[check_name("zoo entry", name, by_name)]
