"""Training CoMeT on the shared loop (:func:`longlore.core.training.train_loop`): the loss is the
model's next-token CE through the memory; this module supplies the data, the AdamW groups (memory
modules at ``lr x memory_lr_multiplier``) and the warm-up + cosine schedule (optionally restarted at
curriculum stage starts).

Every step's batch is drawn from ``random.Random(seed * 1_000_003 + step)`` and the chunk-boundary
augmentation of each example is drawn from the same generator right after it, so a run stopped and
resumed from its checkpoint ends with exactly the weights of an unbroken run.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from longlore.comet.chunking import plan_chunks
from longlore.comet.model import CometModel
from longlore.core.distributed import dist_info
from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text
from longlore.core.training import StepBatches, StepContext, TrainingArgs, train_loop

# One step's batch: (ids, labels or None[, per-token loss weights]); labels -100 where no loss is wanted.
Batch = tuple[list[list[int]], Optional[list[list[int]]]] | tuple[list[list[int]], Any, list[list[float]]]
BatchFn = Callable[[random.Random, int], Batch]


@dataclass
class TrainArgs:
    """Loop settings (the method's own knobs, lr included, live in CometConfig)."""

    steps: int = field(default=200, metadata={"help": "Optimizer steps."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-step data draw and chunk augmentation."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save weights + optimizer every N steps (resumable)."})
    log_every: int = field(default=10, metadata={"help": "Print the mean loss every N steps."})
    stop_after: Optional[int] = field(
        default=None, metadata={"help": "Stop (after checkpointing) at this step; resume later."}
    )
    restarts: Optional[list[int]] = field(
        default=None,
        metadata={
            "help": "Steps at which warm-up + cosine starts again (curriculum stage starts); empty: one schedule."
        },
    )


@dataclass
class Example:
    """One training sequence as the loss function receives it."""

    ids: list[int]
    labels: list[int] | None = None  # aligned with ids, -100 = no loss; None: every token
    weights: list[float] | None = None  # per-token loss weights aligned with ids; None: all 1
    sizes: list[int] | None = None  # chunk sizes (drawn with the batch); None: fixed chunks


def param_groups(model: CometModel) -> list[dict[str, Any]]:
    """AdamW groups: backbone / memory modules (lr x memory_lr_multiplier), with and without decay
    (vectors such as norm weights never decay), as the official ``group_params``."""
    cfg = model.config
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {
        (m, d): [] for m in (False, True) for d in (False, True)
    }
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[(name.startswith("memory."), p.ndim > 1)].append(p)
    return [
        {
            "params": ps,
            "lr": cfg.lr * (cfg.memory_lr_multiplier if mem else 1.0),
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "name": f"{'memory' if mem else 'base'}-{'decay' if decay else 'nodecay'}",
        }
        for (mem, decay), ps in groups.items()
        if ps
    ]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def restarted_lr_factor(step: int, warmup: int, total: int, restarts: list[int] | None) -> float:
    """``lr_factor`` restarted at every step in ``restarts``: each segment [start, next start) gets
    its own warm-up and cosine. A curriculum stage then starts at full lr instead of inheriting the
    decayed tail of one long schedule (the new, harder stage needs it most)."""
    starts = sorted({0, *(r for r in (restarts or []) if 0 < r < total)})
    begin = max(s for s in starts if s <= step)
    end = next((s for s in starts if s > step), total)
    return lr_factor(step - begin, warmup, end - begin)


def planned_examples(model: CometModel, batch: Batch, rng: random.Random) -> list[Example]:
    """The step's examples with their chunk sizes drawn from ``rng`` (the official planner when
    augmentation is on; ``max_len`` = the batch's longest sequence rounded up to a chunk)."""
    ids, labels = batch[0], batch[1]
    weights = batch[2] if len(batch) > 2 else None
    if not ids or any(not x for x in ids):
        raise LongloreError("comet train: a batch holds an empty sequence; every example needs tokens")
    size = model.config.chunk_size
    max_len = max(size, -(-max(len(x) for x in ids) // size) * size)
    aug = rng if model.config.augment_chunks else None
    return [
        Example(
            ids=x,
            labels=labels[b] if labels is not None else None,
            weights=weights[b] if weights is not None else None,
            sizes=plan_chunks(x, size, aug, model.boundary_ids, max_len),
        )
        for b, x in enumerate(ids)
    ]


def prepare_examples(model: CometModel, items: list[Example]) -> list:
    """The micro-batch as the model's chunks (labels default to the ids; weights where any are given)."""
    labels = [x.labels if x.labels is not None else list(x.ids) for x in items]
    weights = [x.weights or [1.0] * len(x.ids) for x in items] if any(x.weights for x in items) else None
    return model.prepare([x.ids for x in items], labels, sizes=[x.sizes for x in items], weights=weights)


def example_loss(model: CometModel, items: list[Example], ctx: StepContext | None = None) -> torch.Tensor:
    """Mean next-token CE over the text tokens of a micro-batch (weighted where weights are given)."""
    out = model.forward(prepare_examples(model, items))
    if out.loss is None:
        raise LongloreError("comet train: no text token in this batch carries a label")
    return out.loss


def train(
    model: CometModel,
    batch_fn: BatchFn,
    out_dir: str | Path,
    args: TrainArgs | None = None,
    on_step: Callable[[int, float], None] | None = None,
    loss_fn: Callable[[CometModel, list[Example], StepContext], torch.Tensor] = example_loss,
    shard_batch: bool = True,
    description: str = "CoMeT training",
    summary_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on batches from ``batch_fn(rng, step)``; resume from ``out_dir/checkpoint.pt``.

    Returns a summary (steps, wall and CPU seconds summed over every call that trained this
    checkpoint, final loss, plus ``summary_extra``) and writes it with the loss history to
    ``out_dir/train_history.json``. ``on_step(step, loss)`` is called after each step. ``loss_fn`` and
    ``shard_batch`` are :func:`longlore.core.training.train_loop`'s (the pipeline mode passes its
    per-rank share of the loss and ``shard_batch=False``).
    """
    args = args or TrainArgs()
    out_dir = Path(out_dir)
    cfg = model.config
    groups = param_groups(model)
    if not groups:
        raise LongloreError("comet train: nothing to train (is the backbone frozen and the memory empty?)")
    loop_args = TrainingArgs(
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
        loss_fn,
        StepBatches(lambda rng, step: planned_examples(model, batch_fn(rng, step), rng), seed=args.seed),
        loop_args,
        out_dir,
        param_groups=groups,
        lr_lambda=lambda s: restarted_lr_factor(s, cfg.warmup_steps, args.steps, args.restarts),
        on_step=(lambda step, row: on_step(step, row["loss"])) if on_step else None,
        description=description,
        shard_batch=shard_batch,
    )
    losses = [round(row["loss"], 5) for row in result.history]
    summary = {
        "steps_done": result.step,
        "steps": args.steps,
        **(summary_extra or {}),
        **{f"{k}_total": round(v, 3) for k, v in result.cost.items()},
        "final_loss": losses[-1] if losses else None,
        "args": asdict(args),
        "config": cfg.to_dict(),
    }
    if dist_info().is_main:  # under torchrun every rank holds the same history; one writes it
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "train_history.json", json.dumps({"loss": losses, **summary}), overwrite=True)
    return summary


def text_windows(ids: list[int], seq_len: int, batch_size: int) -> BatchFn:
    """A BatchFn drawing ``batch_size`` random ``seq_len``-token windows of one long token list."""
    if len(ids) < 2:
        raise LongloreError("comet train: the training text has fewer than 2 tokens")
    seq_len = min(seq_len, len(ids))

    def draw(rng: random.Random, step: int) -> Batch:
        starts = [rng.randrange(0, len(ids) - seq_len + 1) for _ in range(batch_size)]
        return [ids[s : s + seq_len] for s in starts], None

    return draw
