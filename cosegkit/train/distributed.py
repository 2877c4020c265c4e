"""Data-parallel plumbing: one `Dist` object for the single-process and the torchrun case.

Under `torchrun` (WORLD_SIZE > 1 in the environment) `Dist.setup()` initialises the default process group
(NCCL with CUDA, gloo on CPU), each rank trains on its DistributedSampler share of the epoch's samples,
DistributedDataParallel averages gradients, logging / checkpoints happen on rank 0, and epoch losses and
evaluation predictions are reduced across ranks so that every rank reports the same numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

__all__ = ["Dist"]


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device_type: str = "cpu") -> Dist:
        if torch_dist.is_available() and torch_dist.is_initialized():
            return cls(torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        backend = "nccl" if device_type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend)
        return cls(torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def sum_floats(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64 on CPU, so gloo and NCCL-less setups both work)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        if torch_dist.get_backend() == "nccl":
            t = t.cuda()
        torch_dist.all_reduce(t)
        return t.cpu().tolist()

    def gather_objects(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world
        torch_dist.all_gather_object(out, obj)
        return out

    def teardown(self) -> None:
        if self.owns_group and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
