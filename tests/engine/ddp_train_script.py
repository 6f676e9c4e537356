"""Run by test_trainer under `torchrun --nproc_per_node 2`: the toy model trained with DDP over gloo."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(out: Path) -> None:
    spec = importlib.util.spec_from_file_location("toy_trainer", Path(__file__).with_name("test_trainer.py"))
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    trainer = toy.make_trainer(out, noisy=False, max_iter=6, data=toy.toy_data(rank, world), rank=rank,
                               world_size=world, find_unused_parameters=False)
    trainer.train()
    if rank == 1:
        torch.save(trainer.model.state_dict(), out / "rank1.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
