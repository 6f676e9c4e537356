"""This process's place in a `torchrun` job and the few collectives the jobs need (train, eval).

Every helper is a no-op (or the single-process answer) when the job runs alone (WORLD_SIZE 1), so the
jobs call them unconditionally. torch.distributed is imported only when a process group is in use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["DistInfo", "all_gather_object", "barrier", "broadcast_object", "destroy_distributed",
           "init_distributed", "local_device"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a `torchrun` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> DistInfo:
        env = os.environ
        return DistInfo(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def local_device(device: str, info: DistInfo):
    """The torch.device of a --device word (auto, cpu, cuda[:N]), or this rank's own GPU under torchrun."""
    from detic_cli.utils import resolve_device

    torch_device = resolve_device(device)
    if info.world_size > 1 and torch_device.type == "cuda":
        torch_device = resolve_device(f"cuda:{info.local_rank}")
    return torch_device


def init_distributed(info: DistInfo, cuda: bool) -> None:
    """Join the process group torchrun set up (nccl on CUDA, gloo on CPU); no-op when alone."""
    if info.world_size <= 1:
        return
    import torch
    import torch.distributed as dist

    if cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every process."""
    if info.world_size <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any, world_size: int) -> list[Any]:
    """Every process's `obj`, in rank order."""
    if world_size <= 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def destroy_distributed(info: DistInfo) -> None:
    """Wait for every process, then leave the process group; no-op when alone."""
    if info.world_size > 1:
        import torch.distributed as dist

        barrier(info)
        dist.destroy_process_group()
