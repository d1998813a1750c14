"""Training and evaluation loops for RAM (plain PyTorch; one example per step as in the paper).

Two stages, each optional:

* selector stage (``TrainArgs.selector_steps``): InfoNCE only, only the encoder runs and trains.
  A deviation from the paper's single joint stage: the encoder's pass over 50-token segments costs
  a small fraction of a decoder step, so the selector gets many more documents for the same CPU.
* joint stage (``TrainArgs.steps``): answer NLL + InfoNCE as the paper has it (encoder,
  projector, decoder q/k/v or their LoRA adapters).

Every step's example (and keep ratio) is a function of (seed, step) alone (``StepBatches`` and
the loop's ``ctx.rng``), so a run resumed from a checkpoint sees exactly the data an unbroken run
would.
"""

from __future__ import annotations

import json
import random
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from longlore.core.distributed import dist_info
from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, write_json
from longlore.core.metrics import exact_match, substring_match, token_f1
from longlore.core.training import StepBatches, StepContext, TrainingArgs, TrainResult, train_loop
from longlore.ram.config import RAMConfig, TrainArgs
from longlore.ram.model import RAMModel, sample_keep_ratio
from longlore.ram.modules import trainable_state


def _autocast(model: RAMModel, enabled: bool) -> Any:
    if not enabled:
        return nullcontext()
    return torch.autocast(model.device.type, dtype=torch.bfloat16)


def _loop_args(args: TrainArgs, cfg: RAMConfig, steps: int, lr: float, stop_at: int | None) -> TrainingArgs:
    return TrainingArgs(
        steps=steps,
        lr=lr,
        warmup_steps=args.warmup_steps,
        schedule="linear",  # the paper: linear decay
        grad_clip=cfg.grad_clip,
        checkpoint_every=args.checkpoint_every,
        log_every=0,
        seed=args.seed,
        stop_after=stop_at,
    )


def _stage_summary(result: TrainResult, steps: int) -> dict[str, Any]:
    return {
        "steps": steps,
        "done": result.finished,
        "cpu_s": round(result.cost["cpu_seconds"], 1),
        "wall_s": round(result.cost["wall_seconds"], 1),
        "final": result.history[-1] if result.history else None,
        "history": result.history,
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
    (default: ``examples``), then the joint stage on ``examples``, both on the shared training
    loop (``longlore.core.training``). Resumes from ``out_dir/checkpoint/{selector,joint}``;
    returns per-stage costs (CPU seconds) and loss histories.

    ``full_context=True`` trains the uncompressed baseline instead (the same decoder parameters,
    whole context in the prompt, answer NLL), with the same examples in the same order.
    """
    args = args or TrainArgs()
    out_dir, cfg = Path(out_dir), model.config
    summary: dict[str, Any] = {"args": asdict(args), "config": cfg.to_dict(), "full_context": full_context}
    selector_steps = args.selector_steps if not full_context else 0
    stop = args.stop_after or None
    if selector_steps:
        groups = group_by_document(selector_examples or examples)

        def selector_loss(encoder: Any, items: list[Any], ctx: StepContext) -> Any:
            with _autocast(model, args.bf16):
                out = model.selector_loss([ex for group in items for ex in group])
            return out["loss"], {"infonce": out["infonce"]}

        draw = StepBatches(  # its own seed stream: the joint stage's draws stay those of a joint-only run
            lambda rng, step: [groups[rng.randrange(len(groups))] for _ in range(args.selector_batch)],
            seed=args.seed + 1000,
        )
        result = train_loop(
            model.encoder,
            selector_loss,
            draw,
            _loop_args(args, cfg, selector_steps, args.selector_lr, min(stop, selector_steps) if stop else None),
            out_dir / "checkpoint" / "selector",
            description="RAM selector stage",
        )
        summary["selector"] = _stage_summary(result, selector_steps)
        if not result.finished:
            return summary
        stop = stop - selector_steps if stop else None
        if stop == 0:
            return summary

    def joint_loss(ram: Any, items: list[Any], ctx: StepContext) -> Any:
        if full_context:
            with _autocast(model, args.bf16):
                loss = torch.stack([full_context_loss(model, example)["loss"] for example in items]).mean()
            return loss, {}
        # one keep ratio per step, drawn alike on every rank (for batch_size 1 this is ctx.rng's draw)
        step_rng = random.Random(f"{args.seed}:{ctx.step}:0")
        keep_ratio = sample_keep_ratio(step_rng, *cfg.keep_ratio_range) if cfg.sample_keep_ratio else cfg.keep_ratio
        with _autocast(model, args.bf16):
            out = model(items, keep_ratio=keep_ratio)
        metrics = {k: float(out[k]) for k in ("nll", "infonce", "keep_ratio")}
        return out["loss"], {**metrics, "requested_keep_ratio": keep_ratio}

    if args.steps:
        result = train_loop(
            model.decoder if full_context else model,
            joint_loss,
            StepBatches(
                lambda rng, step: [examples[rng.randrange(len(examples))] for _ in range(args.batch_size)],
                seed=args.seed,
            ),
            _loop_args(args, cfg, args.steps, cfg.lr, stop),
            out_dir / "checkpoint" / "joint",
            description="full-context fine-tuning" if full_context else "RAM joint stage",
        )
        summary["joint"] = _stage_summary(result, args.steps)
    summary["cpu_s"] = round(sum(summary[s]["cpu_s"] for s in ("selector", "joint") if s in summary), 1)
    if dist_info().is_main:  # under torchrun every rank holds the same history; one writes it
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out_dir / "train_history.json",
            json.dumps({s: summary[s]["history"] for s in ("selector", "joint") if s in summary}),
            overwrite=True,
        )
    model.eval()
    return summary


def load_training_checkpoint(model: RAMModel, path: str | Path) -> dict[str, Any]:
    """Load the trained tensors of a training checkpoint into ``model`` (to evaluate or package a
    run mid-way) and return ``{"stage", "step", "cpu_s"}``.

    ``path`` is a checkpoint file of either stage (``<out>/checkpoint/{selector,joint}/checkpoint.pt``;
    the selector stage holds the encoder's tensors only) or a stage file of the trainer before the
    shared loop (``<out>/checkpoint/{selector,joint}_state.pt``, all of RAM's trained tensors)."""
    path = Path(path)
    if not path.is_file():
        raise LongloreError(f"{path}: no checkpoint file here (expected .../checkpoint/selector/checkpoint.pt)")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("model") if isinstance(payload, dict) else None
    if not state:
        raise LongloreError(f"{path}: not a RAM training checkpoint (no model tensors)")
    stage = "selector" if path.parent.name == "selector" or path.name.startswith("selector") else "joint"
    if all(k.startswith(("encoder.", "projector.", "decoder.")) for k in state):
        model.load_trainable_state(state, where=str(path))  # the whole of RAM's trained state
    else:  # a selector-stage checkpoint of the shared loop: the encoder's trainable tensors
        expected = set(trainable_state(model.encoder))
        if set(state) != expected:
            raise LongloreError(
                f"{path}: its tensors do not match this RAM's encoder ({sorted(set(state) ^ expected)[:3]}); "
                "build RAMModel with the RAMConfig the run was trained with"
            )
        model.encoder.load_state_dict(state, strict=False)
    cost = payload.get("cost") or {}
    cpu = cost.get("cpu_seconds", cost.get("cpu_s"))
    return {"stage": stage, "step": int(payload.get("step", 0)), "cpu_s": None if cpu is None else round(cpu, 1)}


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
