"""``longlore comet``: train | passkey | generate | bench. Options come from the config dataclasses
(:class:`CometConfig`, :class:`TrainArgs`, :class:`PasskeyTask`), so every default lives in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from longlore.comet.config import CometConfig
from longlore.comet.passkey import PasskeyTask
from longlore.comet.trainer import TrainArgs
from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.errors import LongloreError
from longlore.core.progress import console

app = typer.Typer(
    help="CoMeT: plug-in collaborative memory (gated global + FIFO temporary) for long inputs.", no_args_is_help=True
)

# CometConfig fields that only matter for training: inference verbs leave them at their defaults.
TRAINING_FIELDS = {
    "mode",
    "lr",
    "memory_lr_multiplier",
    "warmup_steps",
    "weight_decay",
    "grad_clip",
    "gradient_checkpointing",
    "augment_chunks",
    "version",
}


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LongloreError(f"--{what} '{text}': expected comma-separated integers such as 4096,16384") from None


def _load(comet_dir: Optional[Path], model: str, config: CometConfig, device: str, dtype: str):
    """A trained CoMeT (``comet_dir``, with its saved backbone or on ``model``) or an untrained one."""
    from longlore.comet.model import CONFIG_NAME, CometModel
    from longlore.core.devices import resolve
    from longlore.core.io import read_json
    from longlore.core.models import load_causal_lm
    from longlore.core.saving import find_model_folder

    device, dtype = resolve(device, dtype)
    if comet_dir is not None:
        folder = find_model_folder(comet_dir, CONFIG_NAME, what="CoMeT model")
        if read_json(folder / CONFIG_NAME).get("includes_backbone"):
            return CometModel.from_pretrained(None, None, folder, dtype=dtype, device=device)
        base, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
        return CometModel.from_pretrained(base, tokenizer, folder)
    base, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
    return CometModel(base, tokenizer, config).eval()


@app.command()
@config_options(config=CometConfig, args=TrainArgs, task=PasskeyTask, exclude={"version", "restarts"})
def train(
    config: CometConfig,
    args: TrainArgs,
    task: PasskeyTask,
    out: Path = typer.Option(..., help="Output folder (checkpoint.pt resumes; final/ is the trained model)."),
    model: str = typer.Option("smollm2-135m", help="Backbone: a model spec, a local folder, or scratch-LxD."),
    kind: str = typer.Option("text", "--task", help="'text' (windows of --text-file) or 'passkey' (curriculum)."),
    text_file: Optional[Path] = typer.Option(None, help="Training text (default: the shipped public-domain text)."),
    seq_len: int = typer.Option(4096, help="Tokens per training sequence (task text)."),
    curriculum: str = typer.Option(
        "1:100,2:100,4:200,8:200,16:400", help="Passkey: 'chunks:steps,...'; its total replaces --steps."
    ),
    batch_size: int = typer.Option(1, help="Sequences per optimizer step."),
    lr_restart: bool = typer.Option(False, help="Passkey: restart warm-up + cosine at every curriculum stage."),
    pipeline_stages: int = typer.Option(
        1,
        help="Split every batch's chunks over this many ranks, layer by layer (run under torchrun "
        "--nproc_per_node N); 1: off (under torchrun: data parallel).",
    ),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Train CoMeT (next-token CE through the memory); resumable; saves out/final."""
    from dataclasses import replace

    from longlore.comet.model import CometModel
    from longlore.comet.passkey import curriculum_batches, parse_curriculum, stage_starts
    from longlore.comet.trainer import text_windows
    from longlore.comet.trainer import train as run_train
    from longlore.core.devices import resolve
    from longlore.core.distributed import dist_info
    from longlore.core.models import load_causal_lm, parse_model_spec

    device, dtype = resolve(device, dtype)
    base, tokenizer = load_causal_lm(model, seed=args.seed, device=device, dtype=dtype)
    comet = CometModel(base, tokenizer, config, seed=args.seed)
    if kind == "passkey":
        stages = parse_curriculum(curriculum)
        batch_fn, total = curriculum_batches(comet, stages, batch_size, task)
        args = replace(args, steps=total, restarts=stage_starts(stages) if lr_restart else None)
    elif kind == "text":
        if text_file is not None and not text_file.exists():
            raise LongloreError(f"--text-file {text_file}: no such file")
        from longlore.core.text import public_domain_text

        text = text_file.read_text(encoding="utf-8") if text_file else public_domain_text()
        batch_fn = text_windows(comet.encode(text), seq_len, batch_size)
    else:
        raise LongloreError(f"--task '{kind}': expected 'text' or 'passkey'")
    if pipeline_stages > 1:
        from longlore.comet.pipeline_train import train_pipeline

        summary = train_pipeline(comet, batch_fn, out, args, stages=pipeline_stages)
    else:
        summary = run_train(comet, batch_fn, out, args)
    if dist_info().is_main:  # under torchrun every rank holds the same model; one saves it
        # a random (scratch/tiny) backbone is only reproducible from its spec: keep it beside the memory modules
        random_backbone = parse_model_spec(model).kind in ("scratch", "tiny")
        comet.save_pretrained(out / "final", include_backbone=True if random_backbone else None)
        console.print(f"trained to step {summary['steps_done']} (loss {summary['final_loss']}); saved {out / 'final'}")


@app.command()
@config_options(config=CometConfig, task=PasskeyTask, exclude=TRAINING_FIELDS | {"answer_weight", "mix_earlier"})
def passkey(
    config: CometConfig,
    task: PasskeyTask,
    out: Path = typer.Option(..., help="Results JSON (resumes; a heatmap PNG is written beside it)."),
    comet_dir: Optional[Path] = typer.Option(None, help="A trained CoMeT folder (or its run folder)."),
    model: str = typer.Option("smollm2-135m", help="Backbone when --comet-dir lacks one (or untrained CoMeT)."),
    lengths: str = typer.Option("4096,16384,65536", help="Prompt lengths in tokens (1M costs minutes per prompt)."),
    depths: str = typer.Option("0,25,50,75,100", help="Key depths in percent (100 puts the key in the last chunk)."),
    keys: int = typer.Option(4, help="Prompts per (length, depth) cell, each with its own key."),
    seed: int = typer.Option(0, help="Seed of the key draw."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Passkey retrieval over lengths x depths (greedy), memory reads and last-chunk reads reported apart."""
    from longlore.comet.passkey import evaluate_grid, heatmap

    comet = _load(comet_dir, model, config, device, dtype)
    depth_list = [d / 100 for d in _ints(depths, "depths")]
    result = evaluate_grid(
        comet,
        _ints(lengths, "lengths"),
        depth_list,
        keys,
        out,
        seed=seed,
        task=task,
        meta={"comet_dir": str(comet_dir), "model": model, "config": comet.config.to_dict()},
    )
    heatmap(result["records"], out.with_suffix(".png"), f"CoMeT passkey ({comet_dir or model})")
    typer.echo(json.dumps({"memory_exact": result["memory_exact"], "local_exact": result["local_exact"]}))


@app.command()
@config_options(config=CometConfig, exclude=TRAINING_FIELDS)
def generate(
    config: CometConfig,
    prompt: Optional[str] = typer.Option(None, help="Prompt text."),
    prompt_file: Optional[Path] = typer.Option(None, help="Read the (long) prompt from a file."),
    comet_dir: Optional[Path] = typer.Option(None, help="A trained CoMeT folder (or its run folder)."),
    model: str = typer.Option("smollm2-135m", help="Backbone when --comet-dir lacks one (or untrained CoMeT)."),
    max_new_tokens: int = typer.Option(32, help="Tokens to generate."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Stream a prompt of any length through memory and continue it greedily."""
    if (prompt is None) == (prompt_file is None):
        raise LongloreError("give exactly one of --prompt or --prompt-file")
    if prompt_file is not None and not prompt_file.exists():
        raise LongloreError(f"--prompt-file {prompt_file}: no such file")
    text = prompt if prompt is not None else prompt_file.read_text(encoding="utf-8")
    comet = _load(comet_dir, model, config, device, dtype)
    typer.echo(comet.generate(text, max_new_tokens=max_new_tokens)[0])


@app.command()
@config_options(config=CometConfig, exclude=TRAINING_FIELDS)
def bench(
    config: CometConfig,
    out: Path = typer.Option(Path("runs/comet/cost.json"), help="Results JSON (a plot is written beside it)."),
    model: str = typer.Option("smollm2-135m", help="Backbone (same one for both methods)."),
    lengths: str = typer.Option("4096,16384,65536", help="Input lengths in tokens (1M only on request)."),
    full_max: Optional[int] = typer.Option(None, help="Skip full attention above this length."),
    timeout: float = typer.Option(600.0, help="Seconds per measurement before it counts as failed."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Peak RSS and wall time vs input length, CoMeT vs full attention (see benchmarks/comet_cost.py)."""
    from longlore.comet.cost import run_cost_benchmark
    from longlore.core.devices import resolve

    device, dtype = resolve(device, dtype)
    sizes = {k: getattr(config, k) for k in ("num_global", "temp_stride", "temp_budget", "chunk_size", "rank")}
    result = run_cost_benchmark(
        _ints(lengths, "lengths"),
        model,
        sizes,
        out,
        full_max=full_max,
        timeout=timeout,
        command=f"longlore comet bench --model {model} --lengths {lengths}",
        device=str(device),
        dtype=str(dtype).replace("torch.", ""),
    )
    typer.echo(json.dumps(result.get("summary", {})))
