"""Lens training on several processes: `torchrun --nproc-per-node=N -m lens_widget train ...`.

Every process reads the same data stream (it is deterministic given the seed), runs its share of
each step's sequences through its own copy of the frozen model, and the lens's gradients are
averaged across processes by DistributedDataParallel; each process's loss is scaled so that the
average is the gradient one process would get from the whole step. So N processes train the lens
one process would on the same total batch, up to the order of float sums. Only rank 0 writes
checkpoints and the lens folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, number of processes) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(items: list[T], rank: int, size: int) -> list[T]:
    """This process's part of a step: every size-th item from its rank, so parts differ by one at most.
    A step must give every process something, or its gradients could not join the average."""
    if len(items) < size:
        raise ValueError(
            f"a step holds {len(items)} sequences but {size} processes train: raise tokens_per_step or lower "
            "max_length so that every process gets at least one sequence per step"
        )
    return items[rank::size]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over processes, in place (itself without a process group)."""
    if world()[1] > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def from_rank_0(read: Callable[[], T]) -> T:
    """What `read` gives on rank 0, on every process (a checkpoint only rank 0 wrote, on storage the
    others may not share). An exception there is raised on every process, so none waits for the rest."""
    if world()[1] == 1:
        return read()
    box: list[Any] = [None]
    if world()[0] == 0:
        try:
            box[0] = ("ok", read())
        except Exception as exc:
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def init_from_environment(device: str | None) -> str | None:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR…), if
    any: NCCL for CUDA, gloo otherwise. Returns the device this process trains on: with CUDA, the
    GPU of its local rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or world()[1] > 1:
        return device
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return device


def close() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
