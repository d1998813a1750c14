"""Training and evaluation loops for RAM (plain PyTorch; one example per step as in the paper).

Two stages, each optional:

* selector stage (``TrainArgs.selector_steps``): InfoNCE only, only the encoder runs and trains.
  A deviation from the paper's single joint stage: the encoder's pass over 50-token segments costs
  a small fraction of a decoder step, so the selector gets many more documents for the same CPU.
* joint stage (``TrainArgs.steps``): answer NLL + InfoNCE as the paper has it (encoder,
  projector, decoder q/k/v or their LoRA adapters).

Every step draws its example (and its keep ratio) from an RNG seeded by (seed, stage, step) alone,
so a run resumed from a checkpoint sees exactly the data an unbroken run would.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from longlore.core.io import atomic_write_text, write_json
from longlore.core.metrics import exact_match, substring_match, token_f1
from longlore.core.progress import console, track
from longlore.ram.model import RAMModel, sample_keep_ratio


@dataclass
class TrainArgs:
    """Loop settings (the method's own knobs live in RAMConfig)."""

    steps: int = field(default=200, metadata={"help": "Joint-stage optimizer steps (one example each)."})
    selector_steps: int = field(
        default=0,
        metadata={"help": "Selector-stage steps before the joint stage: InfoNCE only, encoder only (0 = none)."},
    )
    selector_lr: float = field(default=1e-4, metadata={"help": "Peak learning rate of the selector stage."})
    selector_batch: int = field(
        default=1, metadata={"help": "Documents per selector-stage step (with all their questions, encoded once)."}
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps of each stage."})
    seed: int = field(default=0, metadata={"help": "Example-order and keep-ratio sampling seed."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save RAM state + optimizer every N steps."})
    stop_after: int = field(
        default=0, metadata={"help": "Stop this invocation after N steps in all (0 = run to the end); resume later."}
    )
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast (weights stay in their dtype)."})


def _autocast(model: RAMModel, enabled: bool) -> Any:
    if not enabled:
        return nullcontext()
    return torch.autocast(model.device.type, dtype=torch.bfloat16)


def step_rng(seed: int, stage: str, step: int) -> random.Random:
    """The RNG of one training step: depends on (seed, stage, step) only."""
    return random.Random(f"{seed}/{stage}/{step}")


def _schedule(steps: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1 - step / max(1, steps))

    return factor


def _run_stage(
    model: RAMModel,
    stage: str,
    steps: int,
    lr: float,
    params: list[torch.nn.Parameter],
    loss_of: Callable[[random.Random], dict[str, torch.Tensor]],
    ckpt: Path,
    args: TrainArgs,
    budget: list[int],
) -> dict[str, Any]:
    """One stage's loop with checkpoints; resumes from ``ckpt`` when it holds this stage."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(steps, args.warmup_steps))
    step, history, cost = 0, [], {"cpu_s": 0.0, "wall_s": 0.0}
    state_file = ckpt / f"{stage}_state.pt"
    if state_file.exists():
        state = torch.load(state_file, weights_only=False)
        model.load_trainable_state(state["model"], where=str(state_file))
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, history, cost = state["step"], state["history"], state["cost"]
        torch.set_rng_state(state["torch_rng"])
        if step < steps:
            console.print(f"[yellow]resuming[/yellow] {stage} stage at step {step}")
    model.train()
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def save(next_step: int) -> None:
        ckpt.mkdir(parents=True, exist_ok=True)
        spent = {
            "cpu_s": cost["cpu_s"] + time.process_time() - cpu0,
            "wall_s": cost["wall_s"] + time.perf_counter() - wall0,
        }
        state = {
            "model": {k: v.detach().clone() for k, v in model.trainable_state().items()},
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "step": next_step,
            "history": history,
            "cost": spent,
            "torch_rng": torch.get_rng_state(),
        }
        tmp = state_file.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(state_file)  # atomic: a crash never leaves half a checkpoint

    first = step
    for step in track(range(first, steps), f"RAM {stage} stage", total=steps - first):
        if args.stop_after and budget[0] >= args.stop_after:
            break
        out = loss_of(step_rng(args.seed, stage, step))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, model.config.grad_clip)
        optimizer.step()
        schedule.step()
        budget[0] += 1
        history.append({"step": step, **{k: round(float(v.detach()), 4) for k, v in out.items()}})
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == steps:
            save(step + 1)
    else:
        step = steps
    if args.stop_after and budget[0] >= args.stop_after and step < steps:
        save(step)  # stopped early: the next invocation resumes at this step
    model.eval()
    return {
        "steps": steps,
        "done": len(history) >= steps,
        "cpu_s": round(cost["cpu_s"] + time.process_time() - cpu0, 1),
        "wall_s": round(cost["wall_s"] + time.perf_counter() - wall0, 1),
        "final": history[-1] if history else None,
        "history": history,
    }


def train(
    model: RAMModel,
    examples: list[dict[str, Any]],
    out_dir: str | Path,
    args: TrainArgs | None = None,
    full_context: bool = False,
    selector_examples: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``model``: the selector stage (if ``args.selector_steps``) on ``selector_examples``
    (default: ``examples``), then the joint stage on ``examples``. Resumes from
    ``out_dir/checkpoint``; returns per-stage costs (CPU seconds) and loss histories.

    ``full_context=True`` trains the uncompressed baseline instead (the same decoder parameters,
    whole context in the prompt, answer NLL), with the same examples in the same order.
    """
    args = args or TrainArgs()
    out_dir, cfg = Path(out_dir), model.config
    ckpt = out_dir / "checkpoint"
    budget = [0]  # steps run by this invocation (for stop_after)
    summary: dict[str, Any] = {"args": asdict(args), "config": cfg.to_dict(), "full_context": full_context}
    if args.selector_steps and not full_context:
        groups = group_by_document(selector_examples or examples)
        encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]

        def selector_loss(rng: random.Random) -> dict[str, torch.Tensor]:
            batch = [ex for _ in range(args.selector_batch) for ex in groups[rng.randrange(len(groups))]]
            with _autocast(model, args.bf16):
                return model.selector_loss(batch)

        summary["selector"] = _run_stage(
            model, "selector", args.selector_steps, args.selector_lr, encoder_params, selector_loss, ckpt, args, budget
        )
        if not summary["selector"]["done"]:
            return summary

    def joint_loss(rng: random.Random) -> dict[str, torch.Tensor]:
        example = examples[rng.randrange(len(examples))]
        if full_context:
            with _autocast(model, args.bf16):
                return full_context_loss(model, example)
        keep_ratio = sample_keep_ratio(rng, *cfg.keep_ratio_range) if cfg.sample_keep_ratio else None
        with _autocast(model, args.bf16):
            out = model([example], keep_ratio=keep_ratio)
        out["requested_keep_ratio"] = torch.tensor(cfg.keep_ratio if keep_ratio is None else keep_ratio)
        return out

    params = (
        [p for p in model.decoder.parameters() if p.requires_grad]
        if full_context
        else [p for p in model.parameters() if p.requires_grad]
    )
    if args.steps:
        summary["joint"] = _run_stage(model, "joint", args.steps, cfg.lr, params, joint_loss, ckpt, args, budget)
    summary["cpu_s"] = round(sum(summary[s]["cpu_s"] for s in ("selector", "joint") if s in summary), 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out_dir / "train_history.json",
        json.dumps({s: summary[s]["history"] for s in ("selector", "joint") if s in summary}),
        overwrite=True,
    )
    return summary


def group_by_document(examples: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Examples grouped by their context (all questions about one document together), in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for example in examples:
        groups.setdefault(example["context"], []).append(example)
    return list(groups.values())


def full_context_loss(model: RAMModel, example: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Answer NLL with the whole context in the prompt (the fine-tuned full-context baseline)."""
    ids = model.tokenizer(example["context"], add_special_tokens=False)["input_ids"][: model.config.max_doc_tokens]
    ids += model.question_ids(example["question"])
    answer = model.answer_ids(example["answer"])
    input_ids = torch.tensor([ids + answer], device=model.device)
    labels = torch.tensor([[-100] * len(ids) + answer], device=model.device)
    out = model.decoder(input_ids=input_ids, labels=labels)
    return {"loss": out.loss, "nll": out.loss.detach()}


def evaluate(predictions: list[str], records: list[dict[str, Any]]) -> dict[str, float]:
    """Substring EM ("accuracy"), strict EM and token F1, averaged."""
    n = max(1, len(records))
    return {
        "substring_em": sum(substring_match(p, r["answers"]) for p, r in zip(predictions, records)) / n,
        "em": sum(exact_match(p, r["answers"]) for p, r in zip(predictions, records)) / n,
        "f1": sum(token_f1(p, r["answers"]) for p, r in zip(predictions, records)) / n,
        "n": len(records),
    }


def save_results(path: str | Path, results: dict[str, Any]) -> None:
    write_json(path, results, overwrite=True)
