"""Training and evaluation loops for RAM (plain PyTorch; one example per step as in the paper)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from longlore.core.io import write_json
from longlore.core.metrics import exact_match, substring_match, token_f1
from longlore.core.progress import console, track
from longlore.ram.model import RAMModel, sample_ratio


@dataclass
class TrainArgs:
    """Loop settings (the method's own knobs live in RAMConfig)."""

    steps: int = field(default=200, metadata={"help": "Optimizer steps (batch of one example each)."})
    seed: int = field(default=0, metadata={"help": "Shuffling and ratio-sampling seed."})
    checkpoint_every: int = field(default=50, metadata={"help": "Save RAM state + optimizer every N steps."})
    log_every: int = field(default=10)


def train(
    model: RAMModel,
    examples: list[dict[str, Any]],
    out_dir: str | Path,
    args: TrainArgs | None = None,
    full_context: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on ``examples``; resumes from ``out_dir/checkpoint`` if one exists.

    ``full_context=True`` trains the uncompressed baseline instead (same decoder parameters,
    whole context in the prompt), so both get the same budget.
    """
    args = args or TrainArgs()
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint"
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=model.config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(1, args.steps)))
    step, history = 0, []
    if (ckpt / "trainer_state.pt").exists():
        state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
        loaded = RAMModel.from_pretrained(model.decoder, model.tokenizer, ckpt)
        model.encoder.load_state_dict(loaded.encoder.state_dict())
        model.projector.load_state_dict(loaded.projector.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, history = state["step"], state["history"]
        console.print(f"[yellow]resuming[/yellow] from step {step}")
    rng = random.Random(args.seed * 100_003 + step)  # a resumed run draws what an unbroken run would
    model.train()
    start = time.perf_counter()
    first_step = step
    for step in track(
        range(first_step, args.steps),
        "RAM training" if not full_context else "full-context training",
        total=args.steps - first_step,
    ):
        example = examples[rng.randrange(len(examples))]
        ratio = sample_ratio(rng, *model.config.ratio_range) if model.config.sample_ratio else None
        out = full_context_loss(model, example) if full_context else model([example], ratio=ratio)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, model.config.grad_clip)
        optimizer.step()
        schedule.step()
        history.append({k: round(float(v.detach()), 4) for k, v in out.items()})
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            model.save_pretrained(ckpt)
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step + 1,
                    "history": history,
                },
                ckpt / "trainer_state.pt",
            )
    model.eval()
    summary = {
        "steps": args.steps,
        "seconds": round(time.perf_counter() - start, 1),
        "final_loss": history[-1] if history else None,
        "args": asdict(args),
        "config": model.config.to_dict(),
    }
    (out_dir / "train_history.json").write_text(json.dumps(history))
    return summary


def full_context_loss(model: RAMModel, example: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Answer NLL with the whole context in the prompt (the fine-tuned full-context baseline)."""
    tok, eos = model.tokenizer, model.tokenizer.eos_token_id
    ids = tok(example["context"], add_special_tokens=False)["input_ids"][: model.config.max_doc_tokens]
    ids += tok(model.config.question_template.format(question=example["question"]), add_special_tokens=False)[
        "input_ids"
    ]
    answer = tok(" " + example["answer"].strip(), add_special_tokens=False)["input_ids"] + [eos]
    input_ids = torch.tensor([ids + answer])
    labels = torch.tensor([[-100] * len(ids) + answer])
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
