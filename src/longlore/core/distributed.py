"""Data parallelism through ``torch.distributed`` (what ``torchrun`` and ``accelerate launch`` set up).

Nothing here is a cluster layer of its own: :func:`init_distributed` calls
``torch.distributed.init_process_group`` from the environment the launcher sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), with NCCL on CUDA and gloo on the
CPU. Without a launcher every helper degrades to the single-process answer (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Rank / world size of the initialised process group (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistInfo()


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group a launcher describes in the environment, once; a no-op for a plain
    ``python`` run (``WORLD_SIZE`` unset or 1). Backend: NCCL when CUDA is present, else gloo."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist_info()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist_info().distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it (unchanged in a single process). A CPU
    tensor makes the trip through the current GPU when the backend is NCCL (which only takes CUDA
    tensors)."""
    if dist_info().distributed:
        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
            on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
            tensor.copy_(on_gpu.cpu())
        else:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in a single process)."""
    info = dist_info()
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``parts`` contiguous slices whose sizes differ by at most one
    (the first ``n % parts`` slices are one longer)."""
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def _spawned(rank: int, world_size: int, init_file: str, fn: Any, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        fn(rank, *args)
    finally:
        dist.destroy_process_group()


def spawn_gloo(fn: Any, world_size: int, folder: str | os.PathLike, *args: Any) -> None:
    """Run ``fn(rank, *args)`` in ``world_size`` CPU processes joined in a gloo group (rendezvous
    through a file in ``folder``; one torch thread each): how tests check data-parallel code
    without a launcher. ``fn`` must be importable (defined at module level)."""
    import torch.multiprocessing as mp

    init_file = os.path.join(os.fspath(folder), f"gloo-rendezvous-{os.getpid()}")
    mp.spawn(_spawned, args=(world_size, init_file, fn, args), nprocs=world_size, join=True)
