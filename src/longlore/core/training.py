"""One training loop for every trainer: AdamW, warm-up + cosine/linear decay, gradient clipping,
gradient accumulation, data parallelism, checkpoints, resume, progress and cost accounting.

A trainer keeps only its loss::

    from longlore.core.training import EpochBatches, TrainingArgs, train_loop

    def loss_fn(model, items, ctx):            # items: this micro-batch's share of the step's batch
        out = model(**collate(items))
        return out.loss, {"acc": ...}           # mean over the items; metrics are optional floats

    result = train_loop(model, loss_fn, EpochBatches(examples, batch_size=16, seed=0),
                        TrainingArgs(steps=300, lr=1e-4, warmup_steps=30), out_dir="runs/x")

**Data.** A batch source maps a step to that step's global batch, a list of items, identically on
every rank (:class:`EpochBatches`: shuffled epochs; :class:`StepBatches`: a seeded draw per step;
or any ``Callable[[int], Sequence]``). Because the batch is a function of the step, a resumed run
sees exactly the batches an unbroken run would. The global batch is split into contiguous,
near-equal shares per rank and each share into ``grad_accum`` micro-batches. Each micro-batch loss
is weighted by ``world_size * len(micro) / len(batch)`` before ``backward``, so the update equals
one process's update on the whole batch whenever ``loss_fn`` returns the mean over its items (with
token-level means, it equals one process running the same micro-batches).

**Parallelism.** Under ``torchrun --nproc_per_node N`` (or ``accelerate launch``) the loop joins the
process group (:func:`longlore.core.distributed.init_distributed`) and wraps a module that calls
``loss_fn`` in ``DistributedDataParallel``, so any loss function (one that calls ``model.loss`` or
several forwards) gets its gradients averaged; micro-batches before the last run under
``no_sync``. Only rank 0 writes the checkpoint and shows progress; every rank resumes from it.

**Randomness.** ``ctx.rng`` is a ``random.Random`` keyed by (seed, step, offset of the micro-batch
in the global batch): the same items get the same draws on one process or on several. The global
python/numpy/torch states are saved per rank in each checkpoint and restored on resume.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from longlore.core.checkpoint import (
    CostMeter,
    load_checkpoint,
    restore_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from longlore.core.distributed import (
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
    shard_bounds,
)
from longlore.core.errors import LongloreError
from longlore.core.progress import console, track

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainingArgs:
    """Settings of :func:`train_loop` (a method's own knobs live in its config)."""

    steps: int = field(default=100, metadata={"help": "Optimizer steps in total (a resumed run continues to here)."})
    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (matrices only; never vectors)."})
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW (beta1, beta2)."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps (lr (s+1)/warmup at step s)."})
    schedule: Literal["cosine", "linear", "constant"] = field(
        default="cosine", metadata={"help": "Decay after warm-up, to min_lr_ratio x lr at the last step."}
    )
    min_lr_ratio: float = field(default=0.0, metadata={"help": "Final lr as a share of the peak lr."})
    grad_clip: float = field(default=1.0, metadata={"help": "Clip the global gradient norm to this (0: off)."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per rank per optimizer step."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save a resumable checkpoint every N steps."})
    log_every: int = field(default=10, metadata={"help": "Print the mean loss every N steps (0: never)."})
    seed: int = field(default=0, metadata={"help": "Seed of the data order and of ctx.rng."})
    stop_after: Optional[int] = field(
        default=None, metadata={"help": "Stop (after a checkpoint) at this step; run again to resume."}
    )

    def __post_init__(self) -> None:
        if self.steps < 0 or self.grad_accum < 1 or self.checkpoint_every < 1:
            raise LongloreError("TrainingArgs: steps >= 0, grad_accum >= 1 and checkpoint_every >= 1 are required")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise LongloreError(f"TrainingArgs.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]


def lr_factor(step: int, args: TrainingArgs) -> float:
    """The lr multiplier at ``step``: linear warm-up to 1, then ``schedule`` down to ``min_lr_ratio``."""
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if args.schedule == "cosine" else 1.0 - progress
    return args.min_lr_ratio + (1.0 - args.min_lr_ratio) * decay


def default_param_groups(model: torch.nn.Module, args: TrainingArgs) -> list[dict[str, Any]]:
    """Trainable parameters in two AdamW groups: matrices decay, vectors (norms, biases) do not."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


# --- data ------------------------------------------------------------------------------------


class EpochBatches:
    """Shuffled epochs over ``items``: step s is batch ``s % per_epoch`` of epoch ``s // per_epoch``,
    each epoch a fresh permutation drawn from (seed, epoch); the last batch of an epoch is smaller
    unless ``drop_last``."""

    def __init__(self, items: Sequence[Any], batch_size: int, seed: int = 0, drop_last: bool = False) -> None:
        if batch_size < 1 or not len(items):
            raise LongloreError(f"EpochBatches: need items and batch_size >= 1 (got {len(items)} items)")
        if drop_last and len(items) < batch_size:
            raise LongloreError(f"EpochBatches: {len(items)} items < batch_size {batch_size} with drop_last")
        self.items, self.batch_size, self.seed, self.drop_last = items, batch_size, seed, drop_last
        self.per_epoch = len(items) // batch_size if drop_last else -(-len(items) // batch_size)
        self._perm: tuple[int, list[int]] | None = None

    def __call__(self, step: int) -> list[Any]:
        epoch, index = divmod(step, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            order = list(range(len(self.items)))
            random.Random(f"{self.seed}:epoch:{epoch}").shuffle(order)
            self._perm = (epoch, order)
        chosen = self._perm[1][index * self.batch_size : (index + 1) * self.batch_size]
        return [self.items[i] for i in chosen]

    def state(self) -> dict[str, Any]:
        return {"kind": "epochs", "items": len(self.items), "batch_size": self.batch_size, "seed": self.seed}


class StepBatches:
    """A seeded draw per step: ``draw(random.Random((seed, step)), step) -> list of items``."""

    def __init__(self, draw: Callable[[random.Random, int], Sequence[Any]], seed: int = 0) -> None:
        self.draw, self.seed = draw, seed

    def __call__(self, step: int) -> list[Any]:
        return list(self.draw(random.Random(self.seed * 1_000_003 + step), step))

    def state(self) -> dict[str, Any]:
        return {"kind": "steps", "seed": self.seed}


@dataclass
class StepContext:
    """What ``loss_fn`` may want to know about the micro-batch it is given."""

    step: int
    micro: int  # index of this micro-batch on this rank
    offset: int  # position of its first item in the step's global batch
    global_size: int  # items in the step's global batch
    rank: int
    world_size: int
    rng: random.Random


LossFn = Callable[[torch.nn.Module, list[Any], StepContext], Any]


@dataclass
class TrainResult:
    """The outcome of :func:`train_loop` (the model is updated in place)."""

    step: int  # steps done in total
    history: list[dict[str, float]]
    cost: dict[str, float]  # wall / CPU seconds over every invocation
    resumed_from: int  # 0 for a fresh run
    finished: bool  # reached args.steps (False after stop_after)

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None


class _LossModule(torch.nn.Module):
    """Makes ``loss_fn(model, items, ctx)`` a module forward, so DDP sees every forward it runs."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, items: list[Any], ctx: StepContext) -> Any:
        return self.loss_fn(self.model, items, ctx)


def _split(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple):
        loss, metrics = out
        return loss, {k: float(v) for k, v in (metrics or {}).items()}
    return out, {}


def _micro_batches(batch: list[Any], rank: int, world: int, accum: int) -> list[tuple[int, list[Any]]]:
    """This rank's (offset, items) micro-batches of a global batch."""
    start, end = shard_bounds(len(batch), world)[rank]
    share = batch[start:end]
    return [(start + a, share[a:b]) for a, b in shard_bounds(len(share), accum) if b > a]


def train_loop(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batches: Callable[[int], Sequence[Any]],
    args: TrainingArgs,
    out_dir: str | Path | None = None,
    *,
    param_groups: list[dict[str, Any]] | None = None,
    make_optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer] | None = None,
    lr_lambda: Callable[[int], float] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    description: str = "training",
    progress: bool = True,
    find_unused_parameters: bool = True,
    shard_batch: bool = True,
) -> TrainResult:
    """Train ``model`` in place on ``loss_fn`` over ``batches`` (see the module docstring).

    ``out_dir/checkpoint.pt`` is written every ``args.checkpoint_every`` steps and at the end, and a
    run finding it there resumes from it. ``param_groups`` (AdamW groups with their own ``lr`` /
    ``weight_decay``), ``make_optimizer`` (e.g. RecAdam) and ``lr_lambda`` (a custom schedule)
    replace the defaults. ``on_step(step, row)`` runs on every rank after each step.

    ``shard_batch=False`` is for model-parallel losses (CoMeT's layer pipeline): every rank gets the
    whole micro-batch, ``loss_fn`` returns this rank's share (the shares add up to the micro-batch's
    mean loss over ranks), and the gradients are summed over ranks instead of averaged.
    """
    info = init_distributed()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise LongloreError(f"{description}: the model has no trainable parameters")
    groups = param_groups or default_param_groups(model, args)
    for g in groups:
        g.setdefault("lr", args.lr)
    optimizer = (
        make_optimizer(groups) if make_optimizer else torch.optim.AdamW(groups, lr=args.lr, betas=tuple(args.betas))
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda or (lambda s: lr_factor(s, args)))
    ckpt = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    data_state = batches.state() if hasattr(batches, "state") else {}
    step, history, cost = 0, [], CostMeter()
    if ckpt is not None and ckpt.exists():
        payload = load_checkpoint(ckpt)
        if payload["data"] and data_state and payload["data"] != data_state:
            raise LongloreError(
                f"{ckpt}: made with data order {payload['data']}, now {data_state}; "
                "resume with the same data and settings, or use a new output folder"
            )
        restore_checkpoint(payload, model, optimizer, scheduler, info.rank, info.world_size)
        step, history, cost = payload["step"], list(payload["history"]), CostMeter.resumed(payload["cost"])
        if info.is_main and progress:
            console.print(f"[yellow]resuming[/yellow] {ckpt} from step {step}")
    else:
        seed_everything(args.seed + info.rank)
    resumed_from = step
    engine: torch.nn.Module = _LossModule(model, loss_fn)
    if info.distributed and shard_batch:
        device_ids = [trainable[0].device.index] if trainable[0].device.type == "cuda" else None
        engine = torch.nn.parallel.DistributedDataParallel(
            engine, device_ids=device_ids, find_unused_parameters=find_unused_parameters
        )
    last = args.steps if args.stop_after is None else min(args.steps, args.stop_after)

    def save(at: int) -> None:
        states = all_gather_objects(rng_state())  # every rank's RNG; only rank 0 writes
        cpu = all_reduce_sum(torch.tensor([cost.this_run()["cpu_seconds"]], dtype=torch.float64)).item()
        if info.is_main and ckpt is not None:
            save_checkpoint(
                ckpt,
                model_state={k: v for k, v in model.state_dict().items() if k in trainable_names},
                step=at,
                optimizer=optimizer,
                scheduler=scheduler,
                rng=states,
                data_state=data_state,
                cost=cost.totals(cpu),
                history=history,
                extra={"args": asdict(args), "world_size": info.world_size},
            )
        barrier()

    trainable_names = {n for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    steps = range(step, last)
    for step in track(steps, description) if (progress and info.is_main) else steps:
        batch = list(batches(step))
        if shard_batch and len(batch) < info.world_size:
            raise LongloreError(
                f"{description}: step {step} has {len(batch)} items for {info.world_size} ranks; "
                "use a batch of at least one item per rank (or drop_last)"
            )
        micro = (
            _micro_batches(batch, info.rank, info.world_size, args.grad_accum)
            if shard_batch
            else _micro_batches(batch, 0, 1, args.grad_accum)
        )
        ranks_in_batch = info.world_size if shard_batch else 1
        sums = {"loss": 0.0}
        optimizer.zero_grad(set_to_none=True)
        for i, (offset, items) in enumerate(micro):
            ctx = StepContext(
                step, i, offset, len(batch), info.rank, info.world_size, random.Random(f"{args.seed}:{step}:{offset}")
            )
            sync_now = i == len(micro) - 1 or not (info.distributed and shard_batch)
            with engine.no_sync() if not sync_now else contextlib.nullcontext():  # type: ignore[operator]
                loss, metrics = _split(engine(items, ctx))
                weight = ranks_in_batch * len(items) / len(batch)
                (loss * weight).backward()
            sums["loss"] += float(loss.detach()) * len(items)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v * len(items)
        if info.distributed and not shard_batch:  # each rank holds part of every gradient: sum them
            for p in trainable:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                all_reduce_sum(p.grad)
        if args.grad_clip and args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
        lr_used = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        keys = sorted(sums)
        totals = all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64))
        row = {"step": step, **{k: round(v / len(batch), 6) for k, v in zip(keys, totals.tolist())}}
        row["lr"] = lr_used
        history.append(row)
        if on_step is not None:
            on_step(step, row)
        if info.is_main and progress and args.log_every and (step + 1) % args.log_every == 0:
            recent = history[-args.log_every :]
            console.print(f"step {step + 1}: loss {sum(r['loss'] for r in recent) / len(recent):.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == last:
            save(step + 1)
    model.eval()
    done = max(resumed_from, last)
    cpu = all_reduce_sum(torch.tensor([cost.this_run()["cpu_seconds"]], dtype=torch.float64)).item()
    return TrainResult(done, history, cost.totals(cpu), resumed_from, done >= args.steps)
