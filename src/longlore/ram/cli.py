"""``longlore ram``: make-data | train | eval | compress | answer | bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from longlore.core.config_cli import config_options, device_option, dtype_option, field_option, register_config_command
from longlore.core.errors import LongloreError
from longlore.core.progress import console
from longlore.ram.config import RAMConfig, TrainArgs

app = typer.Typer(
    help="RAM: compress a long context for a query (close-read relevant segments, skim the rest).", no_args_is_help=True
)


def _cfg(name: str) -> Any:
    """A hand-written option for one (int) RAMConfig field, with its dataclass default and help."""
    return field_option("config", RAMConfig, RAMConfig.__dataclass_fields__[name], int, "").option


# compress / answer / eval load a trained RAM; these options only shape an untrained one
UNTRAINED_FIELDS = ("encoder_layers", "segment_tokens")


MODEL_HELP = "Decoder: smollm2-135m, a local HF folder or tiny-llama."
RAM_DIR_HELP = (
    "A trained RAM folder (save_pretrained output or a run folder with final/). Default for smollm2-135m: "
    "the adapter shipped with longlore; for other models: an untrained RAM."
)


def _load(model: str, ram_dir: Optional[Path], device: str = "cpu", dtype: str = "float32", **config: Any):
    """The decoder and a RAM around it: ``ram_dir``, the shipped adapter for SmolLM2, or untrained."""
    from longlore.core.models import load_causal_lm
    from longlore.ram.artifacts import shipped_adapter
    from longlore.ram.model import RAMModel

    decoder, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
    if ram_dir is None:
        ram_dir = shipped_adapter(model)
        if ram_dir is not None:
            console.print(f"using the shipped trained RAM adapter {ram_dir.name}")
    if ram_dir is not None:
        return RAMModel.from_pretrained(decoder, tokenizer, ram_dir).eval()
    console.print(
        "[yellow]untrained RAM[/yellow]: its skim projector is not fitted, so answers are unreliable; "
        "pass --ram-dir with a trained RAM (longlore ram train)"
    )
    return RAMModel(decoder, tokenizer, RAMConfig(**config)).eval()


def _read_context(path: Path) -> str:
    if not path.exists():
        raise LongloreError(f"{path}: no such file; pass --context-file with a UTF-8 text file")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise LongloreError(f"{path}: the file is empty; RAM needs a context to compress")
    return text


@app.command("make-data")
def make_data(
    out: Path = typer.Option(..., help="Output JSONL."),
    n: int = typer.Option(100, help="Number of questions."),
    min_tokens: int = typer.Option(2000, help="Shortest document, in tokens."),
    max_tokens: int = typer.Option(8000, help="Longest document, in tokens."),
    seed: int = typer.Option(0, help="Data seed."),
    two_fact_share: float = typer.Option(0.25, help="Share of two-fact questions (owner, then the owner's city)."),
    questions_per_doc: int = typer.Option(1, help="Questions asked about each document."),
    tokenizer_model: str = typer.Option("smollm2-135m", help="Model whose tokenizer measures lengths."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Generate long-document QA: facts planted in public-domain text, with near-duplicate distractors."""
    from longlore.core.io import write_jsonl
    from longlore.core.models import load_causal_lm
    from longlore.ram.data import make_dataset

    _, tokenizer = load_causal_lm(tokenizer_model)
    rows = make_dataset(
        tokenizer,
        n,
        min_tokens,
        max_tokens,
        seed=seed,
        two_fact_share=two_fact_share,
        questions_per_doc=questions_per_doc,
    )
    write_jsonl(out, rows, overwrite=overwrite)
    console.print(f"wrote {len(rows)} examples ({min_tokens}-{max_tokens} tokens) to {out}")


@app.command()
@config_options(config=RAMConfig, args=TrainArgs, exclude={"version"})
def train(
    config: RAMConfig,
    args: TrainArgs,
    data: Path = typer.Option(..., help="QA JSONL {context, question, answers, [positive_spans]}."),
    out: Path = typer.Option(Path("runs/ram/train"), help="Run folder (checkpoints; resumes if present)."),
    selector_data: Optional[Path] = typer.Option(None, help="QA JSONL for the selector stage (default: --data)."),
    model: str = typer.Option("smollm2-135m", help=MODEL_HELP),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Train RAM (selector stage, then encoder + projector + decoder q/k/v); saves to OUT/final."""
    import torch

    from longlore.core.models import load_causal_lm
    from longlore.ram.data import load_qa
    from longlore.ram.model import RAMModel
    from longlore.ram.trainer import train as run_train

    torch.manual_seed(args.seed)
    records = [r.as_example() for r in load_qa(data)]
    selector_records = [r.as_example() for r in load_qa(selector_data)] if selector_data else None
    decoder, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
    ram = RAMModel(decoder, tokenizer, config)
    from longlore.core.distributed import dist_info

    summary = run_train(ram, records, out, args, selector_examples=selector_records)
    if "joint" in summary and summary["joint"]["done"]:
        if dist_info().is_main:  # under torchrun every rank holds the same model; one saves it
            ram.save_pretrained(out / "final")
            console.print(f"trained in {summary['cpu_s']} CPU s; saved to {out / 'final'}")
    else:
        console.print(f"stopped after {args.stop_after} steps; run the same command again to resume")


@app.command("eval")
def evaluate_cmd(
    data: Path = typer.Option(..., help="QA JSONL to score."),
    ram_dir: Optional[Path] = typer.Option(None, help=RAM_DIR_HELP),
    model: str = typer.Option("smollm2-135m", help=MODEL_HELP),
    keep_ratio: Optional[float] = typer.Option(None, help="Share of segments read verbatim (default: the RAM's)."),
    limit: Optional[int] = typer.Option(None, help="Score only the first N records."),
    batch_size: int = typer.Option(4, help="Questions decoded together."),
    full_context: bool = typer.Option(False, help="Evaluate the uncompressed decoder instead."),
    output: Optional[Path] = typer.Option(None, help="Write metrics + predictions JSON here."),
    encoder_layers: int = _cfg("encoder_layers"),
    segment_tokens: int = _cfg("segment_tokens"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Substring EM / EM / F1 of RAM (or the full-context decoder) on QA data."""
    from longlore.core.io import write_json
    from longlore.core.progress import track
    from longlore.ram.data import load_qa
    from longlore.ram.trainer import evaluate

    records = [r.as_example() for r in load_qa(data)][:limit]
    ram = _load(model, ram_dir, device, dtype, encoder_layers=encoder_layers, segment_tokens=segment_tokens)
    predictions: list[str] = []
    for start in track(range(0, len(records), batch_size), "answering", total=-(-len(records) // batch_size)):
        chunk = records[start : start + batch_size]
        contexts, questions = [r["context"] for r in chunk], [r["question"] for r in chunk]
        predictions += (
            ram.generate_full_context(contexts, questions)
            if full_context
            else ram.generate(contexts, questions, keep_ratio=keep_ratio)
        )
    metrics = evaluate(predictions, records)
    typer.echo(json.dumps(metrics))
    if output:
        write_json(output, {"metrics": metrics, "predictions": predictions}, overwrite=True)


@app.command()
def compress(
    context_file: Path = typer.Option(..., help="A UTF-8 text file with the long context."),
    question: str = typer.Option(..., help="The question the compression is for."),
    ram_dir: Optional[Path] = typer.Option(None, help=RAM_DIR_HELP),
    model: str = typer.Option("smollm2-135m", help=MODEL_HELP),
    keep_ratio: Optional[float] = typer.Option(None, help="Share of segments read verbatim (default: the RAM's)."),
    target_tokens: Optional[int] = typer.Option(None, help="Instead of --keep-ratio: the largest hybrid length."),
    text_only: bool = typer.Option(False, help="Print only the close-read text on stdout (for any LLM)."),
    encoder_layers: int = _cfg("encoder_layers"),
    segment_tokens: int = _cfg("segment_tokens"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Compress one context for one question: stats as JSON on stdout, or with --text-only just the
    kept text on stdout (stats then go to stderr)."""
    text = _read_context(context_file)
    ram = _load(model, ram_dir, device, dtype, encoder_layers=encoder_layers, segment_tokens=segment_tokens)
    result = ram.compress(text, question, keep_ratio=keep_ratio, target_tokens=target_tokens)
    if text_only:
        print(json.dumps(result.stats()), file=sys.stderr)
        typer.echo(result.close_read_text())
    else:
        typer.echo(json.dumps(result.stats()))


@app.command()
def answer(
    context_file: Path = typer.Option(..., help="A UTF-8 text file with the long context."),
    question: str = typer.Option(..., help="The question to answer."),
    keep_ratio: Optional[float] = typer.Option(None, help="Share of segments read verbatim (default: the RAM's)."),
    ram_dir: Optional[Path] = typer.Option(None, help=RAM_DIR_HELP),
    model: str = typer.Option("smollm2-135m", help=MODEL_HELP),
    max_new_tokens: int = typer.Option(32, help="Longest answer, in tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer, stats and kept text as JSON on stdout."),
    skim: Optional[bool] = typer.Option(
        None,
        "--skim/--no-skim",
        help="Give the decoder one skim vector per unread segment (RAM's hybrid) or only the kept text. "
        "Default: the hybrid, except for a RAM whose skim projector is untrained (see its training.json).",
    ),
    encoder_layers: int = _cfg("encoder_layers"),
    segment_tokens: int = _cfg("segment_tokens"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Compress the context for the question and answer it: the answer on stdout, stats on stderr."""
    from longlore.ram.artifacts import shipped_adapter, training_info

    text = _read_context(context_file)
    ram = _load(model, ram_dir, device, dtype, encoder_layers=encoder_layers, segment_tokens=segment_tokens)
    if skim is None:
        folder = ram_dir or shipped_adapter(model)
        untrained = training_info(folder).get("untrained", []) if folder is not None else []
        skim = not any("projector" in part for part in untrained)
        if not skim:
            console.print("this RAM's skim projector is untrained: answering from the kept text (--skim to override)")
    compressed = ram.compress(text, question, keep_ratio=keep_ratio, skim=skim)
    reply = ram.generate_from_embeddings([ram.prompt_embeddings(compressed, question)], max_new_tokens)[0]
    if as_json:
        typer.echo(json.dumps({"answer": reply, **compressed.stats(), "kept_text": compressed.close_read_text()}))
    else:
        print(json.dumps(compressed.stats()), file=sys.stderr)
        typer.echo(reply)


@app.command()
def bench(
    out: Path = typer.Option(Path("runs/ram_speed.json"), help="Results JSON (a plot is written beside it)."),
    lengths: str = typer.Option("4096,8192,16384,32768", help="Context lengths in tokens, comma-separated."),
    keep_ratio: float = typer.Option(0.125, help="Share of segments read verbatim (0.125: the 8x setting)."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Latency and time-to-first-token, RAM vs full context (see benchmarks/ram_speed.py)."""
    from longlore.ram.speed import run_speed_benchmark

    run_speed_benchmark([int(x) for x in lengths.split(",")], keep_ratio, out, device=device, dtype=dtype)


_OTHER_FIELDS = {f for f in RAMConfig.__dataclass_fields__ if f not in UNTRAINED_FIELDS}
for _command in (evaluate_cmd, compress, answer):
    register_config_command(RAMConfig, _command, exclude=_OTHER_FIELDS)
