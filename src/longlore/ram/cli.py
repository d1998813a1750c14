"""``longlore ram``: make-data | train | eval | compress | bench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from longlore.core.errors import LongloreError
from longlore.core.progress import console

app = typer.Typer(
    help="RAM: compress a long context for a query (close-read relevant segments, skim the rest).", no_args_is_help=True
)


def _load(model: str, ram_dir: Optional[Path], encoder_layers: int, segment_tokens: int):
    from longlore.core.models import load_causal_lm
    from longlore.ram.config import RAMConfig
    from longlore.ram.model import RAMModel

    decoder, tokenizer = load_causal_lm(model)
    if ram_dir is not None:
        return RAMModel.from_pretrained(decoder, tokenizer, ram_dir).eval()
    return RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=encoder_layers, segment_tokens=segment_tokens)).eval()


@app.command("make-data")
def make_data(
    out: Path = typer.Option(..., help="Output JSONL."),
    n: int = typer.Option(100),
    min_tokens: int = typer.Option(2000),
    max_tokens: int = typer.Option(8000),
    seed: int = typer.Option(0),
    two_fact_share: float = typer.Option(0.25),
    tokenizer_model: str = typer.Option("smollm2-135m", help="Model whose tokenizer measures lengths."),
    overwrite: bool = typer.Option(False),
) -> None:
    """Generate long-document QA: facts planted in public-domain text, with near-duplicate distractors."""
    from longlore.core.io import write_jsonl
    from longlore.core.models import load_causal_lm
    from longlore.ram.data import make_dataset

    _, tokenizer = load_causal_lm(tokenizer_model)
    rows = make_dataset(tokenizer, n, min_tokens, max_tokens, seed=seed, two_fact_share=two_fact_share)
    write_jsonl(out, rows, overwrite=overwrite)
    console.print(f"wrote {len(rows)} examples ({min_tokens}-{max_tokens} tokens) to {out}")


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise LongloreError(f"{option} '{text}': expected comma-separated numbers such as 0.1,0.5") from None


@app.command()
def train(
    data: Path = typer.Option(..., help="QA JSONL {context, question, answers, [positive_spans]}."),
    out: Path = typer.Option(..., help="Output folder (checkpoints; resumes if present)."),
    model: str = typer.Option("smollm2-135m"),
    steps: int = typer.Option(200),
    seed: int = typer.Option(0),
    ratio: float = typer.Option(0.25),
    sample_ratio: bool = typer.Option(False),
    ratio_range: str = typer.Option("0,1", help="With --sample-ratio: keep-ratios drawn from (low, high]."),
    contrastive_weight: float = typer.Option(1.0),
    encoder_layers: int = typer.Option(8),
    segment_tokens: int = typer.Option(50),
    lr: float = typer.Option(1e-4),
) -> None:
    """Train RAM (encoder, projector, decoder q/k/v) on QA data; saves with save_pretrained."""
    import torch

    from longlore.core.models import load_causal_lm
    from longlore.ram.config import RAMConfig
    from longlore.ram.data import load_qa
    from longlore.ram.model import RAMModel
    from longlore.ram.trainer import TrainArgs
    from longlore.ram.trainer import train as run_train

    torch.manual_seed(seed)
    records = load_qa(data)
    decoder, tokenizer = load_causal_lm(model)
    config = RAMConfig(
        encoder_layers=encoder_layers,
        segment_tokens=segment_tokens,
        ratio=ratio,
        sample_ratio=sample_ratio,
        ratio_range=_floats(ratio_range, "--ratio-range"),
        contrastive_weight=contrastive_weight,
        lr=lr,
    )
    ram = RAMModel(decoder, tokenizer, config)
    summary = run_train(ram, [r.as_example() for r in records], out, TrainArgs(steps=steps, seed=seed))
    ram.save_pretrained(out / "final")
    console.print(f"trained {steps} steps in {summary['seconds']} s; saved to {out / 'final'}")


@app.command("eval")
def evaluate_cmd(
    data: Path = typer.Option(...),
    ram_dir: Optional[Path] = typer.Option(None, help="A trained RAM folder."),
    model: str = typer.Option("smollm2-135m"),
    ratio: float = typer.Option(0.25),
    limit: Optional[int] = typer.Option(None),
    batch_size: int = typer.Option(4),
    full_context: bool = typer.Option(False, help="Evaluate the uncompressed decoder instead."),
    output: Optional[Path] = typer.Option(None, help="Write metrics + predictions JSON here."),
) -> None:
    """Substring EM / EM / F1 of RAM (or the full-context decoder) on QA data."""
    from longlore.core.io import write_json
    from longlore.core.progress import track
    from longlore.ram.data import load_qa
    from longlore.ram.trainer import evaluate

    records = [r.as_example() for r in load_qa(data)][:limit]
    ram = _load(model, ram_dir, 8, 50)
    predictions = []
    for start in track(range(0, len(records), batch_size), "answering", total=-(-len(records) // batch_size)):
        chunk = records[start : start + batch_size]
        contexts, questions = [r["context"] for r in chunk], [r["question"] for r in chunk]
        predictions += (
            ram.generate_full_context(contexts, questions)
            if full_context
            else ram.generate(contexts, questions, rate=ratio)
        )
    metrics = evaluate(predictions, records)
    typer.echo(json.dumps(metrics))
    if output:
        write_json(output, {"metrics": metrics, "predictions": predictions}, overwrite=True)


@app.command()
def compress(
    context_file: Path = typer.Option(..., help="A text file with the long context."),
    question: str = typer.Option(...),
    ram_dir: Optional[Path] = typer.Option(None),
    model: str = typer.Option("smollm2-135m"),
    rate: Optional[float] = typer.Option(None),
    target_tokens: Optional[int] = typer.Option(None),
    text_only: bool = typer.Option(False, help="Print the close-read segments as text (for any LLM)."),
) -> None:
    """Compress one context for one question; prints stats (and the selected text with --text-only)."""
    if not context_file.exists():
        raise LongloreError(f"{context_file}: no such file")
    ram = _load(model, ram_dir, 8, 50)
    result = ram.compress(context_file.read_text(encoding="utf-8"), question, rate=rate, target_tokens=target_tokens)
    typer.echo(json.dumps(result.stats()))
    if text_only:
        typer.echo(result.close_read_text())


@app.command()
def bench(
    out: Path = typer.Option(Path("benchmarks/results/ram_speed.json")),
    lengths: str = typer.Option("4096,8192,16384,32768"),
    ratio: float = typer.Option(0.125),
) -> None:
    """Latency and time-to-first-token, RAM vs full context (see benchmarks/ram_speed.py)."""
    from longlore.ram.speed import run_speed_benchmark

    run_speed_benchmark([int(x) for x in lengths.split(",")], ratio, out)
