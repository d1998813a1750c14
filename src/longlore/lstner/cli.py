"""`longlore lstner ...`: make data, train the source tagger, train a target tagger, evaluate, predict."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, write_json
from longlore.core.progress import console
from longlore.lstner.config import LSTNERConfig
from longlore.lstner.data import LabelSet, load_split, write_conll
from longlore.lstner.pipeline import NERPipeline
from longlore.lstner.trainer import METHODS, train_source, train_target

app = typer.Typer(help="LST-NER: cross-domain NER by label-graph matching (Findings ACL 2022).", no_args_is_help=True)

_DATA_HELP = "a CoNLL/BIO file (token ... tag columns), a .jsonl file of {tokens, tags}, or a CrossNER folder"


@app.command("make-data")
def make_data(
    out: Path = typer.Option(..., help="folder for the CoNLL files"),
    source_sentences: int = typer.Option(1200, help="source-domain training sentences"),
    target_sentences: int = typer.Option(50, help="few-shot target training sentences"),
    test_sentences: int = typer.Option(300, help="held-out target test sentences"),
    seed: int = typer.Option(0, help="seed of the few-shot target sample"),
    overwrite: bool = typer.Option(False, help="replace existing files"),
) -> None:
    """Write the synthetic source (KJV names) and target (e-commerce) corpora as CoNLL files."""
    from longlore.lstner.synth import source_corpus, target_corpus

    files = {
        "source_train.txt": source_corpus(source_sentences, seed=0, split="train"),
        "source_dev.txt": source_corpus(200, seed=0, split="test"),
        "target_train.txt": target_corpus(target_sentences, seed=seed + 1, split="train"),
        "target_test.txt": target_corpus(test_sentences, seed=0, split="test"),
    }
    for name, sentences in files.items():
        atomic_write_text(out / name, write_conll(sentences), overwrite=overwrite)
        console.print(f"{out / name}: {len(sentences)} sentences")


# Fields that only LST-NER's target model reads: the source tagger's command leaves them out.
_TARGET_ONLY = (
    "edge_rule",
    "edge_threshold",
    "edge_k",
    "head_init",
    "use_graph",
    "adjacency",
    "l_aux",
    "l_gw",
    "gw_eps",
    "gw_outer_iters",
    "gw_sinkhorn_iters",
)


@app.command("train-source")
@config_options(config=LSTNERConfig, exclude=_TARGET_ONLY)
def train_source_cmd(
    config: LSTNERConfig,
    train: Path = typer.Option(..., help=f"source training data: {_DATA_HELP}"),
    out: Path = typer.Option(..., help="run folder: the model goes to OUT/final, the checkpoint to OUT/train"),
    dev: Path = typer.Option(None, help="held-out source data for the source label graph (default: train)"),
    device: str = device_option(),
    dtype: str = dtype_option(),
    overwrite: bool = typer.Option(False, help="replace an existing model folder"),
) -> None:
    """Train the source-domain tagger (and record its label distributions)."""
    _check_out(out, overwrite)
    sentences = load_split(train, "train")
    dev_sentences = load_split(dev, "dev") if dev else None
    pipe = train_source(sentences, config, dev=dev_sentences, device=device, dtype=dtype, out_dir=out / "train")
    pipe.save_pretrained(out / "final", overwrite=True)
    console.print(f"source tagger ({', '.join(pipe.labels.types)}) saved to {out / 'final'}")


@app.command("train-target")
@config_options(config=LSTNERConfig)
def train_target_cmd(
    config: LSTNERConfig,
    train: Path = typer.Option(..., help=f"few-shot target training data: {_DATA_HELP}"),
    out: Path = typer.Option(..., help="run folder: the model goes to OUT/final, the checkpoint to OUT/train"),
    source: Path = typer.Option(
        None, help="source tagger (run) folder from train-source (all methods but target-only)"
    ),
    method: str = typer.Option("lstner", help=f"one of {', '.join(METHODS)}"),
    source_data: Path = typer.Option(None, help="source training data (method multi-task)"),
    types: str = typer.Option("", help="comma-separated target entity types (default: those in --train)"),
    device: str = device_option(),
    dtype: str = dtype_option(),
    overwrite: bool = typer.Option(False, help="replace an existing model folder"),
) -> None:
    """Train a target-domain tagger from a few sentences (LST-NER or a baseline)."""
    _check_out(out, overwrite)
    label_set = LabelSet(sorted(t.strip() for t in types.split(",") if t.strip())) if types else None
    sentences = load_split(train, "train", set(label_set.types) if label_set else None)
    src = NERPipeline.from_pretrained(source, device=device, dtype=dtype) if source else None
    src_sents = load_split(source_data, "train") if source_data else None
    pipe = train_target(
        sentences, config, method, src, src_sents, labels=label_set, device=device, dtype=dtype, out_dir=out / "train"
    )
    pipe.save_pretrained(out / "final", overwrite=True)
    console.print(f"{method} target tagger ({', '.join(pipe.labels.types)}) saved to {out / 'final'}")


def _check_out(out: Path, overwrite: bool) -> None:
    if (out / "final" / "lstner.json").exists() and not overwrite:
        raise LongloreError(f"{out / 'final'}: already holds a model; pass --overwrite to replace it")


@app.command("eval")
def eval_cmd(
    model: Path = typer.Option(..., help="model folder (or a run folder with final/)"),
    data: Path = typer.Option(..., help=f"test data: {_DATA_HELP} (a folder uses test.txt)"),
    out: Path = typer.Option(None, help="also write the scores as JSON here"),
    device: str = device_option(),
    dtype: str = dtype_option(),
    overwrite: bool = typer.Option(False, help="replace an existing scores file"),
) -> None:
    """Strict span F1 (seqeval, IOB2 strict), micro and per type."""
    pipe = NERPipeline.from_pretrained(model, device=device, dtype=dtype)
    scores = pipe.evaluate(load_split(data, "test", set(pipe.labels.types)))
    if out:
        write_json(out, scores, overwrite=overwrite)
    typer.echo(json.dumps(scores, indent=2))


@app.command("predict")
def predict_cmd(
    text: list[str] = typer.Argument(..., help="raw text (one argument per sentence)"),
    model: Path = typer.Option(..., help="model folder (or a run folder with final/)"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Print the entity spans found in raw text, one JSON line per sentence."""
    pipe = NERPipeline.from_pretrained(model, device=device, dtype=dtype)
    for sentence in text:
        typer.echo(json.dumps({"text": sentence, "entities": pipe.predict_text(sentence)}, ensure_ascii=False))
