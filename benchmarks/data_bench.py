"""Data pipeline throughput: tdlib's in-memory uint8 -> float [0, 1] -> ``train_transform`` path."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from benchmarks.common import log, time_fn
from tdlib.data.transforms import BatchTransform

FULL_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar10_aug", "imagenette")
REDUCED_DATASETS = ("mnist", "cifar10_aug")


def _make_batch(x_all: torch.Tensor, transform: BatchTransform | None, batch: int,
                gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, x_all.shape[0], (batch,), generator=gen).to(x_all.device)
    x = x_all[idx].float().div_(255.0)
    return transform(x, gen) if transform is not None else x


def data_pipeline(device: torch.device, *, reduced: bool, batch: int = 128) -> list[dict[str, Any]]:
    """Images/s of one training batch as ``tdlib.training.train_epoch`` makes it.

    The split lives on ``device`` (as in ``train_epoch``); per batch: gather the shuffled indices,
    ``uint8 -> float / 255`` and the dataset's ``train_transform`` (flip/shift on CIFAR-10-aug;
    PCA colour, flip and random 128-crop from the stored 156 resize on Imagenette).
    """
    from tdlib.data import load_dataset

    rows = []
    for name in REDUCED_DATASETS if reduced else FULL_DATASETS:
        per_class = 13 if name == "imagenette" else 50  # a subset: the throughput does not depend on N
        bundle = load_dataset(name, train_per_class=per_class, test_per_class=1)
        x_all = bundle.train.x.to(device)
        transform = bundle.train_transform
        gen = torch.Generator().manual_seed(0)
        t = time_fn(partial(_make_batch, x_all, transform, batch, gen), device=device, warmup=2,
                    repeats=5 if reduced else 20)
        out_shape = tuple(_make_batch(x_all, transform, batch, gen).shape[1:])
        row = {"dataset": name, "batch": batch, "stored_shape": list(x_all.shape[1:]), "output_shape": list(out_shape),
               "transform": repr(transform), "batch_s": t.median, "ips": batch / t.median}
        log(f"data {name}: {row['ips']:.0f} img/s ({row['transform']})")
        rows.append(row)
    return rows
