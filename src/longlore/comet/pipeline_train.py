"""CoMeT's layer-level pipeline as a training mode (``longlore comet train --pipeline-stages N``
under ``torchrun --nproc_per_node N``).

Every rank holds the whole model and draws the whole step's batch (the same draw as
:func:`longlore.comet.trainer.train`); rank r runs its contiguous share of the chunks through every
layer, receiving each layer's memory from rank r - 1 and passing it on (:func:`pipeline_loss`). The
ranks' losses add up to the single-process mean loss, so summing their gradients
(``train_loop(shard_batch=False)``) gives the single-process update: a run on N stages ends with
the weights of ``comet train`` on one process, with the same checkpoints (rank 0 writes them) and
resume. What it buys: each rank holds the activations of 1/N of the chunks, for sequences whose
activations do not fit one device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from longlore.comet.model import CometModel
from longlore.comet.pipeline import pipeline_loss
from longlore.comet.trainer import BatchFn, Example, TrainArgs, prepare_examples, train
from longlore.core.distributed import init_distributed
from longlore.core.errors import LongloreError
from longlore.core.training import StepContext


def pipeline_example_loss(model: CometModel, items: list[Example], ctx: StepContext) -> torch.Tensor:
    """This rank's share of the micro-batch's mean next-token CE (the shares add up over ranks)."""
    chunks = prepare_examples(model, items)
    if len(chunks) % ctx.world_size:
        raise LongloreError(
            f"comet train --pipeline-stages {ctx.world_size}: step {ctx.step} has {len(chunks)} chunks, which "
            f"{ctx.world_size} stages cannot split evenly; use a --seq-len that is a multiple of "
            f"{ctx.world_size} x --chunk-size"
        )
    return pipeline_loss(model, chunks, ctx.rank, ctx.world_size)


def train_pipeline(
    model: CometModel, batch_fn: BatchFn, out_dir: str | Path, args: TrainArgs | None = None, stages: int = 2
) -> dict[str, Any]:
    """:func:`longlore.comet.trainer.train` with the chunks of every batch split over ``stages``
    pipeline ranks (the process group must have exactly ``stages`` ranks: ``torchrun
    --nproc_per_node stages``). Same data, optimizer groups, schedule, checkpoints and summary.

    Raises:
        LongloreError: the world size is not ``stages``, or a batch's chunks do not split evenly.
    """
    info = init_distributed()  # joins the torchrun (or spawned) process group; world 1 without one
    if info.world_size != stages:
        raise LongloreError(
            f"comet train --pipeline-stages {stages} needs {stages} processes (torchrun --nproc_per_node "
            f"{stages}); this run has {info.world_size}"
        )
    return train(
        model,
        batch_fn,
        out_dir,
        args,
        loss_fn=pipeline_example_loss,
        shard_batch=False,  # every rank takes the whole batch; pipeline_loss picks its chunks
        description=f"CoMeT training ({stages}-stage pipeline)",
        summary_extra={"pipeline_stages": stages},
    )
