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

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from longlore.comet.model import CometModel
from longlore.comet.pipeline import pipeline_loss
from longlore.comet.trainer import (
    BatchFn,
    Example,
    TrainArgs,
    param_groups,
    planned_examples,
    restarted_lr_factor,
)
from longlore.core.distributed import init_distributed
from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text
from longlore.core.training import StepBatches, StepContext, TrainingArgs, train_loop


def pipeline_example_loss(model: CometModel, items: list[Example], ctx: StepContext) -> torch.Tensor:
    """This rank's share of the micro-batch's mean next-token CE (the shares add up over ranks)."""
    labels = [x.labels if x.labels is not None else list(x.ids) for x in items]
    weights = [x.weights or [1.0] * len(x.ids) for x in items] if any(x.weights for x in items) else None
    chunks = model.prepare([x.ids for x in items], labels, sizes=[x.sizes for x in items], weights=weights)
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
    args = args or TrainArgs()
    info = init_distributed()  # joins the torchrun (or spawned) process group; world 1 without one
    if info.world_size != stages:
        raise LongloreError(
            f"comet train --pipeline-stages {stages} needs {stages} processes (torchrun --nproc_per_node "
            f"{stages}); this run has {info.world_size}"
        )
    out_dir, cfg = Path(out_dir), model.config
    groups = param_groups(model)
    if not groups:
        raise LongloreError("comet train: nothing to train (is the backbone frozen and the memory empty?)")
    loop_args = TrainingArgs(  # as comet.trainer.train builds them, so both modes train alike
        steps=args.steps,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        betas=(0.9, 0.95),
        warmup_steps=cfg.warmup_steps,
        grad_clip=cfg.grad_clip,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        stop_after=args.stop_after,
    )
    result = train_loop(
        model,
        pipeline_example_loss,
        StepBatches(lambda rng, step: planned_examples(model, batch_fn(rng, step), rng), seed=args.seed),
        loop_args,
        out_dir,
        param_groups=groups,
        lr_lambda=lambda s: restarted_lr_factor(s, cfg.warmup_steps, args.steps, args.restarts),
        description=f"CoMeT training ({stages}-stage pipeline)",
        shard_batch=False,  # every rank takes the whole batch; pipeline_loss picks its chunks
    )
    losses = [round(row["loss"], 5) for row in result.history]
    summary = {
        "steps_done": result.step,
        "steps": args.steps,
        "pipeline_stages": stages,
        **{f"{k}_total": round(v, 3) for k, v in result.cost.items()},
        "final_loss": losses[-1] if losses else None,
        "args": asdict(args),
        "config": cfg.to_dict(),
    }
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "train_history.json", json.dumps({"loss": losses, **summary}), overwrite=True)
    return summary
