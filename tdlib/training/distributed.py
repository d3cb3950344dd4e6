"""Data-parallel training with torch.distributed (launched by ``torchrun``).

Each process trains on its share of every global batch; DDP averages the gradients, so the
replicas stay identical. Backend: ``nccl`` on CUDA, ``gloo`` on CPU. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn


def world_and_rank() -> tuple[int, int]:
    """(world size, rank); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_world_size(), dist.get_rank()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` (BN buffers broadcast from rank 0)."""
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sync_buffers(model: nn.Module, world: int) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last batch of an epoch the
    ranks' running statistics differ by that batch; syncing makes the replicas identical again.
    """
    if world > 1 and dist.is_initialized():
        for buf in model.buffers():
            dist.broadcast(buf.data, src=0)


def barrier(world: int) -> None:
    """Synchronise all ranks (no-op in a single process)."""
    if world > 1 and dist.is_initialized():
        dist.barrier()


def replicas_identical(model: nn.Module) -> bool:
    """True when every rank holds bit-identical parameters and buffers."""
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, h.hexdigest())
    return len(set(digests)) == 1


@contextlib.contextmanager
def null_lock() -> Iterator[None]:
    """Ranks other than 0 take no file lock."""
    yield
