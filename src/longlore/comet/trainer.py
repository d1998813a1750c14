"""Training loop for CoMeT: AdamW, warm-up + cosine, memory modules at a multiplied lr, checkpoints.

Every step draws its batch from ``random.Random(seed, step)``, so a run that is stopped and
resumed from its checkpoint ends with exactly the weights of an unbroken run.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from longlore.comet.model import CometModel
from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text
from longlore.core.progress import console, track

# (ids, labels or None[, per-token loss weights]) for one step; labels -100 where no loss is wanted.
Batch = (
    tuple[list[list[int]], list[list[int]] | None] | tuple[list[list[int]], list[list[int]] | None, list[list[float]]]
)
BatchFn = Callable[[random.Random, int], Batch]


@dataclass
class TrainArgs:
    """Loop settings (the method's own knobs, lr included, live in CometConfig)."""

    steps: int = field(default=200, metadata={"help": "Optimizer steps."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-step data draw and chunk augmentation."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save weights + optimizer every N steps (resumable)."})
    log_every: int = field(default=10, metadata={"help": "Print the mean loss every N steps."})
    stop_after: int | None = field(
        default=None, metadata={"help": "Stop (after checkpointing) at this step; resume later."}
    )
    restarts: list[int] | None = field(
        default=None,
        metadata={
            "help": "Steps at which warm-up + cosine starts again (e.g. curriculum stage starts); None: one schedule."
        },
    )


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


def _trainable_state(model: CometModel) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def train(
    model: CometModel,
    batch_fn: BatchFn,
    out_dir: str | Path,
    args: TrainArgs | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on batches from ``batch_fn(rng, step)``; resume from ``out_dir/checkpoint``.

    Returns a summary (steps, seconds of this call, wall and CPU seconds summed over every call that
    trained this checkpoint, final loss). ``on_step(step, loss)`` is called after each step.
    """
    args = args or TrainArgs()
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint.pt"
    groups = param_groups(model)
    if not groups:
        raise LongloreError("comet train: nothing to train (is the backbone frozen and the memory empty?)")
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: restarted_lr_factor(s, model.config.warmup_steps, args.steps, args.restarts)
    )
    params = [p for g in groups for p in g["params"]]
    step, history = 0, []
    # Training cost summed over every invocation (a resumed run reports its whole budget);
    # CPU seconds count all threads, which is what a "CPU-hours" budget means.
    spent = {"wall_seconds": 0.0, "cpu_seconds": 0.0}
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, history = state["step"], state["history"]
        spent = state.get("spent", {"wall_seconds": None, "cpu_seconds": None})  # None: older checkpoint
        console.print(f"[yellow]resuming[/yellow] {out_dir} from step {step}")
    last = min(args.steps, args.stop_after) if args.stop_after is not None else args.steps
    model.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    first = step
    for step in track(range(first, last), "CoMeT training", total=max(0, last - first)):
        rng = random.Random(args.seed * 1_000_003 + step)  # depends on (seed, step) only: resumable
        batch = batch_fn(rng, step)
        loss = model.loss(batch[0], batch[1], rng=rng, weights=batch[2] if len(batch) > 2 else None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, model.config.grad_clip)
        optimizer.step()
        schedule.step()
        history.append(round(float(loss.detach()), 5))
        if on_step:
            on_step(step, history[-1])
        if (step + 1) % args.log_every == 0:
            console.print(f"step {step + 1}: loss {sum(history[-args.log_every :]) / args.log_every:.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == last:
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save(
                {
                    "model": _trainable_state(model),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step + 1,
                    "history": history,
                    "spent": _add_spent(spent, start, cpu_start),
                },
                tmp,
            )
            tmp.replace(ckpt)
    model.eval()
    totals = {f"{k}_total": v for k, v in _add_spent(spent, start, cpu_start).items()}
    summary = {
        "steps_done": len(history),
        "steps": args.steps,
        "seconds_this_run": round(time.perf_counter() - start, 1),
        **totals,
        "final_loss": history[-1] if history else None,
        "args": asdict(args),
        "config": model.config.to_dict(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "train_history.json", json.dumps({"loss": history, **summary}), overwrite=True)
    return summary


def _add_spent(spent: dict[str, float | None], start: float, cpu_start: float) -> dict[str, float | None]:
    """Cost so far: the checkpoint's totals plus this invocation's wall and CPU seconds."""
    now = {"wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start}
    return {k: None if spent[k] is None else round(spent[k] + now[k], 3) for k in now}


def text_windows(ids: list[int], seq_len: int, batch_size: int) -> BatchFn:
    """A BatchFn drawing ``batch_size`` random ``seq_len``-token windows of one long token list."""
    if len(ids) < 2:
        raise LongloreError("comet train: the training text has fewer than 2 tokens")
    seq_len = min(seq_len, len(ids))

    def draw(rng: random.Random, step: int) -> Batch:
        starts = [rng.randrange(0, len(ids) - seq_len + 1) for _ in range(batch_size)]
        return [ids[s : s + seq_len] for s in starts], None

    return draw
