"""Datasets: one registry, offline mirrors in torchvision's layout, images in [0, 1]."""

from tdlib.data.datasets import (
    SPECS,
    ArrayDataset,
    BoxedImages,
    DatasetBundle,
    DatasetSpec,
    holdout_split,
    load_boxed_imagenette,
    load_dataset,
    stratified_subset,
)
from tdlib.data.root import cache_dir, data_root

__all__ = [
    "SPECS",
    "ArrayDataset",
    "BoxedImages",
    "DatasetBundle",
    "DatasetSpec",
    "cache_dir",
    "data_root",
    "holdout_split",
    "load_boxed_imagenette",
    "load_dataset",
    "stratified_subset",
]
