"""`longlore lstner ...`: make data, train the source tagger, train a target tagger, evaluate, predict."""

from __future__ import annotations

import json
from pathlib import Path

import typer

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


def _config(
    encoder: str, epochs: int, batch_size: int, lr: float, head_lr: float, max_len: int, seed: int, **extra
) -> LSTNERConfig:
    return LSTNERConfig(
        encoder=encoder,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        head_lr=head_lr,
        max_len=max_len,
        seed=seed,
        **extra,
    )


@app.command("train-source")
def train_source_cmd(
    train: Path = typer.Option(..., help=f"source training data: {_DATA_HELP}"),
    out: Path = typer.Option(..., help="output model folder"),
    dev: Path = typer.Option(None, help="held-out source data for the source label graph (default: train)"),
    encoder: str = typer.Option("minilm", help="encoder spec: minilm, tiny-bert or a local HF folder"),
    epochs: int = typer.Option(1, help="passes over the training data"),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(1e-4, help="encoder learning rate"),
    head_lr: float = typer.Option(1e-3, help="head learning rate"),
    max_len: int = typer.Option(48, help="max sub-tokens per sentence"),
    temperature: float = typer.Option(2.0, help="tau for the softened source predictions"),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="replace an existing model folder"),
) -> None:
    """Train the source-domain tagger (and record its label distributions)."""
    cfg = _config(encoder, epochs, batch_size, lr, head_lr, max_len, seed, temperature=temperature)
    sentences = load_split(train, "train")
    dev_sentences = load_split(dev, "dev") if dev else None
    pipe = train_source(sentences, cfg, dev=dev_sentences)
    pipe.save_pretrained(out, overwrite=overwrite)
    console.print(f"source tagger ({', '.join(pipe.labels.types)}) saved to {out}")


@app.command("train-target")
def train_target_cmd(
    train: Path = typer.Option(..., help=f"few-shot target training data: {_DATA_HELP}"),
    out: Path = typer.Option(..., help="output model folder"),
    source: Path = typer.Option(None, help="source tagger folder from train-source (all methods but target-only)"),
    method: str = typer.Option("lstner", help=f"one of {', '.join(METHODS)}"),
    source_data: Path = typer.Option(None, help="source training data (method multi-task)"),
    types: str = typer.Option("", help="comma-separated target entity types (default: those in --train)"),
    encoder: str = typer.Option("minilm", help="encoder spec (target-only / multi-task start from it)"),
    epochs: int = typer.Option(12),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(1e-4),
    head_lr: float = typer.Option(1e-3),
    max_len: int = typer.Option(48),
    l_aux: float = typer.Option(0.1, help="lambda_aux, weight of the multi-label BCE"),
    l_gw: float = typer.Option(1.0, help="lambda_gw, weight of the GW graph-matching loss (0 = w/o GW)"),
    graph: bool = typer.Option(True, help="fuse the label graph (--no-graph = ablation)"),
    edge_rule: str = typer.Option("cosine", help="label-graph edges: cosine or knn"),
    edge_threshold: float = typer.Option(0.3),
    temperature: float = typer.Option(2.0),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False),
) -> None:
    """Train a target-domain tagger from a few sentences (LST-NER or a baseline)."""
    cfg = _config(
        encoder,
        epochs,
        batch_size,
        lr,
        head_lr,
        max_len,
        seed,
        l_aux=l_aux,
        l_gw=l_gw,
        use_graph=graph,
        edge_rule=edge_rule,
        edge_threshold=edge_threshold,
        temperature=temperature,
    )
    label_set = LabelSet(sorted(t.strip() for t in types.split(",") if t.strip())) if types else None
    sentences = load_split(train, "train", set(label_set.types) if label_set else None)
    src = NERPipeline.from_pretrained(source) if source else None
    src_sents = load_split(source_data, "train") if source_data else None
    pipe = train_target(sentences, cfg, method, src, src_sents, labels=label_set)
    pipe.save_pretrained(out, overwrite=overwrite)
    console.print(f"{method} target tagger ({', '.join(pipe.labels.types)}) saved to {out}")


@app.command("eval")
def eval_cmd(
    model: Path = typer.Option(..., help="model folder"),
    data: Path = typer.Option(..., help=f"test data: {_DATA_HELP} (a folder uses test.txt)"),
    out: Path = typer.Option(None, help="also write the scores as JSON here"),
    overwrite: bool = typer.Option(False),
) -> None:
    """Strict span F1 (seqeval, IOB2 strict), micro and per type."""
    pipe = NERPipeline.from_pretrained(model)
    scores = pipe.evaluate(load_split(data, "test", set(pipe.labels.types)))
    if out:
        write_json(out, scores, overwrite=overwrite)
    typer.echo(json.dumps(scores, indent=2))


@app.command("predict")
def predict_cmd(
    text: list[str] = typer.Argument(..., help="raw text (one argument per sentence)"),
    model: Path = typer.Option(..., help="model folder"),
) -> None:
    """Print the entity spans found in raw text, one JSON line per sentence."""
    pipe = NERPipeline.from_pretrained(model)
    for sentence in text:
        typer.echo(json.dumps({"text": sentence, "entities": pipe.predict_text(sentence)}, ensure_ascii=False))
