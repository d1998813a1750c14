"""``longlore comet``: train | passkey | generate | bench."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from longlore.core.errors import LongloreError
from longlore.core.progress import console

app = typer.Typer(
    help="CoMeT: plug-in collaborative memory (gated global + FIFO temporary) for long inputs.", no_args_is_help=True
)

NUM_GLOBAL = typer.Option(512, help="G: global memory slots per layer.")
STRIDE = typer.Option(8, help="A <beacon> after every N text tokens (-1: no temporary memory).")
BUDGET = typer.Option(2048, help="B: temporary-memory FIFO size.")
CHUNK = typer.Option(2048, help="Text tokens per chunk.")
RANK = typer.Option(8, help="Rank of the memory bottlenecks.")


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LongloreError(f"--{what} '{text}': expected comma-separated integers such as 4096,16384") from None


def _load(comet_dir: Path | None, model: str, **sizes):
    from longlore.comet.backbone import load_backbone
    from longlore.comet.config import CometConfig
    from longlore.comet.model import CometModel

    if comet_dir is not None:
        from longlore.core.io import read_json

        meta = read_json(comet_dir / "comet_config.json") if (comet_dir / "comet_config.json").exists() else {}
        if meta.get("includes_backbone"):
            return CometModel.from_pretrained(comet_dir)
        base, tokenizer = load_backbone(model)
        return CometModel.from_pretrained(comet_dir, base, tokenizer)
    base, tokenizer = load_backbone(model)
    return CometModel(base, tokenizer, CometConfig(**sizes)).eval()


@app.command()
def train(
    out: Path = typer.Option(..., help="Output folder (checkpoint.pt resumes; final/ is the trained model)."),
    model: str = typer.Option("smollm2-135m", help="Backbone: a model spec, a local folder, or scratch-LxD."),
    task: str = typer.Option("text", help="'text' (windows of --text-file) or 'passkey' (curriculum)."),
    text_file: Path | None = typer.Option(None, help="Training text (default: the shipped public-domain text)."),
    seq_len: int = typer.Option(4096, help="Tokens per training sequence (task text)."),
    curriculum: str = typer.Option("1:100,2:100,4:200,8:200,16:400", help="Passkey: 'chunks:steps,...'."),
    batch_size: int = typer.Option(1),
    steps: int | None = typer.Option(None, help="Default: 200 (text) or the curriculum total."),
    seed: int = typer.Option(0),
    lr: float = typer.Option(5e-5),
    memory_lr_multiplier: float = typer.Option(5.0),
    mode: str = typer.Option("full", help="'full' or 'memory-only' (frozen backbone)."),
    gradient_checkpointing: bool = typer.Option(False),
    augment: bool = typer.Option(True),
    lr_restart: bool = typer.Option(False, help="Passkey: restart warm-up + cosine at every curriculum stage."),
    checkpoint_every: int = typer.Option(50),
    num_global: int = NUM_GLOBAL,
    temp_stride: int = STRIDE,
    temp_budget: int = BUDGET,
    chunk_size: int = CHUNK,
    rank: int = RANK,
) -> None:
    """Train CoMeT (next-token CE through the memory); resumable; saves out/final."""
    from longlore.comet.backbone import load_backbone
    from longlore.comet.config import CometConfig
    from longlore.comet.model import CometModel
    from longlore.comet.passkey import (
        curriculum_batches,
        parse_curriculum,
        stage_starts,
    )
    from longlore.comet.trainer import TrainArgs, text_windows
    from longlore.comet.trainer import train as run_train

    config = CometConfig(
        num_global=num_global,
        temp_stride=temp_stride,
        temp_budget=temp_budget,
        chunk_size=chunk_size,
        rank=rank,
        mode=mode,
        lr=lr,
        memory_lr_multiplier=memory_lr_multiplier,
        gradient_checkpointing=gradient_checkpointing,
        augment_chunks=augment,
    )
    base, tokenizer = load_backbone(model, seed=seed)
    comet = CometModel(base, tokenizer, config, seed=seed)
    restarts = None
    if task == "passkey":
        stages = parse_curriculum(curriculum)
        batch_fn, total = curriculum_batches(comet, stages, batch_size)
        restarts = stage_starts(stages) if lr_restart else None
    elif task == "text":
        if text_file is not None and not text_file.exists():
            raise LongloreError(f"--text-file {text_file}: no such file")
        from longlore.core.text import public_domain_text

        text = text_file.read_text(encoding="utf-8") if text_file else public_domain_text()
        batch_fn, total = text_windows(comet.encode(text), seq_len, batch_size), 200
    else:
        raise LongloreError(f"--task '{task}': expected 'text' or 'passkey'")
    train_args = TrainArgs(steps=steps or total, seed=seed, checkpoint_every=checkpoint_every, restarts=restarts)
    summary = run_train(comet, batch_fn, out, train_args)
    # a scratch backbone is only reproducible from its seed: keep it beside the memory modules
    comet.save_pretrained(out / "final", include_backbone=True if model.startswith("scratch-") else None)
    console.print(f"trained to step {summary['steps_done']} (loss {summary['final_loss']}); saved {out / 'final'}")


@app.command()
def passkey(
    out: Path = typer.Option(..., help="Results JSON (resumes; a heatmap PNG is written beside it)."),
    comet_dir: Path | None = typer.Option(None, help="A trained CoMeT folder (from `comet train`)."),
    model: str = typer.Option("smollm2-135m", help="Backbone when --comet-dir lacks one (or untrained CoMeT)."),
    lengths: str = typer.Option("4096,16384,65536,262144,1048576"),
    depths: str = typer.Option("0,25,50,75,100", help="Key depths in percent."),
    keys: int = typer.Option(4, help="Keys per (length, depth) cell."),
    seed: int = typer.Option(0),
    num_global: int = NUM_GLOBAL,
    temp_stride: int = STRIDE,
    temp_budget: int = BUDGET,
    chunk_size: int = CHUNK,
    rank: int = RANK,
) -> None:
    """Passkey retrieval accuracy over lengths x depths (greedy; first integer must equal the key)."""
    from longlore.comet.passkey import evaluate_grid, heatmap

    comet = _load(
        comet_dir,
        model,
        num_global=num_global,
        temp_stride=temp_stride,
        temp_budget=temp_budget,
        chunk_size=chunk_size,
        rank=rank,
    )
    depth_list = [d / 100 for d in _ints(depths, "depths")]
    result = evaluate_grid(
        comet,
        _ints(lengths, "lengths"),
        depth_list,
        keys,
        out,
        seed=seed,
        meta={"comet_dir": str(comet_dir), "model": model, "config": comet.config.to_dict()},
    )
    heatmap(result["records"], out.with_suffix(".png"), f"CoMeT passkey ({comet_dir or model})")
    typer.echo(json.dumps({n: cells["all"] for n, cells in result["accuracy"].items()}))


@app.command()
def generate(
    prompt: str | None = typer.Option(None, help="Prompt text."),
    prompt_file: Path | None = typer.Option(None, help="Read the (long) prompt from a file."),
    comet_dir: Path | None = typer.Option(None),
    model: str = typer.Option("smollm2-135m"),
    max_new_tokens: int = typer.Option(32),
    num_global: int = NUM_GLOBAL,
    temp_stride: int = STRIDE,
    temp_budget: int = BUDGET,
    chunk_size: int = CHUNK,
    rank: int = RANK,
) -> None:
    """Stream a prompt of any length through memory and continue it greedily."""
    if (prompt is None) == (prompt_file is None):
        raise LongloreError("give exactly one of --prompt or --prompt-file")
    if prompt_file is not None and not prompt_file.exists():
        raise LongloreError(f"--prompt-file {prompt_file}: no such file")
    text = prompt if prompt is not None else prompt_file.read_text(encoding="utf-8")
    comet = _load(
        comet_dir,
        model,
        num_global=num_global,
        temp_stride=temp_stride,
        temp_budget=temp_budget,
        chunk_size=chunk_size,
        rank=rank,
    )
    typer.echo(comet.generate(text, max_new_tokens=max_new_tokens)[0])


@app.command()
def bench(
    out: Path = typer.Option(Path("benchmarks/results/comet_cost.json")),
    model: str = typer.Option("smollm2-135m", help="Backbone (same one for both methods)."),
    lengths: str = typer.Option("4096,16384,65536,262144,1048576"),
    full_max: int | None = typer.Option(None, help="Skip full attention above this length."),
    timeout: float = typer.Option(3600.0, help="Seconds per measurement before it counts as failed."),
    num_global: int = NUM_GLOBAL,
    temp_stride: int = STRIDE,
    temp_budget: int = BUDGET,
    chunk_size: int = CHUNK,
    rank: int = RANK,
) -> None:
    """Peak RSS and wall time vs input length, CoMeT vs full attention (see benchmarks/comet_cost.py)."""
    from longlore.comet.cost import run_cost_benchmark

    comet = {
        "num_global": num_global,
        "temp_stride": temp_stride,
        "temp_budget": temp_budget,
        "chunk_size": chunk_size,
        "rank": rank,
    }
    result = run_cost_benchmark(
        _ints(lengths, "lengths"),
        model,
        comet,
        out,
        full_max=full_max,
        timeout=timeout,
        command=f"longlore comet bench --model {model} --lengths {lengths}",
    )
    typer.echo(json.dumps(result.get("summary", {})))
