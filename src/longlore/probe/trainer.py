"""Training of the probe on the shared loop (:func:`longlore.core.training.train_loop`): the
autoencoder (LoRA encoder + alignment, decoder frozen), and the brief continued pre-training that
makes a model with a shifted pre-training distribution.

Each trainer keeps only its loss. Batch ``s`` is a seeded draw that depends on ``s`` alone, the loop
checkpoints the trainable tensors, optimizer, schedule, RNG, step and the CPU seconds spent to
``out_dir/checkpoint.pt`` and resumes from it to exactly the weights an unbroken run reaches (tested).
"""

from __future__ import annotations

import contextlib
import random
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from longlore.core.io import write_json
from longlore.core.training import StepBatches, TrainingArgs, train_loop
from longlore.probe.config import DEFAULT_LORA_TARGETS, TrainArgs
from longlore.probe.model import ProbeAutoencoder

Sampler = Callable[[random.Random, int], list[list[int]]]  # (rng, batch_size) -> token sequences


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system), in seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def mixture_sampler(distributions: Any, names: Sequence[str], length: int) -> Sampler:
    """Each sequence: a distribution drawn uniformly from ``names``, then a random window of ``length`` tokens."""
    names = list(names)

    def sample(rng: random.Random, batch_size: int) -> list[list[int]]:
        return [distributions.training_window(rng.choice(names), length, rng) for _ in range(batch_size)]

    return sample


def autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast (fp32 master weights) where asked; a no-op otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def training_args(args: TrainArgs) -> TrainingArgs:
    """The shared loop's settings for the probe's :class:`TrainArgs` (warm-up, then cosine decay to 0)."""
    return TrainingArgs(
        steps=args.steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        schedule="cosine",
        grad_clip=args.grad_clip,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        stop_after=args.stop_after,
    )


def _batches(sampler: Sampler, args: TrainArgs) -> StepBatches:
    return StepBatches(lambda rng, step: sampler(rng, args.batch_size), seed=args.seed)


def _summary(result: Any, args: TrainArgs, **extra: Any) -> dict[str, Any]:
    recent = [row["loss"] for row in result.history[-10:]]
    return {
        "steps": result.step,
        "finished": result.finished,
        "cpu_seconds": result.cost["cpu_seconds"],
        "wall_seconds": result.cost["wall_seconds"],
        "final_loss": sum(recent) / len(recent) if recent else None,
        "history": [row["loss"] for row in result.history],
        "args": args.to_dict(),
        **extra,
    }


def train_autoencoder(
    probe: ProbeAutoencoder,
    sampler: Sampler,
    out_dir: str | Path,
    args: TrainArgs | None = None,
    amp_bf16: bool = False,
) -> dict[str, Any]:
    """Train the probe's LoRA encoder and alignment block to reconstruct text through the frozen decoder.

    Resumes from ``out_dir/checkpoint.pt`` if present; when ``args.steps`` are done, saves the probe to
    ``out_dir/final`` and ``out_dir/train_summary.json`` (CPU seconds over all sessions, loss history).
    """
    args = args or TrainArgs()
    out_dir = Path(out_dir)

    def loss_fn(model: ProbeAutoencoder, items: list[list[int]], ctx: Any) -> torch.Tensor:
        with autocast(amp_bf16, model.device):
            return model(items)["loss"]

    result = train_loop(
        probe, loss_fn, _batches(sampler, args), training_args(args), out_dir, description="probe autoencoder"
    )
    probe.eval()
    summary = _summary(result, args, config=probe.config.to_dict(), amp_bf16=amp_bf16)
    if result.finished:
        probe.save_pretrained(out_dir / "final")
        write_json(out_dir / "train_summary.json", summary, overwrite=True)
    return summary


def continue_pretrain(
    model: nn.Module,
    tokenizer: Any,
    sampler: Sampler,
    out_dir: str | Path,
    args: TrainArgs,
    amp_bf16: bool = False,
    lora_r: int | None = 64,
) -> nn.Module:
    """Next-token training of ``model`` on ``sampler``'s text; returns the trained model (a plain causal LM).

    Used to shift a copy of a model's pre-training distribution (e.g. towards code) so that an
    encoder and a decoder with different "intrinsic data" can be paired. With ``lora_r`` (default)
    every projection gets a LoRA adapter (alpha = 2r) that is merged into the weights at the end:
    the optimizer then holds a few million numbers instead of four copies of the model, which is
    what lets the step run beside other jobs in a few GB; ``lora_r=None`` trains every parameter.
    Saves the model and tokenizer to ``out_dir/final`` (a plain Hugging Face folder).
    """
    out_dir = Path(out_dir)
    if lora_r is not None:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=list(DEFAULT_LORA_TARGETS))
        with torch.random.fork_rng(devices=[]):  # the adapters' initialisation depends on args.seed alone
            torch.manual_seed(args.seed)
            model = get_peft_model(model, lora, autocast_adapter_dtype=False)
    else:
        model.requires_grad_(True)
    device = next(model.parameters()).device

    def loss_fn(lm: nn.Module, items: list[list[int]], ctx: Any) -> torch.Tensor:
        ids = torch.tensor(items, device=device)
        with autocast(amp_bf16, device):
            return lm(input_ids=ids, labels=ids).loss

    result = train_loop(
        model, loss_fn, _batches(sampler, args), training_args(args), out_dir, description="continued pre-training"
    )
    if lora_r is not None:
        model = model.merge_and_unload()
    model.eval().requires_grad_(False)
    if result.finished:
        model.save_pretrained(out_dir / "final")
        tokenizer.save_pretrained(out_dir / "final")
        write_json(out_dir / "train_summary.json", _summary(result, args, lora_r=lora_r), overwrite=True)
    return model
