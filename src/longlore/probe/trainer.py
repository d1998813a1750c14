"""Training loops of the probe: the autoencoder (LoRA encoder + alignment, decoder frozen) and the
brief continued pre-training that makes a model with a shifted pre-training distribution.

Both loops draw batch ``s`` from a generator seeded by ``(seed, s)``, checkpoint the trained tensors,
optimizer, schedule, step and CPU-seconds spent, and resume from ``out_dir/checkpoint`` to exactly
the weights an unbroken run reaches (tested).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from longlore.core.io import write_json
from longlore.core.progress import console, track
from longlore.probe.config import TrainArgs
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


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak lr over ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast (fp32 master weights) where asked; a no-op otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def _run_loop(
    *,
    name: str,
    params: list[nn.Parameter],
    loss_fn: Callable[[list[list[int]]], torch.Tensor],
    sampler: Sampler,
    args: TrainArgs,
    out_dir: Path,
    save: Callable[[Path], None],
    load: Callable[[Path], None],
) -> dict[str, Any]:
    ckpt = out_dir / "checkpoint"
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, foreach=False)
    schedule = warmup_cosine(optimizer, args.warmup_steps, args.steps)
    first, history, spent = 0, [], 0.0
    if (ckpt / "trainer_state.pt").exists():
        state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
        load(ckpt)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        first, history, spent = state["step"], state["history"], state["cpu_seconds"]
        console.print(f"[yellow]resuming[/yellow] {name} from step {first}")
    start_cpu, start_wall = cpu_seconds(), time.perf_counter()
    for step in track(range(first, args.steps), name, total=args.steps - first):
        rng = random.Random(args.seed * 1_000_003 + step)  # batch s is the same in a resumed run
        loss = loss_fn(sampler(rng, args.batch_size))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        optimizer.step()
        schedule.step()
        history.append(round(float(loss.detach()), 4))
        if (step + 1) % args.log_every == 0:
            recent = history[-args.log_every :]
            console.print(f"{name} step {step + 1}/{args.steps} loss {sum(recent) / len(recent):.4f}")
        if (step + 1) % args.checkpoint_every == 0 or step + 1 == args.steps:
            save(ckpt)
            total = spent + cpu_seconds() - start_cpu
            state = {
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "step": step + 1,
                "history": history,
                "cpu_seconds": total,
            }
            tmp = ckpt / "trainer_state.pt.tmp"
            torch.save(state, tmp)
            tmp.replace(ckpt / "trainer_state.pt")
    summary = {
        "steps": args.steps,
        "cpu_seconds": round(spent + cpu_seconds() - start_cpu, 1),
        "wall_seconds_this_session": round(time.perf_counter() - start_wall, 1),
        "final_loss": sum(history[-10:]) / len(history[-10:]) if history else None,
        "args": args.to_dict(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_history.json").write_text(json.dumps(history))
    write_json(out_dir / "train_summary.json", summary, overwrite=True)
    return summary


def train_autoencoder(
    probe: ProbeAutoencoder,
    sampler: Sampler,
    out_dir: str | Path,
    args: TrainArgs | None = None,
    amp_bf16: bool = False,
) -> dict[str, Any]:
    """Train the probe's LoRA encoder and alignment block to reconstruct text through the frozen decoder.

    Resumes from ``out_dir/checkpoint`` if present and saves the final probe to ``out_dir/final``.
    Returns a summary with the CPU seconds spent (all sessions together) and the final loss.
    """
    args = args or TrainArgs()
    out_dir = Path(out_dir)
    torch.manual_seed(args.seed)
    params = [p for p in probe.parameters() if p.requires_grad]

    def loss_fn(batch: list[list[int]]) -> torch.Tensor:
        with autocast(amp_bf16, probe.device):
            return probe(batch)["loss"]

    probe.train()
    summary = _run_loop(
        name="probe autoencoder",
        params=params,
        loss_fn=loss_fn,
        sampler=sampler,
        args=args,
        out_dir=out_dir,
        save=probe.save_pretrained,
        load=probe.load_trained,
    )
    probe.eval()
    probe.save_pretrained(out_dir / "final")
    summary["config"] = probe.config.to_dict()
    summary["amp_bf16"] = amp_bf16
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

        from longlore.probe.config import DEFAULT_LORA_TARGETS

        model = get_peft_model(
            model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=list(DEFAULT_LORA_TARGETS))
        )
    else:
        model.requires_grad_(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    device = next(model.parameters()).device

    def loss_fn(batch: list[list[int]]) -> torch.Tensor:
        ids = torch.tensor(batch, device=device)
        with autocast(amp_bf16, device):
            return model(input_ids=ids, labels=ids).loss

    def save(path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        state = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(state, str(path / "trained.safetensors"))

    def load(path: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(path / "trained.safetensors"), device=str(device))
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in state.items():
                named[name].copy_(tensor)

    summary = _run_loop(
        name="continued pre-training",
        params=params,
        loss_fn=loss_fn,
        sampler=sampler,
        args=args,
        out_dir=out_dir,
        save=save,
        load=load,
    )
    if lora_r is not None:
        model = model.merge_and_unload()
    model.eval().requires_grad_(False)
    model.save_pretrained(out_dir / "final")
    tokenizer.save_pretrained(out_dir / "final")
    write_json(out_dir / "train_summary.json", summary | {"lora_r": lora_r}, overwrite=True)
    return model
