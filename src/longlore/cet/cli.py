"""``longlore cet make-data | train | eval``."""

from __future__ import annotations

import platform
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from longlore.cet.config import CETConfig
from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.errors import LongloreError
from longlore.core.progress import console

app = typer.Typer(help="CET: causal effect tuning for multiple-choice QA (and its baselines).", no_args_is_help=True)


def _command() -> str:
    return "longlore cet " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else " ".join(sys.argv)


@app.command("make-data")
def make_data(
    out: Path = typer.Argument(..., help="folder for target_train / target_test / probe_isa / probe_movies .jsonl"),
    n_train: int = typer.Option(300, help="target training questions (UMLS relations, train split)"),
    n_test: int = typer.Option(200, help="target test questions (UMLS relations, test split)"),
    n_probe: int = typer.Option(200, help="questions per retention probe (UMLS isa; MovieLens genres)"),
    seed: int = typer.Option(0, help="seed for sampling questions and distractors"),
    overwrite: bool = typer.Option(False, help="replace existing files"),
) -> None:
    """Build the CET experiment's question sets from UMLS (pykeen) and MovieLens-100k (recbole)."""
    from longlore.cet.data import save_questions
    from longlore.cet.kgqa import build_benchmark

    sets = build_benchmark(n_train=n_train, n_test=n_test, n_probe=n_probe, seed=seed)
    for name, questions in sets.items():
        save_questions(out / f"{name}.jsonl", questions, overwrite=overwrite)
        console.print(f"{out / (name + '.jsonl')}: {len(questions)} questions")


@app.command("train")
@config_options(config=CETConfig)
def train_cmd(
    config: CETConfig,
    train: Path = typer.Option(..., help="training questions (JSONL: CommonsenseQA/ARC/OBQA or flat form)"),
    eval_files: Optional[list[Path]] = typer.Option(None, "--eval", help="evaluation file(s), scored after each epoch"),
    out: Path = typer.Option(
        Path("runs/cet"), help="run folder: OUT/final (model), OUT/train (checkpoint, resumed), OUT/metrics.json"
    ),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="JSON file of CETConfig keys; when given it replaces the config options"
    ),
    device: str = device_option(),
    dtype: str = dtype_option(),
    overwrite: bool = typer.Option(False, help="replace an existing run in OUT"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Fine-tune a multiple-choice scorer; save OUT/final and OUT/metrics.json."""
    import time

    from longlore.cet.data import load_questions
    from longlore.cet.trainer import train as run_train
    from longlore.core.io import write_json

    if (out / "metrics.json").exists() and not overwrite:
        raise LongloreError(f"{out / 'metrics.json'} exists; pass --overwrite to replace the run")
    cfg = CETConfig.load(config_file) if config_file is not None else config
    questions = load_questions(train)
    eval_sets = {p.stem: load_questions(p) for p in (eval_files or [])}
    start = time.perf_counter()
    result = run_train(
        cfg,
        questions,
        eval_sets=eval_sets,
        cache_dir=out / "cache",
        progress=progress,
        device=device,
        dtype=dtype,
        out_dir=out / "train",
    )
    from longlore.core.distributed import dist_info

    if not dist_info().is_main:  # under torchrun every rank holds the same model; rank 0 saves it
        return
    result.scorer.save_pretrained(out / "final")
    metrics = {
        "command": _command(),
        "machine": platform.platform(),
        "config": cfg.to_dict(),
        "train_file": str(train),
        "n_train": len(questions),
        "history": result.history,
        "neighbour_coverage": result.neighbours.coverage if result.neighbours is not None else None,
        "neighbour_answer_share": result.neighbour_answer_share,
        "seconds": round(time.perf_counter() - start, 1),
        "cost": result.cost,
    }
    write_json(out / "metrics.json", metrics, overwrite=True)
    console.print(f"[green]saved[/green] {out / 'final'} and {out / 'metrics.json'}")


@app.command("eval")
def eval_cmd(
    model: Path = typer.Option(
        ..., help="a model folder written by `longlore cet train` (OUT/final, or the run folder OUT)"
    ),
    data: list[Path] = typer.Option(..., help="question file(s) to score (repeatable)"),
    predictions: Optional[Path] = typer.Option(None, help="write per-question predictions (JSONL) here"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Accuracy of a trained scorer on one or more question files."""
    from longlore.cet.data import load_questions
    from longlore.cet.model import load_scorer, predict
    from longlore.core.io import write_jsonl

    scorer, tokenizer, cfg = load_scorer(model, device=device, dtype=dtype)
    rows = []
    for path in data:
        questions = load_questions(path)
        preds = predict(scorer, tokenizer, questions, cfg.max_len)
        acc = sum(int(p == q.label) for p, q in zip(preds, questions)) / len(questions)
        typer.echo(f"{path}: accuracy {acc:.4f} ({len(questions)} questions)")
        rows += [{"file": str(path), "id": q.id, "pred": p, "label": q.label} for p, q in zip(preds, questions)]
    if predictions is not None:
        write_jsonl(predictions, rows, overwrite=True)
